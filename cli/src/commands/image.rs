//! `skiff image push FILE|DIR [--name REF]` (alias `import`): a user's image, as a
//! `docker save` tarball, an OCI archive or an OCI layout directory, into the registry
//! mirror every node pulls through (a lab's by default, or `--registry`), with a
//! progress line per blob and a summary per image.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use skiff_kubelet::images::import;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Put local images (docker-save or OCI tarballs, OCI layout dirs) into the
    /// cluster's registry mirror, so pods can use them offline.
    #[command(visible_alias = "import")]
    Push(PushArgs),
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Image files or OCI layout directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The name to push as (e.g. myapp:1, docker.io/me/app:2); default: the name the
    /// image carries. Only with one path.
    #[arg(long)]
    pub name: Option<String>,
    /// The lab whose registry to push to.
    #[arg(long, default_value = "/var/lib/skiff/lab", env = "SKIFF_LAB_DIR")]
    pub dir: PathBuf,
    /// Push to this registry (host:port) instead of the lab's.
    #[arg(long)]
    pub registry: Option<SocketAddr>,
    /// Network namespace the registry is reachable from (with --registry).
    #[arg(long, requires = "registry")]
    pub netns: Option<String>,
}

pub async fn run(cmd: ImageCommand) -> anyhow::Result<()> {
    match cmd {
        ImageCommand::Push(args) => push(args).await,
    }
}

fn target(args: &PushArgs) -> anyhow::Result<(import::Target, String)> {
    if let Some(registry) = args.registry {
        let target = import::Target {
            registry,
            netns: args.netns.clone(),
        };
        return Ok((target, format!("registry {registry}")));
    }
    let state = skiff_cluster::lab::LabState::load(&args.dir).with_context(|| {
        format!(
            "no lab at {} (start one with `skiff lab up`, pass --dir, or name a registry with --registry)",
            args.dir.display()
        )
    })?;
    anyhow::ensure!(
        state.supervisor_alive(),
        "the lab at {} is not running; `skiff lab up --dir {}` first",
        args.dir.display(),
        args.dir.display()
    );
    let registry = SocketAddr::from((
        skiff_cluster::lab::net::HUB_IP,
        skiff_cluster::lab::supervisor::REGISTRY_PORT,
    ));
    let target = import::Target {
        registry,
        netns: Some(skiff_cluster::lab::net::hub_netns(&state.id)),
    };
    Ok((target, format!("the lab's registry mirror at {registry}")))
}

async fn push(args: PushArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.name.is_none() || args.paths.len() == 1,
        "--name names one image; push the others separately"
    );
    // Inspect everything first, so a typo in the last path fails before any upload.
    let sources = args
        .paths
        .iter()
        .map(|p| import::inspect(p, args.name.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    let (target, where_to) = target(&args)?;
    for s in &sources {
        let started = std::time::Instant::now();
        println!(
            "pushing {} ({}) as {} to {where_to}",
            s.path.display(),
            s.format.transport(),
            s.reference
        );
        import::push(s, &target, |line| println!("  {line}")).await?;
        // The shortest name that normalises back to the reference, as users write it.
        let short = s
            .reference
            .strip_prefix("docker.io/library/")
            .or_else(|| s.reference.strip_prefix("docker.io/"))
            .unwrap_or(&s.reference);
        println!(
            "pushed {} in {:.1}s; pods can use image: {short}",
            s.reference,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
