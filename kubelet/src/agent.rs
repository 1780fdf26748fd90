//! The kubelet component: registers the Node, keeps its Lease and status fresh, and
//! syncs every Pod bound to this node (`spec.nodeName=<me>`) through the CRI runtime.
//!
//! Reads Pods (a watch filtered by node name); writes Nodes, `nodes/status`, Leases
//! in `kube-node-lease`, `pods/status`, and deletes Pods whose graceful deletion it
//! has carried out. Level-triggered: every pod is re-synced each `resync` period
//! (there is no runtime event stream yet), and runtime sandboxes that belong to no
//! known pod are removed by a housekeeping pass.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::cri::{api, CriError, Runtime};
use crate::cri_config::{NodeContext, LABEL_POD_UID};
use crate::node::{self, Capacity, NodeError, NodeFacts};
use crate::pod_sync::{self, SyncError};

/// Everything the kubelet needs; clients are passed in, nothing is global.
#[derive(Clone)]
pub struct Config {
    pub node_name: String,
    /// The node's InternalIP (its address in the lab network).
    pub node_ip: String,
    /// The node's podCIDR when the agent knows it (the lab assigns one per node).
    pub pod_cidr: Option<String>,
    /// `None` reports this machine's CPUs and memory.
    pub capacity: Option<Capacity>,
    pub labels: BTreeMap<String, String>,
    /// Root of the pod log directories.
    pub log_root: PathBuf,
    /// The kubelet's state directory: pod volumes live in `<root_dir>/pods/<uid>`.
    pub root_dir: PathBuf,
    /// Where the runtime keeps images (containerd's root), for the imagefs signal of
    /// DiskPressure; `None` measures `root_dir`'s filesystem.
    pub image_fs: Option<PathBuf>,
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
    /// How often every pod is re-synced and orphans are collected.
    pub resync: Duration,
    /// How often the Lease is renewed; the node status is written every 6th time.
    pub heartbeat: Duration,
    pub lease_duration_seconds: i32,
    /// Where to write the pod network's CNI config once the podCIDR is known (from
    /// `pod_cidr`, or assigned by the cluster on the Node); `None` leaves CNI alone.
    pub cni: Option<CniTarget>,
    /// The HTTPS server for logs, exec and port-forward; `None` serves none.
    pub server: Option<crate::server::ServerConfig>,
    pub client: kube::Client,
    pub runtime: Arc<dyn Runtime>,
}

impl Config {
    /// Upstream-like defaults for a node called `node_name`.
    pub fn new(node_name: &str, client: kube::Client, runtime: Arc<dyn Runtime>) -> Config {
        Config {
            node_name: node_name.into(),
            node_ip: String::new(),
            pod_cidr: None,
            capacity: None,
            labels: BTreeMap::new(),
            log_root: PathBuf::from("/var/log/pods"),
            root_dir: PathBuf::from("/var/lib/kubelet"),
            image_fs: None,
            cluster_dns: Vec::new(),
            cluster_domain: "cluster.local".into(),
            resync: Duration::from_secs(10),
            heartbeat: Duration::from_secs(10),
            lease_duration_seconds: 40,
            cni: None,
            server: None,
            client,
            runtime,
        }
    }
}

