//! Validation with Kubernetes' rules and messages.
//!
//! [`validate`] checks an object about to be created (or to replace an old one) and
//! returns every field at fault as a [`Cause`] with upstream's reason, field path and
//! wording, which the API server turns into a 422 `Invalid` Status ([`check`] does that
//! step too).
//!
//! Validation accepts objects before or after [`crate::defaults::apply`]: a field that
//! defaulting fills in (a port's protocol, a pod's restartPolicy) is only checked when
//! present, so an absent one is never an error. Upstream validates after defaulting,
//! and so should the API server; this just keeps a forgotten step from turning into a
//! confusing error. On update the new object must be defaulted first, though: a pod's
//! spec is compared with the stored (defaulted) one, and a field defaulting would fill
//! in would otherwise look like a forbidden change.
//!
//! # Layout
//! - [`names`]: string rules (DNS labels and subdomains, qualified names, label
//!   values, port names, env names, config keys, IPs).
//! - [`quantity`]: the resource quantity parser ([`parse_quantity`]), shared with the
//!   scheduler and kubelet.
//! - `meta`: object metadata (name, namespace, labels, annotations), here.
//! - `pod`, `apps`, `service`, `config`, `networking`, `discovery`, `cluster`: one
//!   file per group of kinds.
//!
//! ```
//! use skiff_api::{defaults, resource, validation};
//!
//! let res = resource::lookup("apps", "v1", "deployments").unwrap();
//! let mut d = serde_json::json!({
//!     "metadata": {"name": "web", "namespace": "default"},
//!     "spec": {"selector": {"matchLabels": {"app": "web"}},
//!              "template": {"metadata": {"labels": {"app": "db"}},
//!                           "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
//! defaults::apply(res, &mut d);
//! let causes = validation::validate(res, &d, None);
//! assert_eq!(causes[0].field, "spec.template.metadata.labels");
//! assert!(causes[0].message.ends_with("`selector` does not match template `labels`"));
//! assert_eq!(validation::parse_quantity("250m"), Ok(250));
//! ```

use serde_json::Value;

use crate::resource::ResourceInfo;
use crate::status::{ApiError, Cause};

mod apps;
mod cluster;
mod config;
mod discovery;
pub mod names;
mod networking;
mod pod;
pub mod quantity;
mod service;

pub use pod::validate_pod_spec;
pub use quantity::parse_quantity;
pub use service::NODE_PORT_RANGE;

/// Upstream's message for a field that may not change on update.
pub const IMMUTABLE: &str = "field is immutable";

/// Upstream's maximum total size of a ConfigMap's or Secret's data.
pub const MAX_DATA_SIZE: usize = 1024 * 1024;

/// Upstream's maximum total size of an object's annotations (keys plus values).
pub const MAX_ANNOTATIONS_SIZE: usize = 256 * 1024;

/// Validates an object about to be created (`old` is None) or to replace `old`.
/// Returns every field at fault; an empty list means the object is valid.
pub fn validate(res: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut errs = validate_metadata(res, obj, old);
    match (res.group, res.kind) {
        ("", "Pod") => pod::validate_pod(obj, old, &mut errs),
        ("apps", "Deployment") => apps::validate_deployment(obj, old, &mut errs),
        ("apps", "ReplicaSet") => apps::validate_replicaset(obj, old, &mut errs),
        ("", "Service") => service::validate_service(obj, old, &mut errs),
        ("", "ConfigMap") => config::validate_configmap(obj, old, &mut errs),
        ("", "Secret") => config::validate_secret(obj, old, &mut errs),
        ("", "Namespace") => cluster::validate_namespace(obj, &mut errs),
        ("", "Node") => cluster::validate_node(obj, &mut errs),
        ("", "Endpoints") => discovery::validate_endpoints(obj, &mut errs),
        ("discovery.k8s.io", "EndpointSlice") => {
            discovery::validate_endpointslice(obj, old, &mut errs)
        }
        ("networking.k8s.io", "Ingress") => networking::validate_ingress(obj, &mut errs),
        ("networking.k8s.io", "IngressClass") => {
            networking::validate_ingressclass(obj, old, &mut errs)
        }
        ("coordination.k8s.io", "Lease") => cluster::validate_lease(obj, &mut errs),
        ("", "Event") => cluster::validate_core_event(obj, &mut errs),
        ("events.k8s.io", "Event") => cluster::validate_events_event(obj, old, &mut errs),
        ("", "ServiceAccount") => cluster::validate_serviceaccount(obj, &mut errs),
        _ => {}
    }
    errs
}

