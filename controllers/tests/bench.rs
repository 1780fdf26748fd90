//! Benchmark (ignored by default; run with `cargo test -p skiff-controllers --test bench
//! -- --ignored --nocapture`): how long a 1,000-replica Deployment takes to have all its
//! pods created and Ready with a fake kubelet, and how long a rolling update of it
//! (default 25% surge / 25% unavailable) takes to finish. Bounded: one Deployment, 1,000
//! pods, at most 5 minutes per phase.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;
use support::*;

const REPLICAS: i32 = 1000;

async fn done(api: &Api<Deployment>, revision: &str) -> Option<()> {
    let d = api.get("big").await.ok()?;
    let s = d.status.as_ref()?;
    let ok = s.observed_generation >= d.metadata.generation
        && s.updated_replicas == Some(REPLICAS)
        && s.replicas == Some(REPLICAS)
        && s.available_replicas == Some(REPLICAS)
        && d.metadata
            .annotations
            .as_ref()?
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str)
            == Some(revision);
    ok.then_some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: 1,000 pods, takes tens of seconds"]
async fn bench_thousand_replica_deployment() {
    let c = Cluster::start(fast_config(), true).await;
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "big"},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": "big"}},
                 "template": {"metadata": {"labels": {"app": "big"}}, "spec": {"containers": [{"name": "c", "image": "img:1"}]}}}
    }))
    .unwrap();
    let t0 = Instant::now();
    api.create(&PostParams::default(), &d).await.unwrap();
    wait_for("1,000 pods created", Duration::from_secs(300), || async {
        (active_pods(&c.client, "default", "big").await.len() == REPLICAS as usize).then_some(())
    })
    .await;
    let created = t0.elapsed();
    wait_for("1,000 pods available", Duration::from_secs(300), || {
        done(&api, "1")
    })
    .await;
    let available = t0.elapsed();

    let t1 = Instant::now();
    api.patch(
        "big",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img:2"}]}}}})),
    )
    .await
    .unwrap();
    wait_for("rolling update finished", Duration::from_secs(300), || {
        done(&api, "2")
    })
    .await;
    let rolled = t1.elapsed();
    println!(
        "bench: {REPLICAS} replicas: all pods created in {:.2} s, all available in {:.2} s; rolling update finished in {:.2} s",
        created.as_secs_f64(),
        available.as_secs_f64(),
        rolled.as_secs_f64()
    );
    c.stop().await;
}
