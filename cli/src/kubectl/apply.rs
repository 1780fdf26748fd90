//! `skiff apply -f` and `skiff create -f`.
//!
//! apply is *server-side* apply (`kubectl apply --server-side`): each object is sent
//! whole as an `application/apply-patch+yaml` PATCH with field manager `skiff`; the
//! server merges it, creates it when absent, removes fields skiff applied before and no
//! longer sends, and refuses (409) to change fields another manager owns unless
//! `--force-conflicts` is given. What happened is read off the resourceVersion: a new
//! object was created, a moved resourceVersion means configured, else unchanged.
//!
//! Objects that an older skiff applied client-side (an `Update` entry of the same
//! manager in managedFields) are first moved to server-side ownership, as kubectl 1.27+
//! does, so that the first server-side apply does not conflict with skiff itself.

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
    /// Take fields other managers own instead of failing with a conflict.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Accepted for kubectl compatibility: skiff apply is always server-side.
    #[arg(long, hide = true)]
    pub server_side: bool,
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

/// The content of an object without what the server changes on every write.
fn content(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["managedFields", "resourceVersion"] {
            m.remove(k);
        }
    }
    v
}

/// The JSON patch moving a client-side apply entry of `manager` (operation `Update`) to
/// an `Apply` entry, or `None` when there is nothing to move.
pub fn upgrade_patch(live: &Value, manager: &str) -> Option<Value> {
    let entries = live.pointer("/metadata/managedFields")?.as_array()?;
    let is = |e: &Value, op: &str| {
        e["manager"] == manager
            && e["operation"] == op
            && e.get("subresource")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
    };
    if entries.iter().any(|e| is(e, "Apply")) || !entries.iter().any(|e| is(e, "Update")) {
        return None;
    }
    let moved: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if is(&e, "Update") {
                e["operation"] = Value::String("Apply".into());
            }
            e
        })
        .collect();
    let rv = live.pointer("/metadata/resourceVersion").cloned()?;
    Some(serde_json::json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "replace", "path": "/metadata/managedFields", "value": moved},
    ]))
}

