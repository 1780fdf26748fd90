//! The node agent process: the kubelet on containerd, the service proxy, the ingress
//! controller, and the routes that make other nodes' pods reachable (host-gw style:
//! each node's podCIDR via that node's InternalIP).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use crate::control_plane::supervise;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub kubeconfig: PathBuf,
    pub node_name: String,
    pub node_ip: Ipv4Addr,
    pub pod_cidr: String,
    /// All pods' addresses (the union of every node's podCIDR).
    pub cluster_cidr: ipnet::Ipv4Net,
    pub containerd_socket: PathBuf,
    /// Pod logs and agent state.
    pub data_dir: PathBuf,
    /// `None` switches the ingress controller off.
    pub ingress: Option<(SocketAddr, SocketAddr)>,
    /// Run the node-local cluster DNS on the node's address, port 53, and point
    /// ClusterFirst pods at it.
    pub dns: bool,
    /// Where the DNS forwards names outside the cluster: `None` reads
    /// /etc/resolv.conf; an empty list answers SERVFAIL at once (an offline lab).
    pub dns_upstreams: Option<Vec<SocketAddr>>,
    pub heartbeat: Duration,
    pub resync: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot read kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    #[error(
        "cannot reach containerd at {socket}: {reason}; is containerd running with that socket?"
    )]
    Runtime { socket: String, reason: String },
    #[error("{0}; the API server would refuse this node's kubelet for logs and exec without a certificate it signed")]
    ServingCert(String),
}

