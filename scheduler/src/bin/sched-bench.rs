//! Scheduler benchmark with simulated nodes (Node objects only: no kubelet, no
//! containers), in the spirit of upstream's scheduler_perf `SchedulingBasic`: N nodes of
//! 4 CPU / 32 GiB / 110 pods, then P pods requesting 100m / 500Mi.
//!
//! - `sched-bench pure --nodes 5000 --pods 10000`: the scheduling cycle alone over a
//!   synthetic snapshot (decide + assume), no API.
//! - `sched-bench api --nodes 5000 --pods 10000` (needs `--features bench`): an in-process
//!   skiff API server, the real scheduler over HTTPS, pods created through the API;
//!   reports pods bound per second and the p50/p99 time from pod creation to the binding
//!   being visible in a watch.
//!
//! Run with `cargo run -p skiff-scheduler --release --features bench --bin sched-bench -- api`.

use std::time::{Duration, Instant};

use skiff_scheduler::framework::{schedule, Cursor};
use skiff_scheduler::plugins::{default_plugins, Weights};
use skiff_scheduler::podinfo::PodInfo;
use skiff_scheduler::snapshot::Snapshot;

struct Args {
    mode: String,
    nodes: usize,
    pods: usize,
    concurrency: usize,
    /// Create every pod first, then start the scheduler: measures the scheduler and
    /// binding path alone rather than the API server's create rate.
    precreate: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or(
        "usage: sched-bench pure|api [--nodes N] [--pods P] [--concurrency C] [--precreate]",
    )?;
    let mut a = Args {
        mode,
        nodes: 1000,
        pods: 10000,
        concurrency: 64,
        precreate: false,
    };
    while let Some(flag) = it.next() {
        if flag == "--precreate" {
            a.precreate = true;
            continue;
        }
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let n: usize = v
            .parse()
            .map_err(|_| format!("{flag} wants a number, got {v:?}"))?;
        match flag.as_str() {
            "--nodes" => a.nodes = n,
            "--pods" => a.pods = n,
            "--concurrency" => a.concurrency = n.max(1),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(a)
}

fn node_json(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"},
            "capacity": {"cpu": "4", "memory": "32Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    })
}

fn pod_json(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": name},
        "spec": {"containers": [{"name": "pause", "image": "pause",
            "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]}
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn pure(a: &Args) {
    let mut snap = Snapshot::new();
    for i in 0..a.nodes {
        let n: k8s_openapi::api::core::v1::Node =
            serde_json::from_value(node_json(&format!("node-{i}"))).unwrap();
        snap.upsert_node(&n);
    }
    let pods: Vec<PodInfo> = (0..a.pods)
        .map(|i| PodInfo::from_pod(&serde_json::from_value(pod_json(&format!("pod-{i}"))).unwrap()))
        .collect();
    let plugins = default_plugins(&Weights::default(), 0);
    let mut cursor = Cursor::new(0x5eed);
    let mut lat = Vec::with_capacity(a.pods);
    let start = Instant::now();
    for p in &pods {
        let t = Instant::now();
        let node = schedule(p, &snap, &plugins, &mut cursor).expect("synthetic cluster has room");
        snap.assume(p, &node);
        lat.push(t.elapsed());
    }
    let total = start.elapsed();
    lat.sort();
    println!(
        "pure: {} nodes, {} pods: {:.2} s, {:.0} pods/s, per-pod cycle p50 {:?} p99 {:?}",
        a.nodes,
        a.pods,
        total.as_secs_f64(),
        a.pods as f64 / total.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
}

#[cfg(feature = "bench")]
async fn api(a: &Args) {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::core::v1::{Node, Pod};
    use kube::api::{Api, Patch, PatchParams, PostParams};
    use kube::runtime::watcher;
    use kube::runtime::WatchStreamExt;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use tokio_util::sync::CancellationToken;

    let server = skiff_apiserver::testing::TestServer::start().await;
    let client = server.client().await;

    let t = Instant::now();
    let nodes: Api<Node> = Api::all(client.clone());
    futures::stream::iter(0..a.nodes)
        .map(|i| {
            let nodes = nodes.clone();
            async move {
                let name = format!("node-{i}");
                let v = node_json(&name);
                let n: Node = serde_json::from_value(v.clone()).unwrap();
                nodes.create(&PostParams::default(), &n).await?;
                nodes
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(serde_json::json!({"status": v["status"]})),
                    )
                    .await?;
                Ok::<_, kube::Error>(())
            }
        })
        .buffer_unordered(a.concurrency)
        .try_collect::<Vec<_>>()
        .await
        .expect("create nodes");
    eprintln!(
        "created {} nodes in {:.1} s",
        a.nodes,
        t.elapsed().as_secs_f64()
    );

    let shutdown = CancellationToken::new();
    let config = skiff_scheduler::SchedulerConfig {
        identity: "bench".into(),
        ..Default::default()
    };
    let start_scheduler = || {
        tokio::spawn(skiff_scheduler::run(
            config.clone(),
            client.clone(),
            shutdown.clone(),
        ))
    };
    let mut sched = (!a.precreate).then(start_scheduler);

    // Watch bindings from the client side: "bound" is when a watcher sees spec.nodeName.
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let bound: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let watch = {
        let (bound, pods, want) = (bound.clone(), pods.clone(), a.pods);
        tokio::spawn(async move {
            let stream = watcher::watcher(pods, watcher::Config::default()).default_backoff();
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                let now = Instant::now();
                let Ok(ev) = ev else { continue };
                let p = match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => p,
                    _ => continue,
                };
                if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                    let mut b = bound.lock().unwrap();
                    b.entry(p.metadata.name.clone().unwrap_or_default())
                        .or_insert(now);
                    if b.len() >= want {
                        return;
                    }
                }
            }
        })
    };
    // Let the scheduler's informers sync before the clock starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut start = Instant::now();
    futures::stream::iter(0..a.pods)
        .map(|i| {
            let (pods, created) = (pods.clone(), created.clone());
            async move {
                let name = format!("pod-{i}");
                let mut v = pod_json(&name);
                v["metadata"].as_object_mut().unwrap().remove("uid");
                let p: Pod = serde_json::from_value(v).unwrap();
                created.lock().unwrap().insert(name, Instant::now());
                pods.create(&PostParams::default(), &p).await.map(|_| ())
            }
        })
        .buffer_unordered(a.concurrency)
        .try_collect::<Vec<_>>()
        .await
        .expect("create pods");
    let created_in = start.elapsed();
    if a.precreate {
        start = Instant::now();
        sched = Some(start_scheduler());
    }
    let finished = tokio::time::timeout(Duration::from_secs(600), watch).await;
    let total = start.elapsed();
    if finished.is_err() {
        eprintln!("timed out waiting for all bindings");
    }
    shutdown.cancel();
    if let Some(s) = sched {
        let _ = s.await;
    }

    if a.precreate {
        let bound = std::mem::take(&mut *bound.lock().unwrap());
        let last_bound = bound
            .values()
            .max()
            .map(|t| t.duration_since(start))
            .unwrap_or(total);
        println!(
            "api --precreate: {} nodes, {} pods created beforehand in {:.2} s; scheduler start (list + sync) to all bound {:.2} s: {:.0} pods/s ({} bound)",
            a.nodes,
            a.pods,
            created_in.as_secs_f64(),
            last_bound.as_secs_f64(),
            bound.len() as f64 / last_bound.as_secs_f64(),
            bound.len()
        );
        server.shutdown().await;
        return;
    }
    let created = std::mem::take(&mut *created.lock().unwrap());
    let bound = std::mem::take(&mut *bound.lock().unwrap());
    let mut lat: Vec<Duration> = bound
        .iter()
        .filter_map(|(n, b)| created.get(n).map(|c| b.saturating_duration_since(*c)))
        .collect();
    lat.sort();
    let last_bound = bound
        .values()
        .max()
        .map(|t| t.duration_since(start))
        .unwrap_or(total);
    println!(
        "api: {} nodes, {} pods: created in {:.2} s ({:.0}/s), all bound after {:.2} s: {:.0} pods/s; create->bound p50 {:?} p99 {:?} ({} bound)",
        a.nodes,
        a.pods,
        created_in.as_secs_f64(),
        a.pods as f64 / created_in.as_secs_f64(),
        last_bound.as_secs_f64(),
        bound.len() as f64 / last_bound.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        bound.len()
    );
    server.shutdown().await;
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match a.mode.as_str() {
        "pure" => pure(&a),
        #[cfg(feature = "bench")]
        "api" => {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .init();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(api(&a));
        }
        #[cfg(not(feature = "bench"))]
        "api" => {
            eprintln!("the api mode needs the in-process API server: build with --features bench");
            std::process::exit(2);
        }
        m => {
            eprintln!("unknown mode {m:?}: use pure or api");
            std::process::exit(2);
        }
    }
}
