//! The watch layer: kube reflectors for Ingresses, IngressClasses, Services,
//! EndpointSlices, Secrets (and Nodes, for status addresses) feed the pure table
//! builders; every change rebuilds the route table and certificate store and swaps
//! them in atomically, then writes `status.loadBalancer` of the served Ingresses.
//!
//! Bursts of events (a rollout touches many EndpointSlices) are coalesced: a rebuild
//! waits a short quiet period. A periodic resync retries status writes that failed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, IngressLoadBalancerIngress};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::Client;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::proxy::Shared;
use crate::routes::{self, ClassSelector, Inputs};
use crate::tls::{self, CertCache};

/// Quiet period before a rebuild, so one rollout is one rebuild, not hundreds.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Rebuild (and retry status writes) at least this often.
const RESYNC: Duration = Duration::from_secs(60);

/// What the watch layer needs to know.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub class: ClassSelector,
    /// Addresses written to `status.loadBalancer.ingress`; when empty, the
    /// InternalIP addresses of all Nodes are used (every agent runs the ingress, and
    /// every agent computes the same list, so agents do not fight over the status).
    pub publish_addresses: Vec<String>,
}

/// The addresses to publish: configured ones, else the Nodes' InternalIPs; sorted.
pub fn publish_addresses(configured: &[String], nodes: &[Arc<Node>]) -> Vec<String> {
    let set: BTreeSet<String> = if configured.is_empty() {
        nodes
            .iter()
            .flat_map(|n| n.status.iter().flat_map(|s| s.addresses.iter().flatten()))
            .filter(|a| a.type_ == "InternalIP")
            .map(|a| a.address.clone())
            .collect()
    } else {
        configured.iter().cloned().collect()
    };
    set.into_iter().collect()
}

/// `status.loadBalancer.ingress` entries: IPs as `ip`, anything else as `hostname`.
pub fn load_balancer_entries(addresses: &[String]) -> Vec<IngressLoadBalancerIngress> {
    addresses
        .iter()
        .map(|a| {
            if a.parse::<std::net::IpAddr>().is_ok() {
                IngressLoadBalancerIngress {
                    ip: Some(a.clone()),
                    ..Default::default()
                }
            } else {
                IngressLoadBalancerIngress {
                    hostname: Some(a.clone()),
                    ..Default::default()
                }
            }
        })
        .collect()
}

/// Whether the Ingress's status differs from `want`.
pub fn status_differs(ing: &Ingress, want: &[IngressLoadBalancerIngress]) -> bool {
    let have = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_deref())
        .unwrap_or_default();
    have != want
}

fn watch_into<K>(client: &Client, changed: Arc<Notify>, shutdown: CancellationToken) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let api: Api<K> = Api::all(client.clone());
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    );
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = stream.next() => e,
            };
            match event {
                Some(Ok(_)) => changed.notify_one(),
                Some(Err(e)) => {
                    warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying with backoff")
                }
                None => return,
            }
        }
    });
    reader
}

