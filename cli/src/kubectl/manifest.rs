//! Reading `-f` inputs (files, directories with `-R`, `-`) into objects, and checking all
//! of them before anything is sent, so that one bad document never leaves a file half
//! applied.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use serde_json::Value;

use super::client::Ctx;
use super::discovery::{Discovery, Resource};

/// One object from the inputs and where it came from (for error messages).
#[derive(Debug, Clone)]
pub struct Doc {
    pub source: String,
    pub object: Value,
}

/// The files to read for `-f` values: files as given, directories' `.yaml`/`.yml`/`.json`
/// files (recursively with `-R`), sorted for a stable order.
pub fn expand_paths(inputs: &[String], recursive: bool) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for input in inputs {
        if input == "-" {
            out.push(input.clone());
            continue;
        }
        let path = Path::new(input);
        let meta = std::fs::metadata(path)
            .map_err(|_| anyhow!("the path \"{input}\" does not exist; check the -f argument"))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(path, recursive, &mut files)?;
            files.sort();
            out.extend(files.into_iter().map(|p| p.display().to_string()));
        } else {
            out.push(input.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
    {
        let path = entry?.path();
        if path.is_dir() {
            if recursive {
                walk(&path, recursive, out)?;
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads and parses every input; fails on the first unreadable or malformed one.
pub fn read_inputs(inputs: &[String], recursive: bool) -> anyhow::Result<Vec<Doc>> {
    let mut docs = Vec::new();
    for path in expand_paths(inputs, recursive)? {
        let text = if path == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read objects from standard input")?;
            s
        } else {
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?
        };
        let name = if path == "-" {
            "STDIN".to_string()
        } else {
            path
        };
        docs.extend(parse_documents(&name, &text)?);
    }
    if docs.is_empty() {
        bail!("no objects passed to apply; the files given with -f contain no documents");
    }
    Ok(docs)
}

/// Splits one file's text into objects: multi-document YAML or JSON, `kind: List`
/// expanded, empty documents skipped.
pub fn parse_documents(source: &str, text: &str) -> anyhow::Result<Vec<Doc>> {
    let mut values = Vec::new();
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        let mut i = 0;
        for v in stream {
            i += 1;
            let v = v.map_err(|e| {
                anyhow!("error parsing {source} (JSON object {i}): {e}; fix the JSON and retry")
            })?;
            values.push((i, v));
        }
    } else {
        for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(de).map_err(|e| {
                anyhow!(
                    "error parsing {source} (document {}): {e}; fix the YAML and retry",
                    i + 1
                )
            })?;
            let json: Value = serde_json::to_value(&v).map_err(|e| {
                anyhow!(
                    "error converting {source} (document {}) to JSON: {e}; keys must be strings",
                    i + 1
                )
            })?;
            values.push((i + 1, json));
        }
    }
    let mut docs = Vec::new();
    for (i, v) in values {
        if v.is_null() {
            continue;
        }
        let where_ = format!("{source} (document {i})");
        if v["kind"].as_str().is_some_and(|k| k.ends_with("List")) && v["items"].is_array() {
            for (j, item) in v["items"].as_array().into_iter().flatten().enumerate() {
                docs.push(Doc {
                    source: format!("{where_}, item {j}"),
                    object: item.clone(),
                });
            }
        } else {
            docs.push(Doc {
                source: where_,
                object: v,
            });
        }
    }
    Ok(docs)
}

/// A document checked against discovery and ready to send.
#[derive(Debug, Clone)]
pub struct Checked<'a> {
    pub doc: Doc,
    pub resource: &'a Resource,
    /// Target namespace (`None` for cluster-scoped).
    pub namespace: Option<String>,
    pub name: String,
}

/// Checks the shape every document needs; returns all problems, one line each.
pub fn check_documents<'a>(
    docs: Vec<Doc>,
    discovery: &'a Discovery,
    default_ns: &str,
    explicit_ns: bool,
    allow_generate_name: bool,
) -> Result<Vec<Checked<'a>>, Vec<String>> {
    let mut ok = Vec::new();
    let mut problems = Vec::new();
    for doc in docs {
        let o = &doc.object;
        let src = &doc.source;
        if !o.is_object() {
            problems.push(format!("{src}: not an object; each document must be a mapping with apiVersion, kind and metadata"));
            continue;
        }
        let (Some(api_version), Some(kind)) = (o["apiVersion"].as_str(), o["kind"].as_str()) else {
            let missing = if o["apiVersion"].as_str().is_none() {
                "apiVersion"
            } else {
                "kind"
            };
            problems.push(format!(
                "{src}: {missing} not set; every object needs apiVersion and kind"
            ));
            continue;
        };
        let resource = match discovery.for_kind(api_version, kind) {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("{src}: {e}"));
                continue;
            }
        };
        let name = o
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let generate = o
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .is_some();
        if name.is_empty() && !(allow_generate_name && generate) {
            problems.push(format!(
                "{src}: metadata.name is required; give the {kind} a name"
            ));
            continue;
        }
        let doc_ns = o.pointer("/metadata/namespace").and_then(Value::as_str);
        let namespace = if resource.namespaced {
            if let Some(ns) = doc_ns {
                if explicit_ns && ns != default_ns {
                    problems.push(format!(
                        "{src}: the namespace from the provided object \"{ns}\" does not match the namespace \"{default_ns}\"; pass --namespace={ns} or remove -n"
                    ));
                    continue;
                }
            }
            Some(doc_ns.unwrap_or(default_ns).to_string())
        } else {
            None
        };
        ok.push(Checked {
            doc,
            resource,
            namespace,
            name,
        });
    }
    if problems.is_empty() {
        Ok(ok)
    } else {
        Err(problems)
    }
}

