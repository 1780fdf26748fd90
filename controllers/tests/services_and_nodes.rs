//! In-process tests of the Endpoints / EndpointSlice controllers and of node lifecycle
//! (silent node -> Ready=Unknown -> unreachable taint -> eviction -> replacement),
//! against a real skiff API server.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_endpoints_and_slices_that_follow_pods() {
    let c = Cluster::start(fast_config(), true).await;
    let rs_api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"name": "http", "containerPort": 8080}]}]}}}
    }))
    .unwrap();
    rs_api.create(&PostParams::default(), &rs).await.unwrap();
    let svc_api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "labels": {"team": "a"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap();
    let svc = svc_api.create(&PostParams::default(), &svc).await.unwrap();

    let ep_api: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    let ep = wait_for("3 ready addresses", Duration::from_secs(20), || async {
        let ep = ep_api.get_opt("web").await.ok()??;
        let n = ep
            .subsets
            .iter()
            .flatten()
            .flat_map(|s| s.addresses.iter().flatten())
            .count();
        (n == 3).then_some(ep)
    })
    .await;
    let subset = &ep.subsets.as_ref().unwrap()[0];
    assert_eq!(
        subset.ports.as_ref().unwrap()[0].port,
        8080,
        "named targetPort resolved"
    );
    assert_eq!(ep.labels()["team"], "a");

    let slice_api: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    let slices = wait_for(
        "slice with 3 ready endpoints",
        Duration::from_secs(20),
        || async {
            let l = slice_api
                .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                .await
                .ok()?;
            let ready = l
                .items
                .iter()
                .flat_map(|s| s.endpoints.iter())
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                .count();
            (ready == 3).then_some(l.items)
        },
    )
    .await;
    assert_eq!(slices.len(), 1);
    assert_eq!(slices[0].ports.as_ref().unwrap()[0].port, Some(8080));
    assert_eq!(
        skiff_controllers::util::controller_ref(&slices[0].metadata)
            .unwrap()
            .uid,
        svc.uid().unwrap()
    );

    // Scale down: addresses follow.
    rs_api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    wait_for("1 address", Duration::from_secs(20), || async {
        let ep = ep_api.get_opt("web").await.ok()??;
        let n = ep
            .subsets
            .iter()
            .flatten()
            .flat_map(|s| s.addresses.iter().flatten())
            .count();
        (n == 1).then_some(())
    })
    .await;

    // Deleting the Service takes its Endpoints and slices along (garbage collector).
    svc_api
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        "endpoints and slices gone",
        Duration::from_secs(20),
        || async {
            let ep = ep_api.get_opt("web").await.ok()?;
            let l = slice_api
                .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                .await
                .ok()?;
            (ep.is_none() && l.items.is_empty()).then_some(())
        },
    )
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_node_is_tainted_and_its_pods_are_evicted_and_replaced() {
    let c = Cluster::start(fast_config(), true).await;
    c.dead_nodes.lock().unwrap().insert("n1".into());
    let node_api: Api<Node> = Api::all(c.client.clone());
    let node: Node = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
    )
    .unwrap();
    node_api
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    node_api
        .patch_status("n1", &PatchParams::default(), &Patch::Merge(json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": now, "lastTransitionTime": now}
        ]}})))
        .await
        .unwrap();
    let lease_api: Api<Lease> = Api::namespaced(c.client.clone(), "kube-node-lease");
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": "2026-01-01T00:00:00.000000Z"}
    }))
    .unwrap();
    // The lease namespace may not exist on a fresh server; the node status heartbeat
    // alone is enough for this test.
    let _ = lease_api.create(&PostParams::default(), &lease).await;

    let rs_api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "evict"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "evict"}},
                 "template": {"metadata": {"labels": {"app": "evict"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                       "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}]}}}
    }))
    .unwrap();
    rs_api.create(&PostParams::default(), &rs).await.unwrap();
    let created = wait_for("2 pods", Duration::from_secs(20), || async {
        let p = active_pods(&c.client, "default", "evict").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    // Bind them to n1 as a scheduler would.
    let pod_api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    for p in &created {
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": p.name_any()}, "target": {"kind": "Node", "name": "n1"}});
        let _: serde_json::Value = pod_api
            .create_subresource("binding", &p.name_any(), &PostParams::default(), &binding)
            .await
            .unwrap();
    }
    let originals = wait_for("2 pods on n1", Duration::from_secs(20), || async {
        let p = active_pods(&c.client, "default", "evict").await;
        (p.iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("n1"))
            .count()
            == 2)
            .then_some(p)
    })
    .await;

    // While it is fresh and Ready, n1 carries no taint.
    let n = node_api.get("n1").await.unwrap();
    assert!(
        n.spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_none_or(|t| t.is_empty()),
        "healthy node tainted: {:?}",
        n.spec
    );

    // n1 never heartbeats again: grace 2 s, then taint, then 1 s toleration.
    let n = wait_for("unreachable taint", Duration::from_secs(20), || async {
        let n = node_api.get("n1").await.ok()?;
        let tainted = n
            .spec
            .as_ref()?
            .taints
            .iter()
            .flatten()
            .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute");
        let unknown = n
            .status
            .as_ref()?
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "Unknown");
        (tainted && unknown).then_some(n)
    })
    .await;
    let ready = n
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));

    wait_for("originals evicted", Duration::from_secs(20), || async {
        for p in &originals {
            if let Some(p) = pod_api.get_opt(&p.name_any()).await.ok()? {
                p.metadata.deletion_timestamp.as_ref()?;
            }
        }
        Some(())
    })
    .await;
    let replacements = wait_for("2 replacements", Duration::from_secs(20), || async {
        let p = active_pods(&c.client, "default", "evict").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(c.client.clone(), "default");
    let evictions = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("TaintManagerEviction"))
        .count();
    assert_eq!(evictions, 2, "one eviction event per pod");
    for p in &replacements {
        assert!(originals.iter().all(|o| o.name_any() != p.name_any()));
        assert_eq!(
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            None,
            "replacements wait for the scheduler"
        );
    }
    c.stop().await;
}
