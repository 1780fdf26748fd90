//! `skiff get`: server-side Tables printed like kubectl (`-o wide`, `-A`, `-l`,
//! `--show-labels`, several types and `all` with `type.group/name` names), `-o
//! yaml|json|name|jsonpath=...`, and `-w` to follow changes.

use std::io::Write;

use anyhow::bail;
use clap::Args;
use http::Method;
use serde_json::Value;

use super::client::{ApiFailure, Ctx, LineStream, ACCEPT_TABLE};
use super::config::KubeFlags;
use super::discovery::{parse_targets, Resource};
use super::printer::{self, TableOptions};

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// TYPE[,TYPE...] [NAME...] or TYPE/NAME...
    #[arg(required = true)]
    pub resources: Vec<String>,
    /// Output format: wide, yaml, json, name, jsonpath=TEMPLATE.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Label selector, e.g. app=web,tier!=db.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector, e.g. status.phase=Running.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// Add a LABELS column.
    #[arg(long)]
    pub show_labels: bool,
    /// Do not print the header line.
    #[arg(long)]
    pub no_headers: bool,
    /// After listing, keep printing changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Report nothing (and succeed) for names that do not exist.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Keep metadata.managedFields in -o json/yaml/jsonpath output (omitted, as
    /// kubectl omits it, by default).
    #[arg(long)]
    pub show_managed_fields: bool,
}

/// The parsed `-o` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Table { wide: bool },
    Yaml,
    Json,
    Name,
    JsonPath(String),
}

impl Output {
    pub fn parse(o: Option<&str>) -> anyhow::Result<Output> {
        Ok(match o {
            None | Some("") => Output::Table { wide: false },
            Some("wide") => Output::Table { wide: true },
            Some("yaml") => Output::Yaml,
            Some("json") => Output::Json,
            Some("name") => Output::Name,
            Some(other) => match other.split_once('=') {
                Some(("jsonpath", t)) => Output::JsonPath(t.to_string()),
                _ => bail!(
                    "unable to match a printer suitable for the output format \"{other}\", allowed formats are: json,jsonpath,name,wide,yaml"
                ),
            },
        })
    }
}

/// Query string for a list: label and field selectors.
pub fn list_query(selector: Option<&str>, field_selector: Option<&str>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Some(s) = selector {
        q.append_pair("labelSelector", s);
    }
    if let Some(s) = field_selector {
        q.append_pair("fieldSelector", s);
    }
    let q = q.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

struct Fetched<'a> {
    resource: &'a Resource,
    /// Table or JSON reply, list or single object.
    replies: Vec<Value>,
}

