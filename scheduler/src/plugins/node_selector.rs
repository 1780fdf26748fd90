//! Filter: every `spec.nodeSelector` label must be on the node with the same value.
//! Upstream folds this into NodeAffinity and uses the same message, which is kept here.

use crate::framework::FilterPlugin;
use crate::podinfo::PodInfo;
use crate::snapshot::NodeInfo;

pub const AFFINITY_MISMATCH: &str = "node(s) didn't match Pod's node affinity/selector";

pub struct NodeSelector;

impl FilterPlugin for NodeSelector {
    fn name(&self) -> &'static str {
        "NodeSelector"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
        if pod
            .node_selector
            .iter()
            .all(|(k, v)| node.labels.get(k) == Some(v))
        {
            Ok(())
        } else {
            Err(vec![AFFINITY_MISMATCH.into()])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::test_support::*;
    use serde_json::json;

    #[test]
    fn all_selector_labels_must_match() {
        let mut n = node_info("n", "1", "1Gi", "10");
        n.labels.insert("disk".into(), "ssd".into());
        n.labels.insert("zone".into(), "a".into());
        let cases = [
            (json!({}), true),
            (json!({"disk": "ssd"}), true),
            (json!({"disk": "ssd", "zone": "a"}), true),
            (json!({"disk": "hdd"}), false),
            (json!({"disk": "ssd", "gpu": "yes"}), false),
        ];
        for (sel, fits) in cases {
            let pod = pod_info("p", json!({"nodeSelector": sel.clone()}));
            assert_eq!(NodeSelector.filter(&pod, &n).is_ok(), fits, "{sel}");
        }
    }
}
