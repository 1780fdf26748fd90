//! Validation with Kubernetes' rules. (stub: being written)

use serde_json::Value;

use crate::resource::ResourceInfo;
use crate::status::Cause;

/// Validates an object about to be created (`old` is None) or to replace `old`.
/// Returns every field at fault.
pub fn validate(_res: &ResourceInfo, _obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
    Vec::new()
}
