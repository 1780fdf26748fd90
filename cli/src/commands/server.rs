//! `skiff server`: the API server with its durable store, on HTTPS with a generated CA
//! and an admin token, writing `admin.kubeconfig` into its data dir.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Where the store, certificates, tokens and admin.kubeconfig live.
    #[arg(long, default_value = "/var/lib/skiff/server", env = "SKIFF_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Address to listen on (repeat for several).
    #[arg(long, default_values_t = vec![SocketAddr::from(([0, 0, 0, 0], 6443))])]
    pub listen: Vec<SocketAddr>,
    /// Host name or address written into admin.kubeconfig (default 127.0.0.1).
    #[arg(long)]
    pub advertise_address: Option<String>,
    /// Extra DNS name or IP for the serving certificate (repeatable).
    #[arg(long)]
    pub tls_san: Vec<String>,
    /// Range ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cidr: ipnet::Ipv4Net,
    /// Range joining nodes get their podCIDR (a /24 each) from.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: ipnet::Ipv4Net,
    /// NodePort range, as FIRST-LAST.
    #[arg(long, default_value = "30000-32767", value_parser = parse_range)]
    pub node_port_range: (u16, u16),
    /// Seconds of watch history kept for clients that resume.
    #[arg(long, default_value_t = 300)]
    pub event_window_seconds: u64,
    /// Watch history events kept however old they are, so quiet clusters' watchers can
    /// resume; lower it (with a short window) to make clients meet 410 Gone in tests.
    #[arg(long, default_value_t = 1000)]
    pub event_min_kept: usize,
    /// Do not run the built-in controllers (to run your own).
    #[arg(long)]
    pub no_controllers: bool,
    /// Do not run the built-in scheduler (to run your own).
    #[arg(long)]
    pub no_scheduler: bool,
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or("expected FIRST-LAST, e.g. 30000-32767")?;
    let a: u16 = a
        .trim()
        .parse()
        .map_err(|_| format!("{a:?} is not a port"))?;
    let b: u16 = b
        .trim()
        .parse()
        .map_err(|_| format!("{b:?} is not a port"))?;
    if a > b {
        return Err(format!("{a} is above {b}"));
    }
    Ok((a, b))
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let config = skiff_apiserver::Config {
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        netns_listen: Vec::new(),
        default_toleration_seconds: 300,
        kubelet_netns: None,
        advertise_host: args.advertise_address,
        tls_sans: args.tls_san,
        service_cidr: args.service_cidr,
        cluster_cidr: args.cluster_cidr,
        node_port_range: args.node_port_range,
        store: skiff_apiserver::store::StoreOptions {
            window: Duration::from_secs(args.event_window_seconds),
            min_events: args.event_min_kept,
            ..Default::default()
        },
    };
    let shutdown = super::shutdown_on_signals();
    let cp = skiff_cluster::control_plane::ControlPlaneConfig {
        api: config,
        controllers: (!args.no_controllers).then(skiff_controllers::ControllersConfig::default),
        scheduler: (!args.no_scheduler).then(skiff_cluster::control_plane::default_scheduler),
    };
    let running = skiff_cluster::control_plane::start(cp, shutdown)
        .await
        .with_context(|| {
            format!(
                "starting the control plane with data dir {}",
                args.data_dir.display()
            )
        })?;
    eprintln!("skiff API server listening on {}", running.api.url);
    eprintln!("admin kubeconfig: {}", running.api.kubeconfig.display());
    eprintln!(
        "try: KUBECONFIG={} kubectl get namespaces",
        running.api.kubeconfig.display()
    );
    let port = running.api.addrs.first().map(|a| a.port()).unwrap_or(6443);
    let host = skiff_apiserver::tls::local_addresses()
        .into_iter()
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "<this-server's-address>".into());
    eprintln!(
        "join a node: skiff agent --server https://{host}:{port} --token {}",
        skiff_cluster::join::make_token(&running.api.ca_pem, &running.api.join_secret)
    );
    running.wait().await;
    Ok(())
}
