//! `skiff lab up | down | exec | status`: a whole cluster on this machine.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct DirArg {
    /// Where the lab keeps its state, logs and data.
    #[arg(long, default_value = "/var/lib/skiff/lab", env = "SKIFF_LAB_DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Bring the lab up (or say it is up, or repair it) with the demo app answering.
    Up {
        #[command(flatten)]
        dir: DirArg,
        /// Number of agent nodes.
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        /// The API server's port on the host loopback.
        #[arg(long, default_value_t = 6443)]
        api_port: u16,
    },
    /// Stop everything and remove namespaces, veths, mounts and processes.
    Down {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Run a command inside a node's (or the client's) network namespace.
    Exec {
        #[command(flatten)]
        dir: DirArg,
        /// node1, node2, ..., client or hub.
        host: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Restart the control plane over its data dir (nodes and pods keep running).
    RestartServer {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Nodes, addresses, processes and their memory.
    Status {
        #[command(flatten)]
        dir: DirArg,
    },
    /// (internal) The process that owns a running lab; started by `up`.
    #[command(hide = true)]
    Supervise {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        #[arg(long, default_value_t = 6443)]
        api_port: u16,
        #[arg(long)]
        slow_failover: bool,
    },
}

pub async fn run(cmd: LabCommand) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the skiff binary")?;
    match cmd {
        LabCommand::Up {
            dir,
            nodes,
            api_port,
        } => {
            if nodes == 0 || nodes > 50 {
                anyhow::bail!("--nodes must be between 1 and 50");
            }
            let mut cfg = skiff_cluster::lab::LabConfig::new(&dir.dir);
            cfg.nodes = nodes;
            cfg.api_port = api_port;
            // up() prints the progress and the next commands as it goes.
            tokio::task::spawn_blocking(move || skiff_cluster::lab::up(&cfg, &exe)).await??;
            Ok(())
        }
        LabCommand::Down { dir } => {
            tokio::task::spawn_blocking(move || skiff_cluster::lab::down(&dir.dir)).await??;
            println!("lab down: namespaces, processes and mounts removed");
            Ok(())
        }
        LabCommand::Exec { dir, host, cmd } => {
            let code = skiff_cluster::lab::exec(&dir.dir, &host, &cmd)?;
            std::process::exit(code);
        }
        LabCommand::RestartServer { dir } => {
            skiff_cluster::lab::restart_server(&dir.dir)?;
            println!("control plane restarting; it answers again within seconds");
            Ok(())
        }
        LabCommand::Status { dir } => {
            print!("{}", skiff_cluster::lab::status(&dir.dir)?);
            Ok(())
        }
        LabCommand::Supervise {
            dir,
            nodes,
            api_port,
            slow_failover,
        } => {
            let cfg = skiff_cluster::lab::LabConfig {
                dir: dir.dir,
                nodes,
                api_port,
                fast_failover: !slow_failover,
            };
            let shutdown = super::shutdown_on_signals();
            skiff_cluster::lab::supervisor::run(cfg, exe, shutdown).await?;
            Ok(())
        }
    }
}
