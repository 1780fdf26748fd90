//! The kubelet component against an in-process API server and the in-memory runtime:
//! node registration and lease, a pod bound to the node reaching Running with an IP,
//! image errors reported as waiting reasons, graceful deletion carried out (pod stopped
//! in the runtime, then removed from the API), orphan sandboxes collected, shutdown.

mod common;
use common::eventually;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use skiff_apiserver::testing::TestServer;
use skiff_kubelet::cri::{api, FakeRuntime, Runtime};
use skiff_kubelet::node::Capacity;
use tokio_util::sync::CancellationToken;

fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": "node-a",
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "app", "image": image, "command": ["sh", "-c", "sleep 3600"]}]
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_registers_runs_reports_and_deletes_pods() {
    // RUST_LOG=skiff_kubelet=debug shows the kubelet's own log lines.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let server = TestServer::start().await;
    let client = server.client().await;
    let fake = Arc::new(FakeRuntime::new().with_pullable(&["busybox:1.36"]));
    let logs = tempfile::tempdir().unwrap();

    let mut config = skiff_kubelet::Config::new("node-a", client.clone(), fake.clone());
    config.node_ip = "192.168.200.2".into();
    config.pod_cidr = Some("10.244.1.0/24".into());
    config.capacity = Some(Capacity {
        cpu_millis: 4000,
        memory_bytes: 8 << 30,
        pods: 110,
    });
    config.log_root = logs.path().to_path_buf();
    config.resync = Duration::from_millis(300);
    config.heartbeat = Duration::from_millis(200);
    config.cni = Some(skiff_kubelet::CniTarget {
        conf_dir: logs.path().join("net.d"),
        ipam_data_dir: logs.path().join("ipam"),
        bridge: "skiff0".into(),
    });
    let shutdown = CancellationToken::new();
    let kubelet = tokio::spawn(skiff_kubelet::run(config, shutdown.clone()));

    // The node registers Ready with its podCIDR and a lease.
    let nodes: Api<Node> = Api::all(client.clone());
    let node = eventually("node registration", Duration::from_secs(10), || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get_opt("node-a").await.unwrap()?;
            let ready = n
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(n)
        }
    })
    .await;
    assert_eq!(
        node.spec.unwrap().pod_cidr.as_deref(),
        Some("10.244.1.0/24")
    );
    let conflist_path = logs
        .path()
        .join("net.d")
        .join(skiff_kubelet::network::CONFLIST_FILE);
    let conflist = eventually("conflist", Duration::from_secs(5), || {
        let path = conflist_path.clone();
        async move { std::fs::read_to_string(path).ok() }
    })
    .await;
    assert!(conflist.contains("10.244.1.0/24"), "{conflist}");
    assert_eq!(node.status.unwrap().capacity.unwrap()["cpu"].0, "4");
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let first = eventually("lease", Duration::from_secs(5), || {
        let leases = leases.clone();
        async move { leases.get_opt("node-a").await.unwrap()?.spec?.renew_time }
    })
    .await;
    eventually("lease renewal", Duration::from_secs(5), || {
        let leases = leases.clone();
        let first = first.clone();
        async move { (leases.get("node-a").await.ok()?.spec?.renew_time? != first).then_some(()) }
    })
    .await;

    // A pod bound to the node runs and reports Running with an IP.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let created = pods
        .create(&PostParams::default(), &pod("web", "busybox:1.36"))
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    let running = eventually("pod Running", Duration::from_secs(10), || {
        let pods = pods.clone();
        async move {
            let p = pods.get("web").await.ok()?;
            (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(p)
        }
    })
    .await;
    let status = running.status.unwrap();
    assert!(
        status
            .pod_ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10.")),
        "{:?}",
        status.pod_ip
    );
    assert_eq!(status.host_ip.as_deref(), Some("192.168.200.2"));
    let cs = &status.container_statuses.unwrap()[0];
    assert!(cs.ready && cs.state.as_ref().unwrap().running.is_some());
    assert!(cs
        .container_id
        .as_deref()
        .unwrap()
        .starts_with("containerd://"));
    let sandboxes = fake.list_pod_sandboxes(None).await.unwrap();
    assert_eq!(sandboxes.len(), 1);
    assert_eq!(sandboxes[0].metadata.as_ref().unwrap().uid, uid);
    assert!(logs.path().join(format!("default_web_{uid}/app")).is_dir());

    // An image the registry does not have: Pending, waiting with ErrImagePull (then
    // ImagePullBackOff between pulls, which also names the pull error).
    pods.create(&PostParams::default(), &pod("broken", "nope:1"))
        .await
        .unwrap();
    let message = eventually("ErrImagePull", Duration::from_secs(10), || {
        let pods = pods.clone();
        async move {
            let p = pods.get("broken").await.ok()?;
            let st = p.status?;
            let w = st.container_statuses?.first()?.state.clone()?.waiting?;
            let pull_error = matches!(
                w.reason.as_deref(),
                Some("ErrImagePull" | "ImagePullBackOff")
            );
            (pull_error && st.phase.as_deref() == Some("Pending")).then_some(w.message)
        }
    })
    .await;
    assert!(message.unwrap_or_default().contains("not found"));

    // A sandbox nobody asked for is collected.
    let orphan = fake
        .run_pod_sandbox(api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: "ghost".into(),
                uid: "ghost-uid".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            labels: std::collections::HashMap::from([(
                skiff_kubelet::cri_config::LABEL_POD_UID.to_string(),
                "ghost-uid".to_string(),
            )]),
            ..Default::default()
        })
        .await
        .unwrap();
    eventually("orphan removal", Duration::from_secs(5), || {
        let fake = fake.clone();
        let orphan = orphan.clone();
        async move {
            fake.list_pod_sandboxes(None)
                .await
                .ok()?
                .iter()
                .all(|s| s.id != orphan)
                .then_some(())
        }
    })
    .await;

    // Graceful deletion: the API keeps the pod until the kubelet has stopped it.
    pods.delete("web", &DeleteParams::default()).await.unwrap();
    eventually("pod deleted", Duration::from_secs(10), || {
        let pods = pods.clone();
        async move { pods.get_opt("web").await.unwrap().is_none().then_some(()) }
    })
    .await;
    let left: Vec<_> = fake
        .list_pod_sandboxes(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.metadata.as_ref().unwrap().uid == uid)
        .collect();
    assert!(
        left.is_empty(),
        "the runtime still has the deleted pod: {left:?}"
    );
    assert!(fake.calls().iter().any(|c| c.starts_with("StopPodSandbox")));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), kubelet)
        .await
        .expect("kubelet stops on shutdown")
        .unwrap()
        .unwrap();
    server.shutdown().await;
}

