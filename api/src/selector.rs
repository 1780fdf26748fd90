//! Label selectors: the `labelSelector=` query grammar (`=`, `==`, `!=`, `in`, `notin`,
//! exists, `!exists`) and `metav1.LabelSelector` objects (matchLabels,
//! matchExpressions). (stub: being written)

use std::collections::BTreeMap;

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {}

impl LabelSelector {
    pub fn matches(&self, _labels: &BTreeMap<String, String>) -> bool {
        true
    }
    pub fn is_empty(&self) -> bool {
        true
    }
}

/// Parses the `labelSelector` query parameter.
pub fn parse(_s: &str) -> Result<LabelSelector, String> {
    Ok(LabelSelector::default())
}
