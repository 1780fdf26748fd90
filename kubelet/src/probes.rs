//! Container probes: liveness, readiness and startup, by httpGet (HTTP, or HTTPS
//! without certificate checks as upstream), tcpSocket or exec.
//!
//! The state machine is pure ([`Params`], [`ProbeState`], [`due`], [`record`]): a probe
//! runs every `periodSeconds` once `initialDelaySeconds` have passed since the
//! container started; `successThreshold` consecutive successes make it pass and
//! `failureThreshold` consecutive failures make it fail. Readiness starts failed
//! (not ready until a success), liveness and startup start undecided. A startup probe
//! gates the other two until it has passed once, and is then no longer run.
//!
//! [`Prober`] is the runner the pod sync calls on each pass: it runs the probes that
//! are due (each bounded by `timeoutSeconds`), keeps their state per container, and
//! reports [`Health`] (for the `ready`/`started` fields), which containers must be
//! killed (failed liveness or startup) and when the next probe is due. HTTP and TCP
//! probes connect from the kubelet's network namespace to the pod IP, as upstream's do.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cri::{api, Runtime};
use crate::pod_sync::Observed;

const SECOND: i64 = 1_000_000_000;

/// Which probe of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// A probe's timing and thresholds with the API defaults applied, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub initial_delay: i64,
    pub period: i64,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Params {
    /// Upstream defaults: period 10 s, timeout 1 s, success 1, failure 3; liveness and
    /// startup probes must use a success threshold of 1.
    pub fn of(probe: &Probe, kind: Kind) -> Params {
        let positive = |v: Option<i32>, default: i32| v.filter(|v| *v > 0).unwrap_or(default);
        let success = if kind == Kind::Readiness {
            positive(probe.success_threshold, 1)
        } else {
            1
        };
        Params {
            initial_delay: probe.initial_delay_seconds.unwrap_or(0).max(0) as i64 * SECOND,
            period: positive(probe.period_seconds, 10) as i64 * SECOND,
            timeout: Duration::from_secs(positive(probe.timeout_seconds, 1) as u64),
            success_threshold: success as u32,
            failure_threshold: positive(probe.failure_threshold, 3) as u32,
        }
    }
}

/// One probe's history for one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeState {
    /// When it last ran (nanoseconds since the epoch).
    pub last_run: Option<i64>,
    pub successes: u32,
    pub failures: u32,
    /// `None` until a threshold is reached.
    pub result: Option<bool>,
}

/// When the probe is next due, for a container started at `started_at`.
pub fn next_due(params: &Params, state: &ProbeState, started_at: i64) -> i64 {
    match state.last_run {
        None => started_at.saturating_add(params.initial_delay),
        Some(last) => last.saturating_add(params.period),
    }
}

/// Whether the probe should run at `now`.
pub fn due(params: &Params, state: &ProbeState, started_at: i64, now: i64) -> bool {
    now >= next_due(params, state, started_at)
}

/// The state after one probe outcome at `now`.
pub fn record(params: &Params, state: &ProbeState, ok: bool, now: i64) -> ProbeState {
    let mut next = state.clone();
    next.last_run = Some(now);
    if ok {
        next.successes = next.successes.saturating_add(1);
        next.failures = 0;
        if next.successes >= params.success_threshold {
            next.result = Some(true);
        }
    } else {
        next.failures = next.failures.saturating_add(1);
        next.successes = 0;
        if next.failures >= params.failure_threshold {
            next.result = Some(false);
        }
    }
    next
}

/// What the prober knows, by runtime container id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub ready: HashMap<String, bool>,
    pub started: HashMap<String, bool>,
}

impl Health {
    pub fn ready(&self, container_id: &str) -> bool {
        self.ready.get(container_id).copied().unwrap_or(false)
    }
    pub fn started(&self, container_id: &str) -> bool {
        self.started.get(container_id).copied().unwrap_or(false)
    }
}