/// A node whose podCIDR the cluster assigned (set on the Node before the kubelet
/// starts, as a node IPAM controller would) gets its CNI config from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_takes_the_pod_cidr_assigned_on_the_node() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-b"},
        "spec": {"podCIDR": "10.244.7.0/24", "podCIDRs": ["10.244.7.0/24"]},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut config =
        skiff_kubelet::Config::new("node-b", client.clone(), Arc::new(FakeRuntime::new()));
    config.capacity = Some(Capacity {
        cpu_millis: 1000,
        memory_bytes: 1 << 30,
        pods: 10,
    });
    config.log_root = dir.path().join("pods");
    config.cni = Some(skiff_kubelet::CniTarget {
        conf_dir: dir.path().join("net.d"),
        ipam_data_dir: dir.path().join("ipam"),
        bridge: "skiff0".into(),
    });
    let shutdown = CancellationToken::new();
    let kubelet = tokio::spawn(skiff_kubelet::run(config, shutdown.clone()));
    let path = dir
        .path()
        .join("net.d")
        .join(skiff_kubelet::network::CONFLIST_FILE);
    let conflist = eventually("conflist", Duration::from_secs(10), || {
        let path = path.clone();
        async move { std::fs::read_to_string(path).ok() }
    })
    .await;
    assert!(conflist.contains("10.244.7.0/24"), "{conflist}");
    // Registration took over the existing Node and made it Ready.
    let n = nodes.get("node-b").await.unwrap();
    assert!(n
        .status
        .unwrap()
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True"));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), kubelet)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    server.shutdown().await;
}

