//! Pod validation: the pod spec (containers, ports, env, volumes, resources, probes,
//! tolerations, policies) shared with every pod template, and the narrow set of changes
//! a pod update may make.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{
    array, invalid_each, is_set, names, nonnegative, not_found, one_of, port_num_or_name, quantity,
    required_because, str_field, validate_labels,
};
use crate::status::Cause;

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const MESSAGE_POLICIES: &[&str] = &["FallbackToLogsOnError", "File"];
const TAINT_EFFECTS: &[&str] = &["NoExecute", "NoSchedule", "PreferNoSchedule"];
const TOLERATION_OPERATORS: &[&str] = &["Equal", "Exists"];
const PROBE_HANDLERS: &[&str] = &["exec", "httpGet", "tcpSocket", "grpc"];

/// Every volume source a pod volume may name; exactly one must be set.
const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

/// The fields a pod update may change, worded as upstream lists them.
const UPDATABLE_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

const MAX_INT32: i64 = i32::MAX as i64;

pub(super) fn validate_pod(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    validate_pod_spec(spec, "spec", errs);
    if let Some(old) = old {
        validate_pod_update(spec, old.get("spec").unwrap_or(&Value::Null), errs);
    }
}

/// Validates a pod spec found at `path` (`spec` for a pod, `spec.template.spec` for a
/// template), appending every fault to `errs`.
pub fn validate_pod_spec(spec: &Value, path: &str, errs: &mut Vec<Cause>) {
    let volumes = validate_volumes(spec, path, errs);
    let containers = array(spec, "containers");
    if containers.is_empty() {
        errs.push(Cause::required(format!("{path}.containers")));
    }
    let mut names_seen = BTreeSet::new();
    for (i, c) in array(spec, "initContainers").iter().enumerate() {
        validate_container(
            c,
            &format!("{path}.initContainers[{i}]"),
            &volumes,
            &mut names_seen,
            false,
            errs,
        );
    }
    for (i, c) in containers.iter().enumerate() {
        validate_container(
            c,
            &format!("{path}.containers[{i}]"),
            &volumes,
            &mut names_seen,
            true,
            errs,
        );
    }
    one_of(
        spec,
        "restartPolicy",
        &format!("{path}.restartPolicy"),
        RESTART_POLICIES,
        errs,
    );
    one_of(
        spec,
        "dnsPolicy",
        &format!("{path}.dnsPolicy"),
        DNS_POLICIES,
        errs,
    );
    if let Some(sa) = str_field(spec, "serviceAccountName").filter(|s| !s.is_empty()) {
        invalid_each(
            errs,
            &format!("{path}.serviceAccountName"),
            &Value::from(sa),
            names::dns1123_subdomain(sa),
        );
    }
    if let Some(v) = spec.get("activeDeadlineSeconds").filter(|v| !v.is_null()) {
        if !v.as_i64().is_some_and(|n| (1..=MAX_INT32).contains(&n)) {
            errs.push(Cause::invalid(
                format!("{path}.activeDeadlineSeconds"),
                v,
                &names::inclusive_range_error(1, MAX_INT32),
            ));
        }
    }
    nonnegative(
        spec,
        "terminationGracePeriodSeconds",
        &format!("{path}.terminationGracePeriodSeconds"),
        errs,
    );
    for field in ["hostname", "subdomain"] {
        if let Some(h) = str_field(spec, field).filter(|h| !h.is_empty()) {
            invalid_each(
                errs,
                &format!("{path}.{field}"),
                &Value::from(h),
                names::dns1123_label(h),
            );
        }
    }
    validate_labels(
        spec.get("nodeSelector"),
        &format!("{path}.nodeSelector"),
        errs,
    );
    for (i, t) in array(spec, "tolerations").iter().enumerate() {
        validate_toleration(t, &format!("{path}.tolerations[{i}]"), errs);
    }
}

/// Checks `spec.volumes` and returns the names declared, for volumeMounts to refer to.
fn validate_volumes(spec: &Value, path: &str, errs: &mut Vec<Cause>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for (i, vol) in array(spec, "volumes").iter().enumerate() {
        let vpath = format!("{path}.volumes[{i}]");
        let name = str_field(vol, "name").unwrap_or("");
        if name.is_empty() {
            errs.push(Cause::required(format!("{vpath}.name")));
        } else {
            invalid_each(
                errs,
                &format!("{vpath}.name"),
                &Value::from(name),
                names::dns1123_label(name),
            );
            if !seen.insert(name.to_string()) {
                errs.push(Cause::duplicate(
                    format!("{vpath}.name"),
                    &Value::from(name),
                ));
            }
        }
        let sources: Vec<&str> = VOLUME_SOURCES
            .iter()
            .copied()
            .filter(|s| is_set(vol.get(*s)))
            .collect();
        match sources.as_slice() {
            [] => errs.push(required_because(vpath, "must specify a volume type")),
            [_] => {}
            [_, second, ..] => errs.push(Cause::forbidden(
                format!("{vpath}.{second}"),
                "may not specify more than 1 volume type",
            )),
        }
    }
    seen
}

