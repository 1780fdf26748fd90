//! `skiff-bench pods`: pod start latency on a real lab node, skiff against its floor.
//!
//! One run brings up a one-node lab (`skiff lab up --nodes 1`), warms the busybox image
//! on the node, then measures, on the same containerd:
//!
//! - **skiff**: N pods created at once through the API server (scheduler, kubelet,
//!   CRI, CNI), each timed from just before its create request to the moment a watch
//!   sees it `Running` (upstream's pod startup SLI, without image pulls);
//! - **raw CRI**: N sandboxes + containers started at once by this program calling
//!   containerd's CRI directly (RunPodSandbox, CreateContainer, StartContainer), each
//!   timed from the first call to the last answer: the floor any kubelet stands on;
//!
//! plus the node agent's RSS (kubelet, proxy, DNS and ingress share that process)
//! idle and with N pods. Everything is bounded (pod count, a deadline per side) and
//! cleaned up: the raw sandboxes through CRI, the lab by `skiff lab down` (also when
//! the bench fails half-way).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use tonic::transport::{Channel, Endpoint, Uri};

#[derive(clap::Args)]
pub struct Args {
    /// Pods per side (at most 100: one node's /24 also holds the demo's pods).
    #[arg(long, default_value_t = 30)]
    pods: usize,
    /// The skiff binary that runs the lab.
    #[arg(long, default_value = "target/debug/skiff")]
    skiff: PathBuf,
    /// Seconds each side may take before the bench gives up.
    #[arg(long, default_value_t = 180)]
    timeout: u64,
}

const IMAGE: &str = "docker.io/library/busybox:latest";
const NS: &str = "bench";

/// p50, p99 and max of some durations, in milliseconds (nearest rank).
pub fn percentiles(mut d: Vec<Duration>) -> Option<(f64, f64, f64)> {
    if d.is_empty() {
        return None;
    }
    d.sort();
    let rank = |q: f64| d[((d.len() as f64 * q).ceil() as usize).clamp(1, d.len()) - 1];
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    Some((ms(rank(0.50)), ms(rank(0.99)), ms(d[d.len() - 1])))
}

/// `VmRSS` of a `/proc/<pid>/status` text, in KiB.
pub fn vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The lab this bench started; `lab down` on drop, whatever happened.
struct Lab {
    skiff: PathBuf,
    dir: PathBuf,
}

impl Lab {
    fn up(skiff: &Path, port: u16) -> anyhow::Result<Lab> {
        let dir = std::env::temp_dir().join(format!("skiff-bench-pods-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let lab = Lab {
            skiff: skiff.to_path_buf(),
            dir,
        };
        let log = lab.dir.with_extension("up.log");
        let out = Command::new(&lab.skiff)
            .args(["lab", "up", "--nodes", "1", "--api-port", &port.to_string()])
            .arg("--dir")
            .arg(&lab.dir)
            .output()
            .with_context(|| format!("running {} lab up", lab.skiff.display()))?;
        std::fs::write(
            &log,
            [out.stdout.as_slice(), out.stderr.as_slice()].concat(),
        )?;
        if !out.status.success() {
            bail!("lab up failed; see {}", log.display());
        }
        let _ = std::fs::remove_file(&log);
        Ok(lab)
    }

    /// The node agent's PID from the lab's state file.
    fn agent_pid(&self) -> anyhow::Result<u32> {
        let text = std::fs::read_to_string(self.dir.join("state.json"))?;
        let state: serde_json::Value = serde_json::from_str(&text)?;
        state["processes"]["agent node1"]
            .as_u64()
            .map(|p| p as u32)
            .context("the lab state names no agent for node1")
    }

    fn agent_rss_mib(&self) -> Option<f64> {
        let pid = self.agent_pid().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        Some(vm_rss_kib(&status)? as f64 / 1024.0)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(&self.skiff)
            .args(["lab", "down", "--dir"])
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "busybox:latest",
                "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}],
        },
    }))
    .expect("valid pod")
}