pub async fn run(ctx: &Ctx, args: &GetArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let output = Output::parse(args.output.as_deref())?;
    let targets = parse_targets(&args.resources)?;
    let discovery = ctx.discovery().await?;
    let namespace = if ctx.all_namespaces {
        None
    } else {
        Some(ctx.namespace.as_str())
    };
    let is_table = matches!(output, Output::Table { .. });

    let mut resolved: Vec<(&Resource, Vec<String>)> = Vec::new();
    let mut several = targets.len() > 1;
    for t in &targets {
        let list = discovery.resolve_list(&t.types)?;
        several |= list.len() > 1 || discovery.resolve(&t.types).is_err();
        for r in list {
            resolved.push((r, t.names.clone()));
        }
    }
    if args.watch && resolved.len() != 1 {
        bail!("you may only specify a single resource type with --watch");
    }

    let mut fetched: Vec<Fetched> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for (r, names) in &resolved {
        let mut replies = Vec::new();
        let accept = if is_table {
            ACCEPT_TABLE
        } else {
            "application/json"
        };
        if names.is_empty() {
            let path = format!(
                "{}{}",
                r.collection_path(namespace),
                list_query(args.selector.as_deref(), args.field_selector.as_deref())
            );
            match ctx.call(Method::GET, &path, accept, None).await {
                Ok(bytes) => replies.push(serde_json::from_slice(&bytes)?),
                // `all` spans types the user may not be allowed to list; skip those
                // like kubectl rather than fail the whole listing.
                Err(e)
                    if several
                        && e.downcast_ref::<ApiFailure>()
                            .is_some_and(|f| f.code == 403) =>
                {
                    tracing::debug!("skipping {}: {e:#}", r.plural);
                }
                Err(e) => return Err(e),
            }
        } else {
            for n in names {
                let path = r.object_path(namespace.or(Some(ctx.namespace.as_str())), n);
                match ctx.call(Method::GET, &path, accept, None).await {
                    Ok(bytes) => replies.push(serde_json::from_slice(&bytes)?),
                    Err(e) => match e.downcast_ref::<ApiFailure>() {
                        Some(f) if f.is_not_found() && args.ignore_not_found => {}
                        Some(f) if f.is_not_found() => errors.push(f.to_string()),
                        _ => return Err(e),
                    },
                }
            }
        }
        fetched.push(Fetched {
            resource: r,
            replies,
        });
    }

    let names_given = resolved.iter().any(|(_, n)| !n.is_empty());
    // Whether a table header is on screen already (a watch prints one with its first
    // row otherwise).
    let mut header_printed = args.no_headers;
    match &output {
        Output::Table { wide } => {
            let mut printed_any = false;
            let mut first = true;
            for f in &fetched {
                let mut rows: Vec<Vec<String>> = Vec::new();
                for (i, reply) in f.replies.iter().enumerate() {
                    let opts = TableOptions {
                        wide: *wide,
                        show_labels: args.show_labels,
                        with_namespace: ctx.all_namespaces && f.resource.namespaced,
                        name_prefix: several.then(|| f.resource.kind_prefix()),
                        no_headers: args.no_headers || i > 0,
                    };
                    rows.extend(table_or_names(reply, f.resource, &opts));
                }
                let has_rows = rows.len() > usize::from(!args.no_headers);
                if !has_rows {
                    continue;
                }
                if !first {
                    writeln!(out)?;
                }
                first = false;
                printed_any = true;
                out.write_all(printer::align(&rows).as_bytes())?;
            }
            header_printed = printed_any;
            if !printed_any && errors.is_empty() && !names_given {
                match namespace {
                    Some(ns) if resolved.iter().any(|(r, _)| r.namespaced) => {
                        eprintln!("No resources found in {ns} namespace.")
                    }
                    _ => eprintln!("No resources found"),
                }
            }
        }
        Output::Name => {
            for f in &fetched {
                for reply in &f.replies {
                    for item in
                        printer::items_of(reply, &f.resource.api_version(), &f.resource.kind)
                    {
                        let name = item
                            .pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        writeln!(out, "{}/{}", f.resource.kind_prefix(), name)?;
                    }
                }
            }
        }
        Output::Yaml | Output::Json | Output::JsonPath(_) => {
            let mut items = Vec::new();
            for f in &fetched {
                for reply in &f.replies {
                    items.extend(printer::items_of(
                        reply,
                        &f.resource.api_version(),
                        &f.resource.kind,
                    ));
                }
            }
            if !args.show_managed_fields {
                for item in &mut items {
                    if let Some(m) = item.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("managedFields");
                    }
                }
            }
            let single = names_given && resolved.len() == 1 && resolved[0].1.len() == 1;
            let doc = printer::list_or_single(items, single);
            let text = match &output {
                Output::Yaml => printer::to_yaml(&doc)?,
                Output::Json => printer::to_json(&doc)?,
                Output::JsonPath(t) => printer::jsonpath(t, &doc)?,
                _ => unreachable!("matched above"),
            };
            out.write_all(text.as_bytes())?;
        }
    }
    out.flush()?;

    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    if args.watch {
        let f = &fetched[0];
        let rv = f
            .replies
            .first()
            .and_then(|r| r.pointer("/metadata/resourceVersion"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let from = WatchFrom {
            resource: f.resource,
            namespace,
            resource_version: &rv,
        };
        watch(ctx, args, &from, &output, header_printed, out).await?;
    }
    Ok(())
}

/// Rows from a Table reply; a server that ignored the Table request gets NAME and AGE
/// columns like kubectl prints then.
fn table_or_names(reply: &Value, r: &Resource, opts: &TableOptions) -> Vec<Vec<String>> {
    if reply["kind"] == "Table" {
        return printer::table_rows(reply, opts);
    }
    let mut rows = Vec::new();
    if !opts.no_headers {
        let mut h = Vec::new();
        if opts.with_namespace {
            h.push("NAMESPACE".to_string());
        }
        h.extend(["NAME".to_string(), "AGE".to_string()]);
        rows.push(h);
    }
    for item in printer::items_of(reply, &r.api_version(), &r.kind) {
        let mut row = Vec::new();
        if opts.with_namespace {
            row.push(
                item.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
        }
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        row.push(match &opts.name_prefix {
            Some(p) => format!("{p}/{name}"),
            None => name,
        });
        row.push(printer::age(
            item.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str),
        ));
        rows.push(row);
    }
    rows
}

/// Where a watch starts: the listed collection at the list's resourceVersion.
struct WatchFrom<'a> {
    resource: &'a Resource,
    namespace: Option<&'a str>,
    resource_version: &'a str,
}

