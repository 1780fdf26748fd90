//! `skiff agent`: one node. Talks to containerd over CRI and programs iptables in the
//! network namespace it runs in.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Kubeconfig with the server's address, CA and this node's credential.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// The Node's name.
    #[arg(long)]
    pub node_name: String,
    /// The node's InternalIP (the address other nodes and the server reach it on).
    #[arg(long)]
    pub node_ip: Ipv4Addr,
    /// The node's pod network (e.g. 10.244.1.0/24).
    #[arg(long)]
    pub pod_cidr: String,
    /// All pods' network (every node's podCIDR lies inside it).
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: ipnet::Ipv4Net,
    /// containerd's CRI socket.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    pub containerd_socket: PathBuf,
    /// Pod logs and agent state.
    #[arg(long, default_value = "/var/lib/skiff/agent")]
    pub data_dir: PathBuf,
    /// Switch the ingress controller off.
    #[arg(long)]
    pub no_ingress: bool,
    #[arg(long, default_value = "0.0.0.0:80")]
    pub ingress_http: SocketAddr,
    #[arg(long, default_value = "0.0.0.0:443")]
    pub ingress_https: SocketAddr,
    /// Seconds between Lease renewals (labs shorten it to show failover quickly).
    #[arg(long, default_value_t = 10)]
    pub heartbeat_seconds: u64,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let config = skiff_cluster::agent::AgentConfig {
        kubeconfig: args.kubeconfig,
        node_name: args.node_name.clone(),
        node_ip: args.node_ip,
        pod_cidr: args.pod_cidr,
        cluster_cidr: args.cluster_cidr,
        containerd_socket: args.containerd_socket,
        data_dir: args.data_dir,
        ingress: (!args.no_ingress).then_some((args.ingress_http, args.ingress_https)),
        heartbeat: Duration::from_secs(args.heartbeat_seconds.max(1)),
        resync: Duration::from_secs(10),
    };
    let shutdown = super::shutdown_on_signals();
    skiff_cluster::agent::run(config, shutdown).await.with_context(|| format!("running node {}", args.node_name))
}