/// Runs the agent until `shutdown` is cancelled.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    let kc_err = |e: &dyn std::fmt::Display| AgentError::Kubeconfig {
        path: config.kubeconfig.display().to_string(),
        reason: e.to_string(),
    };
    let client = crate::control_plane::admin_client(&config.kubeconfig, "skiff-agent")
        .await
        .map_err(|e| kc_err(&e))?;
    let runtime = skiff_kubelet::cri::ContainerdRuntime::connect(&config.containerd_socket)
        .await
        .map_err(|e| AgentError::Runtime {
            socket: config.containerd_socket.display().to_string(),
            reason: e.to_string(),
        })?;
    let runtime: Arc<dyn skiff_kubelet::cri::Runtime> = Arc::new(runtime);

    let mut kcfg = skiff_kubelet::Config::new(&config.node_name, client.clone(), runtime);
    kcfg.node_ip = config.node_ip.to_string();
    kcfg.pod_cidr = Some(config.pod_cidr.clone());
    kcfg.log_root = config.data_dir.join("pods");
    kcfg.root_dir = config.data_dir.join("kubelet");
    // Logs, exec and port-forward: the API server connects to this port. containerd
    // runs in the agent's own network namespace, so its streaming server is reachable
    // from here. The API server only talks to a kubelet whose certificate its CA
    // signed for this node, so one is fetched at every start (cheap; a changed
    // address is picked up).
    let cert_names = vec![config.node_ip.to_string(), config.node_name.clone()];
    let serving_cert = serving_cert(&client, &config.node_name, &cert_names, &shutdown).await?;
    kcfg.server = Some(skiff_kubelet::server::ServerConfig {
        listen: SocketAddr::new(config.node_ip.into(), 10250),
        token: None,
        streaming_netns: None,
        cert_names,
        serving_cert: Some(serving_cert),
    });
    kcfg.heartbeat = config.heartbeat;
    kcfg.resync = config.resync;
    if config.dns {
        kcfg.cluster_dns = vec![config.node_ip.to_string()];
    }

    let mut tasks = Vec::new();
    {
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            supervise("kubelet", stop.clone(), || {
                skiff_kubelet::run(kcfg.clone(), stop.clone())
            })
            .await
        }));
    }
    {
        let pcfg = skiff_proxy::ProxyConfig {
            node: skiff_proxy::rules::NodeInfo {
                name: config.node_name.clone(),
                node_port_addresses: vec![config.node_ip],
                cluster_cidr: Some(config.cluster_cidr),
            },
            ..Default::default()
        };
        let (client, stop) = (client.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            supervise("proxy", stop.clone(), || {
                skiff_proxy::run(pcfg.clone(), client.clone(), stop.clone())
            })
            .await
        }));
    }
    if let Some((http, https)) = config.ingress {
        let mut icfg = skiff_ingress::IngressConfig {
            http_addr: Some(http),
            https_addr: Some(https),
            // Empty: every node publishes all nodes' addresses, so agents agree on
            // the Ingress status instead of overwriting each other's.
            publish_addresses: Vec::new(),
            workers: 1,
            ..Default::default()
        };
        icfg.class.claim_classless = true;
        let (client, stop) = (client.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            supervise("ingress", stop.clone(), || {
                skiff_ingress::run(icfg.clone(), client.clone(), stop.clone())
            })
            .await
        }));
    }
    if config.dns {
        // A resolver on every node: pods reach their node's address through the bridge
        // gateway, and it keeps answering from its last data if the server is away.
        let dcfg = skiff_dns::DnsConfig {
            listen: SocketAddr::new(config.node_ip.into(), 53),
            cluster_domain: "cluster.local".into(),
            upstreams: config.dns_upstreams.clone(),
            forward_timeout: Duration::from_secs(2),
        };
        let (client, stop) = (client.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            supervise("dns", stop.clone(), || {
                skiff_dns::run(dcfg.clone(), client.clone(), stop.clone())
            })
            .await
        }));
    }
    {
        let (client, stop, me) = (client.clone(), shutdown.clone(), config.node_name.clone());
        tasks.push(tokio::spawn(
            async move { routes_loop(client, me, stop).await },
        ));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// The kubelet's serving certificate from the API server, retried with back-off while
/// the server is not reachable yet (agents may start before it).
async fn serving_cert(
    client: &kube::Client,
    node: &str,
    names: &[String],
    shutdown: &CancellationToken,
) -> Result<skiff_kubelet::server::ServingCert, AgentError> {
    let mut delay = Duration::from_millis(200);
    let mut last = String::new();
    for _ in 0..12 {
        match skiff_kubelet::server::request_serving_cert(client, node, names).await {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::warn!(error = %e, "getting the kubelet serving certificate failed; retrying");
                last = e.to_string();
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    Err(AgentError::ServingCert(last))
}

/// The routes this node needs: every other node's podCIDR via its InternalIP.
pub fn desired_routes(me: &str, nodes: &[Node]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for n in nodes {
        if n.metadata.name.as_deref() == Some(me) {
            continue;
        }
        let cidr = n.spec.as_ref().and_then(|s| s.pod_cidr.clone());
        let ip = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone());
        if let (Some(c), Some(i)) = (cidr, ip) {
            if !c.is_empty() && !i.is_empty() {
                out.insert(c, i);
            }
        }
    }
    out
}

async fn routes_loop(client: kube::Client, me: String, shutdown: CancellationToken) {
    let nodes: kube::Api<Node> = kube::Api::all(client);
    let (store, writer) = kube::runtime::reflector::store();
    let stream = kube::runtime::reflector(writer, watcher(nodes, watcher::Config::default()));
    let mut stream = std::pin::pin!(stream);
    let mut installed: BTreeMap<String, String> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = stream.next() => {
                if ev.is_none() { break; }
            }
        }
        let snapshot: Vec<Node> = store.state().iter().map(|n| (**n).clone()).collect();
        let want = desired_routes(&me, &snapshot);
        for (cidr, via) in &want {
            if installed.get(cidr) != Some(via) {
                let ok = tokio::process::Command::new("ip")
                    .args(["route", "replace", cidr, "via", via])
                    .status()
                    .await;
                match ok {
                    Ok(s) if s.success() => {
                        tracing::info!(%cidr, %via, "route to another node's pods");
                        installed.insert(cidr.clone(), via.clone());
                    }
                    other => tracing::warn!(%cidr, %via, ?other, "adding a pod route failed"),
                }
            }
        }
        let stale: Vec<String> = installed
            .keys()
            .filter(|c| !want.contains_key(*c))
            .cloned()
            .collect();
        for cidr in stale {
            let _ = tokio::process::Command::new("ip")
                .args(["route", "del", &cidr])
                .status()
                .await;
            installed.remove(&cidr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routes_go_to_every_other_node_with_a_cidr_and_address() {
        let node = |name: &str, cidr: Option<&str>, ip: Option<&str>| -> Node {
            let mut n =
                json!({"metadata": {"name": name}, "spec": {}, "status": {"addresses": []}});
            if let Some(c) = cidr {
                n["spec"]["podCIDR"] = json!(c);
            }
            if let Some(i) = ip {
                n["status"]["addresses"] = json!([{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": i}]);
            }
            serde_json::from_value(n).unwrap()
        };
        let nodes = vec![
            node("node1", Some("10.244.1.0/24"), Some("172.30.0.11")),
            node("node2", Some("10.244.2.0/24"), Some("172.30.0.12")),
            node("node3", None, Some("172.30.0.13")),
            node("node4", Some("10.244.4.0/24"), None),
        ];
        let r = desired_routes("node1", &nodes);
        assert_eq!(r.len(), 1);
        assert_eq!(r["10.244.2.0/24"], "172.30.0.12");
    }
}
