//! The real resolvers a pod uses, against this DNS server: glibc (`getent`, with the
//! search list and `ndots:5` the kubelet writes for `ClusterFirst`) and busybox
//! (`nslookup`, `wget`), run inside a network namespace this test creates, with the
//! server listening on 127.0.0.1:53 inside it and a web server on the service's cluster
//! IP (an address on the namespace's own loopback, so nothing leaves the namespace).
//!
//! Needs root, `ip`, `getent` and `busybox`; otherwise prints `skipped: <why>`.

use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use skiff_dns::{DnsServer, Forwarder, RecordTable, SharedTable};
use tokio_util::sync::CancellationToken;

fn prerequisites() -> Result<(), String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return Err("needs root (network namespaces)".into());
    }
    for tool in ["ip", "getent", "busybox"] {
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

/// A network namespace with its own resolv.conf (`ip netns exec` mounts
/// /etc/netns/NAME/resolv.conf over /etc/resolv.conf); both removed on drop, as is the
/// web server process.
struct Lab {
    name: String,
    web: Option<Child>,
    stop: CancellationToken,
    dns: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.dns.take() {
            let _ = t.join();
        }
        if let Some(mut w) = self.web.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
        let _ = std::fs::remove_dir("/etc/netns"); // only if no one else uses it
        let _ = std::fs::remove_dir_all(format!("/tmp/{}-www", self.name));
    }
}

impl Lab {
    fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("run ip netns exec")
    }
}

fn ok(what: &str, out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn table() -> RecordTable {
    let services: Vec<Service> = [
        json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}}),
        json!({"metadata": {"name": "api", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.30", "ports": [{"port": 443}]}}),
        json!({"metadata": {"name": "db", "namespace": "shop"}, "spec": {"clusterIP": "None"}}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    let slices: Vec<EndpointSlice> = vec![serde_json::from_value(json!({
        "metadata": {"name": "db-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.1.5"], "hostname": "db-0"}, {"addresses": ["10.244.2.6"]}]
    }))
    .unwrap()];
    RecordTable::build("cluster.local", services.iter(), slices.iter())
}

/// Runs the DNS server on 127.0.0.1:53 inside the namespace: sockets belong to the
/// namespace of the thread that creates them, so a dedicated thread enters it first.
fn start_dns(netns: &str, stop: CancellationToken) -> std::thread::JoinHandle<()> {
    let path = format!("/var/run/netns/{netns}");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let f = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter netns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listen: SocketAddr = "127.0.0.1:53".parse().unwrap();
            let table: SharedTable = Arc::new(ArcSwap::from_pointee(table()));
            // No upstream: names outside the cluster fail fast, as in an offline lab.
            let server = DnsServer::bind(
                listen,
                table,
                Forwarder::new(vec![], listen, Duration::from_secs(2)),
            )
            .await
            .expect("bind 127.0.0.1:53 in netns");
            ready_tx.send(()).unwrap();
            server.serve(stop).await;
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("dns server started in the namespace");
    handle
}

#[test]
fn pod_resolvers_find_services_by_short_and_qualified_names() {
    if let Err(why) = prerequisites() {
        println!("skipped: {why}");
        return;
    }
    let name = format!("skd{}r", std::process::id());
    let mut lab = Lab {
        name: name.clone(),
        web: None,
        stop: CancellationToken::new(),
        dns: None,
    };
    assert!(Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap()
        .success());
    std::fs::create_dir_all(format!("/etc/netns/{name}")).unwrap();
    // Exactly what the kubelet writes for a ClusterFirst pod in namespace `shop`.
    std::fs::write(
        format!("/etc/netns/{name}/resolv.conf"),
        "nameserver 127.0.0.1\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
    )
    .unwrap();
    ok("lo up", &lab.exec(&["ip", "link", "set", "lo", "up"]));
    ok(
        "cluster ip on lo",
        &lab.exec(&["ip", "addr", "add", "10.96.0.20/32", "dev", "lo"]),
    );
    lab.dns = Some(start_dns(&name, lab.stop.clone()));

    let www = format!("/tmp/{name}-www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(format!("{www}/index.html"), "hello from web\n").unwrap();
    lab.web = Some(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &name,
                "busybox",
                "httpd",
                "-f",
                "-p",
                "10.96.0.20:80",
                "-h",
                &www,
            ])
            .spawn()
            .expect("start busybox httpd"),
    );

    // glibc, through the search list: short name, name.namespace, across namespaces, FQDN.
    for (query, want) in [
        ("web", "10.96.0.20"),
        ("web.shop", "10.96.0.20"),
        ("web.shop.svc.cluster.local", "10.96.0.20"),
        ("api.default", "10.96.0.30"),
        ("db-0.db", "10.244.1.5"),
    ] {
        let out = ok(
            &format!("getent {query}"),
            &lab.exec(&["getent", "ahostsv4", query]),
        );
        assert!(out.starts_with(want), "getent ahostsv4 {query}: {out}");
    }
    // Unknown names fail, and names outside the cluster fail fast without an upstream.
    let t0 = Instant::now();
    assert!(!lab.exec(&["getent", "ahostsv4", "nope"]).status.success());
    assert!(!lab
        .exec(&["getent", "ahostsv4", "example.com"])
        .status
        .success());
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "failures took {:?}",
        t0.elapsed()
    );

    // busybox nslookup asks the server directly.
    let out = ok(
        "nslookup",
        &lab.exec(&[
            "busybox",
            "nslookup",
            "web.shop.svc.cluster.local",
            "127.0.0.1",
        ]),
    );
    assert!(out.contains("10.96.0.20"), "{out}");
    let out = ok(
        "nslookup srv",
        &lab.exec(&[
            "busybox",
            "nslookup",
            "-type=srv",
            "_http._tcp.web.shop.svc.cluster.local",
            "127.0.0.1",
        ]),
    );
    assert!(out.contains("80 web.shop.svc.cluster.local"), "{out}");
    let out = ok(
        "nslookup ptr",
        &lab.exec(&[
            "busybox",
            "nslookup",
            "-type=ptr",
            "20.0.96.10.in-addr.arpa",
            "127.0.0.1",
        ]),
    );
    assert!(out.contains("web.shop.svc.cluster.local"), "{out}");

    // And a client reaches the service by its short name. (`timeout` bounds it: busybox
    // 1.35's own `wget -T` crashes with a segmentation fault.)
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = lab.exec(&[
            "timeout",
            "5",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            "http://web.shop/",
        ]);
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from web\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "wget http://web.shop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