/// Reads, parses and checks; an `Err` is the full list of problems and nothing was sent.
pub async fn load_checked<'a>(
    ctx: &'a Ctx,
    files: &[String],
    recursive: bool,
    allow_generate_name: bool,
) -> anyhow::Result<Vec<Checked<'a>>> {
    let docs = read_inputs(files, recursive)?;
    let discovery = ctx.discovery().await?;
    check_documents(
        docs,
        discovery,
        &ctx.namespace,
        ctx.explicit_namespace,
        allow_generate_name,
    )
    .map_err(|p| {
        anyhow!(
            "{}\nnothing was sent: fix the documents above and retry",
            p.join("\n")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn discovery() -> Discovery {
        Discovery::from_lists(&[
            json!({"groupVersion": "v1", "resources": [
                {"name": "configmaps", "singularName": "configmap", "namespaced": true, "kind": "ConfigMap"},
                {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace"},
            ]}),
            json!({"groupVersion": "apps/v1", "resources": [
                {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment"},
            ]}),
        ])
    }

    #[test]
    fn multi_document_yaml_skips_empty_documents_and_expands_lists() {
        let text = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n";
        let docs = parse_documents("x.yaml", text).unwrap();
        let names: Vec<_> = docs
            .iter()
            .map(|d| d.object["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["a", "b", "c"]);
        assert!(docs[1].source.contains("item 0"), "{}", docs[1].source);
    }

    #[test]
    fn json_streams_parse() {
        let docs = parse_documents("x.json", r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a"}} {"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"b"}}"#).unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn malformed_yaml_names_file_and_document() {
        let err = parse_documents(
            "bad.yaml",
            "apiVersion: v1\nkind: ConfigMap\n---\nmetadata: [unclosed\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("bad.yaml (document 2)"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }

    #[test]
    fn checks_report_every_bad_document() {
        let docs = vec![
            Doc {
                source: "f (document 1)".into(),
                object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}}),
            },
            Doc {
                source: "f (document 2)".into(),
                object: json!({"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}}),
            },
            Doc {
                source: "f (document 3)".into(),
                object: json!({"kind": "ConfigMap", "metadata": {"name": "x"}}),
            },
            Doc {
                source: "f (document 4)".into(),
                object: json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}}),
            },
            Doc {
                source: "f (document 5)".into(),
                object: json!("text"),
            },
        ];
        let d = discovery();
        let problems = check_documents(docs, &d, "default", false, false).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems[0].contains("document 2")
                && problems[0].contains("no matches for kind \"Widget\"")
        );
        assert!(problems[1].contains("apiVersion not set"));
        assert!(problems[2].contains("metadata.name is required"));
        assert!(problems[3].contains("not an object"));
    }

    #[test]
    fn namespaces_follow_scope_and_flag() {
        let d = discovery();
        let docs = vec![
            Doc {
                source: "a".into(),
                object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
            },
            Doc {
                source: "b".into(),
                object: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}}),
            },
            Doc {
                source: "c".into(),
                object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "other"}}),
            },
        ];
        let ok = check_documents(docs.clone(), &d, "dev", false, false).unwrap();
        let ns: Vec<_> = ok.iter().map(|c| c.namespace.clone()).collect();
        assert_eq!(ns, vec![Some("dev".into()), None, Some("other".into())]);
        let problems = check_documents(docs, &d, "dev", true, false).unwrap_err();
        assert!(
            problems[0].contains("does not match the namespace \"dev\""),
            "{problems:?}"
        );
    }

    #[test]
    fn missing_paths_say_so() {
        let err = expand_paths(&["/nonexistent/x.yaml".into()], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn directories_list_manifests_recursively_only_with_r() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.json"), "").unwrap();
        let d = dir.path().display().to_string();
        assert_eq!(
            expand_paths(std::slice::from_ref(&d), false).unwrap().len(),
            1
        );
        assert_eq!(expand_paths(&[d], true).unwrap().len(), 2);
    }
}
