//! `skiff version`: the client's version and the server's `/version`.

use std::io::Write;

use clap::Args;
use serde_json::{json, Value};

use super::config::KubeFlags;

#[derive(Debug, Args)]
pub struct VersionArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// Only the client version (no server needed).
    #[arg(long)]
    pub client: bool,
    /// json or yaml.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

pub const CLIENT_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"), "-skiff");

pub async fn run(args: &VersionArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let server: Option<Value> = if args.client {
        None
    } else {
        let ctx = super::config::connect(&args.kube).await?;
        Some(ctx.get_json("/version").await?)
    };
    let mut doc = json!({"clientVersion": {"gitVersion": CLIENT_VERSION}});
    if let Some(s) = &server {
        doc["serverVersion"] = s.clone();
    }
    match args.output.as_deref() {
        Some("json") => out.write_all(super::printer::to_json(&doc)?.as_bytes())?,
        Some("yaml") => out.write_all(super::printer::to_yaml(&doc)?.as_bytes())?,
        Some(other) => anyhow::bail!("--output must be 'yaml' or 'json', not {other:?}"),
        None => {
            writeln!(out, "Client Version: {CLIENT_VERSION}")?;
            if let Some(s) = &server {
                writeln!(
                    out,
                    "Server Version: {}",
                    s["gitVersion"].as_str().unwrap_or("unknown")
                )?;
            }
        }
    }
    Ok(())
}