/// [`validate`], as the API server answers it: `Ok`, or the 422 `Invalid` error naming
/// the object (`Deployment.apps "web" is invalid: ...`) with every cause.
// ApiError is the crate-wide error every handler returns by value; boxing it here alone
// would make this the one call site that differs.
#[allow(clippy::result_large_err)]
pub fn check(res: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let causes = validate(res, obj, old);
    if causes.is_empty() {
        return Ok(());
    }
    let name = crate::meta::name(obj)
        .filter(|n| !n.is_empty())
        .or_else(|| crate::meta::generate_name(obj))
        .unwrap_or("");
    Err(ApiError::invalid(res, name, causes))
}

/// How a kind's names are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameRule {
    Subdomain,
    Label,
    Rfc1035,
}

fn name_rule(res: &ResourceInfo) -> NameRule {
    match (res.group, res.kind) {
        ("", "Namespace") => NameRule::Label,
        ("", "Service") => NameRule::Rfc1035,
        _ => NameRule::Subdomain,
    }
}

fn check_name(rule: NameRule, name: &str) -> Vec<String> {
    match rule {
        NameRule::Subdomain => names::dns1123_subdomain(name),
        NameRule::Label => names::dns1123_label(name),
        NameRule::Rfc1035 => names::dns1035_label(name),
    }
}

