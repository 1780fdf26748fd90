//! `skiff scale --replicas=N TYPE NAME` through the `scale` subresource, with
//! `--current-replicas` as a precondition like kubectl.

use std::io::Write;

use anyhow::bail;
use clap::Args;
use http::Method;
use serde_json::{json, Value};

use super::client::Ctx;
use super::config::KubeFlags;
use super::discovery::parse_targets;

#[derive(Debug, Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// TYPE NAME... or TYPE/NAME...
    #[arg(required = true)]
    pub resources: Vec<String>,
    /// The new number of replicas.
    #[arg(long, required = true)]
    pub replicas: i64,
    /// Only scale if the current replica count is this.
    #[arg(long)]
    pub current_replicas: Option<i64>,
}

pub async fn run(ctx: &Ctx, args: &ScaleArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.replicas < 0 {
        bail!("--replicas must be 0 or more (got {})", args.replicas);
    }
    let discovery = ctx.discovery().await?;
    for t in parse_targets(&args.resources)? {
        let r = discovery.resolve(&t.types)?;
        if !r.subresources.iter().any(|s| s == "scale") {
            bail!("{} cannot be scaled: the server has no scale subresource for it; scale a deployment, replicaset or statefulset", r.qualified_plural());
        }
        if t.names.is_empty() {
            bail!("give the name to scale: e.g. `skiff scale --replicas=3 deploy/web`");
        }
        for name in &t.names {
            let path = format!("{}/scale", r.object_path(Some(&ctx.namespace), name));
            let current = ctx.get_json(&path).await?;
            if let Some(want) = args.current_replicas {
                let have = current
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if have != want {
                    bail!("expected replicas to be {want}, was {have}; check `skiff get {}/{name}` and retry", r.kind_prefix());
                }
            }
            let mut body = json!({"spec": {"replicas": args.replicas}});
            if args.current_replicas.is_some() {
                // Guards the precondition against a concurrent change.
                body["metadata"] =
                    json!({"resourceVersion": current.pointer("/metadata/resourceVersion")});
            }
            ctx.send_json(
                Method::PATCH,
                &super::client::with_manager(&path, "scale"),
                "application/merge-patch+json",
                &body,
            )
            .await?;
            writeln!(out, "{}/{name} scaled", r.kind_prefix())?;
        }
    }
    Ok(())
}