/// A container that keeps exiting is restarted at once the first time, then waits in
/// CrashLoopBackOff, as upstream does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_containers_restart_then_back_off() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let fake = Arc::new(FakeRuntime::new().with_pullable(&["busybox:1.36"]));
    let dir = tempfile::tempdir().unwrap();
    let mut config = skiff_kubelet::Config::new("node-a", client.clone(), fake.clone());
    config.capacity = Some(Capacity {
        cpu_millis: 1000,
        memory_bytes: 1 << 30,
        pods: 10,
    });
    config.log_root = dir.path().to_path_buf();
    config.resync = Duration::from_millis(200);
    let shutdown = CancellationToken::new();
    let kubelet = tokio::spawn(skiff_kubelet::run(config, shutdown.clone()));

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("crash", "busybox:1.36"))
        .await
        .unwrap();
    let running_attempt = |attempt: u32| {
        let fake = fake.clone();
        async move {
            let cs = fake.list_containers(None).await.ok()?;
            cs.into_iter()
                .find(|c| {
                    c.metadata.as_ref().unwrap().attempt == attempt
                        && c.state == api::ContainerState::ContainerRunning as i32
                })
                .map(|c| c.id)
        }
    };
    let first = eventually("first container", Duration::from_secs(10), || {
        running_attempt(0)
    })
    .await;
    assert!(fake.exit_container(&first, 1));
    let second = eventually("immediate restart", Duration::from_secs(5), || {
        running_attempt(1)
    })
    .await;
    assert!(fake.exit_container(&second, 1));
    let waiting = eventually("CrashLoopBackOff", Duration::from_secs(5), || {
        let pods = pods.clone();
        async move {
            let st = pods.get("crash").await.ok()?.status?;
            let cs = st.container_statuses?.into_iter().next()?;
            let w = cs.state?.waiting?;
            (w.reason.as_deref() == Some("CrashLoopBackOff"))
                .then_some((cs.restart_count, w.message.unwrap_or_default()))
        }
    })
    .await;
    assert_eq!(waiting.0, 1);
    assert!(waiting.1.contains("back-off"), "{}", waiting.1);
    // Within the 10 s back-off nothing is restarted.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(running_attempt(2).await.is_none());

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), kubelet)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    server.shutdown().await;
}

