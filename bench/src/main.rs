//! skiff's benchmark runner: each subcommand measures one component and prints a table
//! with an anchor (the established tool doing the same work) measured in the same run.
//!
//! - `api`: durable creates per second and p50/p99 latency at 1, 8 and 64 concurrent
//!   clients, skiff's API server (HTTPS, full request path, group-committed sled)
//!   against etcd (Debian's etcd-server on loopback, its JSON gateway, fsync per commit
//!   as always).

mod api;

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Api(a) => api::run(a).await,
    }
}
