//! `skiff-bench api`: creates/s and latency percentiles for skiff and etcd.
//!
//! Both sides do the same thing per request: store a ~1 KiB object durably and answer.
//! skiff gets Kubernetes ConfigMap creates through the real API path (TLS, auth,
//! decoding, defaulting, validation, group-committed fsync); etcd gets puts through its
//! gRPC-JSON gateway over plain HTTP on loopback, which is *less* work per request, so
//! the anchor is generous.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Creates per concurrency level.
    #[arg(long, default_value_t = 3000)]
    requests: usize,
    /// Concurrency levels to measure.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 8, 64])]
    clients: Vec<usize>,
    /// Skip the etcd anchor (when etcd-server is not installed).
    #[arg(long)]
    no_etcd: bool,
}

struct Stats {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn stats(mut lat: Vec<Duration>, total: Duration) -> Stats {
    lat.sort();
    let pick = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        per_sec: lat.len() as f64 / total.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

/// Runs `n` operations over `c` workers; `op(i)` performs operation i.
async fn drive<F, Fut>(n: usize, c: usize, op: F) -> anyhow::Result<Stats>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..c {
        let op = op.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                op(i).await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for w in workers {
        all.extend(w.await??);
    }
    Ok(stats(all, started.elapsed()))
}

struct Etcd {
    child: Child,
    dir: PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_etcd(port: u16) -> anyhow::Result<Etcd> {
    let dir = std::env::temp_dir().join(format!("skiff-bench-etcd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!("http://127.0.0.1:{port}");
    let peer = format!("http://127.0.0.1:{}", port + 1);
    let child = Command::new("etcd")
        .args([
            "--data-dir",
            dir.to_str().unwrap_or("/tmp/etcd"),
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args([
            "--initial-cluster",
            &format!("default={peer}"),
            "--log-level",
            "error",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting etcd (install Debian's etcd-server, or pass --no-etcd)")?;
    Ok(Etcd { child, dir })
}

fn payload() -> String {
    "x".repeat(1024)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // skiff, in-process, on loopback.
    let dir = std::env::temp_dir().join(format!("skiff-bench-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = skiff_apiserver::start(
        skiff_apiserver::Config {
            data_dir: dir.clone(),
            listen: vec!["127.0.0.1:0".parse()?],
            ..Default::default()
        },
        shutdown.clone(),
    )
    .await?;
    let kc = kube::config::Kubeconfig::read_from(&running.kubeconfig)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    let client = kube::Client::try_from(cfg)?;

    let etcd = if args.no_etcd {
        None
    } else {
        Some(start_etcd(23790)?)
    };
    let http: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    if etcd.is_some() {
        // Wait for etcd to answer.
        let mut up = false;
        for _ in 0..100 {
            let req = http::Request::post("http://127.0.0.1:23790/v3/kv/range")
                .body(Full::new(Bytes::from(r#"{"key":"AA=="}"#)))?;
            if http
                .request(req)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !up {
            bail!("etcd did not come up on 127.0.0.1:23790");
        }
    }

    println!("API create benchmark: {} creates of a ~1 KiB object per row, durable (fsync before the answer)", args.requests);
    println!(
        "{:<8} {:>8} {:>12} {:>10} {:>10}",
        "system", "clients", "creates/s", "p50 ms", "p99 ms"
    );
    for (round, &c) in args.clients.iter().enumerate() {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let data = payload();
        let s = drive(args.requests, c, move |i| {
            let cms = cms.clone();
            let data = data.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(json!({
                    "metadata": {"name": format!("b{round}-{i}")},
                    "data": {"payload": data}
                }))?;
                cms.create(&PostParams::default(), &cm).await?;
                Ok(())
            }
        })
        .await?;
        println!(
            "{:<8} {:>8} {:>12.0} {:>10.2} {:>10.2}",
            "skiff",
            c,
            s.per_sec,
            s.p50.as_secs_f64() * 1e3,
            s.p99.as_secs_f64() * 1e3
        );
        if etcd.is_some() {
            let http = http.clone();
            let value = base64::engine::general_purpose::STANDARD
                .encode(json!({"data": {"payload": payload()}}).to_string());
            let s = drive(args.requests, c, move |i| {
                let http = http.clone();
                let key = base64::engine::general_purpose::STANDARD
                    .encode(format!("/registry/configmaps/default/b{round}-{i}"));
                let body = json!({"key": key, "value": value}).to_string();
                async move {
                    let req = http::Request::post("http://127.0.0.1:23790/v3/kv/put")
                        .body(Full::new(Bytes::from(body)))?;
                    let resp = http.request(req).await?;
                    if !resp.status().is_success() {
                        bail!("etcd put failed: {}", resp.status());
                    }
                    resp.into_body().collect().await?;
                    Ok(())
                }
            })
            .await?;
            println!(
                "{:<8} {:>8} {:>12.0} {:>10.2} {:>10.2}",
                "etcd",
                c,
                s.per_sec,
                s.p50.as_secs_f64() * 1e3,
                s.p99.as_secs_f64() * 1e3
            );
        }
    }
    drop(etcd);
    shutdown.cancel();
    running.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
