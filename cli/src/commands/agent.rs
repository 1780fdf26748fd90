//! `skiff agent`: one node. Talks to containerd over CRI and programs iptables in the
//! network namespace it runs in.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The server to join, e.g. https://192.168.56.10:6443 (with --token).
    #[arg(long, conflicts_with = "kubeconfig")]
    pub server: Option<String>,
    /// The join token `skiff server` printed (it pins the server's CA).
    #[arg(long, env = "SKIFF_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A ready kubeconfig instead of joining (the lab uses this).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The Node's name (default: this machine's hostname).
    #[arg(long)]
    pub node_name: Option<String>,
    /// The node's InternalIP; default: the address this machine uses to reach the
    /// server (not simply the first interface, which on Vagrant is the NAT one).
    #[arg(long)]
    pub node_ip: Option<Ipv4Addr>,
    /// The node's pod network (e.g. 10.244.1.0/24); default: the one the server
    /// assigned when this node joined.
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// Write the pod network's CNI conflist here at start (the directory containerd's
    /// CRI plugin reads, e.g. /etc/cni/net.d).
    #[arg(long)]
    pub cni_conf_dir: Option<PathBuf>,
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
    /// Switch the node-local cluster DNS off.
    #[arg(long)]
    pub no_dns: bool,
    /// Upstream resolver for names outside the cluster (repeatable); default: the
    /// nameservers in /etc/resolv.conf.
    #[arg(long)]
    pub dns_upstream: Vec<SocketAddr>,
    /// Forward no names outside the cluster: answer SERVFAIL at once (offline labs).
    #[arg(long, conflicts_with = "dns_upstream")]
    pub no_dns_upstream: bool,
    #[arg(long, default_value = "0.0.0.0:80")]
    pub ingress_http: SocketAddr,
    #[arg(long, default_value = "0.0.0.0:443")]
    pub ingress_https: SocketAddr,
    /// Remove the service proxy's iptables chains from this network namespace and exit
    /// (leaves every other rule alone).
    #[arg(long)]
    pub cleanup: bool,
    /// Seconds between Lease renewals (labs shorten it to show failover quickly).
    #[arg(long, default_value_t = 10)]
    pub heartbeat_seconds: u64,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    if args.cleanup {
        skiff_proxy::cleanup(&skiff_proxy::ProxyConfig::default())
            .context("removing the service proxy's iptables chains")?;
        println!("removed the service proxy's chains (KUBE-*) from this network namespace");
        return Ok(());
    }
    let node_name = match args.node_name {
        Some(n) => n,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("reading the hostname; pass --node-name")?
            .trim()
            .to_lowercase(),
    };
    let (kubeconfig, joined_cidr, server_host) = match (args.kubeconfig, args.server, args.token) {
        (Some(k), _, _) => (k, None, None),
        (None, Some(server), Some(token)) => {
            let joined = skiff_cluster::join::join(&server, &token, &node_name, &args.data_dir)
                .await
                .with_context(|| format!("joining {server} as node {node_name}"))?;
            let host = server
                .parse::<http::Uri>()
                .ok()
                .and_then(|u| u.host().map(str::to_string));
            (joined.kubeconfig, Some(joined.pod_cidr), host)
        }
        _ => anyhow::bail!("give --server and --token to join a server, or --kubeconfig"),
    };
    let node_ip = match args.node_ip {
        Some(ip) => ip,
        None => server_host
            .as_deref()
            .and_then(|h| h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok())
            .and_then(skiff_cluster::join::source_address_for)
            .context("cannot tell this node's address: pass --node-ip")?,
    };
    let pod_cidr = args
        .pod_cidr
        .or(joined_cidr)
        .context("no podCIDR: pass --pod-cidr, or join with --server/--token to get one")?;
    if let Some(dir) = &args.cni_conf_dir {
        let net = skiff_kubelet::network::PodNetwork::new(&pod_cidr, &args.data_dir.join("ipam"));
        skiff_kubelet::network::write_config(dir, &net)
            .with_context(|| format!("writing the CNI config into {}", dir.display()))?;
    }
    let config = skiff_cluster::agent::AgentConfig {
        kubeconfig,
        node_name: node_name.clone(),
        node_ip,
        pod_cidr,
        cluster_cidr: args.cluster_cidr,
        containerd_socket: args.containerd_socket,
        data_dir: args.data_dir,
        ingress: (!args.no_ingress).then_some((args.ingress_http, args.ingress_https)),
        dns: !args.no_dns,
        dns_upstreams: if args.no_dns_upstream {
            Some(Vec::new())
        } else if args.dns_upstream.is_empty() {
            None
        } else {
            Some(args.dns_upstream.clone())
        },
        heartbeat: Duration::from_secs(args.heartbeat_seconds.max(1)),
        resync: Duration::from_secs(10),
    };
    let shutdown = super::shutdown_on_signals();
    skiff_cluster::agent::run(config, shutdown)
        .await
        .with_context(|| format!("running node {node_name}"))
}
