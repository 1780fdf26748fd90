//! Field sets: which fields of an object a field manager owns, and their `FieldsV1`
//! encoding in `metadata.managedFields`.
//!
//! A field set is a set of paths. A path walks from the object's root through map
//! fields (`f:name`), elements of keyed lists (`k:{"name":"web"}`), elements of scalar
//! sets (`v:"value"`) and, rarely, positions (`i:0`). In the encoding each path is a
//! chain of nested objects; a node that is itself owned and also has owned children
//! carries a `".": {}` marker, a node without children is owned by being there.
//!
//! What a path means follows the list metadata of [`schema`](super::schema): lists
//! with a merge key own each element separately, scalar sets own each value, and every
//! other list is atomic (owned, and compared, as one value), as upstream treats lists
//! without `x-kubernetes-list-type`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

use super::schema::{self, Field, Ty};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pe {
    /// A field of a map or struct.
    Field(String),
    /// An element of a keyed list, named by its key fields: a JSON object with sorted
    /// keys, compact.
    Key(String),
    /// An element of a scalar set, as compact JSON.
    Value(String),
    /// A position in a list.
    Index(usize),
}

pub type Path = Vec<Pe>;

/// A set of owned paths.
pub type FieldSet = BTreeSet<Path>;

/// The owned paths of an object with, for leaves, their value (for finding what a
/// write changed). List elements carry `None`: only their presence counts.
pub type Members = BTreeMap<Path, Option<Value>>;

/// A path as upstream prints it in conflicts: `.spec.containers[name="web"].image`.
pub struct Display<'a>(pub &'a [Pe]);

impl fmt::Display for Display<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in self.0 {
            match e {
                Pe::Field(n) => write!(f, ".{n}")?,
                Pe::Key(k) => {
                    let parts: Vec<String> = match serde_json::from_str::<Map<String, Value>>(k) {
                        Ok(m) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                        Err(_) => vec![k.clone()],
                    };
                    write!(f, "[{}]", parts.join(","))?
                }
                Pe::Value(v) => write!(f, "[={v}]")?,
                Pe::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// Why a `fieldsV1` document cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("fieldsV1 must be a JSON object at {0:?}")]
    NotAnObject(String),
    #[error("fieldsV1 has the key {0:?}, which is none of \".\", f:, k:, v:, i:")]
    BadKey(String),
}

/// A JSON value in its canonical compact form (sorted object keys).
fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let b: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, sorted(v))).collect();
                let mut out = Map::new();
                for (k, v) in b {
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

impl Pe {
    fn encode(&self) -> String {
        match self {
            Pe::Field(n) => format!("f:{n}"),
            Pe::Key(k) => format!("k:{k}"),
            Pe::Value(v) => format!("v:{v}"),
            Pe::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Result<Pe, DecodeError> {
        let bad = || DecodeError::BadKey(s.to_string());
        if let Some(n) = s.strip_prefix("f:") {
            return Ok(Pe::Field(n.to_string()));
        }
        if let Some(k) = s.strip_prefix("k:") {
            let v: Value = serde_json::from_str(k).map_err(|_| bad())?;
            if !v.is_object() {
                return Err(bad());
            }
            return Ok(Pe::Key(canonical(&v)));
        }
        if let Some(v) = s.strip_prefix("v:") {
            let v: Value = serde_json::from_str(v).map_err(|_| bad())?;
            return Ok(Pe::Value(canonical(&v)));
        }
        if let Some(i) = s.strip_prefix("i:") {
            return i.parse().map(Pe::Index).map_err(|_| bad());
        }
        Err(bad())
    }

    /// Whether the list element `e` is the one this step names.
    fn matches(&self, e: &Value) -> bool {
        match self {
            Pe::Key(k) => match serde_json::from_str::<Map<String, Value>>(k) {
                Ok(want) => want.iter().all(|(f, v)| e.get(f) == Some(v)),
                Err(_) => false,
            },
            Pe::Value(v) => canonical(e) == *v,
            _ => false,
        }
    }
}

/// The step naming element `e` of a list keyed on `key`.
fn key_step(key: &str, e: &Value) -> Option<Pe> {
    let k = e.get(key).filter(|v| !v.is_null())?;
    let mut m = Map::new();
    m.insert(key.to_string(), k.clone());
    Some(Pe::Key(canonical(&Value::Object(m))))
}

#[derive(Default)]
struct Node {
    owned: bool,
    children: BTreeMap<Pe, Node>,
}

impl Node {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.owned && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            m.insert(k.encode(), c.to_json());
        }
        Value::Object(m)
    }
}

/// The `fieldsV1` object of a set.
pub fn encode(set: &FieldSet) -> Value {
    let mut root = Node::default();
    for p in set {
        let mut n = &mut root;
        for e in p {
            n = n.children.entry(e.clone()).or_default();
        }
        n.owned = true;
    }
    root.to_json()
}

/// The set a `fieldsV1` object describes.
pub fn decode(v: &Value) -> Result<FieldSet, DecodeError> {
    fn walk(v: &Value, path: &mut Path, out: &mut FieldSet) -> Result<(), DecodeError> {
        let Value::Object(m) = v else {
            return Err(DecodeError::NotAnObject(Display(path).to_string()));
        };
        if m.is_empty() && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, c) in m {
            if k == "." {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
                continue;
            }
            path.push(Pe::decode(k)?);
            walk(c, path, out)?;
            path.pop();
        }
        Ok(())
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out)?;
    Ok(out)
}