fn validate_container(
    c: &Value,
    path: &str,
    volumes: &BTreeSet<String>,
    names_seen: &mut BTreeSet<String>,
    regular: bool,
    errs: &mut Vec<Cause>,
) {
    let name = str_field(c, "name").unwrap_or("");
    if name.is_empty() {
        errs.push(Cause::required(format!("{path}.name")));
    } else {
        invalid_each(
            errs,
            &format!("{path}.name"),
            &Value::from(name),
            names::dns1123_label(name),
        );
        if !names_seen.insert(name.to_string()) {
            errs.push(Cause::duplicate(format!("{path}.name"), &Value::from(name)));
        }
    }
    let image = str_field(c, "image").unwrap_or("");
    if image.is_empty() {
        errs.push(Cause::required(format!("{path}.image")));
    } else if image.trim() != image {
        errs.push(Cause::invalid(
            format!("{path}.image"),
            &Value::from(image),
            "must not have leading or trailing whitespace",
        ));
    }
    one_of(
        c,
        "imagePullPolicy",
        &format!("{path}.imagePullPolicy"),
        PULL_POLICIES,
        errs,
    );
    one_of(
        c,
        "terminationMessagePolicy",
        &format!("{path}.terminationMessagePolicy"),
        MESSAGE_POLICIES,
        errs,
    );
    validate_container_ports(c, path, errs);
    for (i, env) in array(c, "env").iter().enumerate() {
        let epath = format!("{path}.env[{i}].name");
        match str_field(env, "name").unwrap_or("") {
            "" => errs.push(Cause::required(epath)),
            n => invalid_each(errs, &epath, &Value::from(n), names::env_var_name(n)),
        }
        validate_env_source(env, &format!("{path}.env[{i}]"), errs);
    }
    let mut mount_paths = BTreeSet::new();
    for (i, m) in array(c, "volumeMounts").iter().enumerate() {
        let mpath = format!("{path}.volumeMounts[{i}]");
        match str_field(m, "name").unwrap_or("") {
            "" => errs.push(Cause::required(format!("{mpath}.name"))),
            n if !volumes.contains(n) => {
                errs.push(not_found(format!("{mpath}.name"), &Value::from(n)))
            }
            _ => {}
        }
        match str_field(m, "mountPath").unwrap_or("") {
            "" => errs.push(Cause::required(format!("{mpath}.mountPath"))),
            p if !mount_paths.insert(p.to_string()) => errs.push(Cause::invalid(
                format!("{mpath}.mountPath"),
                &Value::from(p),
                "must be unique",
            )),
            _ => {}
        }
    }
    if let Some(r) = c.get("resources") {
        validate_resources(r, &format!("{path}.resources"), errs);
    }
    for (probe, liveness_like) in [
        ("livenessProbe", true),
        ("readinessProbe", false),
        ("startupProbe", true),
    ] {
        if let Some(p) = c.get(probe).filter(|p| !p.is_null()) {
            let ppath = format!("{path}.{probe}");
            if !regular {
                // Init containers run to completion before the pod is ready; a probe on
                // one has no meaning (sidecar init containers are not modelled here).
                errs.push(Cause::forbidden(
                    ppath,
                    "may not be set for init containers",
                ));
            } else {
                validate_probe(p, &ppath, liveness_like, errs);
            }
        }
    }
}

/// `valueFrom` names exactly one source, and not alongside a literal `value`.
fn validate_env_source(env: &Value, path: &str, errs: &mut Vec<Cause>) {
    let Some(from) = env.get("valueFrom").filter(|v| !v.is_null()) else {
        return;
    };
    let sources = [
        "fieldRef",
        "resourceFieldRef",
        "configMapKeyRef",
        "secretKeyRef",
        "fileKeyRef",
    ]
    .iter()
    .filter(|k| is_set(from.get(**k)))
    .count();
    match sources {
        0 => errs.push(required_because(
            format!("{path}.valueFrom"),
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        )),
        1 => {}
        _ => errs.push(Cause::invalid(
            format!("{path}.valueFrom"),
            &Value::from(""),
            "may not have more than one field specified at a time",
        )),
    }
    if is_set(env.get("value")) {
        errs.push(Cause::invalid(
            format!("{path}.valueFrom"),
            &Value::from(""),
            "may not be specified when `value` is not empty",
        ));
    }
}