/// The containerd CNI directory and how the node's bridge network is named.
#[derive(Debug, Clone)]
pub struct CniTarget {
    pub conf_dir: PathBuf,
    pub ipam_data_dir: PathBuf,
    pub bridge: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    #[error("the container runtime is not usable: {0}")]
    Runtime(#[source] CriError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
    #[error("syncing pod {pod}: {source}")]
    Sync {
        pod: String,
        #[source]
        source: SyncError,
    },
    #[error("writing the status of pod {pod}: {source}")]
    PodStatus {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting pod {pod} after stopping it: {source}")]
    PodDelete {
        pod: String,
        #[source]
        source: kube::Error,
    },
}

struct Ctx {
    prober: crate::probes::Prober,
    recorder: crate::events::Recorder,
    pulls: pod_sync::PullBackoff,
    client: kube::Client,
    runtime: Arc<dyn Runtime>,
    node: NodeContext,
    resync: Duration,
}

/// Runs the kubelet until `shutdown` is cancelled. Pods keep running when it stops
/// (as with upstream: a kubelet restart does not restart pods).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), KubeletError> {
    let version = config
        .runtime
        .version()
        .await
        .map_err(KubeletError::Runtime)?;
    let (kernel_version, os_image) = node::host_os();
    let mut facts = NodeFacts {
        name: config.node_name.clone(),
        internal_ip: config.node_ip.clone(),
        pod_cidr: config.pod_cidr.clone(),
        capacity: config.capacity.clone().unwrap_or_else(node::host_capacity),
        container_runtime_version: format!(
            "{}://{}",
            version.runtime_name, version.runtime_version
        ),
        kernel_version,
        os_image,
        labels: config.labels.clone(),
        pressure: Default::default(),
        transitions: BTreeMap::new(),
        ids: node::host_ids(),
    };
    let now = Timestamp::now();
    node::set_pressure(&mut facts, measure_pressure(&config), now);
    facts.transitions.insert("Ready".into(), now);
    let registered = node::register(&config.client, &facts).await?;
    let pod_cidr = config
        .pod_cidr
        .clone()
        .or_else(|| registered.spec.as_ref().and_then(|s| s.pod_cidr.clone()));
    match (&config.cni, &pod_cidr) {
        (Some(target), Some(cidr)) => {
            let mut net = crate::network::PodNetwork::new(cidr, &target.ipam_data_dir);
            net.bridge = target.bridge.clone();
            let path = crate::network::write_config(&target.conf_dir, &net)?;
            tracing::info!(pod_cidr = %cidr, path = %path.display(), "wrote the pod network config");
        }
        (Some(_), None) => tracing::warn!(
            "the node has no podCIDR yet: pods cannot get addresses until one is assigned"
        ),
        _ => {}
    }
    node::renew_lease(&config.client, &facts.name, config.lease_duration_seconds).await?;

    // The server ends with this call (also on an error return), so a supervisor that
    // calls `run` again can bind the port again.
    let server_stop = shutdown.child_token();
    let _server_guard = server_stop.clone().drop_guard();
    if let Some(server) = &config.server {
        let addr = crate::server::start(
            server.clone(),
            config.runtime.clone(),
            config.log_root.clone(),
            server_stop,
        )
        .await?;
        // The API server finds the kubelet here (upstream: status.daemonEndpoints).
        let patch = serde_json::json!({"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": addr.port()}}}});
        Api::<k8s_openapi::api::core::v1::Node>::all(config.client.clone())
            .patch_status(&facts.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| NodeError::Status {
                node: facts.name.clone(),
                source,
            })?;
    }
    let heartbeat = tokio::spawn(heartbeat_loop(
        config.clone(),
        facts.clone(),
        shutdown.clone(),
    ));

    let ctx = Arc::new(Ctx {
        prober: crate::probes::Prober::new(),
        recorder: crate::events::Recorder::new(config.client.clone(), &config.node_name),
        pulls: pod_sync::PullBackoff::default(),
        client: config.client.clone(),
        runtime: config.runtime.clone(),
        node: NodeContext {
            node_name: config.node_name.clone(),
            node_ip: config.node_ip.clone(),
            log_root: config.log_root.clone(),
            cluster_dns: config.cluster_dns.clone(),
            cluster_domain: config.cluster_domain.clone(),
            root_dir: config.root_dir.clone(),
            allocatable: Some(facts.capacity.clone()),
        },
        resync: config.resync,
    });
    let pods: Api<Pod> = Api::all(config.client.clone());
    let selector = format!("spec.nodeName={}", config.node_name);
    let controller = Controller::new(pods.clone(), watcher::Config::default().fields(&selector));
    let housekeeping = tokio::spawn(housekeeping_loop(
        pods,
        selector,
        config.runtime.clone(),
        config.resync,
        shutdown.clone(),
    ));
    let stop = shutdown.clone();
    controller
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "pod reconcile did not complete");
            }
        })
        .await;
    shutdown.cancel();
    let _ = heartbeat.await;
    let _ = housekeeping.await;
    tracing::info!(node = %config.node_name, "kubelet stopped");
    Ok(())
}

/// The node's resource pressure now (MemoryPressure, DiskPressure, PIDPressure).
fn measure_pressure(config: &Config) -> crate::pressure::Pressure {
    let image_fs = config.image_fs.as_ref().unwrap_or(&config.root_dir);
    let signals = crate::pressure::measure(&config.root_dir, image_fs);
    let p = crate::pressure::pressure(&signals, &crate::pressure::Thresholds::default());
    if p != crate::pressure::Pressure::default() {
        tracing::warn!(?p, ?signals, "node is under resource pressure");
    }
    p
}