fn struct_ty(meta: Option<Field>) -> Ty {
    match meta {
        Some(Field::Struct(t)) => t,
        _ => Ty::Unknown,
    }
}

/// The owned paths of `v` (a whole object of type `ty`): every leaf, every element of
/// a keyed list or scalar set, and every empty map. Nulls own nothing.
pub fn members(v: &Value, ty: Ty) -> Members {
    let mut out = Members::new();
    if let Value::Object(m) = v {
        walk_map(m, ty, &mut Vec::new(), &mut out);
    }
    out
}

fn walk_map(m: &Map<String, Value>, ty: Ty, path: &mut Path, out: &mut Members) {
    for (k, v) in m {
        if v.is_null() {
            continue;
        }
        path.push(Pe::Field(k.clone()));
        walk_value(v, schema::field(ty, k), path, out);
        path.pop();
    }
}

fn walk_value(v: &Value, meta: Option<Field>, path: &mut Path, out: &mut Members) {
    match (v, meta) {
        (Value::Object(m), _) if !m.is_empty() => walk_map(m, struct_ty(meta), path, out),
        (Value::Array(a), Some(Field::MergeList { key, elem })) if !a.is_empty() => {
            let steps: Option<Vec<Pe>> = a.iter().map(|e| key_step(key, e)).collect();
            let Some(steps) = steps else {
                // An element without its key: the list can only be owned whole.
                out.insert(path.clone(), Some(v.clone()));
                return;
            };
            for (e, step) in a.iter().zip(steps) {
                path.push(step);
                out.insert(path.clone(), None);
                if let Value::Object(m) = e {
                    walk_map(m, elem, path, out);
                }
                path.pop();
            }
        }
        (Value::Array(a), Some(Field::PrimitiveSet)) if !a.is_empty() => {
            for e in a {
                path.push(Pe::Value(canonical(e)));
                out.insert(path.clone(), None);
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone(), Some(v.clone()));
        }
    }
}

/// The value at `path` in `v`.
pub fn get<'a>(v: &'a Value, path: &[Pe]) -> Option<&'a Value> {
    let mut cur = v;
    for e in path {
        cur = match e {
            Pe::Field(n) => cur.get(n.as_str())?,
            Pe::Index(i) => cur.get(*i)?,
            Pe::Key(_) | Pe::Value(_) => cur.as_array()?.iter().find(|x| e.matches(x))?,
        };
    }
    Some(cur)
}

fn get_mut<'a>(v: &'a mut Value, path: &[Pe]) -> Option<&'a mut Value> {
    let mut cur = v;
    for e in path {
        cur = match e {
            Pe::Field(n) => cur.get_mut(n.as_str())?,
            Pe::Index(i) => cur.get_mut(*i)?,
            Pe::Key(_) | Pe::Value(_) => cur.as_array_mut()?.iter_mut().find(|x| e.matches(x))?,
        };
    }
    Some(cur)
}

