//! In-process tests of the ReplicaSet controller against a real skiff API server.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use support::*;

fn rs(name: &str, app: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_scales_up_and_down_and_reports_status() {
    let c = Cluster::start(fast_config(), true).await;
    let api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &rs("web", "web", 3))
        .await
        .unwrap();
    let uid = created.uid().unwrap();

    let pods = wait_for("3 pods", Duration::from_secs(20), || async {
        let p = active_pods(&c.client, "default", "web").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    for p in &pods {
        let r = skiff_controllers::util::controller_ref(&p.metadata).expect("controller ref");
        assert_eq!(r.uid, uid);
        assert!(p.name_any().starts_with("web-"));
    }
    wait_for(
        "status readyReplicas=3",
        Duration::from_secs(20),
        || async {
            let r = api.get("web").await.ok()?;
            let s = r.status?;
            (s.replicas == 3
                && s.ready_replicas == Some(3)
                && s.available_replicas == Some(3)
                && s.observed_generation == r.metadata.generation)
                .then_some(())
        },
    )
    .await;

    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    wait_for("1 pod", Duration::from_secs(20), || async {
        (active_pods(&c.client, "default", "web").await.len() == 1).then_some(())
    })
    .await;
    // And it stays at one (no flapping from a stale cache).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(active_pods(&c.client, "default", "web").await.len(), 1);

    // A deleted pod is replaced.
    let pods = active_pods(&c.client, "default", "web").await;
    let pod_api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    pod_api
        .delete(&pods[0].name_any(), &Default::default())
        .await
        .unwrap();
    wait_for("replacement pod", Duration::from_secs(20), || async {
        let p = active_pods(&c.client, "default", "web").await;
        (p.len() == 1 && p[0].name_any() != pods[0].name_any()).then_some(())
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_adopts_matching_orphans_and_releases_relabelled_pods() {
    let c = Cluster::start(fast_config(), false).await;
    let pod_api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let orphan: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "orphan", "labels": {"app": "adopt"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pod_api
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    let api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &rs("adopter", "adopt", 1))
        .await
        .unwrap();

    wait_for("orphan adopted", Duration::from_secs(20), || async {
        let p = pod_api.get("orphan").await.ok()?;
        let r = skiff_controllers::util::controller_ref(&p.metadata)?;
        (r.uid == created.uid().unwrap()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        active_pods(&c.client, "default", "adopt").await.len(),
        1,
        "the adopted pod counts; no extra pod"
    );

    // Relabel: released, and a new pod takes its place.
    pod_api
        .patch(
            "orphan",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "gone"}}})),
        )
        .await
        .unwrap();
    wait_for("released", Duration::from_secs(20), || async {
        let p = pod_api.get("orphan").await.ok()?;
        skiff_controllers::util::controller_ref(&p.metadata)
            .is_none()
            .then_some(())
    })
    .await;
    wait_for("replacement", Duration::from_secs(20), || async {
        (active_pods(&c.client, "default", "adopt").await.len() == 1).then_some(())
    })
    .await;
    c.stop().await;
}