/// A container whose liveness or startup probe failed: the sync stops it and the
/// restart policy takes over.
#[derive(Debug, Clone, PartialEq)]
pub struct Kill {
    pub container_id: String,
    pub container: String,
    pub message: String,
}

/// Something worth a Kubernetes Event on the pod (`Unhealthy`, `Killing`).
pub use crate::events::PodEvent as ProbeEvent;

/// The outcome of one probing pass over a pod.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub health: Health,
    pub kill: Vec<Kill>,
    pub events: Vec<ProbeEvent>,
    /// How long until the next probe of this pod is due.
    pub next: Option<Duration>,
}

/// Which probes of a running container to run, in order, given what is known: the
/// startup probe until it passes, then liveness and readiness. Pure.
pub fn active_kinds(container: &Container, started: bool) -> Vec<(Kind, &Probe)> {
    let mut out = Vec::new();
    if let Some(p) = &container.startup_probe {
        if !started {
            out.push((Kind::Startup, p));
            return out;
        }
    }
    if let Some(p) = &container.liveness_probe {
        out.push((Kind::Liveness, p));
    }
    if let Some(p) = &container.readiness_probe {
        out.push((Kind::Readiness, p));
    }
    out
}

type Key = (String, String, Kind);

/// Runs probes and keeps their state, for every pod of the node.
#[derive(Default)]
pub struct Prober {
    /// (pod uid, container id, kind) -> state.
    states: Mutex<HashMap<Key, ProbeState>>,
}

impl Prober {
    pub fn new() -> Prober {
        Prober::default()
    }

    /// Drops everything known about a pod (it was deleted).
    pub fn forget_pod(&self, uid: &str) {
        self.states.lock().unwrap().retain(|k, _| k.0 != uid);
    }

    /// Runs the due probes of the pod's running app containers and sidecars at `now`.
    pub async fn probe_pod(
        &self,
        runtime: &dyn Runtime,
        pod: &Pod,
        observed: &Observed,
        now: i64,
    ) -> Report {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        // Sidecars (init containers with restartPolicy Always) are probed like app
        // containers; ordinary init containers never are.
        let containers: Vec<&Container> = pod
            .spec
            .as_ref()
            .map(|s| {
                s.init_containers
                    .iter()
                    .flatten()
                    .filter(|c| crate::pod_sync::is_sidecar(c))
                    .chain(s.containers.iter())
                    .collect()
            })
            .unwrap_or_default();
        let sandbox = observed
            .latest_sandbox()
            .filter(|s| s.ready)
            .map(|s| s.id.clone());
        let mut report = Report::default();
        let mut live_ids = HashSet::new();
        let mut next_at: Option<i64> = None;
        for c in containers {
            let Some(k) = observed.latest_container(&c.name) else {
                continue;
            };
            if k.state != api::ContainerState::ContainerRunning
                || Some(&k.sandbox_id) != sandbox.as_ref()
            {
                continue;
            }
            live_ids.insert(k.id.clone());
            let mut started =
                c.startup_probe.is_none() || self.result(&uid, &k.id, Kind::Startup) == Some(true);
            for (kind, probe) in active_kinds(c, started) {
                let params = Params::of(probe, kind);
                let key = (uid.clone(), k.id.clone(), kind);
                let state = self
                    .states
                    .lock()
                    .unwrap()
                    .get(&key)
                    .cloned()
                    .unwrap_or_default();
                let state = if due(&params, &state, k.started_at, now) {
                    let outcome = check(
                        runtime,
                        pod,
                        c,
                        &k.id,
                        &observed.pod_ip,
                        probe,
                        params.timeout,
                    )
                    .await;
                    if let Err(why) = &outcome {
                        let message = format!("{} probe failed: {why}", kind.name());
                        tracing::info!(reason = "Unhealthy", container = %c.name, "{message}");
                        report.events.push(ProbeEvent {
                            container: c.name.clone(),
                            type_: "Warning",
                            reason: "Unhealthy",
                            message,
                        });
                    }
                    let next = record(&params, &state, outcome.is_ok(), now);
                    self.states.lock().unwrap().insert(key, next.clone());
                    if next.result == Some(false) && kind != Kind::Readiness {
                        let message = format!(
                            "container {} failed {} probe, will be restarted",
                            c.name,
                            kind.name().to_lowercase()
                        );
                        tracing::info!(reason = "Killing", container = %c.name, "{message}");
                        report.events.push(ProbeEvent {
                            container: c.name.clone(),
                            type_: "Normal",
                            reason: "Killing",
                            message: message.clone(),
                        });
                        report.kill.push(Kill {
                            container_id: k.id.clone(),
                            container: c.name.clone(),
                            message,
                        });
                    }
                    if kind == Kind::Startup && next.result == Some(true) {
                        started = true;
                    }
                    next
                } else {
                    state
                };
                let at = next_due(&params, &state, k.started_at);
                next_at = Some(next_at.map_or(at, |n| n.min(at)));
                if kind == Kind::Readiness {
                    report
                        .health
                        .ready
                        .insert(k.id.clone(), state.result == Some(true));
                }
            }
            report.health.started.insert(k.id.clone(), started);
        }
        // Containers that are gone (restarted, removed) take their state with them.
        self.states
            .lock()
            .unwrap()
            .retain(|k, _| k.0 != uid || live_ids.contains(&k.1));
        report.next = next_at.map(|at| Duration::from_nanos(at.saturating_sub(now).max(0) as u64));
        report
    }

