//! skiff's Kubernetes API server.
//!
//! Serves the Kubernetes REST API over HTTPS (HTTP/2 and HTTP/1.1) from a durable,
//! revisioned sled store: discovery, get/list/watch/create/update/patch/delete on every
//! resource of the registry in `skiff-api`, the status, scale, binding, eviction and
//! finalize subresources, Tables for `kubectl get`, and bearer-token authentication.
//! On first start it creates its CA, serving certificate, admin token and an
//! `admin.kubeconfig` in the data dir, and the bootstrap namespaces and `kubernetes`
//! Service.
//!
//! # Layout
//! - [`store`]: the durable, revisioned, watchable sled store (group commit, event log).
//! - [`router`]: request path -> discovery document, collection, object, subresource.
//! - [`request`] / [`response`]: query, Accept, body decoding; JSON, Status, Tables.
//! - [`handlers`]: discovery, the verbs on objects, subresources, watch.
//! - [`strategy`]: per-kind create/update rules (server fields, status, generation,
//!   defaults, validation, allocation).
//! - [`alloc`]: ClusterIP and NodePort allocation.
//! - [`bootstrap`]: namespaces and the `kubernetes` Service that always exist.
//! - [`tls`], [`auth`], [`authz`], [`kubeconfig`]: certificates, tokens and node
//!   credentials, what a node may do, kubeconfig files.
//! - [`netns`]: listening inside another network namespace.
//! - [`server`]: listeners, TLS, HTTP connections and draining.
//! - [`testing`]: an in-process server on port 0 for tests of other crates.

pub mod alloc;
pub mod auth;
pub mod authz;
pub mod bootstrap;
pub mod handlers;
pub mod kubeconfig;
pub mod netns;
pub mod request;
pub mod response;
pub mod router;
pub mod server;
pub mod store;
pub mod strategy;
pub mod testing;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::Ipv4Net;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::handlers::Api;
use crate::store::{Store, StoreError, StoreOptions};

/// Everything `skiff server` can be told.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Addresses to listen on; the first one's port goes into the kubeconfig.
    pub listen: Vec<SocketAddr>,
    /// Addresses to listen on inside named network namespaces
    /// (`/var/run/netns/<name>`): how the lab's nodes reach a server that also serves
    /// the host over loopback, without any route between the two.
    pub netns_listen: Vec<(String, SocketAddr)>,
    /// Host written into `admin.kubeconfig` (default: 127.0.0.1).
    pub advertise_host: Option<String>,
    /// Extra names and addresses for the serving certificate.
    pub tls_sans: Vec<String>,
    pub service_cidr: Ipv4Net,
    /// Where joining nodes' podCIDRs (/24 each) come from.
    pub cluster_cidr: Ipv4Net,
    pub node_port_range: (u16, u16),
    pub store: StoreOptions,
    /// tolerationSeconds of the not-ready/unreachable tolerations every pod gets
    /// (upstream's --default-unreachable-toleration-seconds, 300); labs shorten it so
    /// pods move off a dead node in seconds.
    pub default_toleration_seconds: i64,
    /// Open connections to kubelets from inside this network namespace (the lab's hub).
    pub kubelet_netns: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("/var/lib/skiff/server"),
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 6443))],
            netns_listen: Vec::new(),
            advertise_host: None,
            tls_sans: Vec::new(),
            service_cidr: "10.96.0.0/12".parse().expect("cidr"),
            cluster_cidr: "10.244.0.0/16".parse().expect("cidr"),
            node_port_range: (30000, 32767),
            store: StoreOptions::default(),
            default_toleration_seconds: 300,
            kubelet_netns: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}; is another server running there? pick another address with --listen")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// A started server.
pub struct Running {
    /// The bound addresses (ports resolved when 0 was asked for).
    pub addrs: Vec<SocketAddr>,
    pub kubeconfig: PathBuf,
    pub token: String,
    pub ca_pem: String,
    /// The URL written into the kubeconfig.
    pub url: String,
    /// The secret half of the join token (`skiff agent --token`).
    pub join_secret: String,
    pub store: Store,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Waits until every listener has drained (after shutdown is cancelled), then
    /// closes the store.
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
        self.store.close().await;
    }
}

