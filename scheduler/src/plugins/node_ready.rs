//! Filter: only nodes whose `Ready` condition is `True` take new pods. Upstream expresses
//! this through the `node.kubernetes.io/not-ready` taint that the node lifecycle
//! controller adds; checking the condition too keeps a fresh skiff cluster safe before
//! that controller has run.

use crate::framework::FilterPlugin;
use crate::podinfo::PodInfo;
use crate::snapshot::NodeInfo;

pub const NOT_READY: &str = "node(s) were not ready";

pub struct NodeReady;

impl FilterPlugin for NodeReady {
    fn name(&self) -> &'static str {
        "NodeReady"
    }

    fn filter(&self, _pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
        if node.ready {
            Ok(())
        } else {
            Err(vec![NOT_READY.into()])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::test_support::*;

    #[test]
    fn ready_condition_decides() {
        let pod = pod_info("p", serde_json::json!({}));
        let mut n = node_info("n", "1", "1Gi", "10");
        let cases = [(true, Ok(())), (false, Err(vec![NOT_READY.to_string()]))];
        for (ready, want) in cases {
            n.ready = ready;
            assert_eq!(NodeReady.filter(&pod, &n), want, "ready={ready}");
        }
        // A node with no conditions at all is not ready.
        let bare: k8s_openapi::api::core::v1::Node =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "bare"}})).unwrap();
        assert!(NodeReady.filter(&pod, &NodeInfo::from_node(&bare)).is_err());
    }
}
