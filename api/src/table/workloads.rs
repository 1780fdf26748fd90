//! Deployment and ReplicaSet rows.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{
    age, age_col, col, container_cells, int_at, name, name_col, selector_string, wide, Column,
};

const CONTAINERS_DESC: &str = "Names of each container in the template.";
const IMAGES_DESC: &str = "Images referenced by each container in the template.";

pub(super) static DEPLOYMENT_COLUMNS: &[Column] = &[
    name_col(),
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", "Total number of pods targeted by this deployment that run the desired template."),
    col("Available", "string", "Total number of pods targeted by this deployment that have been ready for at least minReadySeconds."),
    age_col(),
    wide("Containers", "string", CONTAINERS_DESC),
    wide("Images", "string", IMAGES_DESC),
    wide("Selector", "string", "Label selector for the pods this deployment manages."),
];

pub(super) static REPLICASET_COLUMNS: &[Column] = &[
    name_col(),
    col(
        "Desired",
        "integer",
        "Number of desired pods (spec.replicas).",
    ),
    col(
        "Current",
        "integer",
        "Number of pods the replica set currently has (status.replicas).",
    ),
    col(
        "Ready",
        "integer",
        "Number of pods targeted by this replica set that are ready (status.readyReplicas).",
    ),
    age_col(),
    wide("Containers", "string", CONTAINERS_DESC),
    wide("Images", "string", IMAGES_DESC),
    wide(
        "Selector",
        "string",
        "Label selector for the pods this replica set manages.",
    ),
];

/// `spec.replicas`, which defaulting sets to 1 when the user leaves it out.
fn desired(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

pub(super) fn deployment_cells(d: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = container_cells(d.pointer("/spec/template/spec"));
    vec![
        json!(name(d)),
        json!(format!(
            "{}/{}",
            int_at(d, "/status/readyReplicas"),
            desired(d)
        )),
        json!(int_at(d, "/status/updatedReplicas")),
        json!(int_at(d, "/status/availableReplicas")),
        json!(age(d, now)),
        json!(containers),
        json!(images),
        json!(selector_string(d.pointer("/spec/selector"))),
    ]
}

pub(super) fn replicaset_cells(rs: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = container_cells(rs.pointer("/spec/template/spec"));
    // metav1.FormatLabelSelector shows an empty selector as <none>, unlike the
    // deployment printer, which prints the selector string as is.
    let mut selector = selector_string(rs.pointer("/spec/selector"));
    if selector.is_empty() {
        selector = "<none>".to_string();
    }
    vec![
        json!(name(rs)),
        json!(desired(rs)),
        json!(int_at(rs, "/status/replicas")),
        json!(int_at(rs, "/status/readyReplicas")),
        json!(age(rs, now)),
        json!(containers),
        json!(images),
        json!(selector),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::testutil::now;
    use super::*;

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}},
               "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}, {"name": "log", "image": "busybox"}]}})
    }

    #[test]
    fn deployment_row() {
        let d = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-04-30T09:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
        });
        assert_eq!(
            deployment_cells(&d, now()),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("27h"),
                json!("nginx,log"),
                json!("nginx:1.25,busybox"),
                json!("app=web")
            ]
        );
        let fresh = json!({"metadata": {"name": "new"}, "spec": {"template": template()}});
        let c = deployment_cells(&fresh, now());
        assert_eq!(c[1], "0/1");
        assert_eq!(c[2], 0);
        assert_eq!(c[7], "");
    }

    #[test]
    fn replicaset_row() {
        let rs = json!({
            "metadata": {"name": "web-7d4b9c", "creationTimestamp": "2024-05-01T11:57:30Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c"}},
                     "template": template()},
            "status": {"replicas": 3, "readyReplicas": 1}
        });
        assert_eq!(
            replicaset_cells(&rs, now()),
            vec![
                json!("web-7d4b9c"),
                json!(3),
                json!(3),
                json!(1),
                json!("2m30s"),
                json!("nginx,log"),
                json!("nginx:1.25,busybox"),
                json!("app=web,pod-template-hash=7d4b9c")
            ]
        );
        let scaled_down =
            json!({"metadata": {"name": "old"}, "spec": {"replicas": 0}, "status": {}});
        let c = replicaset_cells(&scaled_down, now());
        assert_eq!(&c[1..4], &[json!(0), json!(0), json!(0)]);
        assert_eq!(c[7], "<none>");
    }
}
