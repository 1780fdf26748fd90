//! The pod row: READY, STATUS and RESTARTS computed the way upstream's printer does.
//!
//! STATUS is a single word summarising phase, init containers and app containers, in
//! this order of precedence (later wins):
//! 1. `status.reason` if set (e.g. `Evicted`, `NodeLost`), else `status.phase`;
//!    `SchedulingGated` when the PodScheduled condition says so.
//! 2. The first init container that has not completed: `Init:<reason>`,
//!    `Init:ExitCode:N`, `Init:Signal:N`, or `Init:i/n` while it runs. Sidecars
//!    (init containers with `restartPolicy: Always`) count as done once started.
//! 3. Unless still initialising, app containers scanned from last to first: a waiting
//!    reason (`ContainerCreating`, `CrashLoopBackOff`, `ErrImagePull`, ...), a
//!    terminated reason (`Completed`, `Error`, `OOMKilled`) or `ExitCode:N`/`Signal:N`;
//!    `Completed` turns back into `Running` (or `NotReady`) while some container
//!    still runs.
//! 4. `Terminating` once a deletion timestamp is set (`Unknown` for pods on a lost node).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::duration::parse_time;
use super::{age_col, arr_at, col, int_at, name, name_col, opt_str, str_at, wide, Column};

pub(super) static COLUMNS: &[Column] = &[
    name_col(),
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    age_col(),
    wide("IP", "string", "The IP address allocated to the pod (the first of status.podIPs)."),
    wide("Node", "string", "The node the pod is bound to (spec.nodeName)."),
    wide(
        "Nominated Node",
        "string",
        "The node the scheduler nominated for this pod while it preempts others (status.nominatedNodeName).",
    ),
    wide(
        "Readiness Gates",
        "string",
        "How many of the pod's readiness gates have their condition True.",
    ),
];

/// The pod reason set when its node stops responding (the node lifecycle controller's
/// `NodeUnreachablePodReason`).
const NODE_LOST: &str = "NodeLost";

fn is_sidecar(spec_init: &[Value], name: &str) -> bool {
    spec_init
        .iter()
        .any(|c| str_at(c, "/name") == name && str_at(c, "/restartPolicy") == "Always")
}

fn condition_true(pod: &Value, ty: &str) -> bool {
    arr_at(pod, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "/type") == ty && str_at(c, "/status") == "True")
}

/// Keeps the later of two optional times.
fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn last_termination(status: &Value) -> Option<DateTime<Utc>> {
    opt_str(status, "/lastState/terminated/finishedAt").and_then(parse_time)
}

/// READY, STATUS, RESTARTS (with the time of the last restart) of a pod.
pub(crate) struct PodSummary {
    pub ready: i64,
    pub total: i64,
    pub reason: String,
    pub restarts: i64,
    pub last_restart: Option<DateTime<Utc>>,
}

