//! Field selectors: the `fieldSelector=` query parameter, with the fields each resource
//! supports. (stub: being written)

use serde_json::Value;

use crate::resource::ResourceInfo;

/// A parsed field selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {}

impl FieldSelector {
    pub fn matches(&self, _obj: &Value) -> bool {
        true
    }
    pub fn is_empty(&self) -> bool {
        true
    }
}

/// Parses `fieldSelector` for a resource; unsupported fields are an error naming them.
pub fn parse(_res: &ResourceInfo, _s: &str) -> Result<FieldSelector, String> {
    Ok(FieldSelector::default())
}