/// Opens the store, prepares certificates and tokens, binds the listeners and starts
/// serving. Returns once the server accepts connections.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::Write {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let store = Store::open(&config.data_dir.join("store"), config.store.clone())?;

    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for addr in &config.listen {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Listen {
                addr: *addr,
                source,
            })?;
        addrs.push(l.local_addr().map_err(|source| ServerError::Listen {
            addr: *addr,
            source,
        })?);
        listeners.push(l);
    }
    let port = addrs.first().map(|a| a.port()).unwrap_or(6443);
    for (ns, addr) in &config.netns_listen {
        let l = netns::bind_in(ns, *addr).map_err(|source| ServerError::Listen {
            addr: *addr,
            source,
        })?;
        listeners.push(l);
    }

    let alloc = alloc::Allocators::new(config.service_cidr, config.node_port_range);
    let (services, _, _) = store.list("/registry/core/services/", None, None);
    alloc.rebuild(services.iter().map(|(_, v)| v.as_ref()));

    // Names and addresses for the serving certificate.
    let mut names: Vec<String> = vec![
        "localhost".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
    ];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim().to_string();
        if !h.is_empty() && !names.contains(&h) {
            names.push(h);
        }
    }
    let mut ips: Vec<IpAddr> = tls::local_addresses();
    ips.push(IpAddr::V4(alloc.api_service_ip()));
    for a in addrs
        .iter()
        .chain(config.netns_listen.iter().map(|(_, a)| a))
    {
        if !a.ip().is_unspecified() && !ips.contains(&a.ip()) {
            ips.push(a.ip());
        }
    }
    for san in &config.tls_sans {
        match san.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) if !names.contains(san) => names.push(san.clone()),
            Err(_) => {}
        }
    }
    let material = tls::ensure(&config.data_dir, &names, &ips)?;
    let tls_config = tls::server_config(&material)?;
    let (auth, token) = auth::Authenticator::load(&config.data_dir)?;

    let host =
        config
            .advertise_host
            .clone()
            .unwrap_or_else(|| match addrs.first().map(|a| a.ip()) {
                Some(ip) if !ip.is_unspecified() => ip.to_string(),
                _ => "127.0.0.1".to_string(),
            });
    let host_part = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let url = format!("https://{host_part}:{port}");
    let kubeconfig = config.data_dir.join("admin.kubeconfig");
    tls::write_private(
        &kubeconfig,
        &kubeconfig::render("skiff", &url, &material.ca_pem, "skiff-admin", &token),
    )?;

    let api = Arc::new(Api {
        store: store.clone(),
        alloc,
        auth: std::sync::RwLock::new(auth),
        ca_pem: material.ca_pem.clone(),
        ca_signer: material.signer.clone(),
        cluster_cidr: config.cluster_cidr,
        advertise: format!("{host_part}:{port}"),
        shutdown: shutdown.clone(),
        default_toleration_seconds: config.default_toleration_seconds,
        kubelet_netns: config.kubelet_netns.clone(),
    });
    let endpoint_ips: Vec<String> = addrs
        .iter()
        .map(|a| {
            if a.ip().is_unspecified() {
                host.clone()
            } else {
                a.ip().to_string()
            }
        })
        .filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
        .collect();
    bootstrap::ensure(&api, port, &endpoint_ips).await?;

    let tasks = listeners
        .into_iter()
        .map(|l| {
            tokio::spawn(server::serve(
                l,
                tls_config.clone(),
                api.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    tracing::info!(addrs = ?addrs, kubeconfig = %kubeconfig.display(), "API server ready");
    let join_secret = api
        .auth
        .read()
        .expect("auth lock")
        .join_secret()
        .to_string();
    Ok(Running {
        addrs,
        kubeconfig,
        token,
        ca_pem: material.ca_pem,
        url,
        join_secret,
        store,
        tasks,
    })
}

/// Runs the server until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServerError> {
    let running = start(config, shutdown).await?;
    running.wait().await;
    Ok(())
}