    fn result(&self, uid: &str, id: &str, kind: Kind) -> Option<bool> {
        self.states
            .lock()
            .unwrap()
            .get(&(uid.to_string(), id.to_string(), kind))
            .and_then(|s| s.result)
    }
}

/// A probe's port: a number, or the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("invalid port {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("container has no port named {name:?}"))
        }
    }
}

/// Whether an `httpGet` scheme asks for TLS (the API's values are `HTTP`, the default,
/// and `HTTPS`).
pub fn is_https(scheme: Option<&str>) -> bool {
    scheme.is_some_and(|s| s.eq_ignore_ascii_case("https"))
}

/// The HTTP/1.1 request an httpGet probe sends.
pub fn http_request(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/skiff\r\nAccept: */*\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// Whether an HTTP response's status line is a probe success (200 to 399).
pub fn http_success(response_head: &str) -> Result<u16, String> {
    let line = response_head.lines().next().unwrap_or_default();
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("malformed HTTP response {line:?}"))?;
    if (200..400).contains(&code) {
        Ok(code)
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

/// One HTTP GET to `host:port` bounded by `timeout`, over TLS when `https` (without
/// verifying the certificate, as upstream's prober does): the status code when it is a
/// success (200 to 399), the failure otherwise. Probes and lifecycle hooks use it.
pub async fn http_get(
    https: bool,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<u16, String> {
    let request = http_request(host, port, path, headers);
    let scheme = if https { "https" } else { "http" };
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("dial tcp {host}:{port}: {e}"))?;
        if https {
            let name = crate::insecure_tls::server_name(host)?;
            let tls = crate::insecure_tls::connector()
                .connect(name, tcp)
                .await
                .map_err(|e| format!("tls handshake with {host}:{port}: {e}"))?;
            exchange_head(tls, &request).await
        } else {
            exchange_head(tcp, &request).await
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("GET {scheme}://{host}:{port}{path}: timeout"))?
}

/// Sends `request` and judges the status line of the answer.
async fn exchange_head<S>(mut stream: S, request: &str) -> Result<u16, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    // The status line is all that matters; read a bounded prefix.
    let mut buf = vec![0u8; 1024];
    let mut n = 0;
    while n < buf.len() && !buf[..n].contains(&b'\n') {
        let got = stream
            .read(&mut buf[n..])
            .await
            .map_err(|e| e.to_string())?;
        if got == 0 {
            break;
        }
        n += got;
    }
    http_success(&String::from_utf8_lossy(&buf[..n]))
}

async fn check(
    runtime: &dyn Runtime,
    pod: &Pod,
    c: &Container,
    id: &str,
    pod_ip: &str,
    probe: &Probe,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(e) = &probe.exec {
        let cmd = e.command.clone().unwrap_or_default();
        let out = runtime
            .exec_sync(id, cmd, timeout)
            .await
            .map_err(|e| e.to_string())?;
        return if out.exit_code == 0 {
            Ok(())
        } else {
            Err(format!(
                "command exited with {}: {}",
                out.exit_code,
                String::from_utf8_lossy(&out.stdout).trim()
            ))
        };
    }
    let connect = |host: String, port: u16| async move {
        tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        .map_err(|_| format!("dial tcp {host}:{port}: timeout"))?
        .map_err(|e| format!("dial tcp {host}:{port}: {e}"))
    };
    if let Some(t) = &probe.tcp_socket {
        let host = t
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_string());
        connect(host, resolve_port(&t.port, c)?).await?;
        return Ok(());
    }
    if let Some(h) = &probe.http_get {
        let host = h
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_string());
        let port = resolve_port(&h.port, c)?;
        let headers: Vec<(String, String)> = h
            .http_headers
            .iter()
            .flatten()
            .map(|x| (x.name.clone(), x.value.clone()))
            .collect();
        return http_get(
            is_https(h.scheme.as_deref()),
            &host,
            port,
            h.path.as_deref().unwrap_or("/"),
            &headers,
            timeout,
        )
        .await
        .map(|_| ());
    }
    // gRPC probes (and probes without a handler) are not run: they count as passing
    // rather than killing containers skiff cannot judge.
    let _ = pod;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::FakeRuntime;
    use crate::pod_sync::{ContainerInfo, SandboxInfo};
    use serde_json::json;

    fn params(success: u32, failure: u32) -> Params {
        Params {
            initial_delay: 5 * SECOND,
            period: 10 * SECOND,
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn defaults_follow_the_api() {
        let p: Probe =
            serde_json::from_value(json!({"exec": {"command": ["true"]}, "successThreshold": 3}))
                .unwrap();
        let r = Params::of(&p, Kind::Readiness);
        assert_eq!(
            (
                r.initial_delay,
                r.period,
                r.timeout,
                r.success_threshold,
                r.failure_threshold
            ),
            (0, 10 * SECOND, Duration::from_secs(1), 3, 3)
        );
        assert_eq!(
            Params::of(&p, Kind::Liveness).success_threshold,
            1,
            "liveness success threshold is always 1"
        );
        let p: Probe = serde_json::from_value(json!({"initialDelaySeconds": 4, "periodSeconds": 2, "timeoutSeconds": 7, "failureThreshold": 1})).unwrap();
        let l = Params::of(&p, Kind::Liveness);
        assert_eq!(
            (l.initial_delay, l.period, l.timeout, l.failure_threshold),
            (4 * SECOND, 2 * SECOND, Duration::from_secs(7), 1)
        );
    }

    #[test]
    fn due_waits_for_the_initial_delay_then_the_period() {
        let p = params(1, 3);
        let fresh = ProbeState::default();
        let cases = [
            (&fresh, 0, 4 * SECOND, false),
            (&fresh, 0, 5 * SECOND, true),
            (&fresh, 100 * SECOND, 104 * SECOND, false),
        ];
        for (state, started, now, want) in cases {
            assert_eq!(
                due(&p, state, started, now),
                want,
                "started={started} now={now}"
            );
        }
        let ran = ProbeState {
            last_run: Some(20 * SECOND),
            ..Default::default()
        };
        assert!(!due(&p, &ran, 0, 29 * SECOND));
        assert!(due(&p, &ran, 0, 30 * SECOND));
    }

    #[test]
    fn thresholds_table() {
        // (success threshold, failure threshold, outcomes) -> result after each outcome
        type Case<'a> = (u32, u32, &'a [bool], &'a [Option<bool>]);
        let cases: [Case; 5] = [
            (1, 3, &[true], &[Some(true)]),
            (1, 3, &[false, false, false], &[None, None, Some(false)]),
            (
                1,
                3,
                &[false, false, true, false, false],
                &[None, None, Some(true), Some(true), Some(true)],
            ),
            (
                2,
                1,
                &[true, false, true, true],
                &[None, Some(false), Some(false), Some(true)],
            ),
            (
                1,
                2,
                &[true, false, false, true],
                &[Some(true), Some(true), Some(false), Some(true)],
            ),
        ];
        for (success, failure, outcomes, want) in cases {
            let p = params(success, failure);
            let mut state = ProbeState::default();
            let mut got = Vec::new();
            for (i, ok) in outcomes.iter().enumerate() {
                state = record(&p, &state, *ok, i as i64);
                got.push(state.result);
            }
            assert_eq!(
                got, want,
                "success={success} failure={failure} outcomes={outcomes:?}"
            );
        }
    }

    #[test]
    fn startup_gates_the_other_probes() {
        let c: Container = serde_json::from_value(json!({"name": "a", "image": "x",
            "startupProbe": {"exec": {"command": ["s"]}}, "livenessProbe": {"exec": {"command": ["l"]}},
            "readinessProbe": {"exec": {"command": ["r"]}}})).unwrap();
        let kinds = |started| {
            active_kinds(&c, started)
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(false), vec![Kind::Startup]);
        assert_eq!(kinds(true), vec![Kind::Liveness, Kind::Readiness]);
    }

    #[test]
    fn ports_http_requests_and_status_codes() {
        let c: Container = serde_json::from_value(
            json!({"name": "a", "image": "x", "ports": [{"name": "http", "containerPort": 8080}]}),
        )
        .unwrap();
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert!(resolve_port(&IntOrString::String("nope".into()), &c).is_err());
        assert!(resolve_port(&IntOrString::Int(0), &c).is_err());
        let req = http_request(
            "10.1.0.2",
            8080,
            "/healthz",
            &[("X-Probe".into(), "1".into())],
        );
        assert!(
            req.starts_with("GET /healthz HTTP/1.1\r\nHost: 10.1.0.2:8080\r\n"),
            "{req}"
        );
        assert!(
            req.contains("X-Probe: 1\r\n") && req.ends_with("\r\n\r\n"),
            "{req}"
        );
        let cases = [
            ("HTTP/1.1 200 OK\r\n", true),
            ("HTTP/1.0 302 Found\r\n", true),
            ("HTTP/1.1 404 Not Found\r\n", false),
            ("HTTP/1.1 500 x", false),
            ("garbage", false),
        ];
        for (head, ok) in cases {
            assert_eq!(http_success(head).is_ok(), ok, "{head}");
        }
    }

    fn running(id: &str, name: &str) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            sandbox_id: "s".into(),
            name: name.into(),
            attempt: 0,
            state: api::ContainerState::ContainerRunning,
            exit_code: 0,
            created_at: 0,
            started_at: 0,
            finished_at: 0,
            image_ref: String::new(),
            reason: String::new(),
            message: String::new(),
        }
    }

    #[tokio::test]
    async fn prober_drives_readiness_and_liveness_from_probe_results() {
        // A real listener on loopback stands in for the pod: the tcp probe passes while
        // it is open.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "uid": "u"}, "spec": {"containers": [
            {"name": "web", "image": "x", "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}},
            {"name": "worker", "image": "x", "livenessProbe": {"tcpSocket": {"port": 1}, "periodSeconds": 1, "failureThreshold": 2}}]}})).unwrap();
        let observed = Observed {
            sandboxes: vec![SandboxInfo {
                id: "s".into(),
                attempt: 0,
                ready: true,
                created_at: 0,
            }],
            containers: vec![running("c-web", "web"), running("c-worker", "worker")],
            pod_ip: "127.0.0.1".into(),
        };
        let rt = FakeRuntime::new();
        let prober = Prober::new();
        let first = prober.probe_pod(&rt, &pod, &observed, 10 * SECOND).await;
        assert!(first.health.ready("c-web"));
        assert!(
            first.kill.is_empty(),
            "one liveness failure is below the threshold"
        );
        assert_eq!(first.next, Some(Duration::from_secs(1)));
        // Not due again yet: nothing changes.
        let early = prober
            .probe_pod(&rt, &pod, &observed, 10 * SECOND + 1)
            .await;
        assert!(early.kill.is_empty());
        drop(listener);
        let second = prober.probe_pod(&rt, &pod, &observed, 11 * SECOND).await;
        assert_eq!(
            second
                .kill
                .iter()
                .map(|k| k.container.as_str())
                .collect::<Vec<_>>(),
            ["worker"]
        );
        let reasons: Vec<_> = second
            .events
            .iter()
            .map(|e| (e.container.as_str(), e.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                ("web", "Unhealthy"),
                ("worker", "Unhealthy"),
                ("worker", "Killing")
            ]
        );
        // Readiness needs 3 failures (the default) to flip.
        assert!(second.health.ready("c-web"));
        prober.probe_pod(&rt, &pod, &observed, 12 * SECOND).await;
        let fourth = prober.probe_pod(&rt, &pod, &observed, 13 * SECOND).await;
        assert!(!fourth.health.ready("c-web"));
        prober.forget_pod("u");
        assert!(prober.states.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn exec_probes_use_the_runtime_and_startup_gates() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "uid": "u"}, "spec": {"containers": [
            {"name": "a", "image": "x", "startupProbe": {"exec": {"command": ["check"]}, "periodSeconds": 1, "failureThreshold": 1},
             "readinessProbe": {"exec": {"command": ["ready"]}}}]}})).unwrap();
        let observed = Observed {
            sandboxes: vec![SandboxInfo {
                id: "s".into(),
                attempt: 0,
                ready: true,
                created_at: 0,
            }],
            containers: vec![running("c", "a")],
            pod_ip: String::new(),
        };
        // The fake's exec fails for unknown containers: the startup probe fails and
        // the container is to be killed, never reaching readiness.
        let rt = FakeRuntime::new();
        let prober = Prober::new();
        let report = prober.probe_pod(&rt, &pod, &observed, SECOND).await;
        assert!(!report.health.started("c"));
        assert!(!report.health.ready.contains_key("c"));
        assert_eq!(report.kill.len(), 1);
        assert!(
            report.kill[0].message.contains("startup"),
            "{}",
            report.kill[0].message
        );
    }

    #[test]
    fn events_name_the_container_and_parse_as_events() {
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"}}),
        )
        .unwrap();
        let ev = ProbeEvent {
            container: "web".into(),
            type_: "Warning",
            reason: "Unhealthy",
            message: "Readiness probe failed: x".into(),
        };
        let now = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let parsed: k8s_openapi::api::core::v1::Event =
            serde_json::from_value(crate::events::event_object(&pod, "node-a", &ev, now)).unwrap();
        assert_eq!(
            parsed.involved_object.field_path.as_deref(),
            Some("spec.containers{web}")
        );
        assert_eq!(parsed.involved_object.uid.as_deref(), Some("u"));
        assert_eq!(
            (parsed.reason.as_deref(), parsed.type_.as_deref()),
            (Some("Unhealthy"), Some("Warning"))
        );
        assert_eq!(parsed.metadata.namespace.as_deref(), Some("ns"));
        assert!(parsed.metadata.name.unwrap().starts_with("p."));
        assert_eq!(parsed.source.unwrap().host.as_deref(), Some("node-a"));
    }
}
