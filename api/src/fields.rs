//! Field selectors: the `fieldSelector=` query parameter (`a=b`, `a==b`, `a!=b`, joined
//! by `,` as an AND), checked against the fields each resource supports.
//!
//! Every resource supports `metadata.name` and `metadata.namespace`; the extras per
//! resource are upstream's (`pkg/registry/*/strategy.go` `*ToSelectableFields` and the
//! field label conversion functions). An unsupported field is an error worded like
//! upstream's (`field label not supported: <field>`), which the API server turns into a
//! 400. A missing field compares as its Go zero value, as upstream's typed structs do:
//! `""` for strings, `"false"` for booleans, `"0"` for counts.
//!
//! Values may escape `\`, `,` and `=` with a backslash, as `fields.EscapeValue` does.
//!
//! ```
//! use skiff_api::{fields, resource};
//!
//! let pods = resource::lookup("", "v1", "pods").unwrap();
//! let sel = fields::parse(pods, "spec.nodeName=node-1,status.phase!=Succeeded").unwrap();
//! let pod = serde_json::json!({"spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}});
//! assert!(sel.matches(&pod));
//! assert_eq!(fields::parse(pods, "spec.image=x").unwrap_err(), "field label not supported: spec.image");
//! ```

use std::fmt;

use serde_json::Value;

use crate::resource::ResourceInfo;

/// How a selectable field is read from an object and what an absent one reads as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    Int,
}

/// One selectable field: the name clients use, the JSON pointers tried in order, and
/// how an absent value reads. The API server converts Events to the requested shape
/// (`crate::convert`) before matching; the other shape's pointer is only a fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FieldSpec {
    name: &'static str,
    pointers: &'static [&'static str],
    kind: Kind,
}

const fn s(name: &'static str, pointers: &'static [&'static str]) -> FieldSpec {
    FieldSpec {
        name,
        pointers,
        kind: Kind::Str,
    }
}

const COMMON: &[FieldSpec] = &[
    s("metadata.name", &["/metadata/name"]),
    s("metadata.namespace", &["/metadata/namespace"]),
];

const POD: &[FieldSpec] = &[
    s("spec.nodeName", &["/spec/nodeName"]),
    s("spec.restartPolicy", &["/spec/restartPolicy"]),
    s("spec.schedulerName", &["/spec/schedulerName"]),
    s("spec.serviceAccountName", &["/spec/serviceAccountName"]),
    FieldSpec {
        name: "spec.hostNetwork",
        pointers: &["/spec/hostNetwork"],
        kind: Kind::Bool,
    },
    s("status.phase", &["/status/phase"]),
    s("status.podIP", &["/status/podIP", "/status/podIPs/0/ip"]),
    s("status.nominatedNodeName", &["/status/nominatedNodeName"]),
];

const CORE_EVENT: &[FieldSpec] = &[
    s(
        "involvedObject.kind",
        &["/involvedObject/kind", "/regarding/kind"],
    ),
    s(
        "involvedObject.namespace",
        &["/involvedObject/namespace", "/regarding/namespace"],
    ),
    s(
        "involvedObject.name",
        &["/involvedObject/name", "/regarding/name"],
    ),
    s(
        "involvedObject.uid",
        &["/involvedObject/uid", "/regarding/uid"],
    ),
    s(
        "involvedObject.apiVersion",
        &["/involvedObject/apiVersion", "/regarding/apiVersion"],
    ),
    s(
        "involvedObject.resourceVersion",
        &[
            "/involvedObject/resourceVersion",
            "/regarding/resourceVersion",
        ],
    ),
    s(
        "involvedObject.fieldPath",
        &["/involvedObject/fieldPath", "/regarding/fieldPath"],
    ),
    s("reason", &["/reason"]),
    s(
        "reportingComponent",
        &["/reportingComponent", "/reportingController"],
    ),
    // Upstream: the source component, or the reporting controller for new-style events.
    s(
        "source",
        &[
            "/source/component",
            "/reportingComponent",
            "/reportingController",
        ],
    ),
    s("type", &["/type"]),
];

const EVENTS_EVENT: &[FieldSpec] = &[
    s(
        "regarding.kind",
        &["/regarding/kind", "/involvedObject/kind"],
    ),
    s(
        "regarding.namespace",
        &["/regarding/namespace", "/involvedObject/namespace"],
    ),
    s(
        "regarding.name",
        &["/regarding/name", "/involvedObject/name"],
    ),
    s("regarding.uid", &["/regarding/uid", "/involvedObject/uid"]),
    s(
        "regarding.apiVersion",
        &["/regarding/apiVersion", "/involvedObject/apiVersion"],
    ),
    s(
        "regarding.resourceVersion",
        &[
            "/regarding/resourceVersion",
            "/involvedObject/resourceVersion",
        ],
    ),
    s(
        "regarding.fieldPath",
        &["/regarding/fieldPath", "/involvedObject/fieldPath"],
    ),
    s("reason", &["/reason"]),
    s(
        "reportingController",
        &["/reportingController", "/reportingComponent"],
    ),
    s("type", &["/type"]),
];

const SECRET: &[FieldSpec] = &[s("type", &["/type"])];
const NAMESPACE: &[FieldSpec] = &[s("status.phase", &["/status/phase"])];
const NODE: &[FieldSpec] = &[FieldSpec {
    name: "spec.unschedulable",
    pointers: &["/spec/unschedulable"],
    kind: Kind::Bool,
}];
const REPLICASET: &[FieldSpec] = &[FieldSpec {
    name: "status.replicas",
    pointers: &["/status/replicas"],
    kind: Kind::Int,
}];

fn extras(res: &ResourceInfo) -> &'static [FieldSpec] {
    match (res.group, res.kind) {
        ("", "Pod") => POD,
        ("", "Event") => CORE_EVENT,
        ("events.k8s.io", "Event") => EVENTS_EVENT,
        ("", "Secret") => SECRET,
        ("", "Namespace") => NAMESPACE,
        ("", "Node") => NODE,
        ("apps", "ReplicaSet") => REPLICASET,
        _ => &[],
    }
}

