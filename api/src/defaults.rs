//! Server-side defaulting per kind. (stub: being written)

use serde_json::Value;

use crate::resource::ResourceInfo;

/// Fills in the fields the API server defaults for this kind.
pub fn apply(_res: &ResourceInfo, _obj: &mut Value) {}

/// Adds the not-ready/unreachable NoExecute tolerations (300 s) unless present.
/// (stub until the defaults module lands)
pub fn default_tolerations(_pod: &mut Value) {}
