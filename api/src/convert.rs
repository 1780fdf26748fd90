//! Version conversion between resources that share one storage.
//!
//! Upstream serves Events twice, as core `v1` `events` and as `events.k8s.io/v1`
//! `events`, from one storage: an Event written through either API is read, listed,
//! watched and deleted through both. skiff does the same by storing every Event in the
//! core `v1` shape under the core key prefix and converting at the API boundary. The
//! conversion is a pure renaming of top-level fields (upstream's
//! `pkg/apis/events/v1/conversion.go` on top of the generated field copies):
//!
//! | events.k8s.io/v1           | core v1              |
//! |----------------------------|----------------------|
//! | `regarding`                | `involvedObject`     |
//! | `note`                     | `message`            |
//! | `reportingController`      | `reportingComponent` |
//! | `deprecatedSource`         | `source`             |
//! | `deprecatedFirstTimestamp` | `firstTimestamp`     |
//! | `deprecatedLastTimestamp`  | `lastTimestamp`      |
//! | `deprecatedCount`          | `count`              |
//!
//! Every other field (`metadata`, `reason`, `related`, `reportingInstance`, `action`,
//! `type`, `eventTime`, `series`, and anything unknown) keeps its name. Because the
//! mapping is one-to-one, a round trip through storage gives back exactly what was
//! written, so a no-op update stays a no-op whichever API it comes through.
//!
//! `metadata.managedFields` entries are kept in the stored version too (apiVersion `v1`,
//! core field names in `fieldsV1`) and shown in the served one, so server-side apply
//! and update bookkeeping compare like with like whichever API a manager used.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::resource::{self, ResourceInfo};

/// `(events.k8s.io/v1 name, core v1 name)` for every renamed Event field.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn is_events_v1(res: &ResourceInfo) -> bool {
    (res.group, res.kind) == ("events.k8s.io", "Event")
}

/// The resource whose keys hold `res`'s objects: core `events` for `events.k8s.io`
/// events, `res` itself for everything else.
pub fn storage_resource(res: &ResourceInfo) -> &ResourceInfo {
    if is_events_v1(res) {
        resource::lookup("", "v1", "events").expect("core events are served")
    } else {
        res
    }
}

/// Whether `res` is served from another resource's storage (and so needs conversion).
pub fn converts(res: &ResourceInfo) -> bool {
    is_events_v1(res)
}

/// Renames the top-level fields of `obj` by `pairs` (from the first name to the second)
/// and sets its type; anything not an object is returned untouched.
fn rename(obj: Value, pairs: &[(&str, &str)], from_first: bool, api_version: &str) -> Value {
    let Value::Object(map) = obj else {
        return obj;
    };
    let mut out = Map::with_capacity(map.len());
    for (k, v) in map {
        let new_key = pairs
            .iter()
            .find_map(|(a, b)| {
                let (from, to) = if from_first { (a, b) } else { (b, a) };
                (*from == k).then_some(*to)
            })
            .map(str::to_string)
            .unwrap_or(k);
        out.insert(new_key, v);
    }
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    let from_version = if from_first { "events.k8s.io/v1" } else { "v1" };
    if let Some(entries) = out
        .get_mut("metadata")
        .and_then(|m| m.get_mut("managedFields"))
        .and_then(Value::as_array_mut)
    {
        for e in entries {
            rename_managed(e, pairs, from_first, from_version, api_version);
        }
    }
    Value::Object(out)
}

/// Moves one managedFields entry recorded in `from_version` to `to_version`: its
/// apiVersion and the top-level `f:<field>` names of its field set. Entries of any
/// other version are left alone.
fn rename_managed(
    entry: &mut Value,
    pairs: &[(&str, &str)],
    from_first: bool,
    from_version: &str,
    to_version: &str,
) {
    if entry.get("apiVersion").and_then(Value::as_str) != Some(from_version) {
        return;
    }
    entry["apiVersion"] = json!(to_version);
    let Some(Value::Object(set)) = entry.get_mut("fieldsV1") else {
        return;
    };
    let old = std::mem::take(set);
    for (k, v) in old {
        let new_key = k
            .strip_prefix("f:")
            .and_then(|name| {
                pairs.iter().find_map(|(a, b)| {
                    let (from, to) = if from_first { (a, b) } else { (b, a) };
                    (*from == name).then(|| format!("f:{to}"))
                })
            })
            .unwrap_or(k);
        set.insert(new_key, v);
    }
}