/// Applies one checked object server-side.
pub async fn apply_one(
    ctx: &Ctx,
    c: &Checked<'_>,
    field_manager: &str,
    force: bool,
    dry_run: bool,
) -> anyhow::Result<Outcome> {
    let r = c.resource;
    let ns = c.namespace.as_deref();
    if c.name.is_empty() {
        bail!("server-side apply needs metadata.name (generateName cannot be applied)");
    }
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("fieldManager", field_manager);
    if force {
        query.append_pair("force", "true");
    }
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
    let object_path = r.object_path(ns, &c.name);
    let live = match ctx.get_json(&object_path).await {
        Ok(v) => Some(v),
        Err(e)
            if e.downcast_ref::<ApiFailure>()
                .is_some_and(ApiFailure::is_not_found) =>
        {
            None
        }
        Err(e) => return Err(e),
    };
    let mut live = live;
    if let Some(patch) = live.as_ref().and_then(|l| upgrade_patch(l, field_manager)) {
        if !dry_run {
            live = Some(
                ctx.send_json(
                    Method::PATCH,
                    &object_path,
                    "application/json-patch+json",
                    &patch,
                )
                .await?,
            );
        }
    }
    let path = format!("{object_path}?{query}");
    let after = ctx
        .send_json(
            Method::PATCH,
            &path,
            "application/apply-patch+yaml",
            &desired,
        )
        .await?;
    let Some(live) = live else {
        return Ok(Outcome::Created);
    };
    let rv = |v: &Value| {
        v.pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    // A dry run never moves the resourceVersion: compare the content instead.
    let moved = rv(&after) != rv(&live) || (dry_run && content(&after) != content(&live));
    Ok(if moved {
        Outcome::Configured
    } else {
        Outcome::Unchanged
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
    if !dry {
        preflight(ctx, &checked, &args.field_manager, args.force_conflicts).await?;
    }
    let mut failures = Vec::new();
    for c in &checked {
        match apply_one(ctx, c, &args.field_manager, args.force_conflicts, dry).await {
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

/// Whether a dry-run failure means the real apply would fail too. A missing namespace
/// (created by an earlier document of the same batch) and ownership conflicts (which
/// the real apply resolves or reports itself) do not: only objects the server refuses
/// as malformed or invalid stop the batch.
pub fn blocks_batch(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ApiFailure>()
        .is_some_and(|f| f.code == 400 || f.code == 422)
}

/// Server-side dry run of every object before any is stored, so that a document the
/// server would refuse (a bad field value, say) leaves the whole batch unapplied.
async fn preflight(
    ctx: &Ctx,
    checked: &[Checked<'_>],
    field_manager: &str,
    force: bool,
) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for c in checked {
        if let Err(e) = apply_one(ctx, c, field_manager, force, true).await {
            if blocks_batch(&e) {
                failures.push(format!("{}: {}", c.doc.source, describe_failure(&e, c)));
            }
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    bail!(
        "{}
nothing was sent: fix the documents above and retry",
        failures.join("\n")
    )
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
    // As for apply: a dry run of the batch first, so that an object the server refuses
    // leaves the others uncreated too.
    let mut refused = Vec::new();
    for c in &checked {
        if let Err(e) = create_one(ctx, c, args.save_config, true).await {
            if blocks_batch(&e) {
                refused.push(format!("{}: {}", c.doc.source, describe_failure(&e, c)));
            }
        }
    }
    if !refused.is_empty() {
        bail!(
            "{}\nnothing was sent: fix the documents above and retry",
            refused.join("\n")
        );
    }
    let mut failures = Vec::new();
    for c in &checked {
        match create_one(ctx, c, args.save_config, false).await {
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

/// POSTs one object (only checked by the server when `dry_run`).
async fn create_one(
    ctx: &Ctx,
    c: &Checked<'_>,
    save_config: bool,
    dry_run: bool,
) -> anyhow::Result<Value> {
    let mut body = if save_config {
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
    let dry = if dry_run { "&dryRun=All" } else { "" };
    let path = format!(
        "{}?fieldManager=skiff{dry}",
        c.resource.collection_path(c.namespace.as_deref())
    );
    ctx.send_json(Method::POST, &path, "application/json", &body)
        .await
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
        Some(f) if f.code == 409 && f.message.starts_with("Apply failed") => {
            format!(
                "{}\nPlease review the fields above--they currently have other managers; re-run with --force-conflicts to take them over",
                f.message
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
    bail!("{}", failure_report(&failures, total))
}

/// The closing lines after some objects failed: which part of the batch was stored.
pub fn failure_report(failures: &[String], total: usize) -> String {
    let n = failures.len();
    let tail = if n == total {
        format!("{n} of {total} objects failed; none was applied")
    } else {
        format!("{n} of {total} objects failed (the others, printed above, were applied)")
    };
    format!("{}\n{tail}", failures.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_refused_objects_stop_the_batch() {
        let fail = |code: u16| {
            anyhow::Error::from(ApiFailure {
                code,
                reason: String::new(),
                message: String::new(),
                causes: vec![],
                hint: None,
            })
        };
        for (code, blocks) in [
            (400, true),
            (422, true),
            (404, false),
            (409, false),
            (500, false),
        ] {
            assert_eq!(blocks_batch(&fail(code)), blocks, "{code}");
        }
        assert!(!blocks_batch(&anyhow::anyhow!("connection refused")));
    }

    #[test]
    fn failure_report_says_what_was_stored() {
        let one = vec!["f.yaml (document 2): bad".to_string()];
        assert_eq!(
            failure_report(&one, 3),
            "f.yaml (document 2): bad\n1 of 3 objects failed (the others, printed above, were applied)"
        );
        assert_eq!(
            failure_report(&one, 1),
            "f.yaml (document 2): bad\n1 of 1 objects failed; none was applied"
        );
    }

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
    fn client_side_entries_of_the_manager_move_to_apply_once() {
        let entry = |m: &str, op: &str| json!({"manager": m, "operation": op, "fieldsType": "FieldsV1", "fieldsV1": {}});
        let obj = |entries: Value| json!({"metadata": {"resourceVersion": "7", "managedFields": entries}});
        let moved = upgrade_patch(
            &obj(json!([entry("skiff", "Update"), entry("other", "Update")])),
            "skiff",
        )
        .unwrap();
        assert_eq!(
            moved[0],
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": "7"})
        );
        assert_eq!(
            moved[1]["value"],
            json!([entry("skiff", "Apply"), entry("other", "Update")])
        );
        // Nothing to move: already applied server-side, another manager only, none.
        for entries in [
            json!([entry("skiff", "Update"), entry("skiff", "Apply")]),
            json!([entry("other", "Update")]),
            json!([]),
        ] {
            assert_eq!(
                upgrade_patch(&obj(entries.clone()), "skiff"),
                None,
                "{entries}"
            );
        }
    }

    #[test]
    fn content_ignores_what_every_write_changes() {
        let a = json!({"metadata": {"name": "a", "resourceVersion": "1", "managedFields": [1]}, "data": {"k": "v"}});
        let b = json!({"metadata": {"name": "a", "resourceVersion": "2"}, "data": {"k": "v"}});
        assert_eq!(content(&a), content(&b));
        let c = json!({"metadata": {"name": "a"}, "data": {"k": "w"}});
        assert_ne!(content(&a), content(&c));
    }
}
