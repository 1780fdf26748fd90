//! Shared pieces of the in-process tests: a real API server on port 0 with the
//! controllers running against it, a fake kubelet that makes pods Running and Ready,
//! and a bounded wait helper.

#![allow(dead_code)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use skiff_apiserver::testing::TestServer;
use skiff_controllers::ControllersConfig;
use tokio_util::sync::CancellationToken;

pub struct Cluster {
    pub server: TestServer,
    pub client: Client,
    pub stop: CancellationToken,
    pub controllers: tokio::task::JoinHandle<Result<(), skiff_controllers::ControllerError>>,
    /// Nodes whose pods the fake kubelet ignores (a "dead" node).
    pub dead_nodes: Arc<Mutex<HashSet<String>>>,
}

impl Cluster {
    /// A server plus controllers (with `config`), optionally with the fake kubelet.
    pub async fn start(config: ControllersConfig, kubelet: bool) -> Cluster {
        let server = TestServer::start().await;
        let client = server.client().await;
        let stop = CancellationToken::new();
        let controllers =
            tokio::spawn(skiff_controllers::run(config, client.clone(), stop.clone()));
        let dead_nodes = Arc::new(Mutex::new(HashSet::new()));
        if kubelet {
            tokio::spawn(fake_kubelet(
                client.clone(),
                stop.clone(),
                dead_nodes.clone(),
            ));
        }
        Cluster {
            server,
            client,
            stop,
            controllers,
            dead_nodes,
        }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.controllers).await;
        self.server.shutdown().await;
    }
}

/// Marks every pod Running and Ready (with a made-up IP) and finishes graceful deletions
/// at once, like a kubelet whose containers start and stop instantly.
pub async fn fake_kubelet(
    client: Client,
    stop: CancellationToken,
    dead: Arc<Mutex<HashSet<String>>>,
) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut stream = watcher(pods, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    let mut n: u32 = 0;
    loop {
        let pod = tokio::select! {
            _ = stop.cancelled() => return,
            p = stream.next() => match p { Some(Ok(p)) => p, Some(Err(_)) => continue, None => return },
        };
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        if dead.lock().unwrap().contains(&node) {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        if pod.metadata.deletion_timestamp.is_some() {
            let _ = api
                .delete(&pod.name_any(), &DeleteParams::default().grace_period(0))
                .await;
            continue;
        }
        if skiff_controllers::util::pod_is_ready(&pod) {
            continue;
        }
        n += 1;
        let ip = format!("10.244.{}.{}", n / 250, n % 250 + 1);
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let patch = serde_json::json!({"status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            ],
        }});
        let _ = api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await;
    }
}

/// Polls `check` every 50 ms until it returns `Some`, failing the test with `what` after
/// `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Active (not terminating) pods in `ns` with label `app=<app>`.
pub async fn active_pods(client: &Client, ns: &str, app: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.list(&kube::api::ListParams::default().labels(&format!("app={app}")))
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect()
        })
        .unwrap_or_default()
}

pub fn fast_config() -> ControllersConfig {
    ControllersConfig {
        node_grace_period: Duration::from_secs(2),
        node_monitor_period: Duration::from_millis(200),
        default_eviction_timeout: Duration::from_secs(1),
        ..Default::default()
    }
}
