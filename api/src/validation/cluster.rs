//! Validation of the smaller kinds: Namespace (finalizers, phase), Node (pod CIDRs,
//! taints), Lease (durations), Event in both its core and events.k8s.io shapes, and
//! ServiceAccount.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{
    array, finalizer_name, invalid_each, names, nonnegative, one_of, str_field, IMMUTABLE,
};
use crate::status::Cause;

const TAINT_EFFECTS: &[&str] = &["NoExecute", "NoSchedule", "PreferNoSchedule"];

pub(super) fn validate_namespace(obj: &Value, errs: &mut Vec<Cause>) {
    for f in array(obj.get("spec").unwrap_or(&Value::Null), "finalizers") {
        let name = f.as_str().unwrap_or("");
        invalid_each(errs, "spec.finalizers", f, finalizer_name(name));
    }
    if let Some(status) = obj.get("status") {
        one_of(
            status,
            "phase",
            "status.phase",
            &["Active", "Terminating"],
            errs,
        );
    }
}

pub(super) fn validate_node(obj: &Value, errs: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if let Some(c) = str_field(spec, "podCIDR").filter(|c| !c.is_empty()) {
        if !names::is_cidr(c) {
            errs.push(Cause::invalid(
                "spec.podCIDR",
                &Value::from(c),
                "must be a valid CIDR",
            ));
        }
    }
    for (i, c) in array(spec, "podCIDRs").iter().enumerate() {
        if !c.as_str().is_some_and(names::is_cidr) {
            errs.push(Cause::invalid(
                format!("spec.podCIDRs[{i}]"),
                c,
                "must be a valid CIDR",
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (i, t) in array(spec, "taints").iter().enumerate() {
        let path = format!("spec.taints[{i}]");
        match str_field(t, "key").unwrap_or("") {
            "" => errs.push(Cause::required(format!("{path}.key"))),
            k => invalid_each(
                errs,
                &format!("{path}.key"),
                &Value::from(k),
                names::qualified_name(k),
            ),
        }
        if let Some(v) = str_field(t, "value") {
            invalid_each(
                errs,
                &format!("{path}.value"),
                &Value::from(v),
                names::label_value(v),
            );
        }
        match str_field(t, "effect").unwrap_or("") {
            "" => errs.push(Cause::required(format!("{path}.effect"))),
            e if !TAINT_EFFECTS.contains(&e) => errs.push(Cause::not_supported(
                format!("{path}.effect"),
                &Value::from(e),
                TAINT_EFFECTS,
            )),
            _ => {}
        }
        let key = (
            str_field(t, "key").unwrap_or("").to_string(),
            str_field(t, "effect").unwrap_or("").to_string(),
        );
        if !seen.insert(key) {
            errs.push(Cause::new(
                "FieldValueDuplicate",
                path,
                "Duplicate value: taints must be unique by key and effect pair",
            ));
        }
    }
}

pub(super) fn validate_lease(obj: &Value, errs: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if let Some(d) = spec.get("leaseDurationSeconds").filter(|v| !v.is_null()) {
        if d.as_i64().is_none_or(|n| n <= 0) {
            errs.push(Cause::invalid(
                "spec.leaseDurationSeconds",
                d,
                "must be greater than 0",
            ));
        }
    }
    nonnegative(spec, "leaseTransitions", "spec.leaseTransitions", errs);
}

/// A length limit, as upstream's `field.TooLong`.
fn at_most(obj: &Value, key: &str, max: usize, errs: &mut Vec<Cause>) {
    if str_field(obj, key).is_some_and(|s| s.len() > max) {
        errs.push(Cause::too_long(key, max));
    }
}

fn required_str(obj: &Value, key: &str, errs: &mut Vec<Cause>) {
    if str_field(obj, key).unwrap_or("").is_empty() {
        errs.push(Cause::required(key));
    }
}

/// The object an event is about must live in the event's namespace (or, for a
/// cluster-scoped object, the event lives in `default` or has none).
fn namespace_agrees(obj: &Value, about_field: &str, errs: &mut Vec<Cause>) {
    let about = obj.get(about_field).unwrap_or(&Value::Null);
    let about_ns = str_field(about, "namespace").unwrap_or("");
    let event_ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ok = if about_ns.is_empty() {
        matches!(event_ns, "" | "default" | "kube-system")
    } else {
        event_ns.is_empty() || event_ns == about_ns
    };
    if !ok {
        errs.push(Cause::invalid(
            format!("{about_field}.namespace"),
            &Value::from(about_ns),
            "does not match event.namespace",
        ));
    }
}

/// Core `v1` Events: old-style ones (no `eventTime`) need only their subject; new-style
/// ones written through the core API also need the reporting fields.
pub(super) fn validate_core_event(obj: &Value, errs: &mut Vec<Cause>) {
    if obj.get("involvedObject").is_none_or(|v| !v.is_object()) {
        errs.push(Cause::required("involvedObject"));
    } else {
        namespace_agrees(obj, "involvedObject", errs);
    }
    let new_style = obj
        .get("eventTime")
        .is_some_and(|t| t.as_str().is_some_and(|s| !s.is_empty()));
    if new_style {
        required_str(obj, "reportingComponent", errs);
        if let Some(rc) = str_field(obj, "reportingComponent").filter(|s| !s.is_empty()) {
            invalid_each(
                errs,
                "reportingComponent",
                &Value::from(rc),
                names::qualified_name(rc),
            );
        }
        required_str(obj, "reportingInstance", errs);
        required_str(obj, "action", errs);
        required_str(obj, "reason", errs);
        at_most(obj, "message", 1024, errs);
    }
    at_most(obj, "reportingInstance", 128, errs);
    at_most(obj, "action", 128, errs);
    at_most(obj, "reason", 128, errs);
}

/// `events.k8s.io/v1` Events. Created ones are always new-style: the reporting fields
/// required and the deprecated ones unset. Both APIs share one storage, so an update
/// through events.k8s.io may hit an old-style Event written through the core API:
/// upstream then checks only the core rules plus that nothing but `series` (and
/// metadata) changed. Field paths use the core names, as upstream's do.
pub(super) fn validate_events_event(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let Some(old) = old else {
        validate_new_events_event(obj, errs);
        return;
    };
    validate_core_event(&as_core(obj), errs);
    for (v1_name, core_name) in EVENT_UPDATE_IMMUTABLE {
        let now = obj.get(*v1_name).unwrap_or(&Value::Null);
        if now != old.get(*v1_name).unwrap_or(&Value::Null) {
            errs.push(Cause::invalid(*core_name, now, IMMUTABLE));
        }
    }
}

/// What an update through events.k8s.io may not change: `(its name, upstream's path)`.
const EVENT_UPDATE_IMMUTABLE: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("reason", "reason"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("type", "type"),
    ("eventTime", "eventTime"),
    ("action", "action"),
    ("related", "related"),
    ("reportingController", "reportingController"),
    ("reportingInstance", "reportingInstance"),
];

fn as_core(obj: &Value) -> Value {
    let res = crate::resource::lookup("events.k8s.io", "v1", "events").expect("served");
    crate::convert::to_storage(res, obj.clone())
}

fn validate_new_events_event(obj: &Value, errs: &mut Vec<Cause>) {
    for (field, core_name) in [
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
    ] {
        if str_field(obj, field).is_some_and(|s| !s.is_empty()) {
            errs.push(Cause::invalid(core_name, &obj[field], "needs to be unset"));
        }
    }
    if obj
        .get("deprecatedCount")
        .and_then(Value::as_i64)
        .is_some_and(|c| c != 0)
    {
        errs.push(Cause::invalid(
            "count",
            &obj["deprecatedCount"],
            "needs to be unset",
        ));
    }
    let src = obj.get("deprecatedSource");
    if ["component", "host"].iter().any(|k| {
        src.and_then(|s| s.get(*k))
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    }) {
        errs.push(Cause::invalid(
            "source",
            src.unwrap_or(&Value::Null),
            "needs to be unset",
        ));
    }
    if obj
        .get("eventTime")
        .is_none_or(|t| t.as_str().is_none_or(str::is_empty))
    {
        errs.push(Cause::required("eventTime"));
    }
    if obj.get("regarding").is_some_and(Value::is_object) {
        namespace_agrees(obj, "regarding", errs);
    }
    required_str(obj, "reportingController", errs);
    if let Some(rc) = str_field(obj, "reportingController").filter(|s| !s.is_empty()) {
        invalid_each(
            errs,
            "reportingController",
            &Value::from(rc),
            names::qualified_name(rc),
        );
    }
    required_str(obj, "reportingInstance", errs);
    required_str(obj, "action", errs);
    required_str(obj, "reason", errs);
    at_most(obj, "reportingInstance", 128, errs);
    at_most(obj, "action", 128, errs);
    at_most(obj, "reason", 128, errs);
    at_most(obj, "note", 1024, errs);
    one_of(obj, "type", "type", &["Normal", "Warning"], errs);
}

/// ServiceAccounts carry only references; the names they list must be object names.
pub(super) fn validate_serviceaccount(obj: &Value, errs: &mut Vec<Cause>) {
    for list in ["secrets", "imagePullSecrets"] {
        for (i, r) in array(obj, list).iter().enumerate() {
            if let Some(n) = str_field(r, "name").filter(|n| !n.is_empty()) {
                invalid_each(
                    errs,
                    &format!("{list}[{i}].name"),
                    &Value::from(n),
                    names::dns1123_subdomain(n),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use serde_json::{json, Value};

    fn with(base: Value, extra: Value) -> Value {
        let mut v = base;
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }

    #[test]
    fn namespace_rules() {
        let ns = |extra: Value| {
            with(
                json!({"kind": "Namespace", "metadata": {"name": "team-a"}}),
                extra,
            )
        };
        let cases: Vec<Case> = vec![
            (
                "ok",
                ns(json!({"spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})),
                vec![],
            ),
            (
                "bad finalizer",
                ns(json!({"spec": {"finalizers": ["cleanup"]}})),
                vec![("spec.finalizers", "FieldValueInvalid")],
            ),
            (
                "qualified finalizer",
                ns(json!({"spec": {"finalizers": ["example.com/x"]}})),
                vec![],
            ),
            (
                "bad phase",
                ns(json!({"status": {"phase": "Gone"}})),
                vec![("status.phase", "FieldValueNotSupported")],
            ),
        ];
        for (case, obj, want) in cases {
            expect(&run("", "namespaces", &obj, None), &want, case);
        }
    }

    #[test]
    fn node_rules() {
        let node = |spec: Value| json!({"kind": "Node", "metadata": {"name": "n1"}, "spec": spec});
        let cases: Vec<Case> = vec![
            (
                "ok",
                node(
                    json!({"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"], "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}),
                ),
                vec![],
            ),
            (
                "bad cidr",
                node(json!({"podCIDR": "10.244.1.0"})),
                vec![("spec.podCIDR", "FieldValueInvalid")],
            ),
            (
                "bad cidrs",
                node(json!({"podCIDRs": ["x"]})),
                vec![("spec.podCIDRs[0]", "FieldValueInvalid")],
            ),
            (
                "taint no effect",
                node(json!({"taints": [{"key": "a"}]})),
                vec![("spec.taints[0].effect", "FieldValueRequired")],
            ),
            (
                "taint bad effect",
                node(json!({"taints": [{"key": "a", "effect": "Never"}]})),
                vec![("spec.taints[0].effect", "FieldValueNotSupported")],
            ),
            (
                "taint no key",
                node(json!({"taints": [{"effect": "NoSchedule"}]})),
                vec![("spec.taints[0].key", "FieldValueRequired")],
            ),
            (
                "taint bad value",
                node(json!({"taints": [{"key": "a", "value": "a b", "effect": "NoSchedule"}]})),
                vec![("spec.taints[0].value", "FieldValueInvalid")],
            ),
            (
                "taint dup",
                node(
                    json!({"taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "a", "value": "x", "effect": "NoSchedule"}]}),
                ),
                vec![("spec.taints[1]", "FieldValueDuplicate")],
            ),
            (
                "taint same key other effect",
                node(
                    json!({"taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoExecute"}]}),
                ),
                vec![],
            ),
        ];
        for (case, obj, want) in cases {
            expect(&run("", "nodes", &obj, None), &want, case);
        }
    }

    #[test]
    fn lease_rules() {
        let lease = |spec: Value| json!({"kind": "Lease", "metadata": {"name": "n1", "namespace": "kube-node-lease"}, "spec": spec});
        expect(
            &run(
                "coordination.k8s.io",
                "leases",
                &lease(
                    json!({"holderIdentity": "n1", "leaseDurationSeconds": 40, "leaseTransitions": 0}),
                ),
                None,
            ),
            &[],
            "ok",
        );
        expect(
            &run(
                "coordination.k8s.io",
                "leases",
                &lease(json!({"leaseDurationSeconds": 0})),
                None,
            ),
            &[("spec.leaseDurationSeconds", "FieldValueInvalid")],
            "zero duration",
        );
        expect(
            &run(
                "coordination.k8s.io",
                "leases",
                &lease(json!({"leaseTransitions": -1})),
                None,
            ),
            &[("spec.leaseTransitions", "FieldValueInvalid")],
            "negative transitions",
        );
    }

    #[test]
    fn core_event_rules() {
        let ev = |extra: Value| {
            with(
                json!({"kind": "Event", "metadata": {"name": "web.1", "namespace": "default"}}),
                extra,
            )
        };
        let cases: Vec<Case> = vec![
            (
                "old style",
                ev(
                    json!({"involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"}, "reason": "Scheduled"}),
                ),
                vec![],
            ),
            (
                "cluster object",
                ev(json!({"involvedObject": {"kind": "Node", "name": "n1"}})),
                vec![],
            ),
            (
                "no subject",
                ev(json!({"reason": "x"})),
                vec![("involvedObject", "FieldValueRequired")],
            ),
            (
                "namespace mismatch",
                ev(json!({"involvedObject": {"kind": "Pod", "name": "web", "namespace": "other"}})),
                vec![("involvedObject.namespace", "FieldValueInvalid")],
            ),
            (
                "new style ok",
                ev(
                    json!({"involvedObject": {"kind": "Pod", "name": "web"}, "eventTime": "2024-01-01T00:00:00.000000Z", "reportingComponent": "kubelet", "reportingInstance": "n1", "action": "Pulling", "reason": "Pulling"}),
                ),
                vec![],
            ),
            (
                "new style missing",
                ev(
                    json!({"involvedObject": {"kind": "Pod", "name": "web"}, "eventTime": "2024-01-01T00:00:00.000000Z"}),
                ),
                vec![
                    ("reportingComponent", "FieldValueRequired"),
                    ("reportingInstance", "FieldValueRequired"),
                    ("action", "FieldValueRequired"),
                    ("reason", "FieldValueRequired"),
                ],
            ),
            (
                "reason too long",
                ev(
                    json!({"involvedObject": {"kind": "Pod", "name": "web"}, "reason": "r".repeat(129)}),
                ),
                vec![("reason", "FieldValueTooLong")],
            ),
        ];
        for (case, obj, want) in cases {
            expect(&run("", "events", &obj, None), &want, case);
        }
    }

    #[test]
    fn events_k8s_io_rules() {
        let ev = |extra: Value| {
            with(
                json!({"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": {"name": "web.1", "namespace": "default"}}),
                extra,
            )
        };
        let full = json!({"regarding": {"kind": "Pod", "name": "web", "namespace": "default"}, "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "skiff.dev/scheduler", "reportingInstance": "s1", "action": "Binding", "reason": "Scheduled", "type": "Normal", "note": "ok"});
        let cases: Vec<Case> = vec![
            ("ok", ev(full.clone()), vec![]),
            (
                "empty",
                ev(json!({})),
                vec![
                    ("eventTime", "FieldValueRequired"),
                    ("reportingController", "FieldValueRequired"),
                    ("reportingInstance", "FieldValueRequired"),
                    ("action", "FieldValueRequired"),
                    ("reason", "FieldValueRequired"),
                ],
            ),
            (
                "bad type",
                ev(with(full.clone(), json!({"type": "Info"}))),
                vec![("type", "FieldValueNotSupported")],
            ),
            (
                "long note",
                ev(with(full.clone(), json!({"note": "n".repeat(1025)}))),
                vec![("note", "FieldValueTooLong")],
            ),
            (
                "regarding elsewhere",
                ev(with(
                    full.clone(),
                    json!({"regarding": {"kind": "Pod", "name": "x", "namespace": "other"}}),
                )),
                vec![("regarding.namespace", "FieldValueInvalid")],
            ),
            (
                "deprecated fields on create",
                ev(with(
                    full.clone(),
                    json!({"deprecatedCount": 2, "deprecatedSource": {"component": "kubelet"}, "deprecatedFirstTimestamp": "2024-01-01T00:00:00Z"}),
                )),
                vec![
                    ("firstTimestamp", "FieldValueInvalid"),
                    ("count", "FieldValueInvalid"),
                    ("source", "FieldValueInvalid"),
                ],
            ),
        ];
        for (case, obj, want) in cases {
            expect(&run("events.k8s.io", "events", &obj, None), &want, case);
        }
    }

    #[test]
    fn events_k8s_io_updates_change_only_the_series() {
        // An old-style Event written through the core API, as events.k8s.io reads it.
        let old = json!({"kind": "Event", "apiVersion": "events.k8s.io/v1",
            "metadata": {"name": "web.1", "namespace": "default"},
            "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
            "reason": "Pulled", "note": "pulled", "deprecatedCount": 3,
            "deprecatedSource": {"component": "kubelet"}});
        let series =
            json!({"series": {"count": 2, "lastObservedTime": "2024-01-01T00:00:00.000000Z"}});
        let cases: Vec<Case> = vec![
            ("unchanged old-style event", old.clone(), vec![]),
            ("series added", with(old.clone(), series), vec![]),
            (
                "note changed",
                with(old.clone(), json!({"note": "other"})),
                vec![("message", "FieldValueInvalid")],
            ),
            (
                "count and regarding changed",
                with(
                    old.clone(),
                    json!({"deprecatedCount": 4, "regarding": {"kind": "Pod", "name": "x", "namespace": "default"}}),
                ),
                vec![
                    ("involvedObject", "FieldValueInvalid"),
                    ("count", "FieldValueInvalid"),
                ],
            ),
            (
                "core rules still apply",
                with(
                    old.clone(),
                    json!({"eventTime": "2024-01-01T00:00:00.000000Z"}),
                ),
                vec![
                    ("reportingComponent", "FieldValueRequired"),
                    ("reportingInstance", "FieldValueRequired"),
                    ("action", "FieldValueRequired"),
                    ("eventTime", "FieldValueInvalid"),
                ],
            ),
        ];
        for (case, obj, want) in cases {
            expect(
                &run("events.k8s.io", "events", &obj, Some(&old)),
                &want,
                case,
            );
        }
    }

    #[test]
    fn serviceaccount_rules() {
        let sa = |extra: Value| {
            with(
                json!({"kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "default"}}),
                extra,
            )
        };
        expect(
            &run("", "serviceaccounts", &sa(json!({})), None),
            &[],
            "plain",
        );
        expect(
            &run(
                "",
                "serviceaccounts",
                &sa(json!({"imagePullSecrets": [{"name": "Reg"}]})),
                None,
            ),
            &[("imagePullSecrets[0].name", "FieldValueInvalid")],
            "bad pull secret",
        );
    }
}
