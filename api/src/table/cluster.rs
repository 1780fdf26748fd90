//! Namespace, Node, Lease and Event rows (core `v1` and `events.k8s.io/v1` events).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::duration::since;
use super::{age, age_col, arr_at, col, int_at, name, name_col, opt_str, str_at, wide, Column};

pub(super) static NAMESPACE_COLUMNS: &[Column] = &[
    name_col(),
    col("Status", "string", "The status of the namespace"),
    age_col(),
];

pub(super) static NODE_COLUMNS: &[Column] = &[
    name_col(),
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    age_col(),
    col("Version", "string", "The kubelet version the node reports."),
    wide(
        "Internal-IP",
        "string",
        "The node's first InternalIP address.",
    ),
    wide(
        "External-IP",
        "string",
        "The node's first ExternalIP address.",
    ),
    wide(
        "OS-Image",
        "string",
        "The operating system image the node reports.",
    ),
    wide(
        "Kernel-Version",
        "string",
        "The kernel version the node reports.",
    ),
    wide(
        "Container-Runtime",
        "string",
        "The container runtime and version the node reports.",
    ),
];

pub(super) static LEASE_COLUMNS: &[Column] = &[
    name_col(),
    col(
        "Holder",
        "string",
        "The identity of the current holder of the lease.",
    ),
    age_col(),
];

pub(super) static EVENT_COLUMNS: &[Column] = &[
    col(
        "Last Seen",
        "string",
        "The time the event was last observed.",
    ),
    col("Type", "string", "Type of this event (Normal, Warning)."),
    col(
        "Reason",
        "string",
        "A short, machine understandable string that gives the reason for the event.",
    ),
    col(
        "Object",
        "string",
        "The object this event is about, as kind/name.",
    ),
    wide(
        "Subobject",
        "string",
        "The part of the object the event is about, e.g. spec.containers{app}.",
    ),
    wide(
        "Source",
        "string",
        "The component (and host) that reported the event.",
    ),
    col(
        "Message",
        "string",
        "A human-readable description of the event.",
    ),
    wide(
        "First Seen",
        "string",
        "The time the event was first observed.",
    ),
    wide(
        "Count",
        "string",
        "The number of times this event has occurred.",
    ),
    super::Column {
        name: "Name",
        ty: "string",
        format: "name",
        description: super::NAME_DESC,
        priority: 1,
    },
];

pub(super) fn namespace_cells(ns: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(ns)),
        json!(str_at(ns, "/status/phase")),
        json!(age(ns, now)),
    ]
}

const ROLE_PREFIX: &str = "node-role.kubernetes.io/";
const ROLE_LABEL: &str = "kubernetes.io/role";

fn node_status(node: &Value) -> String {
    // Only the Ready condition is summarised; the last one of that type wins, as in a
    // map keyed by type.
    let ready = arr_at(node, "/status/conditions")
        .iter()
        .rfind(|c| str_at(c, "/type") == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, "/status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    status.join(",")
}

fn node_roles(node: &Value) -> String {
    let mut roles = BTreeSet::new();
    if let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix(ROLE_PREFIX) {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == ROLE_LABEL {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.insert(v.to_string());
                }
            }
        }
    }
    if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

fn node_address(node: &Value, ty: &str) -> String {
    arr_at(node, "/status/addresses")
        .iter()
        .find(|a| str_at(a, "/type") == ty)
        .map(|a| str_at(a, "/address").to_string())
        .unwrap_or_else(|| "<none>".to_string())
}

pub(super) fn node_cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let info = |field: &str| {
        opt_str(node, &format!("/status/nodeInfo/{field}"))
            .unwrap_or("<unknown>")
            .to_string()
    };
    vec![
        json!(name(node)),
        json!(node_status(node)),
        json!(node_roles(node)),
        json!(age(node, now)),
        json!(str_at(node, "/status/nodeInfo/kubeletVersion")),
        json!(node_address(node, "InternalIP")),
        json!(node_address(node, "ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

pub(super) fn lease_cells(lease: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(lease)),
        json!(str_at(lease, "/spec/holderIdentity")),
        json!(age(lease, now)),
    ]
}

/// The fields an event row needs, read from either event API.
struct EventView<'a> {
    first: Option<&'a str>,
    last: Option<&'a str>,
    event_time: Option<&'a str>,
    series_count: Option<i64>,
    series_last: Option<&'a str>,
    count: i64,
    kind: &'a str,
    object_name: &'a str,
    field_path: &'a str,
    component: &'a str,
    host: &'a str,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
}

