//! The whole proxy in-process: skiff's API server on 127.0.0.1 port 0, `run()` watching
//! it through kube-runtime reflectors, and the rules landing in a network namespace
//! this test creates (iptables through `nsenter`). Services and EndpointSlices are
//! written through the `kube` client as any controller would.
//!
//! Needs root, `ip`, `nsenter` and the iptables tools; otherwise prints `skipped: <why>`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use skiff_apiserver::testing::TestServer;
use skiff_proxy::rules::NodeInfo;
use skiff_proxy::{cleanup, run, ProxyConfig, SyncConfig};
use tokio_util::sync::CancellationToken;

fn prerequisites() -> Result<(), String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return Err("needs root (network namespaces and iptables)".into());
    }
    for tool in [
        "ip",
        "nsenter",
        "iptables-restore",
        "iptables-save",
        "iptables",
    ] {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("{tool} not found"));
        }
    }
    Ok(())
}

/// A network namespace deleted on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn save(ns: &str, table: &str) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{ns}"))
        .args(["iptables-save", "-t", table])
        .output()
        .expect("run iptables-save");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn wait_for(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn slice(endpoints: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .expect("slice json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_follows_services_and_endpoint_slices_from_the_api_server() {
    if let Err(why) = prerequisites() {
        println!("skipped: {why}");
        return;
    }
    let ns = Netns(format!("skp{}api", std::process::id()));
    assert!(Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()
        .unwrap()
        .success());

    let server = TestServer::start().await;
    let client = server.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");

    let svc: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))
    .unwrap();
    let svc = services
        .create(&PostParams::default(), &svc)
        .await
        .expect("create service");
    let cluster_ip = svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .expect("the API server allocates a cluster IP");
    let ready = |ip: &str| serde_json::json!({"addresses": [ip], "conditions": {"ready": true}, "nodeName": "n1"});
    slices
        .create(
            &PostParams::default(),
            &slice(serde_json::json!([
                ready("10.244.0.10"),
                ready("10.244.0.11")
            ])),
        )
        .await
        .expect("create endpoint slice");

    let config = ProxyConfig {
        node: NodeInfo {
            name: "n1".into(),
            ..Default::default()
        },
        sync: SyncConfig {
            min_sync_period: Duration::from_millis(100),
            check_period: Duration::from_secs(1),
            full_sync_period: Duration::from_secs(3600),
        },
        command_prefix: vec!["nsenter".into(), format!("--net=/var/run/netns/{}", ns.0)],
    };
    let shutdown = CancellationToken::new();
    let proxy = tokio::spawn(run(config.clone(), client.clone(), shutdown.clone()));

    let name = ns.0.clone();
    let cip = format!("-d {cluster_ip}/32");
    wait_for("cluster IP rules with both endpoints", || {
        let nat = save(&name, "nat");
        nat.contains(&cip) && nat.contains("10.244.0.10:8080") && nat.contains("10.244.0.11:8080")
    })
    .await;

    // Scale to zero: the slice empties, the cluster IP gets a REJECT rule instead.
    let mut current = slices.get("web-abc").await.unwrap();
    current.endpoints = vec![];
    slices
        .replace("web-abc", &PostParams::default(), &current)
        .await
        .expect("update slice");
    wait_for("reject rule after scaling to zero", || {
        let filter = save(&name, "filter");
        let nat = save(&name, "nat");
        filter
            .lines()
            .any(|l| l.contains(&cip) && l.contains("REJECT"))
            && !nat.contains("10.244.0.10:8080")
    })
    .await;

    // Service deleted: nothing mentions its IP any more.
    services
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete service");
    wait_for("rules gone after delete", || {
        !save(&name, "nat").contains(&cip) && !save(&name, "filter").contains(&cip)
    })
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), proxy)
        .await
        .expect("proxy stops")
        .unwrap()
        .expect("proxy ran cleanly");

    cleanup(&config).expect("cleanup");
    for table in ["nat", "filter"] {
        let text = save(&name, table);
        assert!(
            !text.contains("KUBE-"),
            "{table} still has proxy chains:\n{text}"
        );
    }
    server.shutdown().await;
}