fn validate_container_ports(c: &Value, path: &str, errs: &mut Vec<Cause>) {
    let mut port_names = BTreeSet::new();
    for (i, p) in array(c, "ports").iter().enumerate() {
        let ppath = format!("{path}.ports[{i}]");
        if let Some(n) = str_field(p, "name").filter(|n| !n.is_empty()) {
            let before = errs.len();
            invalid_each(
                errs,
                &format!("{ppath}.name"),
                &Value::from(n),
                names::port_name(n),
            );
            if errs.len() == before && !port_names.insert(n.to_string()) {
                errs.push(Cause::duplicate(format!("{ppath}.name"), &Value::from(n)));
            }
        }
        match p.get("containerPort") {
            None | Some(Value::Null) => {
                errs.push(Cause::required(format!("{ppath}.containerPort")))
            }
            Some(v) if v.as_i64() == Some(0) => {
                errs.push(Cause::required(format!("{ppath}.containerPort")))
            }
            Some(v) => invalid_each(
                errs,
                &format!("{ppath}.containerPort"),
                v,
                names::port_num(v.as_i64().unwrap_or(-1)),
            ),
        }
        if let Some(v) = p
            .get("hostPort")
            .filter(|v| !v.is_null() && v.as_i64() != Some(0))
        {
            invalid_each(
                errs,
                &format!("{ppath}.hostPort"),
                v,
                names::port_num(v.as_i64().unwrap_or(-1)),
            );
        }
        one_of(p, "protocol", &format!("{ppath}.protocol"), PROTOCOLS, errs);
    }
}

fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

/// `resources.limits` and `resources.requests`: known names, parseable non-negative
/// quantities, and no request above its limit.
fn validate_resources(r: &Value, path: &str, errs: &mut Vec<Cause>) {
    let mut parsed: BTreeMap<&str, BTreeMap<String, (i128, String)>> = BTreeMap::new();
    for which in ["limits", "requests"] {
        let Some(map) = r.get(which).and_then(Value::as_object) else {
            continue;
        };
        for (name, q) in map {
            let qpath = format!("{path}.{which}[{name}]");
            if !name.contains('/') && !is_standard_container_resource(name) {
                errs.push(Cause::invalid(
                    &qpath,
                    &Value::from(name.as_str()),
                    "must be a standard resource for containers",
                ));
                continue;
            }
            let text = match q {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => {
                    errs.push(Cause::invalid(
                        &qpath,
                        other,
                        quantity::QUANTITY_FORMAT_ERROR,
                    ));
                    continue;
                }
            };
            match quantity::parse_quantity(&text) {
                Err(e) => errs.push(Cause::invalid(&qpath, &Value::from(text), &e)),
                Ok(m) if m < 0 => errs.push(Cause::invalid(
                    &qpath,
                    &Value::from(text),
                    "must be greater than or equal to 0",
                )),
                Ok(m) => {
                    parsed
                        .entry(which)
                        .or_default()
                        .insert(name.clone(), (m, text));
                }
            }
        }
    }
    let limits = parsed.get("limits").cloned().unwrap_or_default();
    for (name, (req, text)) in parsed.get("requests").cloned().unwrap_or_default() {
        if let Some((lim, lim_text)) = limits.get(&name) {
            if req > *lim {
                errs.push(Cause::invalid(
                    format!("{path}.requests"),
                    &Value::from(text),
                    &format!("must be less than or equal to {name} limit of {lim_text}"),
                ));
            }
        }
    }
}

fn validate_probe(p: &Value, path: &str, liveness_like: bool, errs: &mut Vec<Cause>) {
    let handlers: Vec<&str> = PROBE_HANDLERS
        .iter()
        .copied()
        .filter(|h| is_set(p.get(*h)))
        .collect();
    match handlers.as_slice() {
        [] => errs.push(required_because(path, "must specify a handler type")),
        [_] => {}
        [_, second, ..] => errs.push(Cause::forbidden(
            format!("{path}.{second}"),
            "may not specify more than 1 handler type",
        )),
    }
    for f in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
        "terminationGracePeriodSeconds",
    ] {
        nonnegative(p, f, &format!("{path}.{f}"), errs);
    }
    if liveness_like {
        if let Some(v) = p.get("successThreshold").filter(|v| !v.is_null()) {
            if v.as_i64() != Some(1) {
                errs.push(Cause::invalid(
                    format!("{path}.successThreshold"),
                    v,
                    "must be 1",
                ));
            }
        }
    }
    if let Some(h) = p.get("httpGet").filter(|v| v.is_object()) {
        match h.get("port") {
            None | Some(Value::Null) => errs.push(Cause::required(format!("{path}.httpGet.port"))),
            Some(port) => port_num_or_name(port, &format!("{path}.httpGet.port"), errs),
        }
        one_of(
            h,
            "scheme",
            &format!("{path}.httpGet.scheme"),
            &["HTTP", "HTTPS"],
            errs,
        );
    }
    if let Some(t) = p.get("tcpSocket").filter(|v| v.is_object()) {
        match t.get("port") {
            None | Some(Value::Null) => {
                errs.push(Cause::required(format!("{path}.tcpSocket.port")))
            }
            Some(port) => port_num_or_name(port, &format!("{path}.tcpSocket.port"), errs),
        }
    }
    if let Some(g) = p.get("grpc").filter(|v| v.is_object()) {
        let port = g.get("port").unwrap_or(&Value::Null);
        invalid_each(
            errs,
            &format!("{path}.grpc.port"),
            port,
            names::port_num(port.as_i64().unwrap_or(0)),
        );
    }
    if let Some(e) = p.get("exec").filter(|v| v.is_object()) {
        if array(e, "command").is_empty() {
            errs.push(Cause::required(format!("{path}.exec.command")));
        }
    }
}