pub(crate) fn summarize(pod: &Value) -> PodSummary {
    let spec_containers = arr_at(pod, "/spec/containers");
    let spec_init = arr_at(pod, "/spec/initContainers");
    let mut total = spec_containers.len() as i64;
    total += spec_init
        .iter()
        .filter(|c| str_at(c, "/restartPolicy") == "Always")
        .count() as i64;
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart = None;
    let mut last_sidecar_restart = None;

    let mut reason = match opt_str(pod, "/status/reason") {
        Some(r) => r.to_string(),
        None => str_at(pod, "/status/phase").to_string(),
    };
    for c in arr_at(pod, "/status/conditions") {
        if str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated" {
            reason = "SchedulingGated".to_string();
        }
    }

    let init_statuses = arr_at(pod, "/status/initContainerStatuses");
    let mut initializing = false;
    for (i, cs) in init_statuses.iter().enumerate() {
        restarts += int_at(cs, "/restartCount");
        last_restart = later(last_restart, last_termination(cs));
        let sidecar = is_sidecar(spec_init, str_at(cs, "/name"));
        if sidecar {
            sidecar_restarts += int_at(cs, "/restartCount");
            last_sidecar_restart = later(last_sidecar_restart, last_termination(cs));
        }
        let terminated = cs.pointer("/state/terminated");
        let exit_code = int_at(cs, "/state/terminated/exitCode");
        if terminated.is_some() && exit_code == 0 {
            continue;
        }
        if sidecar && cs.get("started").and_then(Value::as_bool) == Some(true) {
            if cs.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        let waiting_reason = str_at(cs, "/state/waiting/reason");
        reason = if terminated.is_some() {
            match opt_str(cs, "/state/terminated/reason") {
                Some(r) => format!("Init:{r}"),
                None => match int_at(cs, "/state/terminated/signal") {
                    0 => format!("Init:ExitCode:{exit_code}"),
                    sig => format!("Init:Signal:{sig}"),
                },
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{}/{}", i, spec_init.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in arr_at(pod, "/status/containerStatuses").iter().rev() {
            restarts += int_at(cs, "/restartCount");
            last_restart = later(last_restart, last_termination(cs));
            let waiting = opt_str(cs, "/state/waiting/reason");
            let terminated = cs.pointer("/state/terminated");
            if let Some(w) = waiting {
                reason = w.to_string();
            } else if let Some(t) = terminated {
                reason = match opt_str(t, "/reason") {
                    Some(r) => r.to_string(),
                    None => match int_at(t, "/signal") {
                        0 => format!("ExitCode:{}", int_at(t, "/exitCode")),
                        sig => format!("Signal:{sig}"),
                    },
                };
            } else if cs.get("ready").and_then(Value::as_bool) == Some(true)
                && cs.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .to_string();
        }
    }

    if opt_str(pod, "/metadata/deletionTimestamp").is_some() {
        reason = if str_at(pod, "/status/reason") == NODE_LOST {
            "Unknown"
        } else {
            "Terminating"
        }
        .to_string();
    }

    PodSummary {
        ready,
        total,
        reason,
        restarts,
        last_restart,
    }
}

pub(super) fn cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let s = summarize(pod);
    let restarts = match s.last_restart {
        Some(t) if s.restarts != 0 => {
            format!("{} ({} ago)", s.restarts, super::human_duration(now - t))
        }
        _ => s.restarts.to_string(),
    };
    let ip = arr_at(pod, "/status/podIPs")
        .first()
        .and_then(|p| opt_str(p, "/ip"))
        // Older writers set only the singular field; it holds the same address.
        .or_else(|| opt_str(pod, "/status/podIP"))
        .unwrap_or("<none>");
    let node = opt_str(pod, "/spec/nodeName").unwrap_or("<none>");
    let nominated = opt_str(pod, "/status/nominatedNodeName").unwrap_or("<none>");
    let gates = arr_at(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = arr_at(pod, "/status/conditions");
        let met = gates
            .iter()
            .filter(|g| {
                let ty = str_at(g, "/conditionType");
                conditions
                    .iter()
                    .find(|c| str_at(c, "/type") == ty)
                    .is_some_and(|c| str_at(c, "/status") == "True")
            })
            .count();
        format!("{}/{}", met, gates.len())
    };
    vec![
        json!(name(pod)),
        json!(format!("{}/{}", s.ready, s.total)),
        json!(s.reason),
        json!(restarts),
        json!(super::age(pod, now)),
        json!(ip),
        json!(node),
        json!(nominated),
        json!(readiness_gates),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::testutil::now;
    use super::*;

    const CREATED: &str = "2024-05-01T11:00:00Z";

    fn pod(spec: Value, status: Value) -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": CREATED},
            "spec": spec,
            "status": status,
        })
    }

    fn two_containers() -> Value {
        json!({"containers": [{"name": "app", "image": "a"}, {"name": "side", "image": "b"}], "nodeName": "n1"})
    }

    fn running(name: &str, ready: bool, restarts: i64) -> Value {
        json!({"name": name, "ready": ready, "restartCount": restarts,
               "state": {"running": {"startedAt": "2024-05-01T11:00:05Z"}}})
    }

    fn waiting(name: &str, reason: &str) -> Value {
        json!({"name": name, "ready": false, "restartCount": 0, "state": {"waiting": {"reason": reason}}})
    }

    /// (case, pod, READY, STATUS, RESTARTS)
    fn cases() -> Vec<(
        &'static str,
        Value,
        &'static str,
        &'static str,
        &'static str,
    )> {
        vec![
            (
                "pending, unscheduled",
                pod(
                    json!({"containers": [{"name": "app"}]}),
                    json!({"phase": "Pending"}),
                ),
                "0/1",
                "Pending",
                "0",
            ),
            (
                "scheduling gated",
                pod(
                    json!({"containers": [{"name": "app"}]}),
                    json!({"phase": "Pending",
                    "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
                ),
                "0/1",
                "SchedulingGated",
                "0",
            ),
            (
                "container creating",
                pod(
                    two_containers(),
                    json!({"phase": "Pending", "containerStatuses": [
                    waiting("app", "ContainerCreating"), waiting("side", "ContainerCreating")]}),
                ),
                "0/2",
                "ContainerCreating",
                "0",
            ),
            (
                "running, one of two ready",
                pod(
                    two_containers(),
                    json!({"phase": "Running", "containerStatuses": [
                    running("app", true, 0), running("side", false, 0)]}),
                ),
                "1/2",
                "Running",
                "0",
            ),
            (
                "running, all ready",
                pod(
                    two_containers(),
                    json!({"phase": "Running", "containerStatuses": [
                    running("app", true, 0), running("side", true, 0)]}),
                ),
                "2/2",
                "Running",
                "0",
            ),
            (
                "image pull failure",
                pod(
                    json!({"containers": [{"name": "app"}]}),
                    json!({"phase": "Pending",
                    "containerStatuses": [waiting("app", "ErrImagePull")]}),
                ),
                "0/1",
                "ErrImagePull",
                "0",
            ),
            (
                "crash loop with restarts",
                pod(
                    json!({"containers": [{"name": "app"}]}),
                    json!({"phase": "Running",
                    "containerStatuses": [{"name": "app", "ready": false, "restartCount": 4,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                            "finishedAt": "2024-05-01T11:55:00Z"}}}]}),
                ),
                "0/1",
                "CrashLoopBackOff",
                "4 (5m ago)",
            ),
            (
                "completed",
                pod(
                    json!({"containers": [{"name": "app"}]}),
                    json!({"phase": "Succeeded",
                    "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                ),
                "0/1",
                "Completed",
                "0",
            ),
            (
                "error",
                pod(
                    json!({"containers": [{"name": "app"}]}),
                    json!({"phase": "Failed",
                    "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                        "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}),
                ),
                "0/1",
                "Error",
                "0",
            ),
            (
                "terminated without a reason: exit code",
                pod(
                    json!({"containers": [{"name": "app"}]}),
                    json!({"phase": "Failed",
                    "containerStatuses": [{"name": "app", "ready": false,
                        "state": {"terminated": {"exitCode": 137}}}]}),
                ),
                "0/1",
                "ExitCode:137",
                "0",
            ),
            (
                "terminated without a reason: signal",
                pod(
                    json!({"containers": [{"name": "app"}]}),
                    json!({"phase": "Failed",
                    "containerStatuses": [{"name": "app", "ready": false,
                        "state": {"terminated": {"exitCode": 0, "signal": 9}}}]}),
                ),
                "0/1",
                "Signal:9",
                "0",
            ),
            (
                "one completed, one still running and pod ready",
                pod(
                    two_containers(),
                    json!({"phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [running("app", true, 0),
                        {"name": "side", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                ),
                "1/2",
                "Running",
                "0",
            ),
            (
                "one completed, one still running, pod not ready",
                pod(
                    two_containers(),
                    json!({"phase": "Running",
                    "conditions": [{"type": "Ready", "status": "False"}],
                    "containerStatuses": [running("app", true, 0),
                        {"name": "side", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                ),
                "1/2",
                "NotReady",
                "0",
            ),
            (
                "first init container running",
                pod(
                    json!({"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "app"}]}),
                    json!({"phase": "Pending",
                        "initContainerStatuses": [running("i1", false, 0), waiting("i2", "PodInitializing")],
                        "containerStatuses": [waiting("app", "PodInitializing")]}),
                ),
                "0/1",
                "Init:0/2",
                "0",
            ),
            (
                "second init container running",
                pod(
                    json!({"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "app"}]}),
                    json!({"phase": "Pending",
                        "initContainerStatuses": [
                            {"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                            running("i2", false, 0)],
                        "containerStatuses": [waiting("app", "PodInitializing")]}),
                ),
                "0/1",
                "Init:1/2",
                "0",
            ),
            (
                "init container failed",
                pod(
                    json!({"initContainers": [{"name": "i1"}], "containers": [{"name": "app"}]}),
                    json!({"phase": "Pending",
                        "initContainerStatuses": [{"name": "i1", "restartCount": 3,
                            "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
                            "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:58:00Z"}}}],
                        "containerStatuses": [waiting("app", "PodInitializing")]}),
                ),
                "0/1",
                "Init:Error",
                "3 (2m ago)",
            ),
            (
                "init container crash looping",
                pod(
                    json!({"initContainers": [{"name": "i1"}], "containers": [{"name": "app"}]}),
                    json!({"phase": "Pending",
                        "initContainerStatuses": [waiting("i1", "CrashLoopBackOff")],
                        "containerStatuses": [waiting("app", "PodInitializing")]}),
                ),
                "0/1",
                "Init:CrashLoopBackOff",
                "0",
            ),
            (
                "init container exit code without reason",
                pod(
                    json!({"initContainers": [{"name": "i1"}], "containers": [{"name": "app"}]}),
                    json!({"phase": "Pending",
                        "initContainerStatuses": [{"name": "i1", "state": {"terminated": {"exitCode": 3}}}]}),
                ),
                "0/1",
                "Init:ExitCode:3",
                "0",
            ),
            (
                "sidecar started counts toward ready and total",
                pod(
                    json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "app"}]}),
                    json!({"phase": "Running",
                        "conditions": [{"type": "Initialized", "status": "True"}],
                        "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 1,
                            "state": {"running": {}},
                            "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T10:00:00Z"}}}],
                        "containerStatuses": [running("app", true, 2)]}),
                ),
                "2/2",
                "Running",
                "3 (120m ago)",
            ),
            (
                "terminating",
                {
                    let mut p = pod(
                        json!({"containers": [{"name": "app"}]}),
                        json!({"phase": "Running",
                        "containerStatuses": [running("app", true, 0)]}),
                    );
                    p["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
                    p
                },
                "1/1",
                "Terminating",
                "0",
            ),
            (
                "node lost and being deleted",
                {
                    let mut p = pod(
                        json!({"containers": [{"name": "app"}]}),
                        json!({"phase": "Running",
                        "reason": "NodeLost", "containerStatuses": [running("app", true, 0)]}),
                    );
                    p["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
                    p
                },
                "1/1",
                "Unknown",
                "0",
            ),
            (
                "node lost (reason shown until containers report)",
                pod(
                    json!({"containers": [{"name": "app"}]}),
                    json!({"phase": "Running", "reason": "NodeLost"}),
                ),
                "0/1",
                "NodeLost",
                "0",
            ),
            (
                "evicted",
                pod(
                    json!({"containers": [{"name": "app"}]}),
                    json!({"phase": "Failed", "reason": "Evicted"}),
                ),
                "0/1",
                "Evicted",
                "0",
            ),
            (
                "restarts without a recorded time",
                pod(
                    json!({"containers": [{"name": "app"}]}),
                    json!({"phase": "Running",
                    "containerStatuses": [running("app", true, 7)]}),
                ),
                "1/1",
                "Running",
                "7",
            ),
        ]
    }

    #[test]
    fn ready_status_and_restarts_match_upstream() {
        for (case, p, ready, status, restarts) in cases() {
            let c = cells(&p, now());
            assert_eq!(c[0], "web-1", "{case}");
            assert_eq!(c[1], ready, "{case}: READY");
            assert_eq!(c[2], status, "{case}: STATUS");
            assert_eq!(c[3], restarts, "{case}: RESTARTS");
            assert_eq!(c[4], "60m", "{case}: AGE");
        }
    }

    #[test]
    fn wide_cells_show_ip_node_nomination_and_gates() {
        let p = json!({
            "metadata": {"name": "web-1", "creationTimestamp": "2024-05-01T11:59:30Z"},
            "spec": {"containers": [{"name": "app"}], "nodeName": "node-a",
                     "readinessGates": [{"conditionType": "lb/ready"}, {"conditionType": "mesh/ready"}]},
            "status": {"phase": "Running", "podIP": "10.244.1.7", "podIPs": [{"ip": "10.244.1.7"}],
                       "nominatedNodeName": "node-b",
                       "conditions": [{"type": "lb/ready", "status": "True"}, {"type": "mesh/ready", "status": "False"}],
                       "containerStatuses": [running("app", true, 0)]}
        });
        assert_eq!(
            cells(&p, now()),
            vec![
                json!("web-1"),
                json!("1/1"),
                json!("Running"),
                json!("0"),
                json!("30s"),
                json!("10.244.1.7"),
                json!("node-a"),
                json!("node-b"),
                json!("1/2")
            ]
        );
        let bare = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app"}]}, "status": {}});
        let c = cells(&bare, now());
        assert_eq!(c[2], "");
        assert_eq!(
            &c[4..],
            &[
                json!("<unknown>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }
}
