//! skiff-ingress: the Ingress controller that runs inside `skiff agent`.
//!
//! It listens on the node's ports 80 and 443, watches Ingresses, IngressClasses,
//! Services, EndpointSlices and Secrets (networking.k8s.io/v1 semantics), and proxies
//! each request straight to a ready endpoint pod IP of the matched backend — no
//! config file is generated and nothing is reloaded: the routing table and the
//! certificates are immutable values swapped atomically when the cluster changes.
//! It writes `status.loadBalancer` of the Ingresses it serves.
//!
//! # Layout
//! - [`routes`]: pure: cluster objects -> [`routes::RouteTable`]; host/path matching.
//! - [`annotations`]: the small, validated set of annotations (rewrite-target,
//!   ssl-redirect, backend-protocol).
//! - [`tls`]: certificates from `kubernetes.io/tls` Secrets, chosen by SNI.
//! - [`proxy`]: the hyper server: request phases, limits, timeouts, error pages.
//! - [`upstream`]: per-thread HTTP/1.1 connection pools to the backend pods.
//! - [`watch`]: kube reflectors feeding the table builders; status updates.
//! - [`testing`]: object builders shared by tests and the benchmark.

pub mod annotations;
pub mod proxy;
pub mod routes;
pub mod testing;
pub mod tls;
pub mod upstream;
pub mod watch;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use proxy::{Limits, Timeouts};
pub use routes::ClassSelector;

/// Configuration of the ingress controller.
#[derive(Debug, Clone)]
pub struct IngressConfig {
    /// Plain HTTP listen address (`None`: no HTTP listener).
    pub http_addr: Option<SocketAddr>,
    /// HTTPS listen address (`None`: no HTTPS listener).
    pub https_addr: Option<SocketAddr>,
    /// Which Ingresses are served.
    pub class: ClassSelector,
    /// Addresses for `status.loadBalancer`; empty: the Nodes' InternalIPs.
    pub publish_addresses: Vec<String>,
    pub timeouts: Timeouts,
    pub limits: Limits,
    /// Proxy threads, each with its own single-threaded runtime and backend
    /// connection pool (0: one per CPU); accepted connections are dealt to them
    /// round-robin. Keeping a request, its client connection and its backend
    /// connection on one thread avoids cross-thread wake-ups, which dominate the cost
    /// of a small proxied request.
    pub workers: usize,
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig {
            http_addr: Some(SocketAddr::from(([0, 0, 0, 0], 80))),
            https_addr: Some(SocketAddr::from(([0, 0, 0, 0], 443))),
            class: ClassSelector {
                class_name: "skiff".into(),
                controller: "skiff.dev/ingress-controller".into(),
                claim_classless: false,
            },
            publish_addresses: Vec::new(),
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            workers: 0,
        }
    }
}

/// Why the ingress controller could not run.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("binding {addr} failed: {source}; is another process using the port, or is the address wrong?")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("starting proxy worker thread failed: {0}")]
    Worker(std::io::Error),
}

/// Binds the configured addresses and runs until `shutdown`.
pub async fn run(
    config: IngressConfig,
    client: kube::Client,
    shutdown: CancellationToken,
) -> Result<(), IngressError> {
    let bind = |addr: Option<SocketAddr>| async move {
        match addr {
            Some(addr) => TcpListener::bind(addr)
                .await
                .map(Some)
                .map_err(|source| IngressError::Bind { addr, source }),
            None => Ok(None),
        }
    };
    let http = bind(config.http_addr).await?;
    let https = bind(config.https_addr).await?;
    run_with_listeners(config, client, http, https, shutdown).await
}

/// Like [`run`] on already bound listeners (tests bind 127.0.0.1:0).
pub async fn run_with_listeners(
    config: IngressConfig,
    client: kube::Client,
    http: Option<TcpListener>,
    https: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), IngressError> {
    let shared = Arc::new(proxy::Shared::default());
    let watch_config = watch::WatchConfig {
        class: config.class.clone(),
        publish_addresses: config.publish_addresses.clone(),
    };
    let watch = tokio::spawn(watch::run(
        client,
        shared.clone(),
        watch_config,
        shutdown.clone(),
    ));
    let servers = serve(&config, shared, http, https, shutdown);
    let result = servers.await;
    let _ = watch.await;
    result
}

/// Serves HTTP and HTTPS from `shared` (whoever fills it: the watch layer, or a test)
/// until `shutdown`, on `config.workers` threads.
pub async fn serve(
    config: &IngressConfig,
    shared: Arc<proxy::Shared>,
    http: Option<TcpListener>,
    https: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), IngressError> {
    let https_port = https
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map_or(443, |a| a.port());
    let proxy_config = proxy::ProxyConfig {
        timeouts: config.timeouts.clone(),
        limits: config.limits.clone(),
        https_port,
    };
    let tls_config = match &https {
        Some(_) => {
            let resolver =
                tls::SniResolver::new(shared.certs.clone(), tls::fallback_certificate()?);
            Some(tls::server_config(resolver)?)
        }
        None => None,
    };
    let workers = match config.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let acceptor = tls_config.map(tokio_rustls::TlsAcceptor::from);
    let mut threads = Vec::with_capacity(workers);
    let mut dealers = Vec::with_capacity(workers);
    for i in 0..workers {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        dealers.push(tx);
        let (shared, proxy_config, acceptor, shutdown) = (
            shared.clone(),
            proxy_config.clone(),
            acceptor.clone(),
            shutdown.clone(),
        );
        let thread = std::thread::Builder::new()
            .name(format!("ingress-{i}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(r) => r,
                    Err(e) => return tracing::error!(error = %e, "building the proxy worker runtime failed"),
                };
                runtime.block_on(proxy::serve_connections(rx, acceptor, proxy::Proxy::new(shared, proxy_config), shutdown));
            })
            .map_err(IngressError::Worker)?;
        threads.push(thread);
    }
    let plain = http.map(|l| {
        tokio::spawn(proxy::accept_loop(
            l,
            false,
            dealers.clone(),
            shutdown.clone(),
        ))
    });
    let secure = https.map(|l| {
        tokio::spawn(proxy::accept_loop(
            l,
            true,
            dealers.clone(),
            shutdown.clone(),
        ))
    });
    drop(dealers);
    for task in [plain, secure].into_iter().flatten() {
        let _ = task.await;
    }
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await;
    Ok(())
}
