//! Small accessors for the `metadata` of an object held as JSON.
//!
//! The API server handles every kind generically, so it reads and writes metadata
//! through these helpers rather than through typed structs.

use serde_json::{Map, Value};

pub fn name(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/name").and_then(Value::as_str)
}

pub fn namespace(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/namespace").and_then(Value::as_str)
}

pub fn generate_name(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/generateName")
        .and_then(Value::as_str)
}

pub fn resource_version(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

pub fn uid(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/uid").and_then(Value::as_str)
}

pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    obj.pointer("/metadata/labels").and_then(Value::as_object)
}

pub fn annotations(obj: &Value) -> Option<&Map<String, Value>> {
    obj.pointer("/metadata/annotations")
        .and_then(Value::as_object)
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn deletion_timestamp(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
}

/// The `metadata` map, created if the object has none (or a non-object one).
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let map = obj.as_object_mut().expect("object");
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("object")
}

pub fn set(obj: &mut Value, field: &str, value: Value) {
    metadata_mut(obj).insert(field.to_string(), value);
}

pub fn remove(obj: &mut Value, field: &str) {
    metadata_mut(obj).remove(field);
}

/// Labels as plain string pairs (non-string values are skipped; validation rejects them).
pub fn label_map(obj: &Value) -> std::collections::BTreeMap<String, String> {
    labels(obj)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_mut_creates_and_repairs() {
        let mut v = json!({"kind": "Pod"});
        set(&mut v, "name", json!("a"));
        assert_eq!(name(&v), Some("a"));
        let mut w = json!({"metadata": 3});
        set(&mut w, "uid", json!("u"));
        assert_eq!(uid(&w), Some("u"));
    }

    #[test]
    fn label_map_skips_non_strings() {
        let v = json!({"metadata": {"labels": {"a": "1", "b": 2}}});
        let m = label_map(&v);
        assert_eq!(m.len(), 1);
        assert_eq!(m["a"], "1");
    }
}