/// `metadata`: name (or generateName), namespace, labels, annotations, finalizers, and
/// on update the identity fields that may not change.
fn validate_metadata(res: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut errs = Vec::new();
    let meta = obj.get("metadata").unwrap_or(&Value::Null);
    let rule = name_rule(res);
    let generate = str_field(meta, "generateName").unwrap_or("");
    if !generate.is_empty() {
        // A prefix may end in '-' (the random suffix follows it), so the trailing dash
        // is masked before checking, as upstream does.
        let masked = match generate.strip_suffix('-') {
            Some(p) => format!("{p}a"),
            None => generate.to_string(),
        };
        invalid_each(
            &mut errs,
            "metadata.generateName",
            &Value::from(generate),
            check_name(rule, &masked),
        );
    }
    match str_field(meta, "name").unwrap_or("") {
        "" if generate.is_empty() => errs.push(required_because(
            "metadata.name",
            "name or generateName is required",
        )),
        "" => {}
        name => invalid_each(
            &mut errs,
            "metadata.name",
            &Value::from(name),
            check_name(rule, name),
        ),
    }
    let namespace = str_field(meta, "namespace").unwrap_or("");
    if res.namespaced() {
        if !namespace.is_empty() {
            invalid_each(
                &mut errs,
                "metadata.namespace",
                &Value::from(namespace),
                names::dns1123_label(namespace),
            );
        }
    } else if !namespace.is_empty() {
        errs.push(Cause::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    validate_labels(meta.get("labels"), "metadata.labels", &mut errs);
    validate_annotations(meta.get("annotations"), "metadata.annotations", &mut errs);
    if let Some(fins) = meta.get("finalizers").and_then(Value::as_array) {
        for (i, f) in fins.iter().enumerate() {
            let path = format!("metadata.finalizers[{i}]");
            match f.as_str() {
                Some(s) => invalid_each(&mut errs, &path, f, finalizer_name(s)),
                None => errs.push(Cause::invalid(path, f, "must be a string")),
            }
        }
    }
    if let Some(old) = old {
        for field in ["name", "namespace", "uid"] {
            let new_v = str_field(meta, field).unwrap_or("");
            let old_v = old
                .pointer(&format!("/metadata/{field}"))
                .and_then(Value::as_str)
                .unwrap_or("");
            // An empty new value means "unchanged": the server fills identity fields in.
            if !new_v.is_empty() && !old_v.is_empty() && new_v != old_v {
                errs.push(Cause::invalid(
                    format!("metadata.{field}"),
                    &Value::from(new_v),
                    IMMUTABLE,
                ));
            }
        }
    }
    errs
}

/// A finalizer: a qualified name, and one without a domain prefix must be one of the
/// standard finalizers Kubernetes itself handles.
pub(crate) fn finalizer_name(s: &str) -> Vec<String> {
    let mut errs = names::qualified_name(s);
    if errs.is_empty()
        && !s.contains('/')
        && !matches!(s, "kubernetes" | "orphan" | "foregroundDeletion")
    {
        errs.push("name is neither a standard finalizer name nor is it fully qualified".into());
    }
    errs
}

/// A label map (`metadata.labels`, a service's `spec.selector`, a selector's
/// `matchLabels`): keys are qualified names, values label values.
pub(crate) fn validate_labels(labels: Option<&Value>, path: &str, errs: &mut Vec<Cause>) {
    let Some(labels) = labels else { return };
    let Some(map) = labels.as_object() else {
        if !labels.is_null() {
            errs.push(Cause::invalid(
                path,
                labels,
                "must be a map of string keys to string values",
            ));
        }
        return;
    };
    for (k, v) in map {
        invalid_each(
            errs,
            path,
            &Value::from(k.as_str()),
            names::qualified_name(k),
        );
        match v.as_str() {
            Some(s) => invalid_each(errs, path, v, names::label_value(s)),
            None => errs.push(Cause::invalid(path, v, "must be a string")),
        }
    }
}

fn validate_annotations(annotations: Option<&Value>, path: &str, errs: &mut Vec<Cause>) {
    let Some(map) = annotations.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0usize;
    for (k, v) in map {
        // Upstream lower-cases annotation keys before checking: they are case-insensitive
        // in spirit and `Example.com/x` is accepted.
        invalid_each(
            errs,
            path,
            &Value::from(k.as_str()),
            names::qualified_name(&k.to_ascii_lowercase()),
        );
        total += k.len() + v.as_str().map_or_else(|| v.to_string().len(), str::len);
    }
    if total > MAX_ANNOTATIONS_SIZE {
        errs.push(Cause::too_long(path, MAX_ANNOTATIONS_SIZE));
    }
}

/// A `metav1.LabelSelector` object at `path`, with upstream's per-field causes (the
/// API server should use this rather than [`crate::selector::LabelSelector::from_json`]'s
/// single message when validating a stored object).
pub(crate) fn validate_label_selector(sel: &Value, path: &str, errs: &mut Vec<Cause>) {
    if sel.is_null() {
        return;
    }
    validate_labels(sel.get("matchLabels"), &format!("{path}.matchLabels"), errs);
    for (i, expr) in array(sel, "matchExpressions").iter().enumerate() {
        let epath = format!("{path}.matchExpressions[{i}]");
        let values = array(expr, "values");
        match expr.get("operator").and_then(Value::as_str) {
            Some("In" | "NotIn") => {
                if values.is_empty() {
                    errs.push(required_because(
                        format!("{epath}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            Some("Exists" | "DoesNotExist") => {
                if !values.is_empty() {
                    errs.push(Cause::forbidden(
                        format!("{epath}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            _ => errs.push(Cause::invalid(
                format!("{epath}.operator"),
                expr.get("operator").unwrap_or(&Value::Null),
                "not a valid selector operator",
            )),
        }
        let key = str_field(expr, "key").unwrap_or("");
        invalid_each(
            errs,
            &format!("{epath}.key"),
            &Value::from(key),
            names::qualified_name(key),
        );
        for (j, v) in values.iter().enumerate() {
            let vpath = format!("{epath}.values[{j}]");
            match v.as_str() {
                Some(s) => invalid_each(errs, &vpath, v, names::label_value(s)),
                None => errs.push(Cause::invalid(vpath, v, "must be a string")),
            }
        }
    }
}

// ---- small helpers shared by the per-kind files ----

pub(crate) fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// One `Invalid` cause per message, all on the same field and value.
pub(crate) fn invalid_each(errs: &mut Vec<Cause>, path: &str, value: &Value, msgs: Vec<String>) {
    for m in msgs {
        errs.push(Cause::invalid(path, value, &m));
    }
}

/// `Required value: <why>`, upstream's `field.Required` with a detail.
pub(crate) fn required_because(path: impl Into<String>, why: &str) -> Cause {
    Cause::new("FieldValueRequired", path, format!("Required value: {why}"))
}

/// `Not found: <value>`, upstream's `field.NotFound`.
pub(crate) fn not_found(path: impl Into<String>, value: &Value) -> Cause {
    let shown = match value {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    Cause::new("FieldValueNotFound", path, format!("Not found: {shown}"))
}

/// Whether a JSON value is "set" in Go's sense (present, non-null, non-empty string).
pub(crate) fn is_set(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// An optional integer field that must not be negative.
pub(crate) fn nonnegative(obj: &Value, key: &str, path: &str, errs: &mut Vec<Cause>) {
    match obj.get(key) {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_i64() {
            Some(n) if n < 0 => errs.push(Cause::invalid(
                path,
                v,
                "must be greater than or equal to 0",
            )),
            Some(_) => {}
            None => errs.push(Cause::invalid(path, v, "must be an integer")),
        },
    }
}

/// A required-if-present enum field: absent is fine (defaulting fills it), anything
/// else must be one of `supported`.
pub(crate) fn one_of(
    obj: &Value,
    key: &str,
    path: &str,
    supported: &[&str],
    errs: &mut Vec<Cause>,
) {
    if let Some(v) = obj.get(key) {
        if v.is_null() {
            return;
        }
        if !v.as_str().is_some_and(|s| supported.contains(&s)) {
            errs.push(Cause::not_supported(path, v, supported));
        }
    }
}

/// An int-or-string port: a number 1..65535 or an IANA port name.
pub(crate) fn port_num_or_name(v: &Value, path: &str, errs: &mut Vec<Cause>) {
    match v {
        Value::Number(n) => invalid_each(errs, path, v, names::port_num(n.as_i64().unwrap_or(0))),
        Value::String(s) => invalid_each(errs, path, v, names::port_name(s)),
        other => errs.push(Cause::invalid(path, other, "must be a port number or name")),
    }
}

pub(crate) fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::resource::lookup;

    /// Validates `obj` as the resource `(group, plural)`.
    pub fn run(group: &str, plural: &str, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let res = lookup(group, "v1", plural).expect("resource");
        validate(res, obj, old)
    }

    /// One table row: the case name, the input, and the `(field, reason)` pairs wanted.
    pub type Case = (&'static str, Value, Vec<(&'static str, &'static str)>);

    /// The `(field, reason)` pairs of a result, for compact assertions.
    pub fn pairs(errs: &[Cause]) -> Vec<(String, String)> {
        errs.iter()
            .map(|c| (c.field.clone(), c.reason.clone()))
            .collect()
    }

    /// Asserts that exactly the given `(field, reason)` pairs were reported.
    pub fn expect(errs: &[Cause], want: &[(&str, &str)], case: &str) {
        let got = pairs(errs);
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(f, r)| (f.to_string(), r.to_string()))
            .collect();
        assert_eq!(got, want, "case {case}: {errs:#?}");
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use serde_json::json;

    fn cm(meta: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta})
    }

    #[test]
    fn metadata_rules() {
        let long_annotation = "x".repeat(MAX_ANNOTATIONS_SIZE);
        let cases: Vec<Case> = vec![
            (
                "plain",
                json!({"name": "web", "namespace": "default"}),
                vec![],
            ),
            ("generateName only", json!({"generateName": "web-"}), vec![]),
            (
                "bad generateName",
                json!({"generateName": "Web-"}),
                vec![("metadata.generateName", "FieldValueInvalid")],
            ),
            (
                "no name",
                json!({}),
                vec![("metadata.name", "FieldValueRequired")],
            ),
            (
                "upper name",
                json!({"name": "Web"}),
                vec![("metadata.name", "FieldValueInvalid")],
            ),
            ("dotted name ok", json!({"name": "a.b"}), vec![]),
            (
                "bad namespace",
                json!({"name": "a", "namespace": "a.b"}),
                vec![("metadata.namespace", "FieldValueInvalid")],
            ),
            (
                "good labels",
                json!({"name": "a", "labels": {"app": "web", "example.com/tier": "", "x": "A_b.c"}}),
                vec![],
            ),
            (
                "bad label key",
                json!({"name": "a", "labels": {"-app": "web"}}),
                vec![("metadata.labels", "FieldValueInvalid")],
            ),
            (
                "bad label value",
                json!({"name": "a", "labels": {"app": "web server"}}),
                vec![("metadata.labels", "FieldValueInvalid")],
            ),
            (
                "long label value",
                json!({"name": "a", "labels": {"app": "x".repeat(64)}}),
                vec![("metadata.labels", "FieldValueInvalid")],
            ),
            (
                "non-string label",
                json!({"name": "a", "labels": {"app": 1}}),
                vec![("metadata.labels", "FieldValueInvalid")],
            ),
            (
                "annotation upper ok",
                json!({"name": "a", "annotations": {"Example.com/X": "anything at all"}}),
                vec![],
            ),
            (
                "bad annotation key",
                json!({"name": "a", "annotations": {"a b": "x"}}),
                vec![("metadata.annotations", "FieldValueInvalid")],
            ),
            (
                "annotations too big",
                json!({"name": "a", "annotations": {"k": long_annotation}}),
                vec![("metadata.annotations", "FieldValueTooLong")],
            ),
            (
                "bad finalizer",
                json!({"name": "a", "finalizers": ["a/b/c"]}),
                vec![("metadata.finalizers[0]", "FieldValueInvalid")],
            ),
            (
                "non-standard finalizer",
                json!({"name": "a", "finalizers": ["cleanup"]}),
                vec![("metadata.finalizers[0]", "FieldValueInvalid")],
            ),
            (
                "finalizers ok",
                json!({"name": "a", "finalizers": ["kubernetes", "foregroundDeletion", "example.com/cleanup"]}),
                vec![],
            ),
        ];
        for (case, meta, want) in cases {
            expect(&run("", "configmaps", &cm(meta), None), &want, case);
        }
    }

    #[test]
    fn name_messages_read_like_upstream() {
        let errs = run("", "configmaps", &cm(json!({})), None);
        assert_eq!(
            errs[0].message,
            "Required value: name or generateName is required"
        );
        let errs = run("", "configmaps", &cm(json!({"name": "Web"})), None);
        assert!(
            errs[0]
                .message
                .starts_with("Invalid value: \"Web\": a lowercase RFC 1123 subdomain"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn name_rules_per_kind() {
        let cases: &[(&str, &str, &str, bool)] = &[
            ("", "namespaces", "a.b", false),
            ("", "namespaces", "team-a", true),
            ("", "services", "1web", false),
            ("", "services", "web.x", false),
            ("", "services", "web", true),
            ("", "pods", "1web.x", true),
            ("apps", "deployments", "web.v2", true),
        ];
        for (group, plural, name, ok) in cases {
            let obj = json!({"metadata": {"name": name}});
            let errs = run(group, plural, &obj, None);
            let name_errs = errs.iter().filter(|c| c.field == "metadata.name").count();
            assert_eq!(name_errs == 0, *ok, "{plural} {name}: {errs:?}");
        }
    }

    #[test]
    fn cluster_scoped_kinds_refuse_a_namespace() {
        let obj = json!({"metadata": {"name": "n1", "namespace": "default"}});
        let errs = run("", "nodes", &obj, None);
        expect(
            &errs,
            &[("metadata.namespace", "FieldValueForbidden")],
            "node with namespace",
        );
        assert_eq!(errs[0].message, "Forbidden: not allowed on this type");
    }

    #[test]
    fn check_renders_the_invalid_status() {
        let res = crate::resource::lookup("apps", "v1", "deployments").unwrap();
        let d =
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": -1}});
        let s = check(res, &d, None).unwrap_err().to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["reason"], "Invalid");
        assert_eq!(s["details"]["name"], "web");
        assert_eq!(s["details"]["causes"][0]["field"], "spec.replicas");
        assert!(s["message"].as_str().unwrap().starts_with("Deployment.apps \"web\" is invalid: [spec.replicas: Invalid value: -1: must be greater than or equal to 0, "), "{}", s["message"]);
        let ok = json!({"metadata": {"name": "c"}, "data": {"a": "b"}});
        assert!(check(
            crate::resource::lookup("", "v1", "configmaps").unwrap(),
            &ok,
            None
        )
        .is_ok());
    }

    #[test]
    fn identity_is_immutable_on_update() {
        let old = cm(json!({"name": "a", "namespace": "default", "uid": "u1"}));
        let renamed = cm(json!({"name": "b", "namespace": "default", "uid": "u1"}));
        let errs = run("", "configmaps", &renamed, Some(&old));
        expect(&errs, &[("metadata.name", "FieldValueInvalid")], "rename");
        assert_eq!(errs[0].message, "Invalid value: \"b\": field is immutable");
        let same = cm(json!({"name": "a"}));
        assert!(run("", "configmaps", &same, Some(&old)).is_empty());
    }
}
