//! skiff-proxy: the service proxy that runs in `skiff agent` on every node and makes
//! Service virtual IPs work, like kube-proxy in iptables mode.
//!
//! It reads Services and EndpointSlices (watch, through kube-runtime reflectors) and
//! writes nothing to the API; its output is the nat and filter tables of the node's
//! network namespace, programmed with `iptables-restore --noflush`: ClusterIP (TCP,
//! UDP, SCTP), NodePort on the node's addresses (externalTrafficPolicy Cluster and
//! Local), externalIPs, sessionAffinity ClientIP, only ready endpoints (serving
//! terminating ones when none is ready), REJECT for services without endpoints, and
//! cleanup of stale UDP conntrack entries. It owns only its own chains.
//!
//! # Layout
//! - [`model`]: Services + EndpointSlices -> the proxy's model of service ports (pure).
//! - [`rules`]: model + node facts -> every chain the proxy owns (pure).
//! - [`diff`]: previous or saved state + desired rules -> minimal restore text (pure);
//!   for a few changed services, only their rule fragments are compared.
//! - [`backend`]: [`backend::RuleBackend`], the real iptables tools and a fake kernel.
//! - [`conntrack`]: which UDP flows went stale (pure) and the `conntrack` tool.
//! - [`sync`]: one sync, the batching / checking / resync loop, and cleanup.
//! - [`run`] (here): watches the API and drives the loop; [`cleanup`] removes the chains.

pub mod backend;
pub mod conntrack;
pub mod diff;
pub mod model;
pub mod rules;
pub mod sync;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use backend::{BackendError, IptablesBackend, RuleBackend};
pub use conntrack::ConntrackTool;
pub use rules::NodeInfo;
pub use sync::{SyncConfig, Syncer};

/// Services carrying this label are handled by another proxy (Kubernetes convention).
const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";

/// Everything the proxy needs besides the API client.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    /// This node's name, node-port addresses and pod network.
    pub node: NodeInfo,
    /// Sync timing.
    pub sync: SyncConfig,
    /// Command prefix for iptables and conntrack (empty: run them directly in this
    /// process's network namespace, which is what `skiff agent` does; tests pass
    /// `["nsenter", "--net=/var/run/netns/NAME"]`).
    pub command_prefix: Vec<String>,
}

/// Why the proxy stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot use iptables in this network namespace: {0}")]
    Backend(#[from] BackendError),
}

/// Builds the model from the informer caches.
pub fn snapshot(services: &Store<Service>, slices: &Store<EndpointSlice>) -> model::ProxyModel {
    let services = services.state();
    let slices = slices.state();
    let ours = services.iter().map(|s| s.as_ref()).filter(|s| {
        !s.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME_LABEL))
    });
    model::build_model(ours, slices.iter().map(|s| s.as_ref()))
}

/// Runs the proxy until `shutdown` is cancelled: watches Services and EndpointSlices
/// in all namespaces and keeps this namespace's iptables rules in line with them.
/// The chains stay in place on return (so traffic keeps flowing across a restart);
/// [`cleanup`] removes them.
pub async fn run(
    config: ProxyConfig,
    client: kube::Client,
    shutdown: CancellationToken,
) -> Result<(), ProxyError> {
    let backend = IptablesBackend::with_prefix(config.command_prefix.clone());
    // Fail fast with a clear message when iptables cannot be used at all.
    let probe = backend.clone();
    tokio::task::spawn_blocking(move || probe.save(rules::Table::Nat))
        .await
        .expect("iptables probe thread panicked")?;

    let changes = Arc::new(Notify::new());
    let (svc_store, svc_writer) = reflector::store::<Service>();
    let (slice_store, slice_writer) = reflector::store::<EndpointSlice>();
    let svc_stream = reflector::reflector(
        svc_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff();
    let slice_stream = reflector::reflector(
        slice_writer,
        watcher(
            Api::<EndpointSlice>::all(client),
            watcher::Config::default(),
        ),
    )
    .default_backoff();
    let watch_stop = shutdown.child_token();
    let watches = [
        tokio::spawn(drive(
            svc_stream,
            changes.clone(),
            watch_stop.clone(),
            "services",
        )),
        tokio::spawn(drive(
            slice_stream,
            changes.clone(),
            watch_stop.clone(),
            "endpointslices",
        )),
    ];

    // Programming rules from half-filled caches would reject traffic to services whose
    // endpoints have not arrived yet.
    tokio::select! {
        _ = shutdown.cancelled() => {
            watch_stop.cancel();
            return Ok(());
        }
        _ = async {
            let _ = svc_store.wait_until_ready().await;
            let _ = slice_store.wait_until_ready().await;
        } => {}
    }
    info!(node = %config.node.name, "service proxy caches ready; syncing rules");

    let syncer = Syncer::new(
        backend,
        ConntrackTool::with_prefix(config.command_prefix.clone()),
        config.node.clone(),
    );
    let (s, e) = (svc_store.clone(), slice_store.clone());
    sync::sync_loop(
        syncer,
        move || snapshot(&s, &e),
        changes,
        config.sync.clone(),
        shutdown.clone(),
    )
    .await;
    watch_stop.cancel();
    for w in watches {
        let _ = w.await;
    }
    Ok(())
}

/// Polls a reflector stream (which keeps its store current) and signals each change.
async fn drive<S, K>(stream: S, changes: Arc<Notify>, stop: CancellationToken, what: &'static str)
where
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let mut stream = std::pin::pin!(stream);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            ev = stream.next() => match ev {
                Some(Ok(_)) => changes.notify_one(),
                Some(Err(e)) => warn!(error = %e, what, "watch failed; retrying with backoff"),
                None => return,
            }
        }
    }
}

/// Removes every chain the proxy created, and the jumps to them, from this network
/// namespace (or the one `config.command_prefix` enters). Other rules stay.
pub fn cleanup(config: &ProxyConfig) -> Result<(), ProxyError> {
    let backend = IptablesBackend::with_prefix(config.command_prefix.clone());
    sync::cleanup(&backend)?;
    Ok(())
}