/// `obj`, written through `res`, in the shape it is stored in.
pub fn to_storage(res: &ResourceInfo, obj: Value) -> Value {
    if is_events_v1(res) {
        rename(obj, EVENT_FIELDS, true, "v1")
    } else {
        obj
    }
}

/// A stored object as `res` serves it.
pub fn from_storage(res: &ResourceInfo, obj: &Value) -> Value {
    if is_events_v1(res) {
        rename(obj.clone(), EVENT_FIELDS, false, &res.api_version())
    } else {
        obj.clone()
    }
}

/// [`from_storage`] for shared stored values: no copy when nothing converts.
pub fn from_storage_arc(res: &ResourceInfo, obj: Arc<Value>) -> Arc<Value> {
    if converts(res) {
        Arc::new(from_storage(res, &obj))
    } else {
        obj
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_v1() -> &'static ResourceInfo {
        resource::lookup("events.k8s.io", "v1", "events").unwrap()
    }

    fn core() -> &'static ResourceInfo {
        resource::lookup("", "v1", "events").unwrap()
    }

    #[test]
    fn events_v1_maps_onto_core_fields() {
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default"},
            "regarding": {"kind": "Pod", "name": "web"},
            "related": {"kind": "Node", "name": "n1"},
            "note": "pulled", "reason": "Pulled", "type": "Normal", "action": "Pull",
            "reportingController": "kubelet", "reportingInstance": "n1",
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2024-01-01T00:00:01.000000Z"},
            "deprecatedSource": {"component": "kubelet", "host": "n1"},
            "deprecatedFirstTimestamp": "2024-01-01T00:00:00Z",
            "deprecatedLastTimestamp": "2024-01-01T00:00:05Z",
            "deprecatedCount": 3,
        });
        let stored = to_storage(events_v1(), v1.clone());
        let want = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web"},
            "related": {"kind": "Node", "name": "n1"},
            "message": "pulled", "reason": "Pulled", "type": "Normal", "action": "Pull",
            "reportingComponent": "kubelet", "reportingInstance": "n1",
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2024-01-01T00:00:01.000000Z"},
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": "2024-01-01T00:00:00Z",
            "lastTimestamp": "2024-01-01T00:00:05Z",
            "count": 3,
        });
        assert_eq!(stored, want);
        assert_eq!(from_storage(events_v1(), &stored), v1, "round trip");
    }

    #[test]
    fn old_style_core_event_reads_through_events_v1() {
        let core_ev = json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "a"},
            "involvedObject": {"kind": "Pod", "name": "web"},
            "message": "m", "source": {"component": "scheduler"}, "count": 1,
        });
        let v1 = from_storage(events_v1(), &core_ev);
        assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
        assert_eq!(v1["regarding"]["name"], "web");
        assert_eq!(v1["note"], "m");
        assert_eq!(v1["deprecatedSource"]["component"], "scheduler");
        assert_eq!(v1["deprecatedCount"], 1);
        assert!(v1.get("involvedObject").is_none() && v1.get("message").is_none());
        assert_eq!(to_storage(events_v1(), v1), core_ev, "round trip");
    }

    #[test]
    fn managed_fields_follow_the_version() {
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "a", "managedFields": [
                {"manager": "sched", "operation": "Update", "apiVersion": "events.k8s.io/v1",
                 "fieldsV1": {"f:note": {}, "f:regarding": {"f:name": {}}, "f:reason": {}}},
                {"manager": "other", "operation": "Update", "apiVersion": "v2",
                 "fieldsV1": {"f:note": {}}},
            ]},
        });
        let stored = to_storage(events_v1(), v1.clone());
        assert_eq!(
            stored["metadata"]["managedFields"][0],
            json!({"manager": "sched", "operation": "Update", "apiVersion": "v1",
                   "fieldsV1": {"f:message": {}, "f:involvedObject": {"f:name": {}}, "f:reason": {}}})
        );
        assert_eq!(
            stored["metadata"]["managedFields"][1], v1["metadata"]["managedFields"][1],
            "other versions are left alone"
        );
        assert_eq!(from_storage(events_v1(), &stored), v1, "round trip");
    }

    #[test]
    fn other_resources_are_stored_as_written() {
        let pods = resource::lookup("", "v1", "pods").unwrap();
        let pod = json!({"kind": "Pod", "message": "x", "note": "y"});
        assert_eq!(to_storage(pods, pod.clone()), pod);
        assert_eq!(from_storage(core(), &pod), pod);
        assert!(std::ptr::eq(storage_resource(pods), pods));
        assert!(std::ptr::eq(storage_resource(events_v1()), core()));
        assert!(!converts(core()) && converts(events_v1()));
    }
}
