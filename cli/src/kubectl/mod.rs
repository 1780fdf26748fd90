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
//! - one file per command: [`get`], [`apply`] (and create), [`delete`], [`describe`], [`edit`],
//!   [`scale`], [`label`] (and annotate), [`rollout`], [`wait`], [`logs`], [`version`],
//!   [`api_resources`], [`completion`], [`exec`], [`port_forward`], [`explain`].
//! - [`channel`]: the websocket channel framing shared by exec and port-forward.

pub mod api_resources;
pub mod apply;
pub mod channel;
pub mod client;
pub mod completion;
pub mod config;
pub mod delete;
pub mod describe;
pub mod discovery;
pub mod edit;
pub mod exec;
pub mod explain;
pub mod get;
pub mod label;
pub mod logs;
pub mod manifest;
pub mod port_forward;
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
    /// Create or update objects from files (server-side apply, field manager `skiff`).
    Apply(apply::ApplyArgs),
    /// Create objects from files.
    Create(apply::CreateArgs),
    /// Delete objects by file, name, or selector, and wait until they are gone.
    Delete(delete::DeleteArgs),
    /// Show details of objects, with their recent events.
    Describe(describe::DescribeArgs),
    /// Edit an object in $EDITOR and send it back.
    Edit(edit::EditArgs),
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
    /// Run a command in a container (websocket exec through the API server).
    Exec(exec::ExecArgs),
    /// Describe a type or one of its fields from the server's OpenAPI schema.
    Explain(explain::ExplainArgs),
    /// Forward local ports to a pod (or a service's or deployment's pod).
    PortForward(port_forward::PortForwardArgs),
    /// Print the client and server versions.
    Version(version::VersionArgs),
    /// List the resource types the server serves.
    ApiResources(api_resources::ApiResourcesArgs),
    /// Print a shell completion script (bash or zsh).
    Completion(completion::CompletionArgs),
    /// Candidates for the next word (called by the completion scripts).
    #[command(name = "__complete", hide = true)]
    Complete(completion::CompleteArgs),
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
        KubeCommand::Completion(args) => completion::run(&args, out),
        KubeCommand::Complete(args) => completion::complete(&args, out).await,
        KubeCommand::Get(a) => get::run(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Apply(a) => apply::run_apply(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Create(a) => apply::run_create(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Delete(a) => delete::run(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Describe(a) => describe::run(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Edit(a) => edit::run(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Scale(a) => scale::run(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Label(a) => {
            label::run(&connect(&a.kube).await?, &a, "labels", "labeled", out).await
        }
        KubeCommand::Annotate(a) => {
            label::run(
                &connect(&a.kube).await?,
                &a,
                "annotations",
                "annotated",
                out,
            )
            .await
        }
        KubeCommand::Rollout(c) => rollout::run(&connect(&c.target().kube).await?, &c, out).await,
        KubeCommand::Wait(a) => wait::run(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Logs(a) => logs::run(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Explain(a) => explain::run(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::Exec(a) => exec::run(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::PortForward(a) => port_forward::run(&connect(&a.kube).await?, &a, out).await,
        KubeCommand::ApiResources(a) => api_resources::run(&connect(&a.kube).await?, &a, out).await,
    }
}

/// Flags that take a value and may come before the subcommand (`skiff -n dev get pods`).
const VALUE_FLAGS: &[&str] = &[
    "-n",
    "--namespace",
    "--kubeconfig",
    "--context",
    "-s",
    "--server",
    "--token",
];
const SWITCH_FLAGS: &[&str] = &["-A", "--all-namespaces", "--insecure-skip-tls-verify"];

/// Moves connection flags given before a kubectl-like subcommand to just after it, so
/// that clap (whose flags live on the subcommands) accepts `skiff -n dev get pods` as
/// kubectl does. Arguments of other subcommands (`server`, `agent`, `lab`) are left as
/// they are. Meant for `Cli::parse_from(hoist_global_flags(std::env::args()))`.
pub fn hoist_global_flags(args: Vec<String>) -> Vec<String> {
    use clap::CommandFactory;
    #[derive(clap::Parser)]
    struct Probe {
        #[command(subcommand)]
        _c: KubeCommand,
    }
    let probe = Probe::command();
    let names: Vec<String> = probe
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    let mut hoisted = Vec::new();
    let mut taken = Vec::new();
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        let flag = a.split('=').next().unwrap_or(a);
        // `-ndev`: a short value flag with its value attached.
        let attached =
            a.len() > 2 && (a.starts_with("-n") || a.starts_with("-s")) && !a.starts_with("--");
        if VALUE_FLAGS.contains(&flag) && !attached {
            let takes_next = !a.contains('=');
            hoisted.push(a.clone());
            taken.push(i);
            if takes_next && i + 1 < args.len() {
                hoisted.push(args[i + 1].clone());
                taken.push(i + 1);
                i += 1;
            }
            i += 1;
        } else if attached || SWITCH_FLAGS.contains(&a.as_str()) {
            hoisted.push(a.clone());
            taken.push(i);
            i += 1;
        } else if a.starts_with('-') {
            i += 1;
        } else {
            // The first word is the subcommand: only hoist in front of ours.
            if hoisted.is_empty() || !names.iter().any(|n| n == a) {
                return args;
            }
            // `rollout` keeps its flags on its own subcommands (`rollout status -n x`):
            // the flags go after the nested word there.
            let sub = probe.find_subcommand(a).expect("listed above");
            let flags_here = sub
                .get_arguments()
                .any(|arg| arg.get_long() == Some("kubeconfig"));
            if !flags_here && sub.has_subcommands() {
                if let Some(j) = (i + 1..args.len()).find(|&j| !args[j].starts_with('-')) {
                    i = j;
                }
            }
            let mut out: Vec<String> = (0..=i)
                .filter(|k| !taken.contains(k))
                .map(|k| args[k].clone())
                .collect();
            out.extend(hoisted);
            out.extend(args[i + 1..].iter().cloned());
            return out;
        }
    }
    args
}

#[cfg(test)]
mod hoist_tests {
    use super::hoist_global_flags;

    fn v(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn connection_flags_move_after_our_subcommands_only() {
        let cases = [
            ("skiff -n dev get pods", "skiff get -n dev pods"),
            (
                "skiff --kubeconfig=k -A get pods",
                "skiff get --kubeconfig=k -A pods",
            ),
            (
                "skiff -v --context c rollout status deploy/web",
                "skiff -v rollout status --context c deploy/web",
            ),
            ("skiff get pods -n dev", "skiff get pods -n dev"),
            ("skiff -ndev get pods", "skiff get -ndev pods"),
            ("skiff -n=dev get pods", "skiff get -n=dev pods"),
            (
                "skiff -n dev rollout undo deploy/web",
                "skiff rollout undo -n dev deploy/web",
            ),
            (
                "skiff --kubeconfig k config view",
                "skiff config --kubeconfig k view",
            ),
            ("skiff --server x agent", "skiff --server x agent"),
            ("skiff server --listen a", "skiff server --listen a"),
        ];
        for (input, want) in cases {
            assert_eq!(hoist_global_flags(v(input)), v(want), "{input}");
        }
    }

    /// The rewritten command lines must also be ones clap accepts, with the flags read.
    #[test]
    fn hoisted_command_lines_parse_with_their_flags() {
        use clap::Parser;
        #[derive(Parser)]
        struct Line {
            #[command(subcommand)]
            c: super::KubeCommand,
        }
        for input in [
            "skiff -n dev get pods",
            "skiff -n dev rollout status deploy/web",
            "skiff -n dev rollout undo deploy/web",
            "skiff -n dev label pods p a=b",
            "skiff -n dev config view",
            "skiff rollout status deploy/web -n dev",
            "skiff rollout history -n dev deploy/web",
            "skiff -ndev get pods",
            "skiff --namespace=dev get pods",
        ] {
            let line = Line::try_parse_from(hoist_global_flags(v(input)))
                .unwrap_or_else(|e| panic!("{input}: {e}"));
            let ns = match &line.c {
                super::KubeCommand::Get(a) => a.kube.namespace.clone(),
                super::KubeCommand::Label(a) => a.kube.namespace.clone(),
                super::KubeCommand::Rollout(r) => r.target().kube.namespace.clone(),
                super::KubeCommand::Config { kube, .. } => kube.namespace.clone(),
                _ => None,
            };
            assert_eq!(ns.as_deref(), Some("dev"), "{input}");
        }
    }
}
