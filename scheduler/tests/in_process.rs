//! The scheduler against a real, in-process skiff API server: nodes are API objects (no
//! kubelet), pods are created through the API, and the test watches what the scheduler
//! writes back — bindings, the Unschedulable condition, FailedScheduling events, and the
//! leader Lease.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;
use skiff_apiserver::testing::TestServer;
use skiff_scheduler::{LeaderElectionConfig, SchedulerConfig};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

async fn create_node(client: &kube::Client, name: &str, cpu: &str, taint: Option<(&str, &str)>) {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut spec = json!({});
    if let Some((k, v)) = taint {
        spec = json!({"taints": [{"key": k, "value": v, "effect": "NoSchedule"}]});
    }
    let status = json!({
        "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
        "capacity": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]
    });
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": spec, "status": status
    }))
    .unwrap();
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    // Status may be dropped on create (it is a subresource); set it explicitly.
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .expect("set node status");
}

async fn create_pod(client: &kube::Client, name: &str, cpu: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
}

fn node_of(p: &Pod) -> Option<String> {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}

async fn wait_bound(client: &kube::Client, name: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let cond = |p: Option<&Pod>| p.and_then(node_of).is_some();
    let p = tokio::time::timeout(WAIT, await_condition(pods, name, cond))
        .await
        .unwrap_or_else(|_| panic!("pod {name} was not bound within {WAIT:?}"))
        .expect("watch pod");
    node_of(p.as_ref().unwrap()).unwrap()
}

