//! The proxy's rules against the real kernel: a small lab of network namespaces (a
//! "node" with a bridge of backend "pods", a client pod on its own subnet, and an
//! outside client machine), busybox httpd backends that answer with their own name, and
//! the real `iptables-restore` run inside the node namespace through `nsenter`.
//!
//! Needs root, `ip`, `nsenter`, `iptables-restore` and `/bin/busybox` (the UDP test also
//! `conntrack` and `python3`); without them each test prints `skipped: <why>` and passes. Everything lives in namespaces named
//! `skp<pid><tag>...` that a Drop guard deletes, with the processes it started.
//! No route, address or rule is added to the host namespace.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skiff_proxy::backend::{IptablesBackend, RuleBackend};
use skiff_proxy::conntrack::ConntrackTool;
use skiff_proxy::model::{Endpoint, Protocol, ProxyModel, ServicePortInfo, ServicePortName};
use skiff_proxy::rules::{NodeInfo, Table};
use skiff_proxy::sync::{cleanup, sync_loop, SyncConfig, SyncMode, Syncer};

const CLUSTER_IP: &str = "10.96.0.10";
const NODE_PORT: u16 = 30080;
const NODE_OUTSIDE_IP: &str = "192.168.77.1";
const NODE_NAME: &str = "lab-node";

fn prerequisites() -> Result<(), String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
        });
    if uid.as_deref() != Some("0") {
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
            return Err(format!(
                "{tool} not found (install iproute2, util-linux, iptables)"
            ));
        }
    }
    if !std::path::Path::new("/bin/busybox").exists() {
        return Err("/bin/busybox not found (install busybox-static)".into());
    }
    Ok(())
}

macro_rules! require_prerequisites {
    () => {
        if let Err(why) = prerequisites() {
            println!("skipped: {why}");
            return;
        }
    };
}

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

