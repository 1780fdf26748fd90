//! An acknowledged write survives `kill -9`: the real `skiff server` binary takes
//! concurrent creates, is killed with SIGKILL mid-stream, restarts over the same data
//! dir, and must hold every object whose create was answered.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path, port: u16) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["server", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("skiff server starts");
    Server(child)
}

async fn client(dir: &std::path::Path) -> kube::Client {
    for _ in 0..100 {
        if let Ok(kc) = kube::config::Kubeconfig::read_from(dir.join("admin.kubeconfig")) {
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .unwrap();
            let c = kube::Client::try_from(cfg).unwrap();
            if c.apiserver_version().await.is_ok() {
                return c;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server did not come up");
}

#[tokio::test]
async fn acknowledged_creates_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let port = 24000 + (std::process::id() % 1000) as u16;
    let mut server = start(dir.path(), port);
    let c = client(dir.path()).await;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..8 {
        let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
        let acked = acked.clone();
        workers.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let name = format!("w{w}-{i}");
                let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": name}, "data": {"x": "y".repeat(200)}
                }))
                .unwrap();
                match cms.create(&PostParams::default(), &cm).await {
                    Ok(_) => acked.lock().unwrap().push(name),
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // SIGKILL: no chance to flush anything that was not already durable.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    for w in workers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "the load produced too few writes ({}) to mean anything",
        acked.len()
    );

    let _server = start(dir.path(), port);
    let c = client(dir.path()).await;
    let cms: Api<ConfigMap> = Api::namespaced(c, "default");
    let present: std::collections::HashSet<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !present.contains(*n)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged creates were lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    println!(
        "{} acknowledged creates all present after SIGKILL and restart",
        acked.len()
    );
}