/// Old clients' names for a field, mapped to the current one.
fn alias(res: &ResourceInfo, field: &str) -> Option<&'static str> {
    match (res.group, res.kind, field) {
        ("", "Pod", "spec.host") => Some("spec.nodeName"),
        _ => None,
    }
}

fn lookup(res: &ResourceInfo, field: &str) -> Option<FieldSpec> {
    let name = alias(res, field).unwrap_or(field);
    COMMON
        .iter()
        .chain(extras(res))
        .find(|f| f.name == name)
        .copied()
}

/// The field names a resource supports in field selectors, for help texts.
pub fn supported_fields(res: &ResourceInfo) -> Vec<&'static str> {
    COMMON.iter().chain(extras(res)).map(|f| f.name).collect()
}

/// Reads a selectable field from an object as upstream's `fields.Set` would hold it.
fn read(spec: &FieldSpec, obj: &Value) -> String {
    let found = spec
        .pointers
        .iter()
        .filter_map(|p| obj.pointer(p))
        .find(|v| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            _ => true,
        });
    match (found, spec.kind) {
        (Some(Value::String(s)), _) => s.clone(),
        (Some(Value::Bool(b)), _) => b.to_string(),
        (Some(Value::Number(n)), _) => n.to_string(),
        (Some(other), _) => other.to_string(),
        (None, Kind::Str) => String::new(),
        (None, Kind::Bool) => "false".into(),
        (None, Kind::Int) => "0".into(),
    }
}

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The field as the client named it (aliases resolved).
    pub field: String,
    pub value: String,
    pub negated: bool,
    spec: FieldSpec,
}

impl Term {
    pub fn matches(&self, obj: &Value) -> bool {
        (read(&self.spec, obj) == self.value) != self.negated
    }
}

/// A parsed field selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<Term>,
}

impl FieldSelector {
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| t.matches(obj))
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// The value an equality term requires of `field`, if any: lets a caller narrow a
    /// list before matching (the kubelet's `spec.nodeName=<node>` watch).
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && !t.negated)
            .map(|t| t.value.as_str())
    }
}

fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for FieldSelector {
    /// The canonical form: terms sorted, values escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|t| {
                format!(
                    "{}{}{}",
                    t.field,
                    if t.negated { "!=" } else { "=" },
                    escape(&t.value)
                )
            })
            .collect();
        write!(f, "{}", parts.join(","))
    }
}

