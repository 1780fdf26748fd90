//! In-process tests of the Deployment controller (with the ReplicaSet controller and a
//! fake kubelet) against a real skiff API server.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use skiff_controllers::deployment::revision::REVISION;
use support::*;

fn deployment(name: &str, replicas: i32, image: &str, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    }))
    .unwrap()
}

async fn owned_rss(client: &Client, d: &Deployment) -> Vec<ReplicaSet> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let uid = d.uid().unwrap();
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|rs| {
            skiff_controllers::util::controller_ref(&rs.metadata).is_some_and(|r| r.uid == uid)
        })
        .collect()
}

async fn rolled_out(api: &Api<Deployment>, name: &str, replicas: i32) -> Option<Deployment> {
    let d = api.get(name).await.ok()?;
    let s = d.status.clone()?;
    let done = s.observed_generation >= d.metadata.generation
        && s.updated_replicas == Some(replicas)
        && s.replicas == Some(replicas)
        && s.available_replicas == Some(replicas);
    let progressed =
        s.conditions.iter().flatten().any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("NewReplicaSetAvailable")
        });
    let available = s
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Available" && c.status == "True");
    (done && progressed && available).then_some(d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_respects_surge_and_unavailable_then_undo() {
    let c = Cluster::start(fast_config(), true).await;
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    api.create(
        &PostParams::default(),
        &deployment("web", 4, "img:1", strategy),
    )
    .await
    .unwrap();
    let d = wait_for("first rollout", Duration::from_secs(30), || {
        rolled_out(&api, "web", 4)
    })
    .await;
    assert_eq!(d.annotations().get(REVISION).map(String::as_str), Some("1"));
    // Settled means settled: no status rewrites in a loop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rv = api.get("web").await.unwrap().resource_version();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        api.get("web").await.unwrap().resource_version(),
        rv,
        "a settled deployment keeps being rewritten"
    );
    let rss = owned_rss(&c.client, &d).await;
    assert_eq!(rss.len(), 1);
    let rs1 = rss[0].clone();
    let hash = rs1.labels()["pod-template-hash"].clone();
    assert_eq!(rs1.name_any(), format!("web-{hash}"));
    assert!(hash
        .chars()
        .all(|ch| "bcdfghjklmnpqrstvwxz2456789".contains(ch)));

    // Watch the bounds while the rollout runs: at most 4 + 1 pods by ReplicaSet spec,
    // at least 4 - 1 available. A watch sees every stored version in order, so every
    // intermediate state is checked, however briefly it lasted.
    let done = Arc::new(AtomicBool::new(false));
    let monitor = {
        let rs_api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
        let done = done.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            let mut stream = kube::runtime::watcher(
                rs_api,
                kube::runtime::watcher::Config::default().labels("app=web"),
            )
            .default_backoff()
            .boxed();
            let mut state: std::collections::HashMap<String, (i32, i32)> =
                std::collections::HashMap::new();
            let mut samples = 0;
            let mut worst = (0, i32::MAX);
            while !done.load(Ordering::Relaxed) {
                let ev = match tokio::time::timeout(Duration::from_millis(100), stream.next()).await
                {
                    Ok(Some(Ok(ev))) => ev,
                    _ => continue,
                };
                let rs = match ev {
                    kube::runtime::watcher::Event::Apply(rs)
                    | kube::runtime::watcher::Event::InitApply(rs) => rs,
                    _ => continue,
                };
                let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                let avail = rs
                    .status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0);
                state.insert(rs.uid().unwrap(), (spec, avail));
                let total: i32 = state.values().map(|v| v.0).sum();
                let available: i32 = state.values().map(|v| v.1).sum();
                worst = (worst.0.max(total), worst.1.min(available));
                samples += 1;
            }
            (samples, worst)
        })
    };
    use kube::runtime::WatchStreamExt;
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img:2"}]}}}})),
    )
    .await
    .unwrap();
    let d2 = wait_for("second rollout", Duration::from_secs(30), || async {
        let d = rolled_out(&api, "web", 4).await?;
        (d.annotations().get(REVISION).map(String::as_str) == Some("2")).then_some(d)
    })
    .await;
    done.store(true, Ordering::Relaxed);
    let (samples, (max_total, min_avail)) = monitor.await.unwrap();
    eprintln!("monitor: {samples} samples, worst {max_total} total / {min_avail} available");
    assert!(samples > 3, "monitor sampled {samples} times");
    assert!(max_total <= 5, "surge bound exceeded: {max_total} pods");
    assert!(min_avail >= 3, "availability dropped to {min_avail}");

    let rss = owned_rss(&c.client, &d2).await;
    assert_eq!(rss.len(), 2);
    let old = rss.iter().find(|r| r.uid() == rs1.uid()).unwrap();
    assert_eq!(old.spec.as_ref().unwrap().replicas, Some(0));
    let new = rss.iter().find(|r| r.uid() != rs1.uid()).unwrap();
    assert_eq!(new.annotations()[REVISION], "2");
    assert_eq!(active_pods(&c.client, "default", "web").await.len(), 4);

    // Undo the way kubectl 1.27+ does it: copy revision 1's template back.
    let mut t = old.spec.as_ref().unwrap().template.clone().unwrap();
    t.metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .remove("pod-template-hash");
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": t}})),
    )
    .await
    .unwrap();
    wait_for("undo rollout", Duration::from_secs(30), || async {
        let d = rolled_out(&api, "web", 4).await?;
        (d.annotations().get(REVISION).map(String::as_str) == Some("3")).then_some(d)
    })
    .await;
    let rss = owned_rss(&c.client, &d2).await;
    assert_eq!(rss.len(), 2, "the old replicaset is reused, not duplicated");
    let back = rss.iter().find(|r| r.uid() == rs1.uid()).unwrap();
    assert_eq!(back.annotations()[REVISION], "3");
    assert_eq!(
        back.annotations()["deployment.kubernetes.io/revision-history"],
        "1"
    );
    assert_eq!(back.spec.as_ref().unwrap().replicas, Some(4));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_scales_down_before_up_and_history_is_limited() {
    let c = Cluster::start(fast_config(), true).await;
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let mut d = deployment("rec", 2, "img:1", json!({"type": "Recreate"}));
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    api.create(&PostParams::default(), &d).await.unwrap();
    wait_for("first rollout", Duration::from_secs(30), || {
        rolled_out(&api, "rec", 2)
    })
    .await;
    for image in ["img:2", "img:3"] {
        api.patch(
            "rec",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})),
        )
        .await
        .unwrap();
        // Recreate never runs old and new pods side by side (by ReplicaSet spec).
        let d = api.get("rec").await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let rss = owned_rss(&c.client, &d).await;
            let running: Vec<i32> = rss
                .iter()
                .map(|r| r.spec.as_ref().unwrap().replicas.unwrap_or(0))
                .filter(|n| *n > 0)
                .collect();
            assert!(
                running.len() <= 1,
                "old and new scaled up together: {running:?}"
            );
            if let Some(d) = rolled_out(&api, "rec", 2).await {
                if d.status.as_ref().unwrap().observed_generation == d.metadata.generation
                    && owned_rss(&c.client, &d).await.iter().any(|r| {
                        r.spec
                            .as_ref()
                            .unwrap()
                            .template
                            .as_ref()
                            .unwrap()
                            .spec
                            .as_ref()
                            .unwrap()
                            .containers[0]
                            .image
                            .as_deref()
                            == Some(image)
                            && r.status
                                .as_ref()
                                .is_some_and(|s| s.available_replicas == Some(2))
                    })
                {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "recreate to {image} did not finish"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let d = api.get("rec").await.unwrap();
    wait_for(
        "history trimmed to 1 old replicaset",
        Duration::from_secs(20),
        || async { (owned_rss(&c.client, &d).await.len() == 2).then_some(()) },
    )
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_rollouts_and_progress_deadline_is_reported() {
    // No kubelet: pods never become ready, so a rollout cannot finish.
    let c = Cluster::start(fast_config(), false).await;
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let mut d = deployment("stuck", 2, "img:1", json!({"type": "RollingUpdate"}));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(2);
    api.create(&PostParams::default(), &d).await.unwrap();
    wait_for(
        "ProgressDeadlineExceeded",
        Duration::from_secs(20),
        || async {
            let d = api.get("stuck").await.ok()?;
            let s = d.status?;
            s.conditions?
                .iter()
                .any(|c| {
                    c.type_ == "Progressing"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                })
                .then_some(())
        },
    )
    .await;

    api.patch(
        "stuck",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": true}})),
    )
    .await
    .unwrap();
    wait_for("DeploymentPaused", Duration::from_secs(20), || async {
        let s = api.get("stuck").await.ok()?.status?;
        s.conditions?
            .iter()
            .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("DeploymentPaused"))
            .then_some(())
    })
    .await;
    api.patch(
        "stuck",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img:2"}]}}}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let d = api.get("stuck").await.unwrap();
    assert_eq!(
        owned_rss(&c.client, &d).await.len(),
        1,
        "paused: no new replicaset"
    );
    api.patch(
        "stuck",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": false}})),
    )
    .await
    .unwrap();
    wait_for("rollout resumes", Duration::from_secs(20), || async {
        (owned_rss(&c.client, &d).await.len() == 2).then_some(())
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_in_the_middle_of_a_rollout_scales_proportionally() {
    // The second rollout cannot finish (its pods go to a dead node): old and new stay active.
    let c = Cluster::start(fast_config(), true).await;
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}});
    api.create(
        &PostParams::default(),
        &deployment("grow", 4, "img:1", strategy),
    )
    .await
    .unwrap();
    wait_for("first rollout", Duration::from_secs(30), || {
        rolled_out(&api, "grow", 4)
    })
    .await;
    // Stop the kubelet from readying new pods: make the new template unschedulable by
    // pointing it at a dead node.
    c.dead_nodes.lock().unwrap().insert("dead".into());
    api.patch(
        "grow",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"nodeName": "dead", "containers": [{"name": "c", "image": "img:2"}]}}}})),
    )
    .await
    .unwrap();
    let d = api.get("grow").await.unwrap();
    wait_for(
        "two active replicasets",
        Duration::from_secs(20),
        || async {
            let rss = owned_rss(&c.client, &d).await;
            let active = rss
                .iter()
                .filter(|r| r.spec.as_ref().unwrap().replicas.unwrap_or(0) > 0)
                .count();
            (rss.len() == 2 && active == 2).then_some(())
        },
    )
    .await;
    api.patch(
        "grow",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 8}})),
    )
    .await
    .unwrap();
    let sizes = wait_for(
        "proportional resize to 8 + 2 surge",
        Duration::from_secs(20),
        || async {
            let rss = owned_rss(&c.client, &d).await;
            let sizes: Vec<i32> = rss
                .iter()
                .map(|r| r.spec.as_ref().unwrap().replicas.unwrap_or(0))
                .collect();
            let annotated = rss
                .iter()
                .filter(|r| r.spec.as_ref().unwrap().replicas.unwrap_or(0) > 0)
                .all(|r| {
                    r.annotations()
                        .get("deployment.kubernetes.io/desired-replicas")
                        .map(String::as_str)
                        == Some("8")
                });
            (sizes.iter().sum::<i32>() == 10 && annotated).then_some(sizes)
        },
    )
    .await;
    assert!(
        sizes.iter().all(|s| *s > 0),
        "both replicasets keep a share: {sizes:?}"
    );
    c.stop().await;
}
