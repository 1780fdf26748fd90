//! `skiff explain TYPE[.field.path]`: a light `kubectl explain` from the server's own
//! `/openapi/v3` documents: the kind, group and version, the described field's type and
//! description, and its child fields (`-required-` marked). The schema walk is a pure
//! function over the OpenAPI document; the command only fetches it.

use std::io::Write;

use anyhow::{anyhow, bail};
use clap::Args;
use serde_json::Value;

use super::client::Ctx;
use super::config::KubeFlags;
use super::discovery::Resource;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// TYPE or TYPE.field.path (e.g. deploy.spec.replicas).
    pub target: String,
    /// Use this group/version of the type (e.g. apps/v1).
    #[arg(long)]
    pub api_version: Option<String>,
}

/// The schema name a `$ref` (direct or through `allOf`, the v3 style) points at.
fn ref_name(schema: &Value) -> Option<&str> {
    schema["$ref"]
        .as_str()
        .or_else(|| schema.pointer("/allOf/0/$ref").and_then(Value::as_str))
        .and_then(|r| r.rsplit('/').next())
}

/// The schema itself, following one `$ref`.
fn deref<'a>(schemas: &'a Value, schema: &'a Value) -> &'a Value {
    match ref_name(schema) {
        Some(name) => schemas.get(name).unwrap_or(schema),
        None => schema,
    }
}

/// The type the way kubectl prints it: `<string>`, `<[]Container>`, `<map[string]string>`,
/// `<PodSpec>`, `<Object>`.
pub fn type_label(schema: &Value) -> String {
    if let Some(name) = ref_name(schema) {
        return name.rsplit('.').next().unwrap_or(name).to_string();
    }
    match schema["type"].as_str() {
        Some("array") => format!("[]{}", type_label(&schema["items"])),
        Some("object") if schema.get("additionalProperties").is_some() => {
            format!("map[string]{}", type_label(&schema["additionalProperties"]))
        }
        Some("object") | None => "Object".into(),
        Some(t) => t.to_string(),
    }
}

/// Where a field path leads in the schema tree: the field's own schema and the schema
/// holding its children (arrays and maps explain their elements, as kubectl does).
fn element<'a>(schemas: &'a Value, schema: &'a Value) -> &'a Value {
    let s = deref(schemas, schema);
    match s["type"].as_str() {
        Some("array") => element(schemas, &s["items"]),
        Some("object")
            if s.get("properties").is_none() && s.get("additionalProperties").is_some() =>
        {
            element(schemas, &s["additionalProperties"])
        }
        _ => s,
    }
}

