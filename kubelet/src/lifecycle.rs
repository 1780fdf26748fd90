//! Container lifecycle hooks: `postStart` runs right after a container starts (exec or
//! httpGet); if it fails the container is killed and the restart policy decides what
//! happens next, with a `FailedPostStartHook` event. `preStop` (exec, httpGet or
//! sleep) runs before the stop signal, and its time counts against the pod's
//! termination grace period; the signal then gets what is left (at least
//! [`MIN_STOP_GRACE`], as upstream).
//!
//! [`stop_container`] is the one way the kubelet stops a running container: preStop,
//! then CRI StopContainer, with a `Killing` event.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};

use crate::cri::{CriError, Runtime};
use crate::events::PodEvent;

/// The least time the stop signal gets after a preStop hook (upstream's 2 s).
pub const MIN_STOP_GRACE: Duration = Duration::from_secs(2);
/// An upper bound for a postStart hook: upstream waits without one, but a hook that
/// never returns must not wedge the pod's sync forever.
pub const POST_START_TIMEOUT: Duration = Duration::from_secs(120);

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    PostStart,
    PreStop,
}

impl Hook {
    fn name(self) -> &'static str {
        match self {
            Hook::PostStart => "PostStart",
            Hook::PreStop => "PreStop",
        }
    }
}

/// The container's handler for `hook`, if it has one.
pub fn handler(container: &Container, hook: Hook) -> Option<&LifecycleHandler> {
    let l = container.lifecycle.as_ref()?;
    match hook {
        Hook::PostStart => l.post_start.as_ref(),
        Hook::PreStop => l.pre_stop.as_ref(),
    }
}

/// Runs one hook handler of a running container within `timeout`. The error says
/// what failed, for the event and the log.
pub async fn run_handler(
    runtime: &dyn Runtime,
    container: &Container,
    container_id: &str,
    pod_ip: &str,
    hook: Hook,
    h: &LifecycleHandler,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(e) = &h.exec {
        let cmd = e.command.clone().unwrap_or_default();
        let out = runtime
            .exec_sync(container_id, cmd.clone(), timeout)
            .await
            .map_err(|e| format!("{} hook {cmd:?} failed: {e}", hook.name()))?;
        return if out.exit_code == 0 {
            Ok(())
        } else {
            Err(format!(
                "Exec lifecycle hook ({cmd:?}) for Container {:?} failed - error: command exited with {}, message: {:?}",
                container.name,
                out.exit_code,
                String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).trim()
            ))
        };
    }
    if let Some(g) = &h.http_get {
        let host = g
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_string());
        let port = crate::probes::resolve_port(&g.port, container)?;
        let headers: Vec<(String, String)> = g
            .http_headers
            .iter()
            .flatten()
            .map(|x| (x.name.clone(), x.value.clone()))
            .collect();
        let path = g.path.clone().unwrap_or_else(|| "/".into());
        return crate::probes::http_get(
            crate::probes::is_https(g.scheme.as_deref()),
            &host,
            port,
            &path,
            &headers,
            timeout,
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "HTTP lifecycle hook ({path}) for Container {:?} failed - error: {e}",
                container.name
            )
        });
    }
    if let Some(s) = &h.sleep {
        let wanted = Duration::from_secs(s.seconds.max(0) as u64);
        tokio::time::sleep(wanted.min(timeout)).await;
        return Ok(());
    }
    // tcpSocket is deprecated for hooks and upstream ignores it, as does skiff.
    Ok(())
}

/// Runs the postStart hook of a container that just started. On failure the caller
/// kills the container ([`stop_container`]) and records the returned event.
pub async fn post_start(
    runtime: &dyn Runtime,
    container: &Container,
    container_id: &str,
    pod_ip: &str,
) -> Result<(), PodEvent> {
    let Some(h) = handler(container, Hook::PostStart) else {
        return Ok(());
    };
    run_handler(
        runtime,
        container,
        container_id,
        pod_ip,
        Hook::PostStart,
        h,
        POST_START_TIMEOUT,
    )
    .await
    .map_err(|message| {
        tracing::info!(container = %container.name, "{message}");
        PodEvent::warning(&container.name, "FailedPostStartHook", message)
    })
}