fn event_row(e: &Value, v: EventView<'_>, message: &str, now: DateTime<Utc>) -> Vec<Value> {
    let first = match v.first {
        Some(t) => since(Some(t), now),
        None => since(v.event_time, now),
    };
    let mut last = match v.last {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = v.count;
    if let Some(n) = v.series_count {
        last = since(v.series_last, now);
        count = n;
    } else if count == 0 {
        // Events of the new API that happened once carry no count.
        count = 1;
    }
    let object = if v.object_name.is_empty() {
        v.kind.to_lowercase()
    } else {
        format!("{}/{}", v.kind.to_lowercase(), v.object_name)
    };
    let component = if v.component.is_empty() {
        v.reporting_controller
    } else {
        v.component
    };
    let host = if v.host.is_empty() {
        v.reporting_instance
    } else {
        v.host
    };
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last),
        json!(str_at(e, "/type")),
        json!(str_at(e, "/reason")),
        json!(object),
        json!(v.field_path),
        json!(source),
        json!(message.trim()),
        json!(first),
        json!(count),
        json!(name(e)),
    ]
}

pub(super) fn core_event_cells(e: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let series = e.get("series").filter(|s| s.is_object());
    let view = EventView {
        first: opt_str(e, "/firstTimestamp"),
        last: opt_str(e, "/lastTimestamp"),
        event_time: opt_str(e, "/eventTime"),
        series_count: series.map(|s| int_at(s, "/count")),
        series_last: series.and_then(|s| opt_str(s, "/lastObservedTime")),
        count: int_at(e, "/count"),
        kind: str_at(e, "/involvedObject/kind"),
        object_name: str_at(e, "/involvedObject/name"),
        field_path: str_at(e, "/involvedObject/fieldPath"),
        component: str_at(e, "/source/component"),
        host: str_at(e, "/source/host"),
        reporting_controller: str_at(e, "/reportingComponent"),
        reporting_instance: str_at(e, "/reportingInstance"),
    };
    event_row(e, view, str_at(e, "/message"), now)
}