/// A kubelet started on a node whose runtime already runs its pods takes them over:
/// no second sandbox, no new container, the restart count unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_kubelet_adopts_its_running_pods() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let fake = Arc::new(FakeRuntime::new().with_pullable(&["busybox:1.36"]));
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut config = skiff_kubelet::Config::new("node-a", client.clone(), fake.clone());
        config.capacity = Some(Capacity {
            cpu_millis: 1000,
            memory_bytes: 1 << 30,
            pods: 10,
        });
        config.log_root = dir.path().to_path_buf();
        config.resync = Duration::from_millis(200);
        config.heartbeat = Duration::from_millis(200);
        let shutdown = CancellationToken::new();
        (
            tokio::spawn(skiff_kubelet::run(config, shutdown.clone())),
            shutdown,
        )
    };
    let stop = |(kubelet, shutdown): (
        tokio::task::JoinHandle<Result<(), skiff_kubelet::KubeletError>>,
        CancellationToken,
    )| async move {
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), kubelet)
            .await
            .expect("kubelet stops on shutdown")
            .unwrap()
            .unwrap();
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let first = start();
    pods.create(&PostParams::default(), &pod("keep", "busybox:1.36"))
        .await
        .unwrap();
    eventually("pod Running", Duration::from_secs(10), || {
        let pods = pods.clone();
        async move {
            let p = pods.get("keep").await.ok()?;
            (p.status?.phase.as_deref() == Some("Running")).then_some(())
        }
    })
    .await;
    stop(first).await;
    let sandboxes = fake.list_pod_sandboxes(None).await.unwrap();
    let containers = fake.list_containers(None).await.unwrap();
    assert_eq!((sandboxes.len(), containers.len()), (1, 1));

    let second = start();
    // The new kubelet syncs the pod (it rewrites the Ready condition's heartbeat on
    // the node; the pod is synced on its first pass) for several resync periods.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let before = leases.get("node-a").await.unwrap().spec.unwrap().renew_time;
    eventually("the new kubelet's lease renewal", Duration::from_secs(5), || {
        let leases = leases.clone();
        let before = before.clone();
        async move { (leases.get("node-a").await.ok()?.spec?.renew_time != before).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sandboxes_after = fake.list_pod_sandboxes(None).await.unwrap();
    let containers_after = fake.list_containers(None).await.unwrap();
    assert_eq!(
        (
            sandboxes_after.iter().map(|s| &s.id).collect::<Vec<_>>(),
            containers_after.iter().map(|c| &c.id).collect::<Vec<_>>()
        ),
        (
            sandboxes.iter().map(|s| &s.id).collect::<Vec<_>>(),
            containers.iter().map(|c| &c.id).collect::<Vec<_>>()
        ),
        "the restarted kubelet recreated the pod"
    );
    let runs = fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("RunPodSandbox"))
        .count();
    assert_eq!(runs, 1, "{:?}", fake.calls());
    let st = pods.get("keep").await.unwrap().status.unwrap();
    assert_eq!(st.phase.as_deref(), Some("Running"));
    assert_eq!(st.container_statuses.unwrap()[0].restart_count, 0);
    stop(second).await;
    server.shutdown().await;
}

/// A sidecar (init container with restartPolicy Always) starts first, keeps running
/// beside the app, and is restarted when it exits, even under restartPolicy Never;
/// the app is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_run_beside_the_app_and_are_restarted() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let fake = Arc::new(FakeRuntime::new().with_pullable(&["busybox:1.36"]));
    let dir = tempfile::tempdir().unwrap();
    let mut config = skiff_kubelet::Config::new("node-a", client.clone(), fake.clone());
    config.capacity = Some(Capacity {
        cpu_millis: 1000,
        memory_bytes: 1 << 30,
        pods: 10,
    });
    config.log_root = dir.path().to_path_buf();
    config.resync = Duration::from_millis(200);
    let shutdown = CancellationToken::new();
    let kubelet = tokio::spawn(skiff_kubelet::run(config, shutdown.clone()));

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "side", "namespace": "default"},
        "spec": {
            "nodeName": "node-a",
            "restartPolicy": "Never",
            "initContainers": [{"name": "proxy", "image": "busybox:1.36", "restartPolicy": "Always",
                                "command": ["sh", "-c", "sleep 3600"]}],
            "containers": [{"name": "app", "image": "busybox:1.36", "command": ["sh", "-c", "sleep 3600"]}]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let running = |name: &'static str, attempt: u32| {
        let fake = fake.clone();
        async move {
            let cs = fake.list_containers(None).await.ok()?;
            cs.into_iter()
                .find(|c| {
                    let m = c.metadata.as_ref().unwrap();
                    m.name == name
                        && m.attempt == attempt
                        && c.state == api::ContainerState::ContainerRunning as i32
                })
                .map(|c| c.id)
        }
    };
    let status = eventually(
        "pod Running with its sidecar",
        Duration::from_secs(10),
        || {
            let pods = pods.clone();
            async move {
                let st = pods.get("side").await.ok()?.status?;
                let side = st.init_container_statuses.clone()?.into_iter().next()?;
                (st.phase.as_deref() == Some("Running")
                    && side.state.as_ref()?.running.is_some()
                    && side.ready)
                    .then_some(st)
            }
        },
    )
    .await;
    assert!(status.container_statuses.unwrap().iter().all(|c| c
        .state
        .as_ref()
        .unwrap()
        .running
        .is_some()));
    let sidecar = running("proxy", 0).await.unwrap();
    let app = running("app", 0).await.unwrap();
    let creates = fake.calls();
    let order: Vec<_> = creates
        .iter()
        .filter(|c| c.starts_with("CreateContainer"))
        .collect();
    assert!(
        order.first().is_some_and(|c| c.contains("proxy")),
        "the sidecar is created first: {order:?}"
    );

    assert!(fake.exit_container(&sidecar, 1));
    eventually("sidecar restarted", Duration::from_secs(5), || {
        running("proxy", 1)
    })
    .await;
    assert_eq!(
        running("app", 0).await,
        Some(app),
        "the app was not touched"
    );
    let st = eventually("restart counted", Duration::from_secs(5), || {
        let pods = pods.clone();
        async move {
            let st = pods.get("side").await.ok()?.status?;
            let side = st.init_container_statuses.clone()?.into_iter().next()?;
            (side.restart_count == 1 && side.state.as_ref()?.running.is_some()).then_some(st)
        }
    })
    .await;
    assert_eq!(st.phase.as_deref(), Some("Running"));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), kubelet)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    server.shutdown().await;
}
