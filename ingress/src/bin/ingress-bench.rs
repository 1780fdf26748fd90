//! Benchmark: skiff-ingress against Debian's nginx as a reverse proxy to the same
//! loopback backends, measured with `wrk` (small responses, keep-alive, 64
//! connections), plus the backends measured directly as a ceiling.
//!
//! Everything binds 127.0.0.1/127.0.0.2; nginx runs from a temporary config as a
//! child process and is stopped by its PID. Run with a release build:
//!
//! ```text
//! cargo run --release -p skiff-ingress --bin ingress-bench -- [SECONDS [ROUNDS [WORKERS]]]
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_ingress::proxy::Shared;
use skiff_ingress::routes::{self, ClassSelector, Inputs};
use skiff_ingress::testing::{echo_backend, service, simple_ingress, slice};
use skiff_ingress::IngressConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const HOST: &str = "bench.test";

/// One wrk result.
#[derive(Debug, Default)]
struct Result {
    requests_per_sec: f64,
    requests: u64,
    p50: String,
    p99: String,
    errors: String,
    /// CPU time of the proxy's own threads/processes per request, user and system,
    /// in microseconds (the load-independent measure on a shared machine).
    cpu_us: Option<(f64, f64)>,
}

/// Whose CPU time a run is charged to.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// This process's `ingress-*` proxy threads.
    Skiff,
    /// The worker processes of the nginx master with this PID.
    Nginx(u32),
    /// Not measured (the backends share this process's runtime threads).
    Backend,
}

/// utime and stime (clock ticks) from a `/proc/.../stat` line.
fn stat_times(stat: &str) -> Option<(u64, u64, u32)> {
    // Fields after the parenthesised command name: state ppid ... utime(14) stime(15).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.get(11)?.parse().ok()?,
        f.get(12)?.parse().ok()?,
        f.get(1)?.parse().ok()?,
    ))
}

/// User and system clock ticks used so far by `target`'s proxy threads/processes.
fn cpu_ticks(target: Target) -> (u64, u64) {
    let dir = match target {
        Target::Skiff => "/proc/self/task",
        Target::Nginx(_) => "/proc",
        Target::Backend => return (0, 0),
    };
    let mut total = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return total;
    };
    for e in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let comm = stat
            .split_once('(')
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map_or("", |(c, _)| c);
        let Some((user, system, ppid)) = stat_times(&stat) else {
            continue;
        };
        let keep = match target {
            Target::Skiff => comm.starts_with("ingress-"),
            Target::Nginx(master) => ppid == master,
            Target::Backend => false,
        };
        if keep {
            total.0 += user;
            total.1 += system;
        }
    }
    total
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Stops nginx (master and workers, via the master's SIGTERM) when dropped.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_nginx(backends: &[SocketAddr]) -> std::result::Result<(Nginx, u16), BoxError> {
    let dir = std::env::temp_dir().join(format!("ski-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let servers: String = backends
        .iter()
        .map(|b| format!("        server {b};\n"))
        .collect();
    let d = dir.display();
    // The usual tuned reverse-proxy setup: upstream keep-alive, HTTP/1.1 to the
    // backends, no access log, one worker per core.
    let conf = format!(
        r#"daemon off;
master_process on;
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 100000;
    upstream backends {{
{servers}        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        server_name {HOST};
        location / {{
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }}
    }}
}}
"#
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            format!("starting nginx failed: {e}; install it with apt-get install -y nginx")
        })?;
    let nginx = Nginx { child, dir };
    wait_listening(port)?;
    Ok((nginx, port))
}

