//! skiff-dns: cluster DNS, a node-local resolver that runs in `skiff agent` on every
//! node, so pods find services by name as in Kubernetes (`web`, `web.shop`,
//! `web.shop.svc.cluster.local`).
//!
//! It reads Services and EndpointSlices (watch, through kube-runtime reflectors) and
//! writes nothing to the API. It answers on UDP and TCP port 53 at the node's address,
//! which the kubelet puts in pods' `/etc/resolv.conf` (dnsPolicy `ClusterFirst`):
//! A/AAAA for ClusterIP services, per ready endpoint for headless ones,
//! `<hostname>.<svc>.<ns>.svc.<domain>` for pods with hostname + subdomain, SRV for
//! named ports, CNAME for ExternalName services, PTR for service addresses, NXDOMAIN
//! with the zone's SOA for unknown names. Other names go to the node's own resolvers
//! (from `/etc/resolv.conf`) with a short timeout, then SERVFAIL. While the API server
//! is unreachable the last table keeps answering.
//!
//! # Layout
//! - [`records`]: Services + EndpointSlices -> an immutable record table (pure).
//! - [`answer`]: table + one DNS question -> the response message (pure).
//! - [`server`]: UDP/TCP listeners, message decoding/encoding, the upstream forwarder.
//! - [`watch`]: reflectors that rebuild the table and swap it in on each change.
//! - [`run`] (here): binds, starts the watch and serves until shutdown.

pub mod answer;
pub mod records;
pub mod server;
pub mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use records::RecordTable;
pub use server::{DnsServer, Forwarder, SharedTable};

/// Everything the DNS server needs besides the API client.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Where to answer (UDP and TCP): the node's own address on port 53 in `skiff
    /// agent`, which pods reach through their bridge gateway.
    pub listen: SocketAddr,
    /// The cluster domain (`cluster.local`); must match the kubelet's.
    pub cluster_domain: String,
    /// Upstream resolvers for other names; `None` reads `nameserver` lines from
    /// `/etc/resolv.conf` at start.
    pub upstreams: Option<Vec<SocketAddr>>,
    /// How long to wait for upstream resolvers before answering SERVFAIL.
    pub forward_timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 53)),
            cluster_domain: "cluster.local".into(),
            upstreams: None,
            forward_timeout: Duration::from_secs(2),
        }
    }
}

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot listen for dns on {addr} (is another resolver using port 53?): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Binds `config.listen`, then serves cluster names from the API's Services and
/// EndpointSlices (and forwards the rest) until `shutdown` is cancelled.
pub async fn run(
    config: DnsConfig,
    client: kube::Client,
    shutdown: CancellationToken,
) -> Result<(), DnsError> {
    let upstreams = match config.upstreams.clone() {
        Some(u) => u,
        // No resolv.conf simply means nothing to forward to: other names get SERVFAIL.
        None => server::parse_resolv_conf(
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        ),
    };
    let forwarder = Forwarder::new(upstreams, config.listen, config.forward_timeout);
    let table: SharedTable = Arc::new(ArcSwap::from_pointee(RecordTable::empty(
        &config.cluster_domain,
    )));
    let server = DnsServer::bind(config.listen, table.clone(), forwarder.clone())
        .await
        .map_err(|source| DnsError::Bind {
            addr: config.listen,
            source,
        })?;
    info!(listen = %config.listen, domain = %config.cluster_domain, upstreams = ?forwarder.upstreams(), "cluster dns listening");
    let watch = tokio::spawn(watch::watch(
        client,
        config.cluster_domain.clone(),
        table,
        shutdown.clone(),
    ));
    server.serve(shutdown).await;
    let _ = watch.await;
    Ok(())
}
