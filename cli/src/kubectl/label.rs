//! `skiff label` and `skiff annotate`: `KEY=VALUE` sets, `KEY-` removes, `--overwrite`
//! required to change an existing value, on named objects or on `-l`/`--all` matches.

use std::io::Write;

use anyhow::bail;
use clap::Args;
use http::Method;
use serde_json::{json, Map, Value};

use super::client::Ctx;
use super::config::KubeFlags;
use super::discovery::parse_targets;

#[derive(Debug, Args)]
pub struct LabelArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// TYPE NAME... KEY=VALUE... KEY-...  (or TYPE/NAME KEY=VALUE)
    #[arg(required = true)]
    pub args: Vec<String>,
    /// Allow changing an existing value.
    #[arg(long)]
    pub overwrite: bool,
    /// Apply to the objects matching this selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Apply to every object of the type.
    #[arg(long)]
    pub all: bool,
}

/// One change: set `key` to `Some(value)` or remove it (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    pub value: Option<String>,
}

/// Splits the arguments into object arguments and changes (kubectl takes the trailing
/// `k=v` / `k-` arguments as changes).
pub fn split_changes(args: &[String]) -> anyhow::Result<(Vec<String>, Vec<Change>)> {
    let is_change = |a: &str| a.contains('=') || (a.ends_with('-') && !a.contains('/'));
    let first = args.iter().position(|a| is_change(a)).unwrap_or(args.len());
    let (objects, changes) = args.split_at(first);
    let mut out = Vec::new();
    for c in changes {
        if let Some((k, v)) = c.split_once('=') {
            if k.is_empty() {
                bail!("invalid change {c:?}: the key is empty; use KEY=VALUE or KEY-");
            }
            out.push(Change {
                key: k.into(),
                value: Some(v.into()),
            });
        } else if let Some(k) = c.strip_suffix('-') {
            out.push(Change {
                key: k.into(),
                value: None,
            });
        } else {
            bail!("invalid change {c:?}: changes come after the objects and look like KEY=VALUE or KEY-");
        }
    }
    if out.is_empty() {
        bail!("at least one KEY=VALUE or KEY- change is required");
    }
    Ok((objects.to_vec(), out))
}

/// The merge patch for `changes` on an object whose current map is `current`; `Err` when
/// a value would change without `--overwrite`. `None` when nothing changes.
pub fn changes_patch(
    field: &str,
    current: Option<&Map<String, Value>>,
    changes: &[Change],
    overwrite: bool,
) -> anyhow::Result<Option<Value>> {
    let mut map = Map::new();
    for c in changes {
        let have = current.and_then(|m| m.get(&c.key)).and_then(Value::as_str);
        match &c.value {
            Some(v) => {
                if have == Some(v.as_str()) {
                    continue;
                }
                if have.is_some() && !overwrite {
                    bail!(
                        "'{}' already has a value ({}), and --overwrite is false; pass --overwrite to change it",
                        c.key,
                        have.unwrap_or_default()
                    );
                }
                map.insert(c.key.clone(), Value::String(v.clone()));
            }
            None => {
                if have.is_some() {
                    map.insert(c.key.clone(), Value::Null);
                }
            }
        }
    }
    if map.is_empty() {
        return Ok(None);
    }
    Ok(Some(json!({"metadata": {field: map}})))
}

/// `field` is `labels` or `annotations`; `verb` is `labeled` or `annotated`.
pub async fn run(
    ctx: &Ctx,
    args: &LabelArgs,
    field: &str,
    verb: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let (objects, changes) = split_changes(&args.args)?;
    let discovery = ctx.discovery().await?;
    let mut victims = Vec::new();
    for t in parse_targets(&objects)? {
        for r in discovery.resolve_list(&t.types)? {
            if t.names.is_empty() {
                if args.selector.is_none() && !args.all {
                    bail!("give a name, -l SELECTOR or --all to choose the objects to change");
                }
                let path = format!(
                    "{}{}",
                    r.collection_path(Some(&ctx.namespace)),
                    super::get::list_query(args.selector.as_deref(), None)
                );
                for item in ctx.get_json(&path).await?["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    victims.push((r, item.clone()));
                }
            } else {
                for n in &t.names {
                    victims.push((
                        r,
                        ctx.get_json(&r.object_path(Some(&ctx.namespace), n))
                            .await?,
                    ));
                }
            }
        }
    }
    for (r, obj) in victims {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let current = obj
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object);
        match changes_patch(field, current, &changes, args.overwrite)? {
            None => writeln!(out, "{}/{name} not {verb}", r.kind_prefix())?,
            Some(mut patch) => {
                // Pin the version we checked `--overwrite` against.
                patch["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"].clone();
                let path = r.object_path(Some(&ctx.namespace), &name);
                ctx.send_json(
                    Method::PATCH,
                    &super::client::with_manager(
                        &path,
                        if field == "labels" {
                            "label"
                        } else {
                            "annotate"
                        },
                    ),
                    "application/merge-patch+json",
                    &patch,
                )
                .await?;
                writeln!(out, "{}/{name} {verb}", r.kind_prefix())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_split_into_objects_and_changes() {
        let (o, c) = split_changes(&s(&["pods", "a", "b", "app=web", "old-"])).unwrap();
        assert_eq!(o, s(&["pods", "a", "b"]));
        assert_eq!(
            c,
            vec![
                Change {
                    key: "app".into(),
                    value: Some("web".into())
                },
                Change {
                    key: "old".into(),
                    value: None
                }
            ]
        );
        let (o, _) = split_changes(&s(&["deploy/web-", "x=1"])).unwrap();
        assert_eq!(o, s(&["deploy/web-"]));
        assert!(split_changes(&s(&["pods", "a"])).is_err());
        assert!(split_changes(&s(&["pods", "a", "=v"])).is_err());
    }

    #[test]
    fn patches_respect_overwrite() {
        let mut cur = Map::new();
        cur.insert("app".into(), json!("web"));
        let set = |k: &str, v: &str| Change {
            key: k.into(),
            value: Some(v.into()),
        };
        let del = |k: &str| Change {
            key: k.into(),
            value: None,
        };
        assert_eq!(
            changes_patch("labels", Some(&cur), &[set("tier", "fe")], false).unwrap(),
            Some(json!({"metadata": {"labels": {"tier": "fe"}}}))
        );
        assert_eq!(
            changes_patch("labels", Some(&cur), &[set("app", "web")], false).unwrap(),
            None
        );
        let err = changes_patch("labels", Some(&cur), &[set("app", "db")], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--overwrite"), "{err}");
        assert_eq!(
            changes_patch("labels", Some(&cur), &[set("app", "db")], true).unwrap(),
            Some(json!({"metadata": {"labels": {"app": "db"}}}))
        );
        assert_eq!(
            changes_patch(
                "annotations",
                Some(&cur),
                &[del("app"), del("missing")],
                false
            )
            .unwrap(),
            Some(json!({"metadata": {"annotations": {"app": null}}}))
        );
    }
}