/// Creates `names` at once and returns each one's create -> Running-seen-by-a-watch.
async fn start_through_skiff(
    client: &kube::Client,
    names: &[String],
    deadline: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let running: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let watch = {
        let (pods, running) = (pods.clone(), running.clone());
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut stream = std::pin::pin!(watcher(pods, watcher::Config::default()));
            while let Some(ev) = stream.next().await {
                let p = match ev {
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                    _ => continue,
                };
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                if phase == Some("Running") {
                    let name = p.metadata.name.unwrap_or_default();
                    let mut seen = running.lock().expect("lock");
                    seen.entry(name).or_insert_with(Instant::now);
                }
            }
        })
    };
    // Only create once the watch is established, so no Running event can be missed.
    tokio::time::timeout(Duration::from_secs(30), ready_rx)
        .await
        .context("the pod watch did not start")??;
    let creates = names.iter().map(|n| {
        let pods = pods.clone();
        async move {
            let t0 = Instant::now();
            pods.create(&PostParams::default(), &pod(n)).await?;
            anyhow::Ok((n.clone(), t0))
        }
    });
    let started: Vec<(String, Instant)> = futures::future::try_join_all(creates).await?;
    let until = Instant::now() + deadline;
    loop {
        let done = {
            let seen = running.lock().expect("lock");
            names.iter().filter(|n| seen.contains_key(*n)).count()
        };
        if done == names.len() {
            break;
        }
        if Instant::now() > until {
            watch.abort();
            bail!(
                "only {done} of {} pods were Running after {deadline:?}",
                names.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watch.abort();
    let seen = running.lock().expect("lock");
    Ok(started
        .into_iter()
        .map(|(n, t0)| seen[&n].saturating_duration_since(t0))
        .collect())
}

async fn cri_client(socket: &Path) -> anyhow::Result<RuntimeServiceClient<Channel>> {
    let path = socket.to_path_buf();
    // tonic wants a URI; the connector ignores it and dials the socket.
    let channel = Endpoint::from_static("http://localhost")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let s = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(s))
            }
        }))
        .await
        .with_context(|| format!("connecting to containerd at {}", socket.display()))?;
    Ok(RuntimeServiceClient::new(channel))
}

fn sandbox_config(i: usize, logs: &Path) -> cri::PodSandboxConfig {
    let name = format!("raw-{i}");
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.clone(),
            uid: format!("skiff-bench-raw-{}-{i}", std::process::id()),
            namespace: "bench-raw".into(),
            attempt: 0,
        }),
        hostname: name.clone(),
        log_directory: logs.join(&name).display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

/// Starts one sandbox and its container; the sandbox id is recorded before anything
/// can fail after it, so clean-up finds it.
async fn start_raw(
    mut rt: RuntimeServiceClient<Channel>,
    config: cri::PodSandboxConfig,
    ids: Arc<Mutex<Vec<String>>>,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let sandbox = rt
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await?
        .into_inner()
        .pod_sandbox_id;
    ids.lock().expect("lock").push(sandbox.clone());
    let container = rt
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: sandbox,
            config: Some(cri::ContainerConfig {
                metadata: Some(cri::ContainerMetadata {
                    name: "c".into(),
                    attempt: 0,
                }),
                image: Some(cri::ImageSpec {
                    image: IMAGE.into(),
                    ..Default::default()
                }),
                command: vec!["sleep".into(), "3600".into()],
                log_path: "c.log".into(),
                linux: Some(cri::LinuxContainerConfig::default()),
                ..Default::default()
            }),
            sandbox_config: Some(config),
        })
        .await?
        .into_inner()
        .container_id;
    rt.start_container(cri::StartContainerRequest {
        container_id: container,
    })
    .await?;
    Ok(t0.elapsed())
}

/// N sandboxes + containers at once straight through CRI, then removed again.
async fn start_raw_cri(
    socket: &Path,
    n: usize,
    logs: &Path,
    deadline: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let rt = cri_client(socket).await?;
    let ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let runs = (0..n).map(|i| start_raw(rt.clone(), sandbox_config(i, logs), ids.clone()));
    let result = tokio::time::timeout(deadline, futures::future::try_join_all(runs)).await;
    // Clean up whatever started, also after a failure or the deadline.
    let mut rt = rt;
    let started: Vec<String> = ids.lock().expect("lock").clone();
    for id in started {
        let _ = rt
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await;
        let _ = rt
            .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
            .await;
    }
    match result {
        Ok(r) => Ok(r?),
        Err(_) => bail!("the raw CRI side did not finish within {deadline:?}"),
    }
}