/// Follows a list with a watch, printing one line (or document) per change.
async fn watch(
    ctx: &Ctx,
    args: &GetArgs,
    from: &WatchFrom<'_>,
    output: &Output,
    mut header_printed: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let (r, namespace, rv) = (from.resource, from.namespace, from.resource_version);
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("watch", "1")
        .append_pair("allowWatchBookmarks", "false");
    if !rv.is_empty() {
        q.append_pair("resourceVersion", rv);
    }
    if let Some(s) = &args.selector {
        q.append_pair("labelSelector", s);
    }
    if let Some(s) = &args.field_selector {
        q.append_pair("fieldSelector", s);
    }
    let path = format!("{}?{}", r.collection_path(namespace), q.finish());
    let resp = ctx
        .send(Method::GET, &path, "application/json", None)
        .await?;
    let mut lines = LineStream::new(resp.into_body());
    // Last row printed per object, to show a deleted object's final state.
    let mut last_rows: std::collections::HashMap<String, Vec<String>> = Default::default();
    while let Some(line) = lines.next_line().await? {
        if line.is_empty() {
            continue;
        }
        let event: Value = serde_json::from_slice(&line)?;
        let typ = event["type"].as_str().unwrap_or_default();
        let obj = &event["object"];
        if typ == "ERROR" {
            bail!(
                "the watch ended: {}; run the command again",
                obj["message"].as_str().unwrap_or("unknown error")
            );
        }
        if typ == "BOOKMARK" {
            continue;
        }
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
        match output {
            Output::Table { wide } => {
                let opts = TableOptions {
                    wide: *wide,
                    show_labels: args.show_labels,
                    with_namespace: ctx.all_namespaces && r.namespaced,
                    name_prefix: None,
                    no_headers: header_printed,
                };
                let key = format!("{}/{name}", ns.unwrap_or_default());
                let row = if typ == "DELETED" {
                    last_rows.remove(&key)
                } else {
                    match ctx.get_table(&r.object_path(ns, &name)).await {
                        Ok(t) => {
                            let rows = printer::table_rows(&t, &opts);
                            if !header_printed && rows.len() == 2 {
                                // First row of an initially empty list: header and row
                                // aligned together, as kubectl prints them.
                                out.write_all(printer::align(&rows).as_bytes())?;
                                header_printed = true;
                                last_rows.insert(key.clone(), rows[1].clone());
                                None
                            } else {
                                rows.into_iter().last()
                            }
                        }
                        Err(_) => None,
                    }
                };
                if let Some(row) = row {
                    out.write_all(printer::align(std::slice::from_ref(&row)).as_bytes())?;
                    if typ != "DELETED" {
                        last_rows.insert(key, row);
                    }
                }
            }
            Output::Name => writeln!(out, "{}/{}", r.kind_prefix(), name)?,
            Output::Yaml => write!(out, "---\n{}", printer::to_yaml(obj)?)?,
            Output::Json => out.write_all(printer::to_json(obj)?.as_bytes())?,
            Output::JsonPath(t) => out.write_all(printer::jsonpath(t, obj)?.as_bytes())?,
        }
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_flag_parses_like_kubectl() {
        assert_eq!(Output::parse(None).unwrap(), Output::Table { wide: false });
        assert_eq!(
            Output::parse(Some("wide")).unwrap(),
            Output::Table { wide: true }
        );
        assert_eq!(
            Output::parse(Some("jsonpath={.a}")).unwrap(),
            Output::JsonPath("{.a}".into())
        );
        let err = Output::parse(Some("xml")).unwrap_err().to_string();
        assert!(err.contains("allowed formats are"), "{err}");
    }

    #[test]
    fn selectors_are_url_encoded() {
        assert_eq!(list_query(None, None), "");
        assert_eq!(
            list_query(Some("app=web,tier!=db"), None),
            "?labelSelector=app%3Dweb%2Ctier%21%3Ddb"
        );
        assert_eq!(list_query(None, Some("a=b")), "?fieldSelector=a%3Db");
    }
}