/// Removes what `path` names from `v`; false when it was not there.
pub fn remove(v: &mut Value, path: &[Pe]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    let Some(p) = get_mut(v, parent) else {
        return false;
    };
    match (last, p) {
        (Pe::Field(n), Value::Object(m)) => m.shift_remove(n).is_some(),
        (Pe::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        (e @ (Pe::Key(_) | Pe::Value(_)), Value::Array(a)) => {
            let before = a.len();
            a.retain(|x| !e.matches(x));
            a.len() != before
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(n: &str) -> Pe {
        Pe::Field(n.into())
    }

    fn deployment() -> Value {
        json!({
            "metadata": {"labels": {"app": "web"}, "finalizers": ["a", "b"]},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {
                    "containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}],
                    "tolerations": [{"key": "k"}],
                    "nodeSelector": {},
                    "dnsPolicy": null
                }}
            }
        })
    }

    #[test]
    fn members_follow_the_list_metadata() {
        let m = members(&deployment(), schema::root("Deployment"));
        let shown: Vec<String> = m.keys().map(|p| Display(p).to_string()).collect();
        assert_eq!(
            shown,
            vec![
                ".metadata.finalizers[=\"a\"]",
                ".metadata.finalizers[=\"b\"]",
                ".metadata.labels.app",
                ".spec.replicas",
                ".spec.selector.matchLabels.app",
                ".spec.template.spec.containers[name=\"web\"]",
                ".spec.template.spec.containers[name=\"web\"].image",
                ".spec.template.spec.containers[name=\"web\"].name",
                ".spec.template.spec.containers[name=\"web\"].ports[containerPort=80]",
                ".spec.template.spec.containers[name=\"web\"].ports[containerPort=80].containerPort",
                ".spec.template.spec.nodeSelector",
                ".spec.template.spec.tolerations",
            ]
        );
        // Leaves carry their value, atomic lists whole; elements only their presence.
        let tol = vec![f("spec"), f("template"), f("spec"), f("tolerations")];
        assert_eq!(m[&tol], Some(json!([{"key": "k"}])));
        let c = vec![
            f("spec"),
            f("template"),
            f("spec"),
            f("containers"),
            Pe::Key(r#"{"name":"web"}"#.into()),
        ];
        assert_eq!(m[&c], None);
    }

    #[test]
    fn encoding_matches_upstream_and_round_trips() {
        let set: FieldSet = members(&deployment(), schema::root("Deployment"))
            .into_keys()
            .collect();
        let enc = encode(&set);
        assert_eq!(
            enc["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"],
            json!({".": {}, "f:image": {}, "f:name": {}, "f:ports": {"k:{\"containerPort\":80}": {".": {}, "f:containerPort": {}}}})
        );
        assert_eq!(
            enc["f:metadata"]["f:finalizers"],
            json!({"v:\"a\"": {}, "v:\"b\"": {}})
        );
        assert_eq!(enc["f:spec"]["f:replicas"], json!({}));
        assert_eq!(decode(&enc).unwrap(), set);
    }

    #[test]
    fn decoding_accepts_upstream_documents_and_refuses_garbage() {
        // As a real API server writes it: multi-key elements, markers on maps.
        let doc = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                         "f:spec": {"f:ports": {"k:{\"protocol\":\"TCP\",\"port\":80}": {".": {}, "f:port": {}}}}});
        let set = decode(&doc).unwrap();
        let shown: Vec<String> = set.iter().map(|p| Display(p).to_string()).collect();
        assert_eq!(
            shown,
            vec![
                ".metadata.labels",
                ".metadata.labels.app",
                ".spec.ports[port=80,protocol=\"TCP\"]",
                ".spec.ports[port=80,protocol=\"TCP\"].port",
            ]
        );
        let svc = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 81}]}});
        let port = set
            .iter()
            .find(|p| p.len() == 3 && p[0] == f("spec"))
            .unwrap();
        assert_eq!(
            get(&svc, port),
            Some(&json!({"port": 80, "protocol": "TCP"}))
        );
        for bad in [json!({"x:y": {}}), json!({"f:a": 1}), json!({"k:[1]": {}})] {
            assert!(decode(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn remove_takes_out_fields_elements_and_values() {
        let root = schema::root("Deployment");
        let mut d = deployment();
        let m = members(&d, root);
        let c = m
            .keys()
            .find(|p| Display(p).to_string() == ".spec.template.spec.containers[name=\"web\"]")
            .unwrap()
            .clone();
        let fin = m
            .keys()
            .find(|p| Display(p).to_string() == ".metadata.finalizers[=\"a\"]")
            .unwrap()
            .clone();
        assert!(remove(&mut d, &c));
        assert!(remove(&mut d, &fin));
        assert!(remove(&mut d, &[f("spec"), f("replicas")]));
        assert!(!remove(&mut d, &[f("spec"), f("replicas")]));
        assert_eq!(d["spec"]["template"]["spec"]["containers"], json!([]));
        assert_eq!(d["metadata"]["finalizers"], json!(["b"]));
        assert!(d["spec"].get("replicas").is_none());
    }
}