fn must(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lab. Dropping it kills the backends and deletes the namespaces (and with them
/// every veth and bridge inside).
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    dir: PathBuf,
    backends: Vec<(String, Ipv4Addr)>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    fn ns(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }

    fn netns_path(&self, role: &str) -> String {
        format!("--net=/var/run/netns/{}", self.ns(role))
    }

    /// `ip -n <ns> args...`
    fn ip(&self, role: &str, args: &str) {
        let ns = self.ns(role);
        let mut full = vec!["ip", "-n", ns.as_str()];
        full.extend(args.split_whitespace());
        must(&full);
    }

    fn exec(&self, role: &str, args: &[&str]) -> Output {
        let net = self.netns_path(role);
        let mut full = vec!["nsenter", net.as_str()];
        full.extend_from_slice(args);
        run(&full)
    }

    fn add_ns(&mut self, role: &str) {
        let ns = self.ns(role);
        must(&["ip", "netns", "add", &ns]);
        self.namespaces.push(ns);
        self.ip(role, "link set lo up");
    }

    /// Builds: node `n` (bridge br0 10.244.0.1/24 with three backends, veth to client
    /// pod `p` on 10.244.1.0/24, veth to outside client `c` on 192.168.77.0/24).
    fn new(tag: &str) -> Lab {
        let prefix = format!("skp{}{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        let _ = std::fs::create_dir_all(&dir);
        let mut lab = Lab {
            prefix,
            namespaces: Vec::new(),
            children: Vec::new(),
            dir,
            backends: Vec::new(),
        };
        lab.add_ns("n");
        let node_net = lab.netns_path("n");
        must(&[
            "nsenter",
            &node_net,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
        ]);
        lab.ip("n", "link add br0 type bridge");
        lab.ip("n", "addr add 10.244.0.1/24 dev br0");
        lab.ip("n", "link set br0 up");

        for i in 0..3 {
            let role = format!("b{i}");
            let ip: Ipv4Addr = format!("10.244.0.{}", 10 + i).parse().unwrap();
            lab.add_ns(&role);
            lab.ip(
                "n",
                &format!(
                    "link add vb{i} type veth peer name eth0 netns {}",
                    lab.ns(&role)
                ),
            );
            lab.ip("n", &format!("link set vb{i} master br0 up"));
            lab.ip(&role, &format!("addr add {ip}/24 dev eth0"));
            lab.ip(&role, "link set eth0 up");
            lab.ip(&role, "route add default via 10.244.0.1");
            let root = lab.dir.join(&role);
            std::fs::create_dir_all(&root).unwrap();
            std::fs::write(root.join("index.html"), format!("{role}\n")).unwrap();
            let child = Command::new("nsenter")
                .arg(lab.netns_path(&role))
                .args(["/bin/busybox", "httpd", "-f", "-p", "8080", "-h"])
                .arg(&root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start busybox httpd");
            lab.children.push(child);
            lab.backends.push((role, ip));
        }

        // A pod on its own subnet: its traffic to backends is routed by the node, so
        // conntrack sees both directions without br_netfilter.
        lab.add_ns("p");
        lab.ip(
            "n",
            &format!("link add vp type veth peer name eth0 netns {}", lab.ns("p")),
        );
        lab.ip("n", "addr add 10.244.1.1/24 dev vp");
        lab.ip("n", "link set vp up");
        lab.ip("p", "addr add 10.244.1.2/24 dev eth0");
        lab.ip("p", "link set eth0 up");
        lab.ip("p", "route add default via 10.244.1.1");

        // A machine outside the cluster, reaching the node on its "public" address.
        lab.add_ns("c");
        lab.ip(
            "n",
            &format!("link add vc type veth peer name eth0 netns {}", lab.ns("c")),
        );
        lab.ip("n", &format!("addr add {NODE_OUTSIDE_IP}/24 dev vc"));
        lab.ip("n", "link set vc up");
        lab.ip("c", "addr add 192.168.77.2/24 dev eth0");
        lab.ip("c", "link set eth0 up");
        lab.ip("c", &format!("route add default via {NODE_OUTSIDE_IP}"));
        // Like a real node, the node routes everything else upstream (here: to the
        // client machine, which drops it), so a service IP without rules is "routable"
        // and only the proxy's REJECT can make it fail fast.
        lab.ip("n", "route add default via 192.168.77.2");

        // Wait until every backend answers directly.
        for (name, ip) in lab.backends.clone() {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match lab.get("p", &format!("http://{ip}:8080/")) {
                    Ok(body) if body == name => break,
                    other if Instant::now() > deadline => {
                        panic!("backend {name} not answering: {other:?}")
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        lab
    }

    /// HTTP GET from a namespace (busybox `nc` as the client: Debian's static busybox
    /// `wget` crashes); the body, or the error text.
    fn get(&self, role: &str, url: &str) -> Result<String, String> {
        self.get_with_timeout(role, url, 3)
    }

    fn get_with_timeout(&self, role: &str, url: &str, timeout_s: u32) -> Result<String, String> {
        use std::io::Write;
        let hostport = url.trim_start_matches("http://").trim_end_matches('/');
        let (host, port) = hostport.split_once(':').unwrap_or((hostport, "80"));
        let mut child = Command::new("nsenter")
            .arg(self.netns_path(role))
            .args([
                "/bin/busybox",
                "nc",
                "-w",
                &timeout_s.to_string(),
                host,
                port,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run busybox nc");
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(b"GET / HTTP/1.0\r\n\r\n");
        let out = child.wait_with_output().expect("wait for busybox nc");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        match text.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
                Ok(body.trim().to_string())
            }
            _ => Err(format!(
                "{} {}",
                String::from_utf8_lossy(&out.stderr).trim(),
                text.trim()
            )),
        }
    }

    fn prefix_args(&self) -> Vec<String> {
        vec!["nsenter".into(), self.netns_path("n")]
    }

    fn syncer(&self, node: NodeInfo) -> Syncer<IptablesBackend, ConntrackTool> {
        Syncer::new(
            IptablesBackend::with_prefix(self.prefix_args()),
            ConntrackTool::with_prefix(self.prefix_args()),
            node,
        )
    }

    /// The web service with the given backends (index into `backends`, node name).
    fn model(&self, endpoints: &[(usize, &str)], affinity: Option<u32>, local: bool) -> ProxyModel {
        let name = ServicePortName {
            namespace: "default".into(),
            name: "web".into(),
            port: "http".into(),
            protocol: Protocol::Tcp,
        };
        let eps = endpoints
            .iter()
            .map(|(i, node)| Endpoint {
                ip: self.backends[*i].1,
                port: 8080,
                ready: true,
                serving: true,
                terminating: false,
                node_name: Some(node.to_string()),
            })
            .collect();
        let info = ServicePortInfo {
            name: name.clone(),
            cluster_ip: Some(CLUSTER_IP.parse().unwrap()),
            port: 80,
            node_port: Some(NODE_PORT),
            external_ips: vec![],
            affinity_timeout: affinity,
            external_local: local,
            endpoints: eps,
        };
        ProxyModel {
            ports: [(name, info)].into(),
        }
    }
}

fn node() -> NodeInfo {
    NodeInfo {
        name: NODE_NAME.into(),
        node_port_addresses: vec![],
        cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
    }
}

const ALL_LOCAL: [(usize, &str); 3] = [(0, NODE_NAME), (1, NODE_NAME), (2, NODE_NAME)];

fn names_seen(
    lab: &Lab,
    role: &str,
    url: &str,
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..n {
        let body = lab
            .get(role, url)
            .unwrap_or_else(|e| panic!("GET {url} from {role} failed: {e}"));
        *seen.entry(body).or_insert(0) += 1;
    }
    seen
}

#[test]
fn cluster_ip_reaches_every_backend_and_leaves_other_rules_alone() {
    require_prerequisites!();
    let lab = Lab::new("a");
    // Someone else's rules in the node namespace, before and after us.
    let other = "*nat\n:OTHER - [0:0]\n-A OTHER -j RETURN\n-A PREROUTING -j OTHER\nCOMMIT\n*filter\n-A INPUT -p tcp --dport 9 -j ACCEPT\nCOMMIT\n";
    IptablesBackend::with_prefix(lab.prefix_args())
        .restore(other)
        .unwrap();

    let mut syncer = lab.syncer(node());
    syncer
        .sync(lab.model(&ALL_LOCAL, None, false), false)
        .unwrap();

    let url = format!("http://{CLUSTER_IP}/");
    let seen = names_seen(&lab, "p", &url, 30);
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        vec!["b0", "b1", "b2"],
        "spread: {seen:?}"
    );

    // Dropping a backend: it gets no more traffic (incremental sync).
    let r = syncer
        .sync(lab.model(&ALL_LOCAL[..2], None, false), false)
        .unwrap();
    assert!(r.restore_bytes > 0);
    let seen = names_seen(&lab, "p", &url, 15);
    assert!(
        !seen.contains_key("b2"),
        "removed endpoint still used: {seen:?}"
    );

    let backend = IptablesBackend::with_prefix(lab.prefix_args());
    let nat = backend.save(Table::Nat).unwrap();
    assert!(
        nat.contains("-A PREROUTING -j OTHER") && nat.contains("-A OTHER -j RETURN"),
        "{nat}"
    );

    // Cleanup removes our chains and jumps, nothing else.
    cleanup(&backend).unwrap();
    let nat = backend.save(Table::Nat).unwrap();
    let filter = backend.save(Table::Filter).unwrap();
    assert!(
        !nat.contains("KUBE-") && !filter.contains("KUBE-"),
        "left behind:\n{nat}\n{filter}"
    );
    assert!(nat.contains("-A PREROUTING -j OTHER"), "{nat}");
    assert!(filter.contains("--dport 9 -j ACCEPT"), "{filter}");
    assert!(
        lab.get("p", &url).is_err(),
        "service still reachable after cleanup"
    );
}

#[test]
fn node_port_from_an_outside_client() {
    require_prerequisites!();
    let lab = Lab::new("b");
    let mut syncer = lab.syncer(node());
    let url = format!("http://{NODE_OUTSIDE_IP}:{NODE_PORT}/");

    // Policy Cluster: every endpoint serves outside clients.
    syncer
        .sync(lab.model(&ALL_LOCAL, None, false), false)
        .unwrap();
    let seen = names_seen(&lab, "c", &url, 30);
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        vec!["b0", "b1", "b2"],
        "spread: {seen:?}"
    );

    // Policy Local: only the endpoint on this node serves outside clients ...
    let mixed = [(0, NODE_NAME), (1, "elsewhere"), (2, "elsewhere")];
    syncer.sync(lab.model(&mixed, None, true), false).unwrap();
    let seen = names_seen(&lab, "c", &url, 12);
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        vec!["b0"],
        "{seen:?}"
    );
    // ... while pods still use all of them through the node port.
    let seen = names_seen(&lab, "p", &format!("http://10.244.1.1:{NODE_PORT}/"), 30);
    assert_eq!(seen.len(), 3, "{seen:?}");

    // No local endpoint: outside traffic is dropped (a timeout, not a refusal).
    syncer
        .sync(lab.model(&[(1, "elsewhere")], None, true), false)
        .unwrap();
    let err = lab
        .get_with_timeout("c", &url, 1)
        .expect_err("no local endpoint, yet the request succeeded");
    assert!(!err.contains("refused"), "{err}");
}

#[test]
fn client_ip_affinity_pins_a_client() {
    require_prerequisites!();
    let lab = Lab::new("c");
    let mut syncer = lab.syncer(node());
    syncer
        .sync(lab.model(&ALL_LOCAL, Some(300), false), false)
        .unwrap();
    let url = format!("http://{CLUSTER_IP}/");
    let seen = names_seen(&lab, "p", &url, 15);
    assert_eq!(seen.len(), 1, "affinity broken: {seen:?}");
    // The outside client through the node port is pinned as well (to whichever).
    let seen = names_seen(
        &lab,
        "c",
        &format!("http://{NODE_OUTSIDE_IP}:{NODE_PORT}/"),
        10,
    );
    assert_eq!(seen.len(), 1, "affinity broken for node port: {seen:?}");
}

#[test]
fn scaling_to_zero_rejects_fast() {
    require_prerequisites!();
    let lab = Lab::new("d");
    let mut syncer = lab.syncer(node());
    syncer
        .sync(lab.model(&ALL_LOCAL, None, false), false)
        .unwrap();
    assert!(lab.get("p", &format!("http://{CLUSTER_IP}/")).is_ok());

    syncer.sync(lab.model(&[], None, false), false).unwrap();
    for (role, url) in [
        ("p", format!("http://{CLUSTER_IP}/")),
        ("c", format!("http://{NODE_OUTSIDE_IP}:{NODE_PORT}/")),
    ] {
        let started = Instant::now();
        let err = lab
            .get(role, &url)
            .expect_err("no endpoints, yet the request succeeded");
        let took = started.elapsed();
        assert!(
            err.contains("refused"),
            "{role}: expected connection refused, got {err:?}"
        );
        // The client's own timeout is 3 s: a refusal well under it means REJECT, not a hang.
        assert!(took < Duration::from_millis(1500), "{role}: took {took:?}");
    }

    // And back: the first endpoint makes it reachable again.
    syncer
        .sync(lab.model(&ALL_LOCAL[..1], None, false), false)
        .unwrap();
    assert_eq!(
        lab.get("p", &format!("http://{CLUSTER_IP}/")).unwrap(),
        "b0"
    );
}

#[test]
fn flushed_rules_come_back_within_the_check_period() {
    require_prerequisites!();
    let lab = Lab::new("e");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let model = Arc::new(Mutex::new(lab.model(&ALL_LOCAL, None, false)));
    let changes = Arc::new(tokio::sync::Notify::new());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let cfg = SyncConfig {
        min_sync_period: Duration::from_millis(100),
        check_period: Duration::from_millis(500),
        full_sync_period: Duration::from_secs(3600),
    };
    let snap = model.clone();
    let task = rt.spawn(sync_loop(
        lab.syncer(node()),
        move || snap.lock().unwrap().clone(),
        changes.clone(),
        cfg,
        shutdown.clone(),
    ));

    let url = format!("http://{CLUSTER_IP}/");
    let wait_for = |what: &str, ok: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(8);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("first sync", &|| lab.get("p", &url).is_ok());

    for args in [
        ["iptables", "-t", "nat", "-F"],
        ["iptables", "-t", "filter", "-F"],
    ] {
        let out = lab.exec("n", &args);
        assert!(out.status.success());
    }
    let flushed_at = Instant::now();
    wait_for("rules restored after flush", &|| lab.get("p", &url).is_ok());
    eprintln!("rules back {:?} after the flush", flushed_at.elapsed());

    // A change through the loop still applies after the repair.
    *model.lock().unwrap() = lab.model(&[], None, false);
    changes.notify_one();
    wait_for("reject after scale to zero", &|| {
        lab.get("p", &url).is_err_and(|e| e.contains("refused"))
    });

    shutdown.cancel();
    rt.block_on(task).unwrap();
}

/// A UDP echo-with-name server: `python3` because Debian's busybox `nc` has no UDP.
const UDP_SERVER: &str = "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',5353))\nwhile True:\n    d,a=s.recvfrom(512)\n    s.sendto(sys.argv[1].encode(),a)\n";
/// Sends one datagram from a fixed source port, so every query is the same flow.
const UDP_CLIENT: &str = "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',40000))\ns.settimeout(2)\ns.sendto(b'q',(sys.argv[1],53))\nprint(s.recvfrom(512)[0].decode())\n";

#[test]
fn removed_udp_endpoint_loses_its_conntrack_entries() {
    require_prerequisites!();
    for tool in ["conntrack", "python3"] {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            println!("skipped: {tool} not found (install conntrack and python3)");
            return;
        }
    }
    let mut lab = Lab::new("f");
    for i in 0..2 {
        let child = Command::new("nsenter")
            .arg(lab.netns_path(&format!("b{i}")))
            .args(["python3", "-c", UDP_SERVER, &format!("b{i}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start udp server");
        lab.children.push(child);
    }
    let name = ServicePortName {
        namespace: "default".into(),
        name: "dns".into(),
        port: "dns".into(),
        protocol: Protocol::Udp,
    };
    let model = |eps: &[usize]| {
        let info = ServicePortInfo {
            name: name.clone(),
            cluster_ip: Some("10.96.0.53".parse().unwrap()),
            port: 53,
            node_port: None,
            external_ips: vec![],
            affinity_timeout: None,
            external_local: false,
            endpoints: eps
                .iter()
                .map(|i| Endpoint {
                    ip: lab.backends[*i].1,
                    port: 5353,
                    ready: true,
                    serving: true,
                    terminating: false,
                    node_name: None,
                })
                .collect(),
        };
        ProxyModel {
            ports: [(name.clone(), info)].into(),
        }
    };
    let query = || {
        let out = lab.exec("p", &["python3", "-c", UDP_CLIENT, "10.96.0.53"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mut syncer = lab.syncer(node());
    syncer.sync(model(&[0]), false).unwrap();
    // The servers may need a moment to bind.
    let deadline = Instant::now() + Duration::from_secs(5);
    while query() != "b0" {
        assert!(
            Instant::now() < deadline,
            "udp service never answered from b0"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Moving the service to b1 while b0 still runs: without clearing conntrack, the
    // same flow (same source port) would keep going to b0 for the UDP timeout.
    let report = syncer.sync(model(&[1]), false).unwrap();
    assert_eq!(report.stale_flows, 1);
    assert_eq!(query(), "b1");
}

/// Two bare namespaces whose tables are compared; deleted on drop, also on failure.
struct TwinNamespaces(Vec<String>);

impl Drop for TwinNamespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

/// One service port for the equivalence test; endpoints are (ip, node).
fn port(
    name: &str,
    ip: &str,
    protocol: Protocol,
    node_port: Option<u16>,
    affinity: Option<u32>,
    local: bool,
    endpoints: &[(&str, &str)],
) -> ServicePortInfo {
    ServicePortInfo {
        name: ServicePortName {
            namespace: "default".into(),
            name: name.into(),
            port: "p".into(),
            protocol,
        },
        cluster_ip: Some(ip.parse().unwrap()),
        port: 80,
        node_port,
        external_ips: vec![],
        affinity_timeout: affinity,
        external_local: local,
        endpoints: endpoints
            .iter()
            .map(|(ip, node)| Endpoint {
                ip: ip.parse().unwrap(),
                port: 8080,
                ready: true,
                serving: true,
                terminating: false,
                node_name: Some(node.to_string()),
            })
            .collect(),
    }
}

fn model_of(ports: Vec<ServicePortInfo>) -> ProxyModel {
    ProxyModel {
        ports: ports.into_iter().map(|p| (p.name.clone(), p)).collect(),
    }
}

/// `iptables-save -t <table>` without its timestamp comments and packet counters.
fn saved(backend: &IptablesBackend, table: Table) -> String {
    backend
        .save(table)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.rfind(" [") {
            Some(at) if l.starts_with(':') => format!("{} [0:0]", &l[..at]),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The saved table with the rules of the order-free chains (KUBE-SERVICES and the like:
/// every rule matches a distinct destination, so their order carries no meaning) sorted,
/// except for the fixed tail that must stay last. A partial sync inserts a new service's
/// rule at the head of such a chain while a full sync writes them in computed order.
fn canonical(text: &str, model: &ProxyModel, table: Table) -> Vec<String> {
    let desired = skiff_proxy::rules::compute(model, &node());
    let mut out: Vec<String> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let chain = line
            .strip_prefix("-A ")
            .and_then(|r| r.split_whitespace().next());
        let Some(chain) = chain.and_then(|c| desired.table(table).get_key_value(c)) else {
            out.push(line.to_string());
            continue;
        };
        let (name, spec) = chain;
        let mut block = vec![line.to_string()];
        while let Some(next) = lines.peek() {
            if next.starts_with(&format!("-A {name} ")) {
                block.push(lines.next().unwrap().to_string());
            } else {
                break;
            }
        }
        if spec.order_free && block.len() >= spec.tail.len() {
            let body = block.len() - spec.tail.len();
            block[..body].sort();
        }
        out.extend(block);
    }
    out
}

#[test]
fn partial_updates_leave_the_same_ruleset_as_a_full_sync() {
    require_prerequisites!();
    let prefix = format!("skp{}eq", std::process::id());
    let twins = TwinNamespaces(vec![format!("{prefix}a"), format!("{prefix}b")]);
    for ns in &twins.0 {
        must(&["ip", "netns", "add", ns]);
    }
    let backend = |ns: &str| {
        IptablesBackend::with_prefix(vec!["nsenter".into(), format!("--net=/var/run/netns/{ns}")])
    };
    let (partial_ns, full_ns) = (backend(&twins.0[0]), backend(&twins.0[1]));
    let recorder = skiff_proxy::conntrack::RecordingConntrack::default;
    // `partial` syncs incrementally after its first sync; `full` rewrites everything
    // every time, as at start-up and on the periodic resync.
    let mut partial = Syncer::new(partial_ns.clone(), recorder(), node());
    let mut full = Syncer::new(full_ns.clone(), recorder(), node());

    let here = NODE_NAME;
    let web = |eps: &[(&str, &str)]| {
        port(
            "web",
            "10.96.0.10",
            Protocol::Tcp,
            Some(30080),
            None,
            false,
            eps,
        )
    };
    let dns =
        |eps: &[(&str, &str)]| port("dns", "10.96.0.53", Protocol::Udp, None, None, false, eps);
    let sticky = port(
        "sticky",
        "10.96.0.20",
        Protocol::Tcp,
        None,
        Some(600),
        false,
        &[("10.244.0.20", here)],
    );
    let local = port(
        "local",
        "10.96.0.30",
        Protocol::Tcp,
        Some(30081),
        None,
        true,
        &[("10.244.0.30", here), ("10.244.5.30", "elsewhere")],
    );
    let idle =
        |eps: &[(&str, &str)]| port("idle", "10.96.0.40", Protocol::Tcp, None, None, false, eps);
    let api = port(
        "api",
        "10.96.0.50",
        Protocol::Tcp,
        Some(30082),
        None,
        false,
        &[("10.244.0.50", here)],
    );
    let two = [("10.244.0.10", here), ("10.244.0.11", here)];
    let three = [
        ("10.244.0.10", here),
        ("10.244.0.11", here),
        ("10.244.0.12", here),
    ];
    let dns2 = [("10.244.0.53", here), ("10.244.0.54", here)];

    // (step, model, whether the step leaves every order-free chain's rules untouched:
    // then the two tables must be byte for byte the same, order included).
    let base = vec![
        web(&two),
        dns(&dns2),
        sticky.clone(),
        local.clone(),
        idle(&[]),
    ];
    let steps: Vec<(&str, ProxyModel, bool)> = vec![
        ("start", model_of(base.clone()), true),
        (
            "endpoint added",
            model_of(vec![
                web(&three),
                dns(&dns2),
                sticky.clone(),
                local.clone(),
                idle(&[]),
            ]),
            true,
        ),
        (
            "endpoint removed",
            model_of(vec![
                web(&three),
                dns(&dns2[..1]),
                sticky.clone(),
                local.clone(),
                idle(&[]),
            ]),
            true,
        ),
        (
            "scaled to zero",
            model_of(vec![
                web(&[]),
                dns(&dns2[..1]),
                sticky.clone(),
                local.clone(),
                idle(&[]),
            ]),
            false,
        ),
        (
            "back from zero",
            model_of(vec![
                web(&two[..1]),
                dns(&dns2[..1]),
                sticky.clone(),
                local.clone(),
                idle(&[]),
            ]),
            false,
        ),
        (
            "service added",
            model_of(vec![
                web(&two[..1]),
                dns(&dns2[..1]),
                sticky.clone(),
                local.clone(),
                idle(&[]),
                api.clone(),
            ]),
            false,
        ),
        (
            "service removed",
            model_of(vec![
                web(&two[..1]),
                dns(&dns2[..1]),
                local.clone(),
                idle(&[]),
                api.clone(),
            ]),
            false,
        ),
        (
            "node-port service removed",
            model_of(vec![
                web(&two[..1]),
                dns(&dns2[..1]),
                idle(&[]),
                api.clone(),
            ]),
            false,
        ),
        (
            "idle service gets endpoints",
            model_of(vec![
                web(&two[..1]),
                dns(&dns2[..1]),
                idle(&two),
                api.clone(),
            ]),
            false,
        ),
        ("everything goes", model_of(vec![]), true),
    ];
    for (i, (step, model, exact)) in steps.into_iter().enumerate() {
        let p = partial.sync(model.clone(), false).unwrap();
        let f = full.sync(model.clone(), true).unwrap();
        let want_mode = if i == 0 {
            SyncMode::Full
        } else {
            SyncMode::Incremental
        };
        assert_eq!(p.mode, want_mode, "{step}");
        assert_eq!(f.mode, SyncMode::Full, "{step}");
        for table in Table::ALL {
            let (a, b) = (saved(&partial_ns, table), saved(&full_ns, table));
            if exact {
                assert_eq!(a, b, "{step}: {} table differs", table.name());
            }
            assert_eq!(
                canonical(&a, &model, table),
                canonical(&b, &model, table),
                "{step}: {} table differs",
                table.name()
            );
        }
    }
}
