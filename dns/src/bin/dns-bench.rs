//! dns-bench: queries/s and latency of the cluster DNS server with many services.
//!
//! Builds a table of `--services` services (nine in ten ClusterIP with a named port,
//! one in ten headless with three ready endpoints), serves it on 127.0.0.1, and runs a
//! bounded load generator on loopback: `--clients` tasks, each with its own UDP socket,
//! sending one query at a time (a mix of hits, search-path misses as a pod with
//! `ndots:5` makes, and SRV queries) for `--seconds` or `--max-queries`, whichever
//! comes first. Prints queries/s, p50/p99/max latency and lost queries.
//!
//! `--serve ADDR` only serves the table (for an external generator such as dnsperf)
//! for `--seconds`, and writes the query names to `--names FILE` in dnsperf format.
//!
//! Run: `cargo run --release -p skiff-dns --bin dns-bench -- --services 1000 --seconds 10`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::serde_json;
use skiff_dns::{DnsServer, Forwarder, RecordTable, SharedTable};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

struct Args {
    services: usize,
    seconds: u64,
    clients: usize,
    max_queries: u64,
    serve: Option<SocketAddr>,
    names: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        services: 1000,
        seconds: 10,
        clients: 16,
        max_queries: 5_000_000,
        serve: None,
        names: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("bad value for {flag}: {e}");
        match flag.as_str() {
            "--services" => a.services = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => a.seconds = value.parse().map_err(|e| bad(&e))?,
            "--clients" => a.clients = value.parse().map_err(|e| bad(&e))?,
            "--max-queries" => a.max_queries = value.parse().map_err(|e| bad(&e))?,
            "--serve" => a.serve = Some(value.parse().map_err(|e| bad(&e))?),
            "--names" => a.names = Some(value),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    // Bounded load, always.
    a.seconds = a.seconds.clamp(1, 120);
    a.clients = a.clients.clamp(1, 256);
    Ok(a)
}

fn cluster(n: usize) -> (Vec<Service>, Vec<EndpointSlice>) {
    let mut services = Vec::with_capacity(n);
    let mut slices = Vec::new();
    for i in 0..n {
        let ns = format!("ns{}", i % 20);
        let name = format!("svc{i}");
        if i % 10 == 9 {
            services.push(serde_json::from_value(serde_json::json!({"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}})).unwrap());
            let eps: Vec<_> = (0..3).map(|k| serde_json::json!({"addresses": [format!("10.244.{}.{}", i / 250, (i % 250) + k)], "conditions": {"ready": true}})).collect();
            slices.push(serde_json::from_value(serde_json::json!({"metadata": {"name": format!("{name}-x"), "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": eps})).unwrap());
        } else {
            let ip = format!("10.96.{}.{}", i / 250, i % 250 + 1);
            services.push(serde_json::from_value(serde_json::json!({"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})).unwrap());
        }
    }
    (services, slices)
}

/// The query mix: 60% A hits, 30% search-path misses (NXDOMAIN), 10% SRV.
fn names(n: usize) -> Vec<(String, RecordType)> {
    let mut out = Vec::new();
    for i in 0..n {
        let ns = format!("ns{}", i % 20);
        out.push((format!("svc{i}.{ns}.svc.cluster.local."), RecordType::A));
        out.push((format!("svc{i}.{ns}.svc.cluster.local."), RecordType::A));
        out.push((format!("svc{i}.{ns}.svc.cluster.local."), RecordType::A));
        out.push((
            format!("svc{i}.{ns}.{ns}.svc.cluster.local."),
            RecordType::A,
        ));
        out.push((format!("svc{i}.{ns}.svc.svc.cluster.local."), RecordType::A));
        out.push((
            format!("svc{i}.{ns}.svc.cluster.local.cluster.local."),
            RecordType::A,
        ));
        out.push((
            format!("svc{i}.ns{}.svc.cluster.local.", (i + 1) % 20),
            RecordType::A,
        ));
        out.push((format!("svc{i}.{ns}.svc.cluster.local."), RecordType::A));
        out.push((format!("svc{i}.{ns}.svc.cluster.local."), RecordType::A));
        out.push((
            format!("_http._tcp.svc{i}.{ns}.svc.cluster.local."),
            RecordType::SRV,
        ));
    }
    out
}

#[derive(Default)]
struct ClientStats {
    latencies_us: Vec<u32>,
    lost: u64,
    errors: u64,
    nxdomain: u64,
}

async fn client(
    addr: SocketAddr,
    queries: Arc<Vec<Vec<u8>>>,
    start: usize,
    stop: Arc<AtomicBool>,
    budget: u64,
) -> ClientStats {
    let sock = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind client socket");
    let mut stats = ClientStats::default();
    let mut buf = vec![0u8; 4096];
    let mut i = start;
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) && sent < budget {
        let mut q = queries[i % queries.len()].clone();
        let id = (i as u16).wrapping_mul(31);
        q[..2].copy_from_slice(&id.to_be_bytes());
        i += 1;
        sent += 1;
        let t0 = Instant::now();
        if sock.send_to(&q, addr).await.is_err() {
            stats.errors += 1;
            continue;
        }
        loop {
            match tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf)).await {
                Ok(Ok((n, _))) if n >= 4 && buf[..2] == id.to_be_bytes() => {
                    stats
                        .latencies_us
                        .push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    if buf[3] & 0x0f == 3 {
                        stats.nxdomain += 1;
                    } else if buf[3] & 0x0f != 0 {
                        stats.errors += 1;
                    }
                    break;
                }
                Ok(Ok(_)) => continue, // a late answer to an earlier, lost query
                Ok(Err(_)) => {
                    stats.errors += 1;
                    break;
                }
                Err(_) => {
                    stats.lost += 1;
                    break;
                }
            }
        }
    }
    stats
}

fn encode(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(0, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii(name).expect("valid name"),
        qtype,
    ));
    m.to_vec().expect("encode query")
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[idx]) / 1000.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (services, slices) = cluster(args.services);
        let t0 = Instant::now();
        let mut built = RecordTable::build("cluster.local", services.iter(), slices.iter());
        let build_time = t0.elapsed();
        built.serial = 1;
        println!(
            "table: {} services -> {} names, built in {:.2} ms",
            args.services,
            built.len(),
            build_time.as_secs_f64() * 1000.0
        );
        let table: SharedTable = Arc::new(ArcSwap::from_pointee(built));
        let listen = args.serve.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
        let server = DnsServer::bind(
            listen,
            table,
            Forwarder::new(vec![], listen, Duration::from_secs(2)),
        )
        .await?;
        let addr = server.local_addr()?;
        let stop_server = CancellationToken::new();
        let serving = tokio::spawn(server.serve(stop_server.clone()));
        let mix = names(args.services);

        if args.serve.is_some() {
            if let Some(path) = &args.names {
                let text: String = mix
                    .iter()
                    .map(|(n, t)| format!("{} {}\n", n.trim_end_matches('.'), t))
                    .collect();
                std::fs::write(path, text)?;
            }
            println!("serving on {addr} for {} s", args.seconds);
            tokio::time::sleep(Duration::from_secs(args.seconds)).await;
            stop_server.cancel();
            let _ = serving.await;
            return Ok(());
        }

        let queries: Arc<Vec<Vec<u8>>> = Arc::new(mix.iter().map(|(n, t)| encode(n, *t)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let budget = args.max_queries / args.clients as u64;
        let started = Instant::now();
        let tasks: Vec<_> = (0..args.clients)
            .map(|c| {
                tokio::spawn(client(
                    addr,
                    queries.clone(),
                    c * 7919,
                    stop.clone(),
                    budget,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = ClientStats::default();
        for t in tasks {
            let s = t.await?;
            all.latencies_us.extend(s.latencies_us);
            all.lost += s.lost;
            all.errors += s.errors;
            all.nxdomain += s.nxdomain;
        }
        let elapsed = started.elapsed().as_secs_f64();
        stop_server.cancel();
        let _ = serving.await;
        all.latencies_us.sort_unstable();
        let answered = all.latencies_us.len();
        println!(
            "load: {} clients, {:.1} s: {} answered ({} NXDOMAIN), {} lost, {} errors",
            args.clients, elapsed, answered, all.nxdomain, all.lost, all.errors
        );
        println!(
            "result: {:.0} queries/s; latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            answered as f64 / elapsed,
            pct(&all.latencies_us, 0.50),
            pct(&all.latencies_us, 0.99),
            pct(&all.latencies_us, 1.0)
        );
        Ok(())
    })
}
