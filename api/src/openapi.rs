//! OpenAPI documents (v3 per group-version, v2). (stub: being written)

use serde_json::Value;

/// The `/openapi/v3` index.
pub fn v3_index() -> Value {
    serde_json::json!({"paths": {}})
}

/// The document for `/openapi/v3/<path>` (e.g. `api/v1`, `apis/apps/v1`), if served.
pub fn v3_document(_path: &str) -> Option<Value> {
    None
}

/// The `/openapi/v2` document as JSON.
pub fn v2_json() -> Value {
    serde_json::json!({"swagger": "2.0", "info": {"title": "skiff", "version": "v1"}, "paths": {}, "definitions": {}})
}

/// The `/openapi/v2` document in protobuf (gnostic `openapi_v2.Document`).
pub fn v2_protobuf() -> Vec<u8> {
    Vec::new()
}
