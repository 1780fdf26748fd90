//! `skiff apply -f` and `skiff create -f`.
//!
//! apply is kubectl's *client-side* apply: the object is created with the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation; later applies compute a
//! three-way patch from that annotation (what the user applied last), the new file and
//! the live object, and send it as a JSON merge patch. Merge patches replace lists
//! wholesale (a strategic merge patch would merge `containers` by name); a list is only
//! sent when the file's list actually differs from the live one, so server defaults
//! inside list items do not make every apply "configured".

use std::io::Write;

use anyhow::bail;
use clap::Args;
use http::Method;
use serde_json::{Map, Value};

use super::client::{ApiFailure, Ctx};
use super::config::KubeFlags;
use super::manifest::{self, Checked};

pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// File, directory or - (stdin) holding the objects; repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Read directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Only `name` is supported: print `type.group/name`.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Let the server check everything but store nothing (client is treated as server).
    #[arg(long, value_name = "client|server|none", default_value = "none")]
    pub dry_run: String,
    /// Field manager recorded by the server.
    #[arg(long, default_value = "skiff")]
    pub field_manager: String,
}

/// `object` with the last-applied annotation set to `object` itself (without it).
pub fn with_last_applied(object: &Value) -> anyhow::Result<Value> {
    let mut clean = object.clone();
    if let Some(a) = clean
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            if let Some(m) = clean
                .pointer_mut("/metadata")
                .and_then(Value::as_object_mut)
            {
                m.remove("annotations");
            }
        }
    }
    let text = serde_json::to_string(&clean)?;
    let mut out = object.clone();
    let meta = skiff_api::meta::metadata_mut(&mut out);
    let ann = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !ann.is_object() {
        *ann = Value::Object(Map::new());
    }
    ann.as_object_mut()
        .expect("object")
        .insert(LAST_APPLIED.into(), Value::String(text));
    Ok(out)
}