/// `events.k8s.io/v1` names the same fields differently (`regarding`, `note`,
/// `deprecated*`); upstream prints both through one printer.
pub(super) fn events_v1_cells(e: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let series = e.get("series").filter(|s| s.is_object());
    let view = EventView {
        first: opt_str(e, "/deprecatedFirstTimestamp"),
        last: opt_str(e, "/deprecatedLastTimestamp"),
        event_time: opt_str(e, "/eventTime"),
        series_count: series.map(|s| int_at(s, "/count")),
        series_last: series.and_then(|s| opt_str(s, "/lastObservedTime")),
        count: int_at(e, "/deprecatedCount"),
        kind: str_at(e, "/regarding/kind"),
        object_name: str_at(e, "/regarding/name"),
        field_path: str_at(e, "/regarding/fieldPath"),
        component: str_at(e, "/deprecatedSource/component"),
        host: str_at(e, "/deprecatedSource/host"),
        reporting_controller: str_at(e, "/reportingController"),
        reporting_instance: str_at(e, "/reportingInstance"),
    };
    event_row(e, view, str_at(e, "/note"), now)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::now;
    use super::*;

    #[test]
    fn namespace_and_lease_rows() {
        let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": "2024-04-01T12:00:00Z"},
                        "status": {"phase": "Active"}});
        assert_eq!(
            namespace_cells(&ns, now()),
            vec![json!("kube-system"), json!("Active"), json!("30d")]
        );
        let gone = json!({"metadata": {"name": "old", "creationTimestamp": "2024-05-01T11:59:58Z",
                          "deletionTimestamp": "2024-05-01T11:59:59Z"}, "status": {"phase": "Terminating"}});
        assert_eq!(namespace_cells(&gone, now())[1], "Terminating");

        let lease = json!({"metadata": {"name": "node-a", "namespace": "kube-node-lease",
                           "creationTimestamp": "2024-05-01T09:00:00Z"},
                           "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 40}});
        assert_eq!(
            lease_cells(&lease, now()),
            vec![json!("node-a"), json!("node-a"), json!("3h")]
        );
        let free = json!({"metadata": {"name": "sched"}, "spec": {}});
        assert_eq!(lease_cells(&free, now())[1], "");
    }

    #[test]
    fn node_rows() {
        let node = json!({
            "metadata": {"name": "node-a", "creationTimestamp": "2024-04-29T07:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": "",
                           "kubernetes.io/role": "edge", "kubernetes.io/hostname": "node-a"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "node-a"}, {"type": "InternalIP", "address": "10.50.0.2"},
                              {"type": "InternalIP", "address": "10.50.0.3"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0-skiff", "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "containerd://1.6.20"}
            }
        });
        assert_eq!(
            node_cells(&node, now()),
            vec![
                json!("node-a"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,edge,worker"),
                json!("2d5h"),
                json!("v1.33.0-skiff"),
                json!("10.50.0.2"),
                json!("<none>"),
                json!("Debian GNU/Linux 12 (bookworm)"),
                json!("6.1.0-18-amd64"),
                json!("containerd://1.6.20")
            ]
        );
        let not_ready = json!({"metadata": {"name": "b"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let c = node_cells(&not_ready, now());
        assert_eq!(c[1], "NotReady");
        assert_eq!(c[2], "<none>");
        assert_eq!(
            &c[7..],
            &[json!("<unknown>"), json!("<unknown>"), json!("<unknown>")]
        );
        let new = json!({"metadata": {"name": "c"}, "status": {}});
        assert_eq!(node_cells(&new, now())[1], "Unknown");
    }

    #[test]
    fn core_event_rows() {
        let e = json!({
            "metadata": {"name": "web-1.17c8a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
            "reason": "BackOff", "type": "Warning", "message": "Back-off restarting failed container\n",
            "source": {"component": "kubelet", "host": "node-a"},
            "firstTimestamp": "2024-05-01T11:00:00Z", "lastTimestamp": "2024-05-01T11:58:00Z", "count": 12
        });
        assert_eq!(
            core_event_cells(&e, now()),
            vec![
                json!("2m"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web-1"),
                json!("spec.containers{app}"),
                json!("kubelet, node-a"),
                json!("Back-off restarting failed container"),
                json!("60m"),
                json!(12),
                json!("web-1.17c8a")
            ]
        );
        // A new-style event written through the core API: eventTime, series and the
        // reporting fields stand in for the deprecated ones.
        let e = json!({
            "metadata": {"name": "x"}, "involvedObject": {"kind": "Node"},
            "reason": "Starting", "type": "Normal", "message": "",
            "eventTime": "2024-05-01T10:00:00.000000Z", "reportingComponent": "skiff-proxy",
            "series": {"count": 4, "lastObservedTime": "2024-05-01T11:59:50.000000Z"}
        });
        assert_eq!(
            core_event_cells(&e, now()),
            vec![
                json!("10s"),
                json!("Normal"),
                json!("Starting"),
                json!("node"),
                json!(""),
                json!("skiff-proxy"),
                json!(""),
                json!("120m"),
                json!(4),
                json!("x")
            ]
        );
        let once = json!({"metadata": {"name": "y"}, "involvedObject": {"kind": "Deployment", "name": "web"},
                          "eventTime": "2024-05-01T11:59:00.000000Z", "reportingComponent": "deployment-controller",
                          "reportingInstance": "server-1"});
        let c = core_event_cells(&once, now());
        assert_eq!(c[0], "60s");
        assert_eq!(c[3], "deployment/web");
        assert_eq!(c[5], "deployment-controller, server-1");
        assert_eq!(c[8], 1);
    }

    #[test]
    fn events_v1_rows_read_the_renamed_fields() {
        let e = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web-1.abc"},
            "regarding": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
            "note": "Pulled image", "reason": "Pulled", "type": "Normal",
            "eventTime": "2024-05-01T11:30:00.000000Z",
            "reportingController": "kubelet", "reportingInstance": "node-a",
            "deprecatedFirstTimestamp": "2024-05-01T11:30:00Z", "deprecatedLastTimestamp": "2024-05-01T11:45:00Z",
            "deprecatedCount": 3
        });
        assert_eq!(
            events_v1_cells(&e, now()),
            vec![
                json!("15m"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web-1"),
                json!("spec.containers{app}"),
                json!("kubelet, node-a"),
                json!("Pulled image"),
                json!("30m"),
                json!(3),
                json!("web-1.abc")
            ]
        );
        let minimal = json!({"metadata": {"name": "m"}, "regarding": {"kind": "Pod", "name": "p"},
                             "eventTime": "2024-05-01T11:59:15.000000Z", "reason": "Scheduled", "type": "Normal",
                             "note": "assigned", "reportingController": "skiff-scheduler"});
        let c = events_v1_cells(&minimal, now());
        assert_eq!(c[0], "45s");
        assert_eq!(c[7], "45s");
        assert_eq!(c[8], 1);
        assert_eq!(c[5], "skiff-scheduler");
    }
}
