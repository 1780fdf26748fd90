//! `skiff delete -f FILE | TYPE NAME... | TYPE/NAME | TYPE -l SELECTOR | TYPE --all`, with
//! `--cascade=background|foreground|orphan` and, like kubectl, waiting until the objects
//! are gone (`--wait=false` to return at once).

use std::io::Write;

use anyhow::bail;
use clap::Args;
use http::Method;
use serde_json::{json, Value};

use super::client::{ApiFailure, Ctx};
use super::config::KubeFlags;
use super::discovery::{parse_targets, Resource};
use super::manifest;
use super::wait::{parse_duration, wait_for};

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// TYPE NAME... or TYPE/NAME...
    pub resources: Vec<String>,
    /// Delete the objects in these files.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Delete the objects matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// background, foreground or orphan (dependents are kept).
    #[arg(long, default_value = "background")]
    pub cascade: String,
    /// Wait for the objects to be gone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub wait: bool,
    /// Give up waiting after this long (0 waits forever).
    #[arg(long, default_value = "0")]
    pub timeout: String,
    /// Succeed when an object does not exist.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Seconds for graceful termination (pods).
    #[arg(long)]
    pub grace_period: Option<i64>,
}

/// DeleteOptions for a `--cascade` value.
pub fn delete_options(cascade: &str, grace: Option<i64>) -> anyhow::Result<Value> {
    let policy = match cascade {
        "background" | "true" => "Background",
        "foreground" => "Foreground",
        "orphan" | "false" => "Orphan",
        other => bail!("invalid --cascade value \"{other}\"; use background, foreground or orphan"),
    };
    let mut body =
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy});
    if let Some(g) = grace {
        body["gracePeriodSeconds"] = json!(g);
    }
    Ok(body)
}

pub async fn run(ctx: &Ctx, args: &DeleteArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let options = delete_options(&args.cascade, args.grace_period)?;
    let timeout = parse_duration(&args.timeout)?;
    // (resource, namespace, name) to delete, all resolved before the first delete.
    let mut victims: Vec<(&Resource, Option<String>, String)> = Vec::new();
    if !args.files.is_empty() {
        if !args.resources.is_empty() {
            bail!("give either -f or resource arguments, not both");
        }
        for c in manifest::load_checked(ctx, &args.files, args.recursive, false).await? {
            victims.push((c.resource, c.namespace, c.name));
        }
    } else {
        let discovery = ctx.discovery().await?;
        for t in parse_targets(&args.resources)? {
            for r in discovery.resolve_list(&t.types)? {
                let ns = r.namespaced.then(|| ctx.namespace.clone());
                if !t.names.is_empty() {
                    if args.selector.is_some() || args.all {
                        bail!("names cannot be given together with -l or --all");
                    }
                    victims.extend(t.names.iter().map(|n| (r, ns.clone(), n.clone())));
                    continue;
                }
                if args.selector.is_none() && !args.all {
                    bail!(
                        "resource(s) were provided, but no name was specified; give a name, -l SELECTOR or --all"
                    );
                }
                let list_ns = if ctx.all_namespaces {
                    None
                } else {
                    ns.as_deref()
                };
                let path = format!(
                    "{}{}",
                    r.collection_path(list_ns),
                    super::get::list_query(args.selector.as_deref(), None)
                );
                let list = ctx.get_json(&path).await?;
                for item in list["items"].as_array().into_iter().flatten() {
                    let name = item
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let ns = item
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    victims.push((r, ns, name.to_string()));
                }
            }
        }
        if victims.is_empty() && (args.selector.is_some() || args.all) {
            eprintln!("No resources found");
            return Ok(());
        }
    }

    let mut errors = Vec::new();
    let mut deleted = Vec::new();
    for (r, ns, name) in &victims {
        let path = r.object_path(ns.as_deref(), name);
        match ctx
            .send_json(Method::DELETE, &path, "application/json", &options)
            .await
        {
            Ok(_) => {
                writeln!(out, "{} \"{name}\" deleted", r.kind_prefix())?;
                out.flush()?;
                deleted.push((*r, ns.clone(), name.clone()));
            }
            Err(e) => match e.downcast_ref::<ApiFailure>() {
                Some(f) if f.is_not_found() && args.ignore_not_found => {}
                Some(f) => errors.push(f.to_string()),
                None => return Err(e),
            },
        }
    }
    if args.wait {
        for (r, ns, name) in &deleted {
            wait_for(ctx, r, ns.as_deref(), name, timeout, &|o| o.is_none()).await?;
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cascade_maps_to_propagation_policy() {
        let cases = [
            ("background", "Background"),
            ("foreground", "Foreground"),
            ("orphan", "Orphan"),
            ("false", "Orphan"),
        ];
        for (flag, want) in cases {
            assert_eq!(
                delete_options(flag, None).unwrap()["propagationPolicy"],
                want
            );
        }
        assert_eq!(
            delete_options("background", Some(0)).unwrap()["gracePeriodSeconds"],
            0
        );
        assert!(delete_options("sideways", None).is_err());
    }
}