/// How long the stop signal waits after a preStop hook that took `used` of `grace`.
pub fn remaining_grace(grace: Duration, used: Duration) -> Duration {
    grace.saturating_sub(used).max(MIN_STOP_GRACE)
}

/// Stops a running container the way upstream's `killContainer` does: the preStop
/// hook first (bounded by `grace`), then SIGTERM with the remaining grace, SIGKILL
/// after. `spec` is `None` for a container no longer in the pod spec (no hook).
/// `reason` is the `Killing` event's message; events go to `events`.
#[allow(clippy::too_many_arguments)]
pub async fn stop_container(
    runtime: &dyn Runtime,
    spec: Option<&Container>,
    name: &str,
    container_id: &str,
    pod_ip: &str,
    grace: Duration,
    message: Option<String>,
    events: &mut Vec<PodEvent>,
) -> Result<(), CriError> {
    if let Some(message) = message {
        events.push(PodEvent::normal(name, "Killing", message));
    }
    let started = Instant::now();
    let mut left = grace;
    if let Some((c, h)) = spec.and_then(|c| handler(c, Hook::PreStop).map(|h| (c, h))) {
        if let Err(message) =
            run_handler(runtime, c, container_id, pod_ip, Hook::PreStop, h, grace).await
        {
            tracing::info!(container = %name, "{message}");
            events.push(PodEvent::warning(name, "FailedPreStopHook", message));
        }
        left = remaining_grace(grace, started.elapsed());
    }
    match runtime.stop_container(container_id, left).await {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::{api, ExecOutput, FakeRuntime};
    use serde_json::json;

    fn container(lifecycle: serde_json::Value) -> Container {
        serde_json::from_value(
            json!({"name": "a", "image": "busybox:1.36", "lifecycle": lifecycle}),
        )
        .unwrap()
    }

    async fn running(rt: &FakeRuntime) -> String {
        let sb = api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: "p".into(),
                uid: "u".into(),
                namespace: "d".into(),
                attempt: 0,
            }),
            ..Default::default()
        };
        let sid = rt.run_pod_sandbox(sb.clone()).await.unwrap();
        let cfg = api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: "a".into(),
                attempt: 0,
            }),
            image: Some(api::ImageSpec {
                image: "busybox:1.36".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = rt.create_container(&sid, cfg, sb).await.unwrap();
        rt.start_container(&id).await.unwrap();
        id
    }

    #[test]
    fn remaining_grace_keeps_a_floor() {
        let s = Duration::from_secs;
        let cases = [
            (s(30), s(5), s(25)),
            (s(30), s(29), s(2)),
            (s(30), s(40), s(2)),
            (s(0), s(0), s(2)),
        ];
        for (grace, used, want) in cases {
            assert_eq!(remaining_grace(grace, used), want, "{grace:?} {used:?}");
        }
    }

    #[tokio::test]
    async fn post_start_exec_runs_and_its_failure_is_an_event() {
        let rt = FakeRuntime::new().with_images(&["busybox:1.36"]);
        let id = running(&rt).await;
        let c = container(
            json!({"postStart": {"exec": {"command": ["sh", "-c", "echo hi > /tmp/x"]}}}),
        );
        post_start(&rt, &c, &id, "10.0.0.2").await.unwrap();
        assert_eq!(
            rt.execs(),
            vec![(
                id.clone(),
                vec!["sh".to_string(), "-c".into(), "echo hi > /tmp/x".into()]
            )]
        );
        rt.set_exec_output(ExecOutput {
            stdout: b"boom".to_vec(),
            stderr: vec![],
            exit_code: 3,
        });
        let ev = post_start(&rt, &c, &id, "10.0.0.2").await.unwrap_err();
        assert_eq!((ev.reason, ev.type_), ("FailedPostStartHook", "Warning"));
        assert!(ev.message.contains("exited with 3"), "{}", ev.message);
        assert!(ev.message.contains("boom"), "{}", ev.message);
        // No hook: nothing runs.
        post_start(&rt, &container(json!({})), &id, "10.0.0.2")
            .await
            .unwrap();
        assert_eq!(rt.execs().len(), 2);
    }

    #[tokio::test]
    async fn post_start_http_failure_names_the_path() {
        // A port nothing listens on (bound and dropped) refuses the connection.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let rt = FakeRuntime::new();
        let c = container(
            json!({"postStart": {"httpGet": {"path": "/hook", "port": port, "host": "127.0.0.1"}}}),
        );
        let ev = post_start(&rt, &c, "id", "").await.unwrap_err();
        assert!(ev.message.contains("/hook"), "{}", ev.message);
    }

    #[tokio::test]
    async fn post_start_http_succeeds_on_2xx() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).to_string()
        });
        let rt = FakeRuntime::new();
        let c = container(
            json!({"postStart": {"httpGet": {"path": "/started", "port": port, "host": "127.0.0.1"}}}),
        );
        post_start(&rt, &c, "id", "").await.unwrap();
        assert!(server.await.unwrap().starts_with("GET /started HTTP/1.1"));
    }

    #[tokio::test]
    async fn pre_stop_runs_before_the_stop_signal() {
        let rt = FakeRuntime::new().with_images(&["busybox:1.36"]);
        let id = running(&rt).await;
        let c = container(json!({"preStop": {"exec": {"command": ["nginx", "-s", "quit"]}}}));
        let mut events = Vec::new();
        stop_container(
            &rt,
            Some(&c),
            "a",
            &id,
            "",
            Duration::from_secs(30),
            Some("Stopping container a".into()),
            &mut events,
        )
        .await
        .unwrap();
        let calls = rt.calls();
        let exec = calls
            .iter()
            .position(|c| c.starts_with("ExecSync"))
            .unwrap();
        let stop = calls
            .iter()
            .position(|c| c.starts_with("StopContainer"))
            .unwrap();
        assert!(exec < stop, "{calls:?}");
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].reason, events[0].message.as_str()),
            ("Killing", "Stopping container a")
        );
        assert_eq!(
            rt.container_status(&id).await.unwrap().state,
            api::ContainerState::ContainerExited as i32
        );
    }

    #[tokio::test]
    async fn a_failing_pre_stop_still_stops_the_container() {
        let rt = FakeRuntime::new().with_images(&["busybox:1.36"]);
        let id = running(&rt).await;
        rt.set_exec_output(ExecOutput {
            stdout: vec![],
            stderr: b"no".to_vec(),
            exit_code: 1,
        });
        let c = container(json!({"preStop": {"exec": {"command": ["false"]}}}));
        let mut events = Vec::new();
        stop_container(
            &rt,
            Some(&c),
            "a",
            &id,
            "",
            Duration::from_secs(1),
            None,
            &mut events,
        )
        .await
        .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "FailedPreStopHook");
        assert_eq!(
            rt.container_status(&id).await.unwrap().state,
            api::ContainerState::ContainerExited as i32
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pre_stop_sleep_is_bounded_by_the_grace_period() {
        let rt = FakeRuntime::new().with_images(&["busybox:1.36"]);
        let id = running(&rt).await;
        let c = container(json!({"preStop": {"sleep": {"seconds": 600}}}));
        let mut events = Vec::new();
        let before = tokio::time::Instant::now();
        stop_container(
            &rt,
            Some(&c),
            "a",
            &id,
            "",
            Duration::from_secs(5),
            None,
            &mut events,
        )
        .await
        .unwrap();
        // Paused time: the sleep advanced the clock by exactly the grace period.
        assert_eq!(before.elapsed(), Duration::from_secs(5));
        assert!(events.is_empty());
    }
}
