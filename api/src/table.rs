//! `meta.k8s.io/v1` Tables for `kubectl get`. (stub: being written)

use serde_json::Value;

use crate::resource::ResourceInfo;

/// The column definitions (`name`, `type`, `format`, `description`, `priority`).
pub fn columns(_res: &ResourceInfo) -> Vec<Value> {
    vec![serde_json::json!({"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0})]
}

/// One row's cells for an object, in column order; `now` is for ages.
pub fn cells(_res: &ResourceInfo, obj: &Value, _now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
    vec![obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null)]
}