fn validate_toleration(t: &Value, path: &str, errs: &mut Vec<Cause>) {
    let key = str_field(t, "key").unwrap_or("");
    if !key.is_empty() {
        invalid_each(
            errs,
            &format!("{path}.key"),
            &Value::from(key),
            names::qualified_name(key),
        );
    }
    let operator = str_field(t, "operator").unwrap_or("Equal");
    if key.is_empty() && operator != "Exists" {
        errs.push(Cause::invalid(
            format!("{path}.operator"),
            &Value::from(operator),
            "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        ));
    }
    one_of(
        t,
        "operator",
        &format!("{path}.operator"),
        TOLERATION_OPERATORS,
        errs,
    );
    if operator == "Exists" && is_set(t.get("value")) {
        errs.push(Cause::invalid(
            format!("{path}.operator"),
            t.get("value").unwrap_or(&Value::Null),
            "value must be empty when `operator` is 'Exists'",
        ));
    }
    if let Some(e) = t.get("effect").filter(|e| e.as_str() != Some("")) {
        one_of(t, "effect", &format!("{path}.effect"), TAINT_EFFECTS, errs);
        if is_set(t.get("tolerationSeconds")) && e.as_str() != Some("NoExecute") {
            errs.push(Cause::invalid(
                format!("{path}.effect"),
                e,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
    } else if is_set(t.get("tolerationSeconds")) {
        errs.push(Cause::invalid(
            format!("{path}.effect"),
            &Value::from(""),
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ));
    }
}

/// A toleration without its `tolerationSeconds`, the only part an update may change.
fn toleration_identity(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("tolerationSeconds");
    }
    t
}

/// A pod's spec is fixed once created, except for the fields in [`UPDATABLE_FIELDS`] and
/// the one-time binding of `nodeName` (which upstream does through the binding
/// subresource).
fn validate_pod_update(new: &Value, old: &Value, errs: &mut Vec<Cause>) {
    let mut munged = new.clone();
    if !munged.is_object() || !old.is_object() {
        return;
    }
    for list in ["containers", "initContainers"] {
        let old_list = array(old, list);
        if let Some(new_list) = munged.get_mut(list).and_then(Value::as_array_mut) {
            // Only when the lists line up may images differ; otherwise the length
            // difference itself is the forbidden change.
            if new_list.len() == old_list.len() {
                for (n, o) in new_list.iter_mut().zip(old_list) {
                    if let (Some(n), Some(image)) = (n.as_object_mut(), o.get("image")) {
                        n.insert("image".into(), image.clone());
                    }
                }
            }
        }
    }
    match (
        new.get("activeDeadlineSeconds").and_then(Value::as_i64),
        old.get("activeDeadlineSeconds").and_then(Value::as_i64),
    ) {
        (Some(n), Some(o)) if n > o => errs.push(Cause::invalid(
            "spec.activeDeadlineSeconds",
            &Value::from(n),
            "must be less than or equal to previous value",
        )),
        (None, Some(_)) => errs.push(Cause::invalid(
            "spec.activeDeadlineSeconds",
            &Value::Null,
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    set_or_remove(
        &mut munged,
        "activeDeadlineSeconds",
        old.get("activeDeadlineSeconds"),
    );
    let new_tols: Vec<Value> = array(new, "tolerations")
        .iter()
        .map(toleration_identity)
        .collect();
    let kept = array(old, "tolerations")
        .iter()
        .all(|t| new_tols.contains(&toleration_identity(t)));
    if kept {
        set_or_remove(&mut munged, "tolerations", old.get("tolerations"));
    } else {
        errs.push(Cause::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
        set_or_remove(&mut munged, "tolerations", old.get("tolerations"));
    }
    let old_node = str_field(old, "nodeName").unwrap_or("");
    if old_node.is_empty() {
        set_or_remove(&mut munged, "nodeName", old.get("nodeName"));
    }
    if &munged != old {
        let mut diffs = Vec::new();
        diff_paths(old, &munged, "spec", &mut diffs);
        errs.push(Cause::forbidden(
            "spec",
            &format!(
                "pod updates may not change fields other than {UPDATABLE_FIELDS}\nchanged: {}",
                diffs.join(", ")
            ),
        ));
    }
}

fn set_or_remove(obj: &mut Value, key: &str, v: Option<&Value>) {
    if let Some(m) = obj.as_object_mut() {
        match v {
            Some(v) => {
                m.insert(key.to_string(), v.clone());
            }
            None => {
                m.remove(key);
            }
        }
    }
}

/// The paths at which two JSON values differ (at most 10, to keep the message short),
/// so a user sees what they changed rather than a bare refusal.
fn diff_paths(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    if out.len() >= 10 || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = Value::Null;
                diff_paths(
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    &format!("{path}.{k}"),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff_paths(p, q, &format!("{path}[{i}]"), out);
            }
        }
        _ => out.push(path.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use serde_json::{json, Value};

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    }

    fn c(extra: Value) -> Value {
        let mut base = json!({"name": "app", "image": "nginx:1.25"});
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    }

    #[test]
    fn pod_spec_rules() {
        let cases: Vec<Case> = vec![
            ("minimal", json!({"containers": [c(json!({}))]}), vec![]),
            (
                "no containers",
                json!({}),
                vec![("spec.containers", "FieldValueRequired")],
            ),
            (
                "empty containers",
                json!({"containers": []}),
                vec![("spec.containers", "FieldValueRequired")],
            ),
            (
                "no container name",
                json!({"containers": [{"image": "x"}]}),
                vec![("spec.containers[0].name", "FieldValueRequired")],
            ),
            (
                "bad container name",
                json!({"containers": [c(json!({"name": "App"}))]}),
                vec![("spec.containers[0].name", "FieldValueInvalid")],
            ),
            (
                "duplicate across init",
                json!({"initContainers": [c(json!({}))], "containers": [c(json!({}))]}),
                vec![("spec.containers[0].name", "FieldValueDuplicate")],
            ),
            (
                "no image",
                json!({"containers": [{"name": "a"}]}),
                vec![("spec.containers[0].image", "FieldValueRequired")],
            ),
            (
                "image whitespace",
                json!({"containers": [c(json!({"image": " x"}))]}),
                vec![("spec.containers[0].image", "FieldValueInvalid")],
            ),
            (
                "init image required",
                json!({"initContainers": [{"name": "i"}], "containers": [c(json!({}))]}),
                vec![("spec.initContainers[0].image", "FieldValueRequired")],
            ),
            (
                "good ports",
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}, {"containerPort": 9, "protocol": "SCTP", "hostPort": 9}]}))]}),
                vec![],
            ),
            (
                "port 0",
                json!({"containers": [c(json!({"ports": [{"containerPort": 0}]}))]}),
                vec![(
                    "spec.containers[0].ports[0].containerPort",
                    "FieldValueRequired",
                )],
            ),
            (
                "port missing",
                json!({"containers": [c(json!({"ports": [{"name": "x"}]}))]}),
                vec![(
                    "spec.containers[0].ports[0].containerPort",
                    "FieldValueRequired",
                )],
            ),
            (
                "port too big",
                json!({"containers": [c(json!({"ports": [{"containerPort": 70000}]}))]}),
                vec![(
                    "spec.containers[0].ports[0].containerPort",
                    "FieldValueInvalid",
                )],
            ),
            (
                "hostPort bad",
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "hostPort": -1}]}))]}),
                vec![("spec.containers[0].ports[0].hostPort", "FieldValueInvalid")],
            ),
            (
                "bad protocol",
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "protocol": "tcp"}]}))]}),
                vec![(
                    "spec.containers[0].ports[0].protocol",
                    "FieldValueNotSupported",
                )],
            ),
            (
                "bad port name",
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "name": "Web"}]}))]}),
                vec![("spec.containers[0].ports[0].name", "FieldValueInvalid")],
            ),
            (
                "port name too long",
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "name": "abcdefghijklmnop"}]}))]}),
                vec![("spec.containers[0].ports[0].name", "FieldValueInvalid")],
            ),
            (
                "dup port name",
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 81, "name": "web"}]}))]}),
                vec![("spec.containers[0].ports[1].name", "FieldValueDuplicate")],
            ),
            (
                "same port name in two containers ok",
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "name": "web"}]})), c(json!({"name": "b", "ports": [{"containerPort": 81, "name": "web"}]}))]}),
                vec![],
            ),
            (
                "restartPolicy",
                json!({"containers": [c(json!({}))], "restartPolicy": "Sometimes"}),
                vec![("spec.restartPolicy", "FieldValueNotSupported")],
            ),
            (
                "dnsPolicy",
                json!({"containers": [c(json!({}))], "dnsPolicy": "ClusterFirstWithHostNet"}),
                vec![],
            ),
            (
                "bad dnsPolicy",
                json!({"containers": [c(json!({}))], "dnsPolicy": "Google"}),
                vec![("spec.dnsPolicy", "FieldValueNotSupported")],
            ),
            (
                "pull policy",
                json!({"containers": [c(json!({"imagePullPolicy": "Sometimes"}))]}),
                vec![(
                    "spec.containers[0].imagePullPolicy",
                    "FieldValueNotSupported",
                )],
            ),
            (
                "env ok",
                json!({"containers": [c(json!({"env": [{"name": "A_B", "value": "1"}, {"name": "my.env-x"}]}))]}),
                vec![],
            ),
            (
                "env from ok",
                json!({"containers": [c(json!({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}))]}),
                vec![],
            ),
            (
                "env from none",
                json!({"containers": [c(json!({"env": [{"name": "A", "valueFrom": {}}]}))]}),
                vec![("spec.containers[0].env[0].valueFrom", "FieldValueRequired")],
            ),
            (
                "env from two",
                json!({"containers": [c(json!({"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "x"}, "secretKeyRef": {"name": "s", "key": "k"}}}]}))]}),
                vec![("spec.containers[0].env[0].valueFrom", "FieldValueInvalid")],
            ),
            (
                "env from and value",
                json!({"containers": [c(json!({"env": [{"name": "A", "value": "v", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}))]}),
                vec![("spec.containers[0].env[0].valueFrom", "FieldValueInvalid")],
            ),
            (
                "hostname",
                json!({"containers": [c(json!({}))], "hostname": "web-0", "subdomain": "Web"}),
                vec![("spec.subdomain", "FieldValueInvalid")],
            ),
            (
                "nodeSelector",
                json!({"containers": [c(json!({}))], "nodeSelector": {"kubernetes.io/os": "linux", "disk": "fast ssd"}}),
                vec![("spec.nodeSelector", "FieldValueInvalid")],
            ),
            (
                "env bad",
                json!({"containers": [c(json!({"env": [{"name": "1A"}, {"value": "x"}]}))]}),
                vec![
                    ("spec.containers[0].env[0].name", "FieldValueInvalid"),
                    ("spec.containers[0].env[1].name", "FieldValueRequired"),
                ],
            ),
            (
                "volumes ok",
                json!({"volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}], "containers": [c(json!({"volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/cfg"}]}))]}),
                vec![],
            ),
            (
                "volume no source",
                json!({"volumes": [{"name": "data"}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0]", "FieldValueRequired")],
            ),
            (
                "volume two sources",
                json!({"volumes": [{"name": "data", "emptyDir": {}, "hostPath": {"path": "/x"}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0].emptyDir", "FieldValueForbidden")],
            ),
            (
                "volume dup",
                json!({"volumes": [{"name": "d", "emptyDir": {}}, {"name": "d", "emptyDir": {}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[1].name", "FieldValueDuplicate")],
            ),
            (
                "volume bad name",
                json!({"volumes": [{"name": "D", "emptyDir": {}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0].name", "FieldValueInvalid")],
            ),
            (
                "volume no name",
                json!({"volumes": [{"emptyDir": {}}], "containers": [c(json!({}))]}),
                vec![("spec.volumes[0].name", "FieldValueRequired")],
            ),
            (
                "mount unknown",
                json!({"containers": [c(json!({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}))]}),
                vec![(
                    "spec.containers[0].volumeMounts[0].name",
                    "FieldValueNotFound",
                )],
            ),
            (
                "mount no path",
                json!({"volumes": [{"name": "d", "emptyDir": {}}], "containers": [c(json!({"volumeMounts": [{"name": "d"}]}))]}),
                vec![(
                    "spec.containers[0].volumeMounts[0].mountPath",
                    "FieldValueRequired",
                )],
            ),
            (
                "mount path dup",
                json!({"volumes": [{"name": "d", "emptyDir": {}}], "containers": [c(json!({"volumeMounts": [{"name": "d", "mountPath": "/x"}, {"name": "d", "mountPath": "/x"}]}))]}),
                vec![(
                    "spec.containers[0].volumeMounts[1].mountPath",
                    "FieldValueInvalid",
                )],
            ),
            (
                "resources ok",
                json!({"containers": [c(json!({"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": 1, "memory": "128Mi", "example.com/gpu": "1"}}}))]}),
                vec![],
            ),
            (
                "request above limit",
                json!({"containers": [c(json!({"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "500m"}}}))]}),
                vec![("spec.containers[0].resources.requests", "FieldValueInvalid")],
            ),
            (
                "bad quantity",
                json!({"containers": [c(json!({"resources": {"limits": {"memory": "1Gb"}}}))]}),
                vec![(
                    "spec.containers[0].resources.limits[memory]",
                    "FieldValueInvalid",
                )],
            ),
            (
                "negative quantity",
                json!({"containers": [c(json!({"resources": {"requests": {"cpu": "-1"}}}))]}),
                vec![(
                    "spec.containers[0].resources.requests[cpu]",
                    "FieldValueInvalid",
                )],
            ),
            (
                "unknown resource",
                json!({"containers": [c(json!({"resources": {"limits": {"gpu": "1"}}}))]}),
                vec![(
                    "spec.containers[0].resources.limits[gpu]",
                    "FieldValueInvalid",
                )],
            ),
            (
                "probe ok",
                json!({"containers": [c(json!({"livenessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 5}, "readinessProbe": {"tcpSocket": {"port": "http"}, "successThreshold": 2}}))]}),
                vec![],
            ),
            (
                "probe no handler",
                json!({"containers": [c(json!({"livenessProbe": {"periodSeconds": 5}}))]}),
                vec![("spec.containers[0].livenessProbe", "FieldValueRequired")],
            ),
            (
                "probe two handlers",
                json!({"containers": [c(json!({"readinessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}}))]}),
                vec![(
                    "spec.containers[0].readinessProbe.tcpSocket",
                    "FieldValueForbidden",
                )],
            ),
            (
                "liveness success threshold",
                json!({"containers": [c(json!({"livenessProbe": {"exec": {"command": ["true"]}, "successThreshold": 2}}))]}),
                vec![(
                    "spec.containers[0].livenessProbe.successThreshold",
                    "FieldValueInvalid",
                )],
            ),
            (
                "probe negative",
                json!({"containers": [c(json!({"startupProbe": {"exec": {"command": ["true"]}, "failureThreshold": -1}}))]}),
                vec![(
                    "spec.containers[0].startupProbe.failureThreshold",
                    "FieldValueInvalid",
                )],
            ),
            (
                "probe bad port",
                json!({"containers": [c(json!({"readinessProbe": {"httpGet": {"port": 0}}}))]}),
                vec![(
                    "spec.containers[0].readinessProbe.httpGet.port",
                    "FieldValueInvalid",
                )],
            ),
            (
                "init probe",
                json!({"initContainers": [c(json!({"name": "i", "readinessProbe": {"exec": {"command": ["true"]}}}))], "containers": [c(json!({}))]}),
                vec![(
                    "spec.initContainers[0].readinessProbe",
                    "FieldValueForbidden",
                )],
            ),
            (
                "activeDeadline",
                json!({"containers": [c(json!({}))], "activeDeadlineSeconds": 0}),
                vec![("spec.activeDeadlineSeconds", "FieldValueInvalid")],
            ),
            (
                "serviceAccountName",
                json!({"containers": [c(json!({}))], "serviceAccountName": "Bad"}),
                vec![("spec.serviceAccountName", "FieldValueInvalid")],
            ),
            (
                "tolerations ok",
                json!({"containers": [c(json!({}))], "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}, {"operator": "Exists"}, {"key": "a", "value": "b", "effect": "NoSchedule"}]}),
                vec![],
            ),
            (
                "toleration exists with value",
                json!({"containers": [c(json!({}))], "tolerations": [{"key": "a", "operator": "Exists", "value": "b"}]}),
                vec![("spec.tolerations[0].operator", "FieldValueInvalid")],
            ),
            (
                "toleration seconds without NoExecute",
                json!({"containers": [c(json!({}))], "tolerations": [{"key": "a", "effect": "NoSchedule", "tolerationSeconds": 3}]}),
                vec![("spec.tolerations[0].effect", "FieldValueInvalid")],
            ),
            (
                "toleration bad effect",
                json!({"containers": [c(json!({}))], "tolerations": [{"key": "a", "effect": "Never"}]}),
                vec![("spec.tolerations[0].effect", "FieldValueNotSupported")],
            ),
            (
                "toleration empty key equal",
                json!({"containers": [c(json!({}))], "tolerations": [{"operator": "Equal", "value": "x"}]}),
                vec![("spec.tolerations[0].operator", "FieldValueInvalid")],
            ),
        ];
        for (case, spec, want) in cases {
            expect(&run("", "pods", &pod(spec), None), &want, case);
        }
    }

    #[test]
    fn messages_read_like_upstream() {
        let errs = run(
            "",
            "pods",
            &pod(
                json!({"containers": [c(json!({"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "500m"}}}))]}),
            ),
            None,
        );
        assert_eq!(
            errs[0].message,
            "Invalid value: \"2\": must be less than or equal to cpu limit of 500m"
        );
        let errs = run(
            "",
            "pods",
            &pod(
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "protocol": "tcp"}]}))]}),
            ),
            None,
        );
        assert_eq!(
            errs[0].message,
            "Unsupported value: \"tcp\": supported values: \"SCTP\", \"TCP\", \"UDP\""
        );
        let errs = run(
            "",
            "pods",
            &pod(json!({"volumes": [{"name": "d"}], "containers": [c(json!({}))]})),
            None,
        );
        assert_eq!(
            errs[0].message,
            "Required value: must specify a volume type"
        );
        let errs = run(
            "",
            "pods",
            &pod(
                json!({"containers": [c(json!({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}))]}),
            ),
            None,
        );
        assert_eq!(errs[0].message, "Not found: \"nope\"");
    }

    fn running() -> Value {
        pod(json!({
            "containers": [c(json!({"ports": [{"containerPort": 80}]}))],
            "tolerations": [{"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "activeDeadlineSeconds": 100,
            "restartPolicy": "Always",
        }))
    }

    #[test]
    fn pod_update_rules() {
        let old = running();
        let mut bound_old = old.clone();
        bound_old["spec"]["nodeName"] = json!("n1");
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut p = old.clone();
            f(&mut p);
            p
        };
        type UpdateCase<'a> = (&'a str, Value, &'a Value, Vec<(&'a str, &'a str)>);
        let cases: Vec<UpdateCase> = vec![
            ("unchanged", old.clone(), &old, vec![]),
            (
                "image",
                edit(&|p| p["spec"]["containers"][0]["image"] = json!("nginx:1.26")),
                &old,
                vec![],
            ),
            (
                "deadline down",
                edit(&|p| p["spec"]["activeDeadlineSeconds"] = json!(50)),
                &old,
                vec![],
            ),
            (
                "deadline up",
                edit(&|p| p["spec"]["activeDeadlineSeconds"] = json!(500)),
                &old,
                vec![("spec.activeDeadlineSeconds", "FieldValueInvalid")],
            ),
            (
                "deadline removed",
                edit(&|p| {
                    p["spec"]
                        .as_object_mut()
                        .unwrap()
                        .remove("activeDeadlineSeconds");
                }),
                &old,
                vec![("spec.activeDeadlineSeconds", "FieldValueInvalid")],
            ),
            (
                "toleration added",
                edit(&|p| {
                    p["spec"]["tolerations"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({"key": "b", "operator": "Exists"}))
                }),
                &old,
                vec![],
            ),
            (
                "toleration seconds changed",
                edit(&|p| p["spec"]["tolerations"][0]["tolerationSeconds"] = json!(10)),
                &old,
                vec![],
            ),
            (
                "toleration removed",
                edit(&|p| p["spec"]["tolerations"] = json!([])),
                &old,
                vec![("spec.tolerations", "FieldValueForbidden")],
            ),
            (
                "bind",
                edit(&|p| p["spec"]["nodeName"] = json!("n1")),
                &old,
                vec![],
            ),
            (
                "rebind",
                edit(&|p| p["spec"]["nodeName"] = json!("n2")),
                &bound_old,
                vec![("spec", "FieldValueForbidden")],
            ),
            (
                "port changed",
                edit(&|p| p["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(81)),
                &old,
                vec![("spec", "FieldValueForbidden")],
            ),
            (
                "container added",
                edit(&|p| {
                    p["spec"]["containers"]
                        .as_array_mut()
                        .unwrap()
                        .push(c(json!({"name": "b"})))
                }),
                &old,
                vec![("spec", "FieldValueForbidden")],
            ),
            (
                "restart policy",
                edit(&|p| p["spec"]["restartPolicy"] = json!("Never")),
                &old,
                vec![("spec", "FieldValueForbidden")],
            ),
        ];
        for (case, new, old, want) in cases {
            expect(&run("", "pods", &new, Some(old)), &want, case);
        }
    }

    #[test]
    fn pod_update_message_names_the_updatable_fields_and_the_change() {
        let old = running();
        let mut new = old.clone();
        new["spec"]["restartPolicy"] = json!("Never");
        let errs = run("", "pods", &new, Some(&old));
        assert!(errs[0].message.starts_with("Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"), "{}", errs[0].message);
        assert!(
            errs[0].message.ends_with("changed: spec.restartPolicy"),
            "{}",
            errs[0].message
        );
    }
}