async fn wait_gone(pods: &Api<Pod>, deadline: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + deadline;
    while !pods.list(&ListParams::default()).await?.items.is_empty() {
        if Instant::now() > until {
            bail!("the bench pods were not removed within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !nix_is_root() {
        println!("pods bench: skipped: needs root (it runs a lab with containerd)");
        return Ok(());
    }
    if args.pods == 0 || args.pods > 100 {
        bail!("--pods must be between 1 and 100");
    }
    let deadline = Duration::from_secs(args.timeout);
    let port = 27000 + (std::process::id() % 1000) as u16;
    println!("lab up (1 node) ...");
    let lab = Lab::up(&args.skiff, port)?;
    let kubeconfig = lab.dir.join("server/admin.kubeconfig");
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    let client = kube::Client::try_from(cfg)?;

    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": NS}})).expect("ns");
    nss.create(&PostParams::default(), &ns).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);

    // Warm: the image is on the node and the kubelet has run a pod once.
    println!("warming the image on node1 ...");
    start_through_skiff(&client, &["warm".to_string()], deadline).await?;
    pods.delete("warm", &DeleteParams::default()).await?;
    wait_gone(&pods, deadline).await?;
    let rss_idle = lab.agent_rss_mib();

    println!("skiff: {} pods at once ...", args.pods);
    let names: Vec<String> = (0..args.pods).map(|i| format!("p{i}")).collect();
    let skiff = start_through_skiff(&client, &names, deadline).await?;
    let rss_loaded = lab.agent_rss_mib();
    pods.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    wait_gone(&pods, deadline).await?;

    println!("raw CRI: {} sandboxes + containers at once ...", args.pods);
    let socket = lab.dir.join("nodes/node1/containerd/containerd.sock");
    let logs = lab.dir.join("raw-logs");
    std::fs::create_dir_all(&logs)?;
    let raw = start_raw_cri(&socket, args.pods, &logs, deadline).await?;

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!();
    println!(
        "Pod start latency: {} pods created at once on one lab node (busybox already pulled); load average {}",
        args.pods,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!(
        "{:<44} {:>9} {:>9} {:>9}",
        "path", "p50 ms", "p99 ms", "max ms"
    );
    for (label, d) in [
        ("skiff: create -> Running seen by a watch", skiff),
        ("raw CRI: RunPodSandbox + Create + Start", raw),
    ] {
        let (p50, p99, max) = percentiles(d).expect("at least one pod");
        println!("{label:<44} {p50:>9.0} {p99:>9.0} {max:>9.0}");
    }
    let mib = |v: Option<f64>| v.map_or("?".to_string(), |m| format!("{m:.1} MiB"));
    println!(
        "node agent RSS (kubelet + proxy + DNS + ingress): idle {}, with {} pods {}",
        mib(rss_idle),
        args.pods,
        mib(rss_loaded)
    );
    println!("lab down ...");
    drop(lab);
    Ok(())
}

fn nix_is_root() -> bool {
    // The effective uid from /proc, to need no libc binding.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let ms = |v: &[u64]| v.iter().map(|m| Duration::from_millis(*m)).collect();
        assert_eq!(percentiles(ms(&[])), None);
        assert_eq!(percentiles(ms(&[7])), Some((7.0, 7.0, 7.0)));
        // 30 samples 1..=30: p50 is the 15th, p99 the 30th.
        let thirty: Vec<u64> = (1..=30).rev().collect();
        assert_eq!(percentiles(ms(&thirty)), Some((15.0, 30.0, 30.0)));
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentiles(ms(&hundred)), Some((50.0, 99.0, 100.0)));
    }

    #[test]
    fn rss_is_read_from_proc_status() {
        let status = "Name:\tskiff\nVmPeak:\t  900 kB\nVmRSS:\t   51234 kB\nThreads:\t9\n";
        assert_eq!(vm_rss_kib(status), Some(51234));
        assert_eq!(vm_rss_kib("Name:\tx\n"), None);
    }
}
