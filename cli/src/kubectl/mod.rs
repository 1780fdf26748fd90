//! The kubectl-like commands of `skiff` (`get`, `apply`, `delete`, `describe`, ...), for
//! lab machines without kubectl. They talk to any Kubernetes-compatible API server
//! through the `kube` client with raw requests, resolve types from discovery, and word
//! their errors like kubectl's, each saying what to do.
//!
//! # Layout
//! - [`config`]: connection flags, kubeconfig loading, `config view|use-context`.
//! - [`client`]: the per-invocation context (client, namespace, discovery cache) and
//!   one-line errors for API failures and unreachable servers.
//! - [`discovery`]: type names, short names, groups, `TYPE/NAME`, categories.
//! - [`printer`]: Tables, `-o yaml|json|name|jsonpath`, ages.
//! - [`manifest`]: reading and checking `-f` inputs before anything is sent.
//! - one file per command: [`get`], [`apply`] (and create), [`delete`], [`describe`],
//!   [`scale`], [`label`] (and annotate), [`rollout`], [`wait`], [`logs`], [`version`],
//!   [`api_resources`].

pub mod api_resources;
pub mod apply;
pub mod client;
pub mod config;
pub mod delete;
pub mod describe;
pub mod discovery;
pub mod get;
pub mod label;
pub mod logs;
pub mod manifest;
pub mod printer;
pub mod rollout;
pub mod scale;
pub mod version;
pub mod wait;

#[cfg(test)]
mod server_tests;

use clap::Subcommand;

/// The kubectl-like subcommands, flattened into `skiff`'s own command list.
#[derive(Debug, Subcommand)]
pub enum KubeCommand {
    /// Display one or many resources.
    Get(get::GetArgs),
    /// Create or update objects from files (client-side apply).
    Apply(apply::ApplyArgs),
    /// Create objects from files.
    Create(apply::CreateArgs),
    /// Delete objects by file, name, or selector, and wait until they are gone.
    Delete(delete::DeleteArgs),
    /// Show details of objects, with their recent events.
    Describe(describe::DescribeArgs),
    /// Set the replica count of a deployment, replicaset or statefulset.
    Scale(scale::ScaleArgs),
    /// Set or remove labels.
    Label(label::LabelArgs),
    /// Set or remove annotations.
    Annotate(label::LabelArgs),
    /// Manage the rollout of a deployment.
    #[command(subcommand)]
    Rollout(rollout::RolloutCommand),
    /// Wait for a condition on objects.
    Wait(wait::WaitArgs),
    /// Print a container's logs.
    Logs(logs::LogsArgs),
    /// Print the client and server versions.
    Version(version::VersionArgs),
    /// List the resource types the server serves.
    ApiResources(api_resources::ApiResourcesArgs),
    /// Show or change the kubeconfig.
    Config {
        #[command(flatten)]
        kube: config::KubeFlags,
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
}

/// Runs one command, printing to stdout.
pub async fn run(cmd: KubeCommand) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    execute(cmd, &mut out).await
}

/// Runs one command, printing to `out` (tests capture it).
pub async fn execute(cmd: KubeCommand, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    use config::connect;
    match cmd {
        KubeCommand::Config { kube, command } => config::run_config(&kube, &command, out),
        KubeCommand::Version(args) => version::run(&args, out).await,
        KubeCommand::Get(a) => get::run(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Apply(a) => apply::run_apply(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Create(a) => apply::run_create(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Delete(a) => delete::run(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Describe(a) => describe::run(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Scale(a) => scale::run(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Label(a) => label::run(&connect(&a.kube).await?, &a, "labels", "labeled", out).await,
        KubeCommand::Annotate(a) => label::run(&connect(&a.kube).await?, &a, "annotations", "annotated", out).await,
        KubeCommand::Rollout(c) => rollout::run(&connect(&c.target().kube).await?, &c, out).await,
        KubeCommand::Wait(a) => wait::run(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Logs(a) => logs::run(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::ApiResources(a) => api_resources::run(&connect(&a.kube).await?, &a, out).await,
    }
}
