//! Revisions: the `deployment.kubernetes.io/revision` annotation that numbers a
//! Deployment's ReplicaSets, which `kubectl rollout history` lists and `kubectl rollout
//! undo` picks from, and `revisionHistoryLimit`, which bounds how many old, scaled-down
//! ReplicaSets are kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Deployment annotations that are not copied to its ReplicaSets: the controller's own
/// and kubectl's bookkeeping.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// The revision of an object, 0 when it has none or it does not parse.
pub fn revision(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn max_revision(rss: &[Arc<ReplicaSet>]) -> i64 {
    rss.iter()
        .map(|rs| revision(&rs.metadata))
        .max()
        .unwrap_or(0)
}

/// The annotations the new ReplicaSet should carry: the Deployment's (minus
/// bookkeeping), its revision, and, when an old ReplicaSet becomes the new one again
/// (an undo), the revisions it used to have.
pub fn new_rs_annotations(
    d: &Deployment,
    current: Option<&ObjectMeta>,
    max_old_revision: i64,
    max_surge: i32,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = current
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    for (k, v) in d.annotations() {
        if !NOT_COPIED.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    let old = current.map(revision).unwrap_or(0);
    let new = if old > max_old_revision {
        old
    } else {
        max_old_revision + 1
    };
    if old != 0 && old != new {
        let history = match out.get(REVISION_HISTORY) {
            Some(h) if !h.is_empty() => format!("{h},{old}"),
            _ => old.to_string(),
        };
        out.insert(REVISION_HISTORY.into(), history);
    }
    out.insert(REVISION.into(), new.to_string());
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    out.insert(DESIRED_REPLICAS.into(), replicas.to_string());
    out.insert(MAX_REPLICAS.into(), (replicas + max_surge).to_string());
    out
}

/// Old ReplicaSets to delete so that at most `revisionHistoryLimit` (default 10) fully
/// scaled-down ones remain; the oldest revisions go first.
pub fn history_to_delete(d: &Deployment, old: &[Arc<ReplicaSet>]) -> Vec<String> {
    let limit = d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0) as usize;
    let mut idle: Vec<&Arc<ReplicaSet>> = old
        .iter()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .filter(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) == 0)
        .filter(|rs| rs.status.as_ref().map_or(0, |s| s.replicas) == 0)
        .collect();
    if idle.len() <= limit {
        return Vec::new();
    }
    idle.sort_by_key(|rs| {
        (
            revision(&rs.metadata),
            rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
        )
    });
    let n = idle.len() - limit;
    idle[..n].iter().map(|rs| rs.name_any()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::fixtures::{deployment, rs_with};

    #[test]
    fn new_replicaset_gets_the_next_revision() {
        let d = deployment("web", 3);
        // (case, revision of the current new replicaset, max old revision, want, history)
        type Case<'a> = (&'a str, Option<i64>, i64, &'a str, Option<&'a str>);
        let cases: Vec<Case> = vec![
            ("first rollout", None, 0, "1", None),
            ("next rollout", None, 4, "5", None),
            ("already newest keeps its number", Some(5), 4, "5", None),
            ("undo: old becomes newest", Some(2), 4, "5", Some("2")),
        ];
        for (name, current_rev, max_old, want, history) in cases {
            let current = current_rev.map(|r| rs_with("web-x", "u", 0, 0, r).metadata.clone());
            let a = new_rs_annotations(&d, current.as_ref(), max_old, 1);
            assert_eq!(a[REVISION], want, "{name}");
            assert_eq!(
                a.get(REVISION_HISTORY).map(String::as_str),
                history,
                "{name}"
            );
            assert_eq!(a[DESIRED_REPLICAS], "3", "{name}");
            assert_eq!(a[MAX_REPLICAS], "4", "{name}");
        }
    }

    #[test]
    fn deployment_annotations_are_copied_but_bookkeeping_is_not() {
        let mut d = deployment("web", 1);
        d.metadata.annotations = Some(
            [
                ("kubernetes.io/change-cause", "bump"),
                ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
                (REVISION, "7"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        let a = new_rs_annotations(&d, None, 0, 0);
        assert_eq!(a["kubernetes.io/change-cause"], "bump");
        assert!(!a.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        assert_eq!(a[REVISION], "1");
    }

    #[test]
    fn history_limit_deletes_oldest_idle_replicasets() {
        let mut d = deployment("web", 1);
        d.spec.as_mut().unwrap().revision_history_limit = Some(1);
        let old = vec![
            Arc::new(rs_with("r1", "u1", 0, 0, 1)),
            Arc::new(rs_with("r3", "u3", 0, 0, 3)),
            Arc::new(rs_with("r2", "u2", 0, 0, 2)),
            // still running pods: never deleted
            Arc::new(rs_with("busy", "u4", 0, 2, 0)),
        ];
        assert_eq!(
            history_to_delete(&d, &old),
            vec!["r1".to_string(), "r2".to_string()]
        );
        d.spec.as_mut().unwrap().revision_history_limit = Some(5);
        assert!(history_to_delete(&d, &old).is_empty());
    }
}
