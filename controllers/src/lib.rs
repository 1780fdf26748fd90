//! skiff's controller-manager: the control loops that turn what users asked for
//! (Deployments, Services, deletes) into what the cluster runs (ReplicaSets, Pods,
//! Endpoints), running inside `skiff server` as ordinary API clients.
//!
//! Every controller talks to the API server through the `kube` crate exactly as an
//! out-of-tree controller would: informer caches (watcher + reflector), a
//! `kube::runtime::Controller` that never reconciles one key twice at once, and failures
//! requeued with per-key exponential backoff. Each reconciler is a pure `plan(...)` over
//! cached objects (unit-tested on fixtures) and a thin shell that applies it.
//!
//! # Layout
//! - [`replicaset`]: keeps `replicas` pods per ReplicaSet; adoption, release, scale-down
//!   order, status. Reads ReplicaSets, Pods; writes Pods, ReplicaSet status.
//! - [`deployment`]: ReplicaSets per template (`<name>-<pod-template-hash>`), rolling
//!   update and recreate, revisions and history limit, pause, progress deadline, status
//!   conditions. Reads Deployments, ReplicaSets; writes ReplicaSets, Deployment status.
//! - [`endpoints`] and [`endpointslices`]: the addresses behind every Service with a
//!   selector. Reads Services, Pods; writes Endpoints, EndpointSlices.
//! - [`namespace`]: empties a deleting namespace, then finalizes it.
//! - [`gc`]: the garbage collector: Background, Foreground and Orphan propagation over
//!   ownerReferences, owners matched by UID.
//! - [`nodelifecycle`]: marks silent nodes `Ready=Unknown`, taints them
//!   `node.kubernetes.io/unreachable:NoExecute`, evicts their pods after the toleration.
//! - [`events`]: the core/v1 Event recorder with count aggregation.
//! - [`util`]: selectors, controller references, adoption, readiness, backoff,
//!   expectations.
//!
//! # Tests
//! Unit tests sit next to each `plan`. `tests/` runs the controllers in-process against
//! a real skiff API server on port 0 (`skiff_apiserver::testing::TestServer`) with a
//! fake kubelet that marks pods Running/Ready: ReplicaSet scaling and adoption, rolling
//! updates watched for surge/unavailable bounds, recreate, undo, pause, progress
//! deadline, proportional resize, the three propagation policies, namespace deletion,
//! Services to Endpoints/EndpointSlices, a silent node being tainted and its pods
//! evicted and replaced, and the real kubectl (`rollout status/history/undo/restart`,
//! `wait --for=condition=Available`, `describe`, `delete`). `tests/bench.rs` (ignored by
//! default) times a 1,000-replica Deployment and its rolling update.

pub mod deployment;
pub mod endpoints;
pub mod endpointslices;
pub mod events;
pub mod gc;
pub mod namespace;
pub mod nodelifecycle;
pub mod replicaset;
pub mod util;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Which controllers to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enabled {
    pub replicaset: bool,
    pub deployment: bool,
    pub endpoints: bool,
    pub endpointslices: bool,
    pub namespace: bool,
    pub gc: bool,
    pub nodelifecycle: bool,
}

impl Default for Enabled {
    fn default() -> Self {
        Enabled {
            replicaset: true,
            deployment: true,
            endpoints: true,
            endpointslices: true,
            namespace: true,
            gc: true,
            nodelifecycle: true,
        }
    }
}

/// Settings of the controller-manager. The defaults are Kubernetes' own; labs shorten
/// the node timings to watch a failover in seconds rather than minutes.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllersConfig {
    /// How long a node may be silent (no Lease renewal, no status heartbeat) before it
    /// is marked `Ready=Unknown` and tainted unreachable (upstream
    /// `--node-monitor-grace-period`, 40 s).
    pub node_grace_period: Duration,
    /// How often node health is checked (upstream `--node-monitor-period`, 5 s).
    pub node_monitor_period: Duration,
    /// How long a pod stays on an unreachable or not-ready node when it carries no
    /// toleration for that taint at all. The API server normally adds tolerations of
    /// 300 s to every pod; this covers pods created without them, so that they get the
    /// same grace instead of upstream's immediate eviction.
    pub default_eviction_timeout: Duration,
    /// Which controllers run.
    pub enabled: Enabled,
}

impl Default for ControllersConfig {
    fn default() -> Self {
        ControllersConfig {
            node_grace_period: Duration::from_secs(40),
            node_monitor_period: Duration::from_secs(5),
            default_eviction_timeout: Duration::from_secs(300),
            enabled: Enabled::default(),
        }
    }
}

/// Why a reconcile or a controller failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("api request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("could not encode or decode an object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("controller task failed: {0}")]
    Task(String),
}

/// Starts every enabled controller and runs them until `shutdown` fires. Returns the
/// first controller failure, after stopping the others.
pub async fn run(
    config: ControllersConfig,
    client: kube::Client,
    shutdown: CancellationToken,
) -> Result<(), ControllerError> {
    // A child token lets one failing controller stop the others without cancelling the
    // caller's token.
    let stop = shutdown.child_token();
    let mut tasks = tokio::task::JoinSet::new();
    let e = &config.enabled;
    if e.replicaset {
        tasks.spawn(replicaset::run(client.clone(), stop.clone()));
    }
    if e.deployment {
        tasks.spawn(deployment::run(client.clone(), stop.clone()));
    }
    if e.endpoints {
        tasks.spawn(endpoints::run(client.clone(), stop.clone()));
    }
    if e.endpointslices {
        tasks.spawn(endpointslices::run(client.clone(), stop.clone()));
    }
    if e.namespace {
        tasks.spawn(namespace::run(client.clone(), stop.clone()));
    }
    if e.gc {
        tasks.spawn(gc::run(client.clone(), stop.clone()));
    }
    if e.nodelifecycle {
        tasks.spawn(nodelifecycle::run(
            config.clone(),
            client.clone(),
            stop.clone(),
        ));
    }
    tracing::info!(?config.enabled, "controllers started");
    let mut result = Ok(());
    while let Some(done) = tasks.join_next().await {
        let r = match done {
            Ok(r) => r,
            Err(e) => Err(ControllerError::Task(e.to_string())),
        };
        if let Err(e) = r {
            tracing::error!(error = %e, "controller stopped; stopping the others");
            if result.is_ok() {
                result = Err(e);
            }
            stop.cancel();
        }
    }
    result
}