/// Splits on commas that are not escaped with a backslash.
fn split_terms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// Splits a term at its first operator, trying `!=` and `==` before `=` at each
/// position as upstream does (a field name never contains an operator character, so
/// the first one found ends it).
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    for (i, _) in term.char_indices() {
        for op in ["!=", "==", "="] {
            if term[i..].starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

fn unescape(v: &str) -> Result<String, String> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{e}"
                    ))
                }
                None => return Err("invalid field selector: invalid escape sequence: \\".into()),
            },
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {c}"
                ))
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Parses `fieldSelector` for a resource; unsupported fields are an error naming them.
pub fn parse(res: &ResourceInfo, s: &str) -> Result<FieldSelector, String> {
    let mut parts = split_terms(s);
    parts.sort();
    let mut terms = Vec::new();
    for part in parts.iter().filter(|p| !p.is_empty()) {
        let (field, op, raw) = split_term(part)
            .ok_or_else(|| format!("invalid selector: '{s}'; can't understand '{part}'"))?;
        let value = unescape(raw)?;
        let spec =
            lookup(res, field).ok_or_else(|| format!("field label not supported: {field}"))?;
        terms.push(Term {
            field: spec.name.to_string(),
            value,
            negated: op == "!=",
            spec,
        });
    }
    Ok(FieldSelector { terms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::lookup as res;
    use serde_json::json;

    fn pods() -> &'static ResourceInfo {
        res("", "v1", "pods").unwrap()
    }

    #[test]
    fn parses_terms_and_prints_canonically() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("metadata.name=web", "metadata.name=web"),
            ("metadata.name==web", "metadata.name=web"),
            ("status.phase!=Running", "status.phase!=Running"),
            (
                "spec.nodeName=n1,metadata.namespace=default",
                "metadata.namespace=default,spec.nodeName=n1",
            ),
            ("spec.host=n1", "spec.nodeName=n1"),
            ("metadata.name=a\\,b\\=c", "metadata.name=a\\,b\\=c"),
            ("spec.nodeName=", "spec.nodeName="),
            (",metadata.name=x,", "metadata.name=x"),
        ];
        for (input, want) in cases {
            let sel = parse(pods(), input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(sel.to_string(), *want, "{input}");
        }
        let sel = parse(pods(), "metadata.name=a\\,b\\=c").unwrap();
        assert_eq!(sel.terms()[0].value, "a,b=c");
    }

    #[test]
    fn parse_errors_read_like_upstream() {
        let cases: &[(&str, &str)] = &[
            ("foo=bar", "field label not supported: foo"),
            (
                "spec.containers=x",
                "field label not supported: spec.containers",
            ),
            (
                "metadata.name",
                "invalid selector: 'metadata.name'; can't understand 'metadata.name'",
            ),
            (
                "metadata.name=a=b",
                "invalid field selector: unescaped character in value: =",
            ),
            (
                "metadata.name=a\\x",
                "invalid field selector: invalid escape sequence: \\x",
            ),
            (
                " metadata.name=x",
                "field label not supported:  metadata.name",
            ),
            ("métadata=x", "field label not supported: métadata"),
            ("\\é=x", "field label not supported: \\é"),
        ];
        for (input, want) in cases {
            assert_eq!(parse(pods(), input).unwrap_err(), *want, "{input}");
        }
    }

    #[test]
    fn supported_fields_per_resource() {
        let cases: &[(&str, &str, &str, bool)] = &[
            ("", "configmaps", "metadata.name", true),
            ("", "configmaps", "metadata.namespace", true),
            ("", "configmaps", "data.x", false),
            ("", "pods", "spec.schedulerName", true),
            ("", "pods", "spec.serviceAccountName", true),
            ("", "pods", "spec.hostNetwork", true),
            ("", "pods", "status.podIP", true),
            ("", "pods", "status.nominatedNodeName", true),
            ("", "pods", "spec.restartPolicy", true),
            ("", "events", "involvedObject.uid", true),
            ("", "events", "involvedObject.fieldPath", true),
            ("", "events", "reportingComponent", true),
            ("", "events", "source", true),
            ("", "events", "regarding.name", false),
            ("events.k8s.io", "events", "regarding.name", true),
            ("events.k8s.io", "events", "reportingController", true),
            ("events.k8s.io", "events", "involvedObject.name", false),
            ("", "secrets", "type", true),
            ("", "configmaps", "type", false),
            ("", "namespaces", "status.phase", true),
            ("", "nodes", "spec.unschedulable", true),
            ("apps", "replicasets", "status.replicas", true),
            ("apps", "deployments", "status.replicas", false),
            ("", "services", "spec.nodeName", false),
        ];
        for (group, plural, field, ok) in cases {
            let r = res(group, "v1", plural).unwrap();
            let got = parse(r, &format!("{field}=x"));
            assert_eq!(got.is_ok(), *ok, "{plural} {field}: {got:?}");
            if !ok {
                assert_eq!(
                    got.unwrap_err(),
                    format!("field label not supported: {field}")
                );
            }
        }
    }

    #[test]
    fn matching_pods() {
        let pod = json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.244.0.5"}]},
        });
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("metadata.name=web", true),
            ("metadata.name=db", false),
            ("metadata.name!=db", true),
            ("metadata.namespace=default,spec.nodeName=n1", true),
            ("metadata.namespace=default,spec.nodeName=n2", false),
            ("spec.host=n1", true),
            ("status.phase!=Succeeded,status.phase!=Failed", true),
            ("status.podIP=10.244.0.5", true),
            // Missing fields compare as their zero values.
            ("spec.serviceAccountName=", true),
            ("status.nominatedNodeName!=", false),
            ("spec.hostNetwork=false", true),
            ("spec.hostNetwork=true", false),
        ];
        for (sel, want) in cases {
            assert_eq!(parse(pods(), sel).unwrap().matches(&pod), *want, "{sel}");
        }
        let unbound = json!({"metadata": {"name": "x"}, "spec": {}});
        assert!(parse(pods(), "spec.nodeName=").unwrap().matches(&unbound));
        assert!(!parse(pods(), "spec.nodeName!=").unwrap().matches(&unbound));
    }

    #[test]
    fn matching_other_kinds() {
        let event = json!({
            "metadata": {"name": "e1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "uid": "u1"},
            "reason": "Scheduled", "type": "Normal",
            "reportingComponent": "default-scheduler",
        });
        let ev = res("", "v1", "events").unwrap();
        assert!(parse(ev, "involvedObject.kind=Pod,involvedObject.name=web")
            .unwrap()
            .matches(&event));
        assert!(parse(ev, "source=default-scheduler")
            .unwrap()
            .matches(&event));
        assert!(!parse(ev, "type=Warning").unwrap().matches(&event));
        let new_ev = res("events.k8s.io", "v1", "events").unwrap();
        assert!(parse(
            new_ev,
            "regarding.name=web,reportingController=default-scheduler"
        )
        .unwrap()
        .matches(&event));
        let new_shape = json!({"metadata": {"name": "e2"}, "regarding": {"name": "db"}, "reportingController": "kubelet"});
        assert!(parse(new_ev, "regarding.name=db")
            .unwrap()
            .matches(&new_shape));
        assert!(
            parse(ev, "involvedObject.name=db,reportingComponent=kubelet")
                .unwrap()
                .matches(&new_shape)
        );

        let node = res("", "v1", "nodes").unwrap();
        assert!(parse(node, "spec.unschedulable=false")
            .unwrap()
            .matches(&json!({"spec": {}})));
        assert!(parse(node, "spec.unschedulable=true")
            .unwrap()
            .matches(&json!({"spec": {"unschedulable": true}})));
        let rs = res("apps", "v1", "replicasets").unwrap();
        assert!(parse(rs, "status.replicas=0")
            .unwrap()
            .matches(&json!({"status": {}})));
        assert!(parse(rs, "status.replicas!=0")
            .unwrap()
            .matches(&json!({"status": {"replicas": 3}})));
        let secrets = res("", "v1", "secrets").unwrap();
        assert!(parse(secrets, "type=kubernetes.io/tls")
            .unwrap()
            .matches(&json!({"type": "kubernetes.io/tls"})));
        let ns = res("", "v1", "namespaces").unwrap();
        assert!(parse(ns, "status.phase=Active")
            .unwrap()
            .matches(&json!({"status": {"phase": "Active"}})));
        assert!(parse(ns, "metadata.namespace=")
            .unwrap()
            .matches(&json!({"metadata": {"name": "x"}})));
    }

    #[test]
    fn required_value_finds_equality_terms() {
        let sel = parse(pods(), "spec.nodeName=n1,status.phase!=Failed").unwrap();
        assert_eq!(sel.required_value("spec.nodeName"), Some("n1"));
        assert_eq!(sel.required_value("status.phase"), None);
        assert_eq!(
            parse(pods(), "spec.host=n2")
                .unwrap()
                .required_value("spec.nodeName"),
            Some("n2")
        );
    }

    /// Every string of up to four symbols from an alphabet of operators, escapes and
    /// multi-byte characters parses or errors, never panics.
    #[test]
    fn short_inputs_never_panic() {
        let alphabet = ['a', '=', '!', '(', ')', ',', '<', '>', ' ', '\\', 'é', 'n'];
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let next: Vec<String> = inputs
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            for s in &next {
                let _ = parse(pods(), s);
            }
            inputs = next;
        }
        assert_eq!(inputs.len(), 12 * 12 * 12 * 12);
    }
}