/// Whether everything `want` says is already true of `live` (extra live fields, such as
/// server defaults, do not count).
pub fn contained(want: &Value, live: &Value) -> bool {
    match (want, live) {
        (Value::Object(w), Value::Object(l)) => w.iter().all(|(k, v)| {
            l.get(k).is_some_and(|lv| contained(v, lv)) || (v.is_null() && !l.contains_key(k))
        }),
        (Value::Array(w), Value::Array(l)) => {
            w.len() == l.len() && w.iter().zip(l).all(|(a, b)| contained(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == live,
    }
}

/// The three-way merge patch: fields removed since `last` are deleted (null) if still
/// live; fields of `new` that `live` does not already have are set. Empty when nothing
/// needs to change.
pub fn three_way_patch(last: &Value, new: &Value, live: &Value) -> Map<String, Value> {
    let empty = Map::new();
    let last_m = last.as_object().unwrap_or(&empty);
    let new_m = new.as_object().unwrap_or(&empty);
    let live_m = live.as_object().unwrap_or(&empty);
    let mut patch = Map::new();
    for k in last_m.keys() {
        if !new_m.contains_key(k) && live_m.contains_key(k) {
            patch.insert(k.clone(), Value::Null);
        }
    }
    for (k, nv) in new_m {
        let lv = live_m.get(k);
        match (nv, lv) {
            (Value::Object(_), Some(Value::Object(_))) => {
                let sub = three_way_patch(
                    last_m.get(k).unwrap_or(&Value::Null),
                    nv,
                    lv.expect("matched"),
                );
                if !sub.is_empty() {
                    patch.insert(k.clone(), Value::Object(sub));
                }
            }
            (_, Some(lv)) if contained(nv, lv) => {}
            _ => {
                patch.insert(k.clone(), nv.clone());
            }
        }
    }
    patch
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// Applies one checked object.
pub async fn apply_one(
    ctx: &Ctx,
    c: &Checked<'_>,
    field_manager: &str,
    dry_run: bool,
) -> anyhow::Result<Outcome> {
    let r = c.resource;
    let ns = c.namespace.as_deref();
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("fieldManager", field_manager);
    if dry_run {
        query.append_pair("dryRun", "All");
    }
    let query = query.finish();
    let mut desired = c.doc.object.clone();
    if let (Some(ns), Some(m)) = (
        ns,
        desired.get_mut("metadata").and_then(Value::as_object_mut),
    ) {
        m.insert("namespace".into(), Value::String(ns.into()));
    }
    let desired = with_last_applied(&desired)?;
    let live = match ctx.get_json(&r.object_path(ns, &c.name)).await {
        Ok(v) => Some(v),
        Err(e)
            if e.downcast_ref::<ApiFailure>()
                .is_some_and(ApiFailure::is_not_found) =>
        {
            None
        }
        Err(e) => return Err(e),
    };
    let Some(live) = live else {
        let path = format!("{}?{query}", r.collection_path(ns));
        ctx.send_json(Method::POST, &path, "application/json", &desired)
            .await?;
        return Ok(Outcome::Created);
    };
    let last: Value = live
        .pointer(&format!(
            "/metadata/annotations/{}",
            LAST_APPLIED.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let patch = three_way_patch(&last, &desired, &live);
    if patch.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    let path = format!("{}?{query}", r.object_path(ns, &c.name));
    let after = ctx
        .send_json(
            Method::PATCH,
            &path,
            "application/merge-patch+json",
            &Value::Object(patch),
        )
        .await?;
    let rv = |v: &Value| {
        v.pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok(if rv(&after) == rv(&live) {
        Outcome::Unchanged
    } else {
        Outcome::Configured
    })
}

fn line(c: &Checked<'_>, word: &str, name_only: bool) -> String {
    let name = if c.name.is_empty() {
        "<generated>"
    } else {
        &c.name
    };
    if name_only {
        format!("{}/{}", c.resource.kind_prefix(), name)
    } else {
        format!("{}/{} {word}", c.resource.kind_prefix(), name)
    }
}

fn check_output(o: Option<&str>) -> anyhow::Result<bool> {
    match o {
        None | Some("") => Ok(false),
        Some("name") => Ok(true),
        Some(other) => {
            bail!("unsupported output format \"{other}\" for this command; use -o name or nothing")
        }
    }
}

fn dry_run_flag(s: &str) -> anyhow::Result<bool> {
    match s {
        "none" => Ok(false),
        "client" | "server" => Ok(true),
        other => bail!("invalid --dry-run value \"{other}\"; use none, client or server"),
    }
}

pub async fn run_apply(ctx: &Ctx, args: &ApplyArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let name_only = check_output(args.output.as_deref())?;
    let dry = dry_run_flag(&args.dry_run)?;
    let checked = manifest::load_checked(ctx, &args.files, args.recursive, false).await?;
    let suffix = if args.dry_run == "none" {
        String::new()
    } else {
        format!(" ({} dry run)", args.dry_run)
    };
    let mut failures = Vec::new();
    for c in &checked {
        match apply_one(ctx, c, &args.field_manager, dry).await {
            Ok(o) => writeln!(
                out,
                "{}",
                line(c, &format!("{}{suffix}", o.word()), name_only)
            )?,
            Err(e) => failures.push(format!("{}: {}", c.doc.source, describe_failure(&e, c))),
        }
    }
    report(failures, checked.len())
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// File, directory or - (stdin) holding the objects; repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Read directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Only `name` is supported.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Also store the last-applied annotation so that `apply` works on it later.
    #[arg(long)]
    pub save_config: bool,
}

pub async fn run_create(ctx: &Ctx, args: &CreateArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let name_only = check_output(args.output.as_deref())?;
    let checked = manifest::load_checked(ctx, &args.files, args.recursive, true).await?;
    let mut failures = Vec::new();
    for c in &checked {
        let mut body = if args.save_config {
            with_last_applied(&c.doc.object)?
        } else {
            c.doc.object.clone()
        };
        if let (Some(ns), Some(m)) = (
            c.namespace.as_deref(),
            body.get_mut("metadata").and_then(Value::as_object_mut),
        ) {
            m.insert("namespace".into(), Value::String(ns.into()));
        }
        let path = format!(
            "{}?fieldManager=skiff",
            c.resource.collection_path(c.namespace.as_deref())
        );
        match ctx
            .send_json(Method::POST, &path, "application/json", &body)
            .await
        {
            Ok(created) => {
                let name = created
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or(&c.name);
                if name_only {
                    writeln!(out, "{}/{name}", c.resource.kind_prefix())?;
                } else {
                    writeln!(out, "{}/{name} created", c.resource.kind_prefix())?;
                }
            }
            Err(e) => failures.push(format!("{}: {}", c.doc.source, describe_failure(&e, c))),
        }
    }
    report(failures, checked.len())
}

/// An API failure for one object, with the field paths of an `Invalid` reply.
fn describe_failure(e: &anyhow::Error, c: &Checked<'_>) -> String {
    match e.downcast_ref::<ApiFailure>() {
        Some(f) if f.reason == "Invalid" && !f.causes.is_empty() => {
            let fields: Vec<String> = f
                .causes
                .iter()
                .map(|(field, msg)| format!("{field}: {msg}"))
                .collect();
            format!(
                "Error from server (Invalid): {} \"{}\" is invalid: {}",
                c.resource.qualified_plural(),
                c.name,
                fields.join(", ")
            )
        }
        Some(f) if f.code == 409 && f.reason == "Conflict" => {
            format!("{f}; the object changed while applying, re-run apply")
        }
        _ => format!("{e:#}"),
    }
}

fn report(failures: Vec<String>, total: usize) -> anyhow::Result<()> {
    if failures.is_empty() {
        return Ok(());
    }
    bail!(
        "{}\n{} of {total} objects failed (the others, printed above, were applied)",
        failures.join("\n"),
        failures.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn last_applied_excludes_itself() {
        let o = json!({"metadata": {"name": "a", "annotations": {LAST_APPLIED: "old", "x": "1"}}, "data": {"k": "v"}});
        let with = with_last_applied(&o).unwrap();
        let recorded: Value = serde_json::from_str(
            with["metadata"]["annotations"][LAST_APPLIED]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            recorded,
            json!({"metadata": {"name": "a", "annotations": {"x": "1"}}, "data": {"k": "v"}})
        );
        let bare = with_last_applied(&json!({"metadata": {"name": "b"}})).unwrap();
        let recorded: Value = serde_json::from_str(
            bare["metadata"]["annotations"][LAST_APPLIED]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(recorded, json!({"metadata": {"name": "b"}}));
    }

    #[test]
    fn three_way_patch_cases() {
        let cases = [
            // Same as live (with server defaults around): nothing to send.
            (
                json!({"spec": {"replicas": 2, "template": {"c": [{"name": "a", "image": "x"}]}}}),
                json!({"spec": {"replicas": 2, "template": {"c": [{"name": "a", "image": "x"}]}}}),
                json!({"spec": {"replicas": 2, "strategy": {}, "template": {"c": [{"name": "a", "image": "x", "imagePullPolicy": "Always"}]}}}),
                json!({}),
            ),
            // A changed scalar is sent alone.
            (
                json!({"spec": {"replicas": 2}}),
                json!({"spec": {"replicas": 3}}),
                json!({"spec": {"replicas": 2, "paused": false}}),
                json!({"spec": {"replicas": 3}}),
            ),
            // A field dropped from the file is deleted; one the user never set is kept.
            (
                json!({"data": {"a": "1", "b": "2"}}),
                json!({"data": {"a": "1"}}),
                json!({"data": {"a": "1", "b": "2", "c": "server"}}),
                json!({"data": {"b": null}}),
            ),
            // Lists are replaced wholesale when they differ.
            (
                json!({"c": [{"name": "a"}]}),
                json!({"c": [{"name": "a"}, {"name": "b"}]}),
                json!({"c": [{"name": "a", "x": 1}]}),
                json!({"c": [{"name": "a"}, {"name": "b"}]}),
            ),
            // Live drift from the file is put back.
            (
                json!({"spec": {"replicas": 2}}),
                json!({"spec": {"replicas": 2}}),
                json!({"spec": {"replicas": 5}}),
                json!({"spec": {"replicas": 2}}),
            ),
        ];
        for (i, (last, new, live, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                Value::Object(three_way_patch(&last, &new, &live)),
                want,
                "case {i}"
            );
        }
    }

    #[test]
    fn containment_ignores_extra_live_fields_but_not_list_length() {
        assert!(contained(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(contained(&json!({"a": 1}), &json!({"a": 1.0})));
        assert!(!contained(&json!([1]), &json!([1, 2])));
        assert!(!contained(&json!({"a": {"b": 1}}), &json!({"a": {}})));
    }
}
