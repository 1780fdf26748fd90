//! skiff's benchmark runner: each subcommand measures one component and prints a table
//! with an anchor (the established tool doing the same work) measured in the same run.
//!
//! - `api`: durable creates per second and p50/p99 latency at 1, 8 and 64 concurrent
//!   clients, skiff's API server (HTTPS, full request path, group-committed sled)
//!   against etcd (Debian's etcd-server on loopback, its JSON gateway, fsync per commit
//!   as always).
//! - `pods`: pod start latency p50/p99 for N pods on a one-node lab, against the same
//!   sandboxes and containers started through raw CRI calls on the same containerd,
//!   and the node agent's RSS.

mod api;
mod pods;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "skiff-bench")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// API server create throughput and latency, side by side with etcd.
    Api(api::Args),
    /// Pod start latency on a lab node, side by side with raw CRI calls.
    Pods(pods::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Api(a) => api::run(a).await,
        Cmd::Pods(a) => pods::run(a).await,
    }
}