/// The schema name of `group/version/kind` in a v3 document (by its
/// `x-kubernetes-group-version-kind`).
pub fn root_schema<'a>(doc: &'a Value, r: &Resource) -> Option<&'a str> {
    doc.pointer("/components/schemas")?
        .as_object()?
        .iter()
        .find(|(_, s)| {
            s["x-kubernetes-group-version-kind"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|g| {
                    g["group"] == r.group.as_str()
                        && g["version"] == r.version.as_str()
                        && g["kind"] == r.kind.as_str()
                })
        })
        .map(|(k, _)| k.as_str())
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim().is_empty() {
                by.trim_end().to_string()
            } else {
                format!("{by}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The explanation of `fields` (may be empty) under the root schema `root` of `doc`.
pub fn explain(doc: &Value, r: &Resource, root: &str, fields: &[&str]) -> anyhow::Result<String> {
    let schemas = doc
        .pointer("/components/schemas")
        .ok_or_else(|| anyhow!("the server's OpenAPI document has no schemas"))?;
    let mut field: Option<(&str, &Value)> = None;
    let mut current = schemas
        .get(root)
        .ok_or_else(|| anyhow!("the server's OpenAPI document has no schema {root}"))?;
    let mut walked = Vec::new();
    for f in fields {
        let holder = element(schemas, current);
        let Some(child) = holder.pointer(&format!("/properties/{f}")) else {
            let path = if walked.is_empty() {
                r.kind.to_lowercase()
            } else {
                format!("{}.{}", r.kind.to_lowercase(), walked.join("."))
            };
            bail!(
                "field \"{f}\" does not exist in {path}; `skiff explain {path}` lists its fields"
            );
        };
        walked.push(*f);
        field = Some((f, child));
        current = child;
    }
    let mut out = String::new();
    if !r.group.is_empty() {
        out.push_str(&format!("GROUP:      {}\n", r.group));
    }
    out.push_str(&format!(
        "KIND:       {}\nVERSION:    {}\n\n",
        r.kind, r.version
    ));
    if let Some((name, schema)) = field {
        out.push_str(&format!("FIELD: {name} <{}>\n\n", type_label(schema)));
    }
    let described = deref(schemas, current);
    let description = current["description"]
        .as_str()
        .or_else(|| described["description"].as_str())
        .unwrap_or("<empty>");
    out.push_str(&format!("DESCRIPTION:\n{}\n", indent(description, "    ")));
    let holder = element(schemas, current);
    if let Some(props) = holder["properties"].as_object() {
        let required: Vec<&str> = holder["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        out.push_str("\nFIELDS:\n");
        let mut names: Vec<&String> = props.keys().collect();
        names.sort();
        for name in names {
            let p = &props[name];
            let req = if required.contains(&name.as_str()) {
                " -required-"
            } else {
                ""
            };
            out.push_str(&format!("  {name}\t<{}>{req}\n", type_label(p)));
            let d = p["description"]
                .as_str()
                .or_else(|| deref(schemas, p)["description"].as_str())
                .unwrap_or("<no description>");
            // The first paragraph only, as in the field list kubectl prints.
            let first = d.split("\n\n").next().unwrap_or(d);
            out.push_str(&indent(first, "    "));
            out.push_str("\n\n");
        }
        while out.ends_with("\n\n") {
            out.pop();
        }
    }
    Ok(out)
}

/// `/openapi/v3` path of a resource's group-version (`api/v1`, `apis/apps/v1`).
fn gv_path(r: &Resource) -> String {
    if r.group.is_empty() {
        format!("api/{}", r.version)
    } else {
        format!("apis/{}/{}", r.group, r.version)
    }
}

pub async fn run(ctx: &Ctx, args: &ExplainArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut parts = args.target.split('.');
    let typ = parts.next().unwrap_or_default();
    let fields: Vec<&str> = parts.filter(|p| !p.is_empty()).collect();
    let discovery = ctx.discovery().await?;
    let r = match &args.api_version {
        Some(av) => {
            let found = discovery.resolve(typ)?;
            let mut r = found.clone();
            match av.split_once('/') {
                Some((g, v)) => (r.group, r.version) = (g.to_string(), v.to_string()),
                None => (r.group, r.version) = (String::new(), av.clone()),
            }
            r
        }
        None => discovery.resolve(typ)?.clone(),
    };
    let index = ctx
        .get_json("/openapi/v3")
        .await
        .map_err(|e| anyhow!("{e:#}; the server must serve /openapi/v3 for explain"))?;
    let gv = gv_path(&r);
    let url = index
        .pointer(&format!(
            "/paths/{}/serverRelativeURL",
            gv.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("/openapi/v3/{gv}"));
    let doc = ctx.get_json(&url).await?;
    let root = root_schema(&doc, &r).ok_or_else(|| {
        anyhow!(
            "the server publishes no schema for {} in {}; it cannot be explained",
            r.kind,
            r.api_version()
        )
    })?;
    let text = explain(&doc, &r, root, &fields)?;
    writeln!(out, "{text}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployments() -> Resource {
        Resource {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
            singular: "deployment".into(),
            namespaced: true,
            short_names: vec!["deploy".into()],
            categories: vec![],
            verbs: vec![],
            subresources: vec![],
        }
    }

    #[test]
    fn explains_kinds_fields_and_nested_lists_from_the_servers_document() {
        let doc = skiff_api::openapi::v3_document("apis/apps/v1").expect("apps/v1 is served");
        let r = deployments();
        let root = root_schema(&doc, &r).expect("deployment schema carries its gvk");
        let top = explain(&doc, &r, root, &[]).unwrap();
        assert!(top.starts_with("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\nDESCRIPTION:\n    Deployment enables"), "{top}");
        assert!(top.contains("\n  spec\t<DeploymentSpec>\n"), "{top}");
        assert!(top.contains("\n  metadata\t<ObjectMeta>\n"), "{top}");

        let replicas = explain(&doc, &r, root, &["spec", "replicas"]).unwrap();
        assert!(
            replicas.contains("FIELD: replicas <integer>\n"),
            "{replicas}"
        );
        assert!(replicas.contains("Number of desired pods"), "{replicas}");
        assert!(
            !replicas.contains("FIELDS:"),
            "a scalar has no children: {replicas}"
        );

        // Through an array: containers explain the Container's fields.
        let containers =
            explain(&doc, &r, root, &["spec", "template", "spec", "containers"]).unwrap();
        assert!(
            containers.contains("FIELD: containers <[]Container>"),
            "{containers}"
        );
        assert!(
            containers.contains("\n  name\t<string> -required-\n"),
            "{containers}"
        );
        assert!(containers.contains("\n  image\t<string>\n"), "{containers}");

        let err = explain(&doc, &r, root, &["spec", "replicaz"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("field \"replicaz\" does not exist in deployment.spec"),
            "{err}"
        );
    }

    #[test]
    fn type_labels_follow_kubectl() {
        let cases = [
            (serde_json::json!({"type": "string"}), "string"),
            (
                serde_json::json!({"type": "array", "items": {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}}),
                "[]Container",
            ),
            (
                serde_json::json!({"type": "object", "additionalProperties": {"type": "string"}}),
                "map[string]string",
            ),
            (
                serde_json::json!({"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]}),
                "PodSpec",
            ),
            (serde_json::json!({"type": "object"}), "Object"),
        ];
        for (schema, want) in cases {
            assert_eq!(type_label(&schema), want, "{schema}");
        }
    }
}
