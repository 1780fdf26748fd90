//! Server-side defaulting per kind. (stub: being written)

use serde_json::Value;

use crate::resource::ResourceInfo;

/// Fills in the fields the API server defaults for this kind.
pub fn apply(_res: &ResourceInfo, _obj: &mut Value) {}