fn scheduled_condition(p: &Pod) -> Option<(String, String, String)> {
    let c = p
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")?;
    Some((
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}

fn config(identity: &str) -> SchedulerConfig {
    SchedulerConfig {
        identity: identity.into(),
        leader_election: Some(LeaderElectionConfig {
            lease_duration: Duration::from_secs(3),
            renew_deadline: Duration::from_secs(2),
            retry_period: Duration::from_millis(300),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_explains_and_retries_on_cluster_change() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_node(&client, "n1", "1", None).await;
    create_node(&client, "n2", "1", None).await;
    create_node(&client, "gpu", "8", Some(("dedicated", "gpu"))).await;

    let shutdown = CancellationToken::new();
    let sched = tokio::spawn(skiff_scheduler::run(
        config("sched-a"),
        client.clone(),
        shutdown.clone(),
    ));

    // Two pods that fit one per small node: they must land on different nodes, since
    // the first is counted (assumed) before its binding is seen.
    create_pod(&client, "web-1", "700m").await;
    create_pod(&client, "web-2", "700m").await;
    let a = wait_bound(&client, "web-1").await;
    let b = wait_bound(&client, "web-2").await;
    assert_ne!(a, b, "two 700m pods on one 1-cpu node");
    assert!(
        a.starts_with('n') && b.starts_with('n'),
        "the tainted node is not used: {a} {b}"
    );

    // Nothing fits: the condition and event say why, like upstream.
    create_pod(&client, "big", "2").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let want = "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu.";
    let p = tokio::time::timeout(
        WAIT,
        await_condition(pods.clone(), "big", |p: Option<&Pod>| {
            p.and_then(scheduled_condition).is_some()
        }),
    )
    .await
    .expect("PodScheduled condition written in time")
    .expect("watch pod");
    let (status, reason, message) = scheduled_condition(p.as_ref().unwrap()).unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str(), message.as_str()),
        ("False", "Unschedulable", want)
    );
    assert!(node_of(p.as_ref().unwrap()).is_none());
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    // The event is written right after the condition; give it a bounded moment.
    let deadline = tokio::time::Instant::now() + WAIT;
    let ev = loop {
        let list = events
            .list(&ListParams::default())
            .await
            .expect("list events");
        if let Some(ev) = list
            .items
            .into_iter()
            .find(|e| e.involved_object.name.as_deref() == Some("big"))
        {
            break ev;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no FailedScheduling event for pod big within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ev.reason.as_deref(), Some("FailedScheduling"));
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(ev.message.as_deref(), Some(want));

    // A node that fits joins: the parked pod is retried because of that event.
    create_node(&client, "n3", "4", None).await;
    assert_eq!(wait_bound(&client, "big").await, "n3");
    // Binding records the Normal Scheduled event, as upstream's scheduler does.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = events
            .list(&ListParams::default())
            .await
            .expect("list events");
        if let Some(ev) = list.items.into_iter().find(|e| {
            e.involved_object.name.as_deref() == Some("big")
                && e.reason.as_deref() == Some("Scheduled")
        }) {
            assert_eq!(
                (ev.type_.as_deref(), ev.message.as_deref()),
                (
                    Some("Normal"),
                    Some("Successfully assigned default/big to n3")
                )
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Scheduled event for pod big within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The leader holds the Lease; on shutdown it releases it.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let lease = leases.get("kube-scheduler").await.expect("lease exists");
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("sched-a")
    );
    shutdown.cancel();
    tokio::time::timeout(WAIT, sched)
        .await
        .expect("scheduler stops")
        .unwrap()
        .unwrap();
    let lease = leases.get("kube-scheduler").await.expect("lease exists");
    assert_eq!(
        lease.spec.unwrap().holder_identity,
        None,
        "released on shutdown"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_one_leader_no_double_binding() {
    let server = TestServer::start().await;
    let client = server.client().await;
    for i in 0..3 {
        create_node(&client, &format!("n{i}"), "2", None).await;
    }
    let stop_a = CancellationToken::new();
    let stop_b = CancellationToken::new();
    let a = tokio::spawn(skiff_scheduler::run(
        config("sched-a"),
        client.clone(),
        stop_a.clone(),
    ));
    let b = tokio::spawn(skiff_scheduler::run(
        config("sched-b"),
        client.clone(),
        stop_b.clone(),
    ));

    for i in 0..6 {
        create_pod(&client, &format!("p{i}"), "500m").await;
    }
    for i in 0..6 {
        wait_bound(&client, &format!("p{i}")).await;
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let holder = leases
        .get("kube-scheduler")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    assert!(
        holder == "sched-a" || holder == "sched-b",
        "holder {holder}"
    );

    // The leader goes away: the other takes over (fast, as the lease is released) and
    // schedules new pods.
    let (stop_leader, leader, stop_other, other, other_id) = if holder == "sched-a" {
        (stop_a, a, stop_b, b, "sched-b")
    } else {
        (stop_b, b, stop_a, a, "sched-a")
    };
    stop_leader.cancel();
    tokio::time::timeout(WAIT, leader)
        .await
        .expect("leader stops")
        .unwrap()
        .unwrap();
    create_pod(&client, "after-failover", "500m").await;
    wait_bound(&client, "after-failover").await;
    let holder = leases
        .get("kube-scheduler")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    assert_eq!(holder, other_id);

    // Every node holds at most its 2 cpu: nothing was bound twice or overcommitted.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut per_node = std::collections::BTreeMap::new();
    for p in pods.list(&ListParams::default()).await.unwrap().items {
        *per_node
            .entry(node_of(&p).expect("all pods bound"))
            .or_insert(0) += 1;
    }
    assert_eq!(per_node.values().sum::<i32>(), 7);
    assert!(per_node.values().all(|&n| n <= 4), "{per_node:?}");
    stop_other.cancel();
    tokio::time::timeout(WAIT, other)
        .await
        .expect("scheduler stops")
        .unwrap()
        .unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_conflicts_are_classified_against_the_real_server() {
    use skiff_scheduler::binder::{ApiWriter, BindOutcome, KubeWriter};
    let server = TestServer::start().await;
    let client = server.client().await;
    create_node(&client, "n1", "2", None).await;
    create_node(&client, "n2", "2", None).await;
    create_pod(&client, "p", "100m").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let uid = pods.get("p").await.unwrap().metadata.uid.unwrap();
    let writer = KubeWriter::new(client.clone(), "default-scheduler".into(), "test".into());

    assert_eq!(
        writer.bind("default", "p", &uid, "n1").await,
        BindOutcome::Bound
    );
    assert_eq!(
        node_of(&pods.get("p").await.unwrap()).as_deref(),
        Some("n1")
    );
    // A second decision for the same pod must not move it.
    assert_eq!(
        writer.bind("default", "p", &uid, "n2").await,
        BindOutcome::AlreadyBound { node: "n1".into() }
    );
    assert_eq!(
        node_of(&pods.get("p").await.unwrap()).as_deref(),
        Some("n1")
    );
    assert_eq!(
        writer.bind("default", "missing", "nope", "n1").await,
        BindOutcome::PodGone
    );
    // A pod re-created under the same name is not bound by a decision for the old one.
    pods.delete("p", &kube::api::DeleteParams::default().grace_period(0))
        .await
        .expect("delete p");
    create_pod(&client, "p", "100m").await;
    assert_eq!(
        writer.bind("default", "p", &uid, "n2").await,
        BindOutcome::PodGone
    );
    assert_eq!(node_of(&pods.get("p").await.unwrap()), None);

    // Unschedulable report on the real server: condition and event.
    create_pod(&client, "q", "100m").await;
    let q = pods.get("q").await.unwrap();
    writer
        .report_unschedulable(&q, "0/2 nodes are available: 2 Insufficient cpu.")
        .await
        .expect("report");
    let (status, reason, message) =
        scheduled_condition(&pods.get("q").await.unwrap()).expect("condition written");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "Unschedulable")
    );
    assert_eq!(message, "0/2 nodes are available: 2 Insufficient cpu.");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_over_after_a_leader_crash() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create_node(&client, "n1", "4", None).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");

    let stop_a = CancellationToken::new();
    let a = tokio::spawn(skiff_scheduler::run(
        config("sched-a"),
        client.clone(),
        stop_a.clone(),
    ));
    create_pod(&client, "first", "100m").await;
    wait_bound(&client, "first").await;
    let holder = leases
        .get("kube-scheduler")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(holder.as_deref(), Some("sched-a"));

    let stop_b = CancellationToken::new();
    let b = tokio::spawn(skiff_scheduler::run(
        config("sched-b"),
        client.clone(),
        stop_b.clone(),
    ));
    // A "crashes": its task is dropped without releasing the lease.
    a.abort();
    let _ = a.await;
    let crashed_at = tokio::time::Instant::now();
    create_pod(&client, "second", "100m").await;
    wait_bound(&client, "second").await;
    // B waited out A's 3 s lease (it saw A's record unchanged for that long).
    assert!(
        crashed_at.elapsed() >= Duration::from_secs(2),
        "took over after {:?}",
        crashed_at.elapsed()
    );
    let spec = leases.get("kube-scheduler").await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("sched-b"));
    assert_eq!(spec.lease_transitions, Some(1));
    stop_b.cancel();
    tokio::time::timeout(WAIT, b)
        .await
        .expect("scheduler stops")
        .unwrap()
        .unwrap();
    drop(stop_a);
    server.shutdown().await;
}