fn wait_listening(port: u16) -> std::result::Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("nothing listens on 127.0.0.1:{port} after 5 s").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Runs `wrk -t2 -c64 -dNs --latency` with the benchmark Host header.
async fn wrk(port: u16, seconds: u64) -> std::result::Result<Result, BoxError> {
    let out = tokio::process::Command::new("wrk")
        .args([
            "-t2",
            "-c64",
            &format!("-d{seconds}s"),
            "--latency",
            "-H",
            &format!("Host: {HOST}"),
        ])
        .arg(format!("http://127.0.0.1:{port}/"))
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("running wrk failed: {e}; install it with apt-get install -y wrk"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    parse_wrk(&text).ok_or_else(|| format!("unexpected wrk output:\n{text}").into())
}

fn parse_wrk(text: &str) -> Option<Result> {
    let mut r = Result::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("Requests/sec:") => r.requests_per_sec = words.next()?.parse().ok()?,
            Some(n) if line.contains(" requests in ") => r.requests = n.parse().ok()?,
            Some("50%") => r.p50 = words.next()?.to_string(),
            Some("99%") => r.p99 = words.next()?.to_string(),
            Some("Non-2xx") | Some("Socket") => r.errors.push_str(line.trim()),
            _ => {}
        }
    }
    (r.requests_per_sec > 0.0).then_some(r)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::result::Result<(), BoxError> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();

    // Two backend "pods" on the same port of two loopback addresses.
    let first = echo_backend("127.0.0.1:0".parse()?, "pod-1", shutdown.clone()).await?;
    let second = echo_backend(
        SocketAddr::new("127.0.0.2".parse()?, first.port()),
        "pod-2",
        shutdown.clone(),
    )
    .await?;
    let backends = [first, second];

    // skiff-ingress, in-process, with a table built from real objects.
    let sel = ClassSelector {
        class_name: "skiff".into(),
        controller: "bench".into(),
        claim_classless: true,
    };
    let inputs = Inputs {
        ingresses: vec![simple_ingress(
            "default",
            "bench",
            Some(HOST),
            &[("/", "Prefix", "web", 80)],
        )],
        services: vec![service("default", "web", &[("http", 80)])],
        slices: vec![slice(
            "default",
            "web",
            "http",
            first.port(),
            &[("127.0.0.1", true), ("127.0.0.2", true)],
        )],
        ..Default::default()
    };
    let shared = Arc::new(Shared::default());
    shared.routes.store(Arc::new(routes::build(&inputs, &sel)));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let skiff_port = listener.local_addr()?.port();
    // Optional third argument: proxy worker threads (default: one per CPU).
    let workers: usize = std::env::args()
        .nth(3)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(0);
    let config = IngressConfig {
        workers,
        ..IngressConfig::default()
    };
    let (s, t) = (shared.clone(), shutdown.clone());
    tokio::spawn(async move { skiff_ingress::serve(&config, s, Some(listener), None, t).await });

    let (nginx, nginx_port) = start_nginx(&backends)?;
    // Stop cleanly on Ctrl-C or SIGTERM so that the nginx guard stops nginx.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = measure(skiff_port, (nginx_port, nginx.child.id()), first.port(), seconds) => {
            drop(nginx);
            let (rows, seconds) = r?;
            report(&rows, seconds);
        }
        _ = tokio::signal::ctrl_c() => eprintln!("interrupted"),
        _ = term.recv() => eprintln!("terminated"),
    }
    Ok(())
}

type Row = (usize, &'static str, Result);

async fn measure(
    skiff_port: u16,
    (nginx_port, nginx_pid): (u16, u32),
    backend_port: u16,
    seconds: u64,
) -> std::result::Result<(Vec<Row>, u64), BoxError> {
    // Rounds alternate the order, because on a small shared machine the background
    // load drifts; every measured run follows a short warm-up of the same target.
    let rounds: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2);
    let mut rows = Vec::new();
    for round in 0..rounds {
        let mut order = vec![
            ("skiff-ingress", skiff_port, Target::Skiff),
            ("nginx", nginx_port, Target::Nginx(nginx_pid)),
        ];
        if round % 2 == 1 {
            order.reverse();
        }
        for (name, port, target) in order {
            wrk(port, 2).await?;
            rows.push((round + 1, name, measured(port, seconds, target).await?));
        }
    }
    rows.push((
        0,
        "backend direct (ceiling)",
        measured(backend_port, seconds, Target::Backend).await?,
    ));
    Ok((rows, seconds))
}

/// One wrk run with the CPU time `target` spent during it.
async fn measured(
    port: u16,
    seconds: u64,
    target: Target,
) -> std::result::Result<Result, BoxError> {
    let before = cpu_ticks(target);
    let mut r = wrk(port, seconds).await?;
    let after = cpu_ticks(target);
    if !matches!(target, Target::Backend) && r.requests > 0 {
        let per_req = |ticks: u64| ticks as f64 * 1e6 / clock_ticks_per_sec() / r.requests as f64;
        r.cpu_us = Some((per_req(after.0 - before.0), per_req(after.1 - before.1)));
    }
    Ok(r)
}

fn report(rows: &[Row], seconds: u64) {
    let cmd =
        format!("wrk -t2 -c64 -d{seconds}s --latency -H 'Host: {HOST}' http://127.0.0.1:PORT/");
    println!("command: {cmd}");
    let nginx_version = Command::new("nginx")
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    println!(
        "{nginx_version}; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| round | target | requests/s | p50 | p99 | CPU µs/req (user+sys) | errors |");
    println!("|---:|---|---:|---:|---:|---:|---|");
    for (round, name, r) in rows {
        let errors = if r.errors.is_empty() {
            "none"
        } else {
            &r.errors
        };
        let cpu = r.cpu_us.map_or("-".to_string(), |(u, s)| {
            format!("{:.1} ({u:.1}+{s:.1})", u + s)
        });
        println!(
            "| {round} | {name} | {:.0} | {} | {} | {cpu} | {errors} |",
            r.requests_per_sec, r.p50, r.p99
        );
    }
}
