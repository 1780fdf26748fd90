//! proxy-bench: how long syncing the proxy's rules takes at 1,000 / 5,000 / 10,000
//! services, against the floor of one raw `iptables-restore` of the same text into an
//! empty table and a naive full re-apply onto the populated table.
//!
//! Runs the real iptables inside a network namespace it creates (`skpbench<pid>`) and
//! deletes afterwards; nothing touches the host namespace. Needs root.
//!
//! `cargo run --release -p skiff-proxy --bin proxy-bench -- [--sizes 1000,5000,10000] [--endpoints 1,10]`
//!
//! Single-change columns are the median of five rounds; the last column is the load
//! average when the row finished.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use skiff_proxy::backend::{IptablesBackend, RuleBackend};
use skiff_proxy::conntrack::RecordingConntrack;
use skiff_proxy::diff::{self, TableState};
use skiff_proxy::model::{Endpoint, Protocol, ProxyModel, ServicePortInfo, ServicePortName};
use skiff_proxy::rules::{self, NodeInfo, Table};
use skiff_proxy::sync::Syncer;

/// Deletes the namespace on drop, also when a step panics.
struct Netns(String);

impl Netns {
    fn create(name: &str) -> Netns {
        let ok = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "cannot create network namespace {name}: run as root with iproute2 installed"
        );
        Netns(name.to_string())
    }

    fn prefix(&self) -> Vec<String> {
        vec!["nsenter".into(), format!("--net=/var/run/netns/{}", self.0)]
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(n: usize, base: [u8; 2]) -> Ipv4Addr {
    Ipv4Addr::new(
        base[0],
        base[1].wrapping_add((n >> 16) as u8),
        (n >> 8) as u8,
        n as u8,
    )
}

fn service(i: usize, endpoints: usize) -> ServicePortInfo {
    let name = ServicePortName {
        namespace: "bench".into(),
        name: format!("svc-{i}"),
        port: "http".into(),
        protocol: Protocol::Tcp,
    };
    ServicePortInfo {
        name,
        cluster_ip: Some(ip(i, [10, 96])),
        port: 80,
        node_port: None,
        external_ips: vec![],
        affinity_timeout: None,
        external_local: false,
        endpoints: (0..endpoints)
            .map(|e| Endpoint {
                ip: ip(i * 16 + e, [10, 128]),
                port: 8080,
                ready: true,
                serving: true,
                terminating: false,
                node_name: None,
            })
            .collect(),
    }
}

fn model(services: usize, endpoints: usize) -> ProxyModel {
    ProxyModel {
        ports: (0..services)
            .map(|i| service(i, endpoints))
            .map(|s| (s.name.clone(), s))
            .collect(),
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

const ROUNDS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// The 1-minute load average (the machine is shared: numbers are only comparable
/// with the load they ran under).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn parse_list(args: &[String], flag: &str, default: &[usize]) -> Vec<usize> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes = parse_list(&args, "--sizes", &[1000, 5000, 10000]);
    let endpoint_counts = parse_list(&args, "--endpoints", &[1, 10]);
    let node = NodeInfo {
        name: "bench".into(),
        node_port_addresses: vec![],
        cluster_cidr: Some("10.128.0.0/9".parse().unwrap()),
    };

    println!("| services | endpoints each | rules | compute | raw restore into empty table (floor) | skiff first (full) sync | naive full re-apply | skiff: one endpoint added | floor: any one-chain restore | skiff: one service added | skiff: one service removed | skiff: idle sync | canary check | load (1 min) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &sizes {
        for &eps in &endpoint_counts {
            let m = model(n, eps);
            let (desired, t_compute) = timed(|| rules::compute(&m, &node));
            let full_text = diff::full(&desired, &BTreeMap::new());

            // Floor: the same text, one restore, fresh namespace.
            let t_floor = {
                let ns = Netns::create(&format!("skpbench{}f", std::process::id()));
                let b = IptablesBackend::with_prefix(ns.prefix());
                let (r, t) = timed(|| b.restore(&full_text));
                r.expect("raw restore");
                t
            };

            let ns = Netns::create(&format!("skpbench{}s", std::process::id()));
            let backend = IptablesBackend::with_prefix(ns.prefix());
            let mut syncer =
                Syncer::new(backend.clone(), RecordingConntrack::default(), node.clone());
            let input = m.clone();
            let (r, t_first) = timed(|| syncer.sync(input, false));
            r.expect("first sync");

            // Single changes, several rounds each; the median is reported because the
            // machine is shared and single samples are noisy.
            let mut current = m.clone();
            let (mut t_ep, mut t_svc, mut t_del, mut t_idle, mut r_ep, mut t_one) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            for round in 0..ROUNDS {
                // One endpoint added to one service.
                let target = current
                    .ports
                    .values_mut()
                    .nth(n / 2 + round)
                    .expect("a service");
                let extra = Endpoint {
                    ip: Ipv4Addr::new(10, 127, 255, round as u8),
                    port: 8080,
                    ready: true,
                    serving: true,
                    terminating: false,
                    node_name: None,
                };
                target.endpoints.push(extra);
                let input = current.clone();
                let (r, t) = timed(|| syncer.sync(input, false));
                r_ep.push(r.expect("endpoint sync").restore);
                t_ep.push(t);

                // One new service.
                let new_svc = service(n + 1 + round, eps);
                current.ports.insert(new_svc.name.clone(), new_svc);
                let input = current.clone();
                let (r, t) = timed(|| syncer.sync(input, false));
                r.expect("service sync");
                t_svc.push(t);

                // One service removed (its KUBE-SERVICES rule needs a `-D`).
                let gone = current
                    .ports
                    .keys()
                    .nth(n / 3 + round)
                    .expect("a service")
                    .clone();
                current.ports.remove(&gone);
                let input = current.clone();
                let (r, t) = timed(|| syncer.sync(input, false));
                r.expect("service removal sync");
                t_del.push(t);

                let input = current.clone();
                let (r, t) = timed(|| syncer.sync(input, false));
                r.expect("idle sync");
                t_idle.push(t);

                // The least any change can cost: one service chain rewritten with the
                // same rules (a single small transaction; the kernel still checks
                // every jump reachable in the table when it commits).
                let some = current
                    .ports
                    .values()
                    .nth(n / 4 + round)
                    .expect("a service");
                let (name, chain) = rules::port_fragment(some, &node)
                    .chains
                    .into_iter()
                    .find(|(name, _)| name.starts_with("KUBE-SVC-"))
                    .expect("a service chain");
                let mut text = format!("*nat\n:{name} - [0:0]\n");
                for rule in chain.all_rules() {
                    text.push_str(&format!("-A {name} {rule}\n"));
                }
                text.push_str("COMMIT\n");
                let (r, t) = timed(|| backend.restore(&text));
                r.expect("one-chain rewrite");
                t_one.push(t);
            }
            let m3 = current;

            let (r, t_canary) = timed(|| syncer.rules_intact());
            assert!(r.expect("canary check"), "canary missing after sync");

            // Naive: rewrite every chain of the populated table. (Not from iptables-save:
            // it crashes on tables this big.)
            let naive_desired = rules::compute(&m3, &node);
            let existing: BTreeMap<Table, TableState> = Table::ALL
                .iter()
                .map(|t| {
                    let st = TableState {
                        chains: naive_desired.table(*t).keys().cloned().collect(),
                        builtin_jumps: rules::builtin_jumps()
                            .iter()
                            .filter(|j| j.table == *t)
                            .map(|j| (j.chain.to_string(), j.target.to_string()))
                            .collect(),
                    };
                    (*t, st)
                })
                .collect();
            let naive_text = diff::full(&naive_desired, &existing);
            let (r, t_naive) = timed(|| backend.restore(&naive_text));
            r.expect("naive re-apply");

            let one_endpoint = format!("{} (restore {})", secs(median(t_ep)), secs(median(r_ep)));
            println!(
                "| {n} | {eps} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                desired.rule_count(),
                secs(t_compute),
                secs(t_floor),
                secs(t_first),
                secs(t_naive),
                one_endpoint,
                secs(median(t_one)),
                secs(median(t_svc)),
                secs(median(t_del)),
                secs(median(t_idle)),
                secs(t_canary),
                load_average()
            );
        }
    }
}