async fn heartbeat_loop(config: Config, mut facts: NodeFacts, shutdown: CancellationToken) {
    let mut since_status = 0u32;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.heartbeat) => {}
        }
        since_status += 1;
        if let Err(e) =
            node::renew_lease(&config.client, &facts.name, config.lease_duration_seconds).await
        {
            tracing::warn!(error = %e, "lease renewal failed; retrying next heartbeat");
        }
        if since_status == 6 {
            since_status = 0;
            node::set_pressure(&mut facts, measure_pressure(&config), Timestamp::now());
            if let Err(e) = node::update_status(&config.client, &facts).await {
                tracing::warn!(error = %e, "node status update failed; retrying later");
            }
        }
    }
}

/// Removes sandboxes whose pod this kubelet no longer knows (deleted while it was
/// down, or force-deleted). The pods come from a fresh list of this node's pods, not
/// from the controller's cache: a cache not yet filled must not look like "no pods"
/// (and kube's store readiness signal wakes only one waiter).
async fn housekeeping_loop(
    pods: Api<Pod>,
    selector: String,
    runtime: Arc<dyn Runtime>,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match pods.list(&ListParams::default().fields(&selector)).await {
            Ok(list) => {
                let known: HashSet<String> = list
                    .items
                    .iter()
                    .filter_map(|p| p.metadata.uid.clone())
                    .collect();
                if let Err(e) = remove_orphans(runtime.as_ref(), &known).await {
                    tracing::warn!(error = %e, "removing orphaned sandboxes failed; retrying later");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "listing this node's pods for housekeeping failed; retrying later")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Stops and removes every sandbox labelled with a pod UID not in `known`.
pub async fn remove_orphans(
    runtime: &dyn Runtime,
    known: &HashSet<String>,
) -> Result<usize, CriError> {
    let mut removed = 0;
    for sb in runtime.list_pod_sandboxes(None).await? {
        let Some(uid) = sb.labels.get(LABEL_POD_UID) else {
            continue;
        };
        if known.contains(uid) {
            continue;
        }
        tracing::info!(sandbox = %sb.id, pod_uid = %uid, "removing sandbox of an unknown pod");
        if sb.state == api::PodSandboxState::SandboxReady as i32 {
            runtime.stop_pod_sandbox(&sb.id).await?;
        }
        runtime.remove_pod_sandbox(&sb.id).await?;
        removed += 1;
    }
    Ok(removed)
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action, KubeletError> {
    let key = pod_key(&pod);
    let span = tracing::info_span!("sync pod", pod = %key);
    sync(pod, ctx, key).instrument(span).await
}

async fn sync(pod: Arc<Pod>, ctx: Arc<Ctx>, key: String) -> Result<Action, KubeletError> {
    let sync_err = |source: SyncError| KubeletError::Sync {
        pod: key.clone(),
        source,
    };
    let Some(uid) = pod.metadata.uid.clone() else {
        return Ok(Action::await_change());
    };
    let runtime = ctx.runtime.as_ref();
    let observed = pod_sync::observe(runtime, &uid)
        .await
        .map_err(|e| sync_err(e.into()))?;

    if pod.metadata.deletion_timestamp.is_some() {
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or(pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30)
            .max(0);
        let mut events = Vec::new();
        let killed = pod_sync::kill_pod(
            runtime,
            &pod,
            &observed,
            Duration::from_secs(grace as u64),
            &mut events,
        )
        .await;
        ctx.recorder.post(&pod, &events);
        killed.map_err(|e| sync_err(e.into()))?;
        let observed = pod_sync::observe(runtime, &uid)
            .await
            .map_err(|e| sync_err(e.into()))?;
        pod_sync::remove_pod(runtime, &observed)
            .await
            .map_err(|e| sync_err(e.into()))?;
        ctx.prober.forget_pod(&uid);
        ctx.pulls.forget_pod(&uid);
        if let Err(e) = crate::volumes::cleanup(&ctx.node.root_dir, &uid) {
            tracing::warn!(error = %e, "removing the pod's volumes failed; they stay on disk");
        }
        // Everything is stopped: finish the graceful deletion (grace 0, this UID only).
        let pods: Api<Pod> = Api::namespaced(
            ctx.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match pods
            .delete(pod.metadata.name.as_deref().unwrap_or_default(), &params)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(source) => return Err(KubeletError::PodDelete { pod: key, source }),
        }
        tracing::info!("pod stopped and deleted");
        return Ok(Action::await_change());
    }

    let now = Timestamp::now().as_nanosecond() as i64;
    let probed = ctx.prober.probe_pod(runtime, &pod, &observed, now).await;
    ctx.recorder.post(&pod, &probed.events);
    let observed = if probed.kill.is_empty() {
        observed
    } else {
        let grace = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0) as u64;
        let mut events = Vec::new();
        for k in &probed.kill {
            // App containers and sidecars (init containers that keep running).
            let spec = pod.spec.as_ref().and_then(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .find(|c| c.name == k.container)
            });
            // The prober already recorded why (Killing); the preStop hook still runs.
            let stopped = crate::lifecycle::stop_container(
                runtime,
                spec,
                &k.container,
                &k.container_id,
                &observed.pod_ip,
                Duration::from_secs(grace),
                None,
                &mut events,
            )
            .await;
            ctx.recorder.post(&pod, &events);
            events.clear();
            stopped.map_err(|e| sync_err(e.into()))?;
        }
        pod_sync::observe(runtime, &uid)
            .await
            .map_err(|e| sync_err(e.into()))?
    };
    let objects = crate::volumes::fetch(&ctx.client, &pod)
        .await
        .map_err(|e| sync_err(e.into()))?;
    let plan = pod_sync::plan_with(&pod, &observed, now, &probed.health);
    let steps = plan.steps;
    if !steps.is_empty() {
        tracing::debug!(?steps, "syncing");
    }
    let mut events = Vec::new();
    let executed = pod_sync::execute_with(
        runtime,
        &pod,
        &ctx.node,
        &observed,
        &steps,
        &objects,
        &ctx.pulls,
        &mut events,
    )
    .await;
    for name in plan.backoff.keys() {
        // One message per container, so repeats aggregate into one Event's count.
        events.push(crate::events::PodEvent::warning(
            name,
            "BackOff",
            format!("Back-off restarting failed container {name} in pod {key}"),
        ));
    }
    ctx.recorder.post(&pod, &events);
    let mut waiting = executed.map_err(sync_err)?;
    for (name, left) in &plan.backoff {
        let message = format!(
            "back-off: restarting failed container {name} of pod {key} in {}s",
            left.as_secs().max(1)
        );
        waiting.insert(name.clone(), ("CrashLoopBackOff".into(), message));
    }
    if steps.iter().any(|s| matches!(s, pod_sync::Step::KillPod)) && pod_sync::is_terminal(&pod) {
        // A finished pod keeps its last status; only the runtime side was cleaned up.
        return Ok(Action::await_change());
    }
    let observed = pod_sync::observe(runtime, &uid)
        .await
        .map_err(|e| sync_err(e.into()))?;
    let status = pod_sync::pod_status(
        &pod,
        &observed,
        &waiting,
        &ctx.node,
        Timestamp::now(),
        &probed.health,
    );
    let old = serde_json::to_value(&pod.status).unwrap_or_default();
    let new = serde_json::to_value(&status).unwrap_or_default();
    if old != new {
        let pods: Api<Pod> = Api::namespaced(
            ctx.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let patch = serde_json::json!({ "status": new });
        pods.patch_status(
            pod.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|source| KubeletError::PodStatus {
            pod: key.clone(),
            source,
        })?;
        tracing::debug!(phase = ?status.phase, pod_ip = ?status.pod_ip, "pod status written");
    }
    // Come back when the shortest back-off ends, or at the next resync.
    let mut next = plan
        .backoff
        .values()
        .copied()
        .min()
        .map_or(ctx.resync, |b| b.min(ctx.resync));
    if let Some(probe) = probed.next {
        next = next.min(probe);
    }
    if plan.poll {
        next = next.min(Duration::from_secs(1));
    }
    Ok(Action::requeue(next.max(Duration::from_millis(100))))
}

fn error_policy(pod: Arc<Pod>, error: &KubeletError, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(pod = %pod_key(&pod), error = %error, "pod sync failed; retrying in 5s");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::FakeRuntime;

    #[tokio::test]
    async fn orphans_are_removed_and_known_pods_kept() {
        let rt = FakeRuntime::new();
        let config = |uid: &str| api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: uid.into(),
                uid: uid.into(),
                namespace: "d".into(),
                attempt: 0,
            }),
            labels: std::collections::HashMap::from([(LABEL_POD_UID.to_string(), uid.to_string())]),
            ..Default::default()
        };
        rt.run_pod_sandbox(config("keep")).await.unwrap();
        rt.run_pod_sandbox(config("gone")).await.unwrap();
        let known = HashSet::from(["keep".to_string()]);
        assert_eq!(remove_orphans(&rt, &known).await.unwrap(), 1);
        let left = rt.list_pod_sandboxes(None).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].labels[LABEL_POD_UID], "keep");
    }
}