/// Runs the reflectors and the rebuild loop until `shutdown`.
pub async fn run(
    client: Client,
    shared: Arc<Shared>,
    config: WatchConfig,
    shutdown: CancellationToken,
) {
    let changed = Arc::new(Notify::new());
    let ingresses = watch_into::<Ingress>(&client, changed.clone(), shutdown.clone());
    let classes = watch_into::<IngressClass>(&client, changed.clone(), shutdown.clone());
    let services = watch_into::<Service>(&client, changed.clone(), shutdown.clone());
    let slices = watch_into::<EndpointSlice>(&client, changed.clone(), shutdown.clone());
    let secrets = watch_into::<Secret>(&client, changed.clone(), shutdown.clone());
    let nodes = config
        .publish_addresses
        .is_empty()
        .then(|| watch_into::<Node>(&client, changed.clone(), shutdown.clone()));

    let ready = async {
        let _ = ingresses.wait_until_ready().await;
        let _ = classes.wait_until_ready().await;
        let _ = services.wait_until_ready().await;
        let _ = slices.wait_until_ready().await;
        let _ = secrets.wait_until_ready().await;
        if let Some(n) = &nodes {
            let _ = n.wait_until_ready().await;
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = ready => info!("ingress caches synced"),
    }

    let mut cache = CertCache::default();
    let mut last_warnings = Vec::new();
    loop {
        let inputs = Inputs {
            ingresses: ingresses.state(),
            classes: classes.state(),
            services: services.state(),
            slices: slices.state(),
        };
        let table = routes::build(&inputs, &config.class);
        let served = routes::served(&inputs, &config.class);
        let certs = tls::build(&served, &secrets.state(), &mut cache);
        let warnings: Vec<String> = table
            .warnings
            .iter()
            .chain(certs.warnings.iter())
            .cloned()
            .collect();
        if warnings != last_warnings {
            for w in &warnings {
                warn!("{w}");
            }
            last_warnings = warnings;
        }
        debug!(ingresses = served.len(), "route table rebuilt");
        shared.routes.store(Arc::new(table));
        shared.certs.store(Arc::new(certs));

        let addresses = publish_addresses(
            &config.publish_addresses,
            &nodes.as_ref().map(Store::state).unwrap_or_default(),
        );
        if !addresses.is_empty() {
            update_statuses(&client, &served, &load_balancer_entries(&addresses)).await;
        }

        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = changed.notified() => {}
            _ = tokio::time::sleep(RESYNC) => {}
        }
        tokio::time::sleep(DEBOUNCE).await;
    }
}

async fn update_statuses(
    client: &Client,
    served: &[Arc<Ingress>],
    want: &[IngressLoadBalancerIngress],
) {
    for ing in served.iter().filter(|i| status_differs(i, want)) {
        let (Some(ns), Some(name)) = (
            ing.metadata.namespace.as_deref(),
            ing.metadata.name.as_deref(),
        ) else {
            continue;
        };
        let api: Api<Ingress> = Api::namespaced(client.clone(), ns);
        let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": want}}});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => debug!(ingress = %format!("{ns}/{name}"), "status.loadBalancer updated"),
            Err(e) => {
                warn!(ingress = %format!("{ns}/{name}"), error = %e, "updating status.loadBalancer failed; will retry on the next resync")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(ips: &[(&str, &str)]) -> Arc<Node> {
        let addrs: Vec<_> = ips
            .iter()
            .map(|(t, a)| json!({"type": t, "address": a}))
            .collect();
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": "n"}, "status": {"addresses": addrs}}),
            )
            .unwrap(),
        )
    }

    #[test]
    fn publishes_configured_addresses_or_node_internal_ips() {
        let nodes = vec![
            node(&[("InternalIP", "10.0.0.2"), ("Hostname", "n2")]),
            node(&[("InternalIP", "10.0.0.1"), ("ExternalIP", "1.2.3.4")]),
        ];
        assert_eq!(publish_addresses(&[], &nodes), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(
            publish_addresses(&["lb.example.com".into()], &nodes),
            ["lb.example.com"]
        );
        assert!(publish_addresses(&[], &[]).is_empty());
    }

    #[test]
    fn status_entries_and_difference() {
        let want = load_balancer_entries(&["10.0.0.1".into(), "lb.example.com".into()]);
        assert_eq!(want[0].ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(want[1].hostname.as_deref(), Some("lb.example.com"));
        let mut ing: Ingress = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert!(status_differs(&ing, &want));
        ing.status = Some(
            serde_json::from_value(json!({"loadBalancer": {"ingress": [
                {"ip": "10.0.0.1"}, {"hostname": "lb.example.com"}
            ]}}))
            .unwrap(),
        );
        assert!(!status_differs(&ing, &want));
        assert!(status_differs(&ing, &want[..1]));
    }
}
