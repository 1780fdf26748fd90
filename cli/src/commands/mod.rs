//! The subcommands of `skiff`, one file each.
//!
//! - [`server`]: `skiff server`, the control plane (API server, controllers,
//!   scheduler).
//! - [`agent`]: `skiff agent`, a node (kubelet, proxy, ingress).
//! - [`lab`]: `skiff lab up/down/exec/status`, a whole cluster on this machine.
//! - [`image`]: `skiff image push`, local images into the cluster's registry mirror.

pub mod agent;
pub mod image;
pub mod lab;
pub mod server;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "skiff",
    version,
    about = "A small, real Kubernetes for labs and teaching"
)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane: API server with its store, controllers, scheduler.
    Server(server::ServerArgs),
    /// Run a node: kubelet on containerd, service proxy, ingress controller.
    Agent(agent::AgentArgs),
    /// A whole cluster on this machine, one network namespace per node.
    #[command(subcommand)]
    Lab(lab::LabCommand),
    /// Images for the cluster's nodes: `image push FILE.tar`.
    #[command(subcommand)]
    Image(image::ImageCommand),
    #[command(flatten)]
    Kube(crate::kubectl::KubeCommand),
}

/// Daemons log progress at info; kubectl-like commands print their own one-line
/// errors, so their log stays quiet unless asked for (-v or RUST_LOG).
pub fn init_tracing(verbose: u8, daemon: bool) {
    let default = match (verbose, daemon) {
        (0, true) => "info",
        (0, false) => "warn,kube_client=off,rustls_platform_verifier=off",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Server(args) => server::run(args).await,
        Command::Agent(args) => agent::run(args).await,
        Command::Lab(cmd) => lab::run(cmd).await,
        Command::Image(cmd) => image::run(cmd).await,
        Command::Kube(cmd) => crate::kubectl::run(cmd).await,
    }
}

/// A token cancelled on SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}
