//! In-process tests of deletion: the garbage collector's three propagation policies and
//! the namespace controller, against a real skiff API server.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use support::*;

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    }))
    .unwrap()
}

async fn count_rs(client: &Client, ns: &str, app: &str) -> usize {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .map(|l| l.items.len())
        .unwrap_or(usize::MAX)
}

async fn all_pods(client: &Client, ns: &str, app: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

async fn ready_deployment(c: &Cluster, name: &str) -> Api<Deployment> {
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &deployment(name, 2))
        .await
        .unwrap();
    wait_for("2 pods", Duration::from_secs(20), || async {
        (active_pods(&c.client, "default", name).await.len() == 2).then_some(())
    })
    .await;
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_deletion_removes_replicasets_and_pods() {
    let c = Cluster::start(fast_config(), true).await;
    let api = ready_deployment(&c, "bg").await;
    api.delete("bg", &DeleteParams::background()).await.unwrap();
    assert!(
        api.get_opt("bg").await.unwrap().is_none(),
        "background: the owner goes at once"
    );
    wait_for("dependents gone", Duration::from_secs(20), || async {
        (count_rs(&c.client, "default", "bg").await == 0
            && all_pods(&c.client, "default", "bg").await.is_empty())
        .then_some(())
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletion_removes_dependents_first() {
    let c = Cluster::start(fast_config(), true).await;
    let api = ready_deployment(&c, "fg").await;
    api.delete("fg", &DeleteParams::foreground()).await.unwrap();
    // While dependents exist, the owner is still there, marked for deletion.
    let saw_waiting_owner = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    wait_for(
        "owner gone after dependents",
        Duration::from_secs(20),
        || {
            let api = api.clone();
            let client = c.client.clone();
            let saw = saw_waiting_owner.clone();
            async move {
                let owner = api.get_opt("fg").await.unwrap();
                let rs = count_rs(&client, "default", "fg").await;
                let pods = all_pods(&client, "default", "fg").await.len();
                match owner {
                    Some(d) => {
                        assert!(d.metadata.deletion_timestamp.is_some());
                        assert!(d.finalizers().iter().any(|f| f == "foregroundDeletion"));
                        saw.store(true, std::sync::atomic::Ordering::Relaxed);
                        None
                    }
                    None => {
                        assert_eq!((rs, pods), (0, 0), "owner removed before its dependents");
                        Some(())
                    }
                }
            }
        },
    )
    .await;
    assert!(
        saw_waiting_owner.load(std::sync::atomic::Ordering::Relaxed),
        "the owner never waited for its dependents"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_deletion_keeps_dependents_without_owner() {
    // No deployment controller to fight over the ReplicaSet: delete a bare ReplicaSet.
    let mut cfg = fast_config();
    cfg.enabled.deployment = false;
    let c = Cluster::start(cfg, true).await;
    let rs_api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "orph"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "orph"}},
                 "template": {"metadata": {"labels": {"app": "orph"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    rs_api.create(&PostParams::default(), &rs).await.unwrap();
    let before = wait_for("2 pods", Duration::from_secs(20), || async {
        let p = active_pods(&c.client, "default", "orph").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    rs_api
        .delete("orph", &DeleteParams::orphan())
        .await
        .unwrap();
    wait_for("replicaset gone", Duration::from_secs(20), || async {
        rs_api
            .get_opt("orph")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = all_pods(&c.client, "default", "orph").await;
    let mut names: Vec<String> = after.iter().map(|p| p.name_any()).collect();
    let mut want: Vec<String> = before.iter().map(|p| p.name_any()).collect();
    names.sort();
    want.sort();
    assert_eq!(names, want, "the same pods survive");
    for p in &after {
        assert!(p.metadata.deletion_timestamp.is_none());
        assert!(
            p.owner_references().is_empty(),
            "owner reference removed from {}",
            p.name_any()
        );
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_empties_then_removes_it() {
    let c = Cluster::start(fast_config(), true).await;
    let ns_api: Api<Namespace> = Api::all(c.client.clone());
    let ns: Namespace = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab"}}),
    )
    .unwrap();
    ns_api.create(&PostParams::default(), &ns).await.unwrap();
    let d_api: Api<Deployment> = Api::namespaced(c.client.clone(), "lab");
    d_api
        .create(&PostParams::default(), &deployment("app", 2))
        .await
        .unwrap();
    let cm_api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "lab");
    let cm: ConfigMap = serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "b"}})).unwrap();
    cm_api.create(&PostParams::default(), &cm).await.unwrap();
    wait_for("pods in lab", Duration::from_secs(20), || async {
        (active_pods(&c.client, "lab", "app").await.len() == 2).then_some(())
    })
    .await;

    ns_api
        .delete("lab", &DeleteParams::default())
        .await
        .unwrap();
    let n = ns_api.get("lab").await.unwrap();
    assert_eq!(
        n.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    wait_for("namespace removed", Duration::from_secs(30), || async {
        ns_api.get_opt("lab").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(cm_api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(all_pods(&c.client, "lab", "app").await.is_empty());
    c.stop().await;
}
