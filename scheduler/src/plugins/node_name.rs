//! Filter: a pod that names its node in `spec.nodeName` fits only there (upstream's
//! NodeName plugin).

use crate::framework::FilterPlugin;
use crate::podinfo::PodInfo;
use crate::snapshot::NodeInfo;

pub const NODE_NAME_MISMATCH: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

impl FilterPlugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
        match &pod.node_name {
            Some(want) if *want != node.name => Err(vec![NODE_NAME_MISMATCH.into()]),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::test_support::*;

    #[test]
    fn only_the_named_node_fits() {
        let n = node_info("n1", "1", "1Gi", "10");
        let cases = [(None, true), (Some("n1"), true), (Some("n2"), false)];
        for (want, fits) in cases {
            let mut pod = pod_info("p", serde_json::json!({}));
            pod.node_name = want.map(String::from);
            assert_eq!(NodeName.filter(&pod, &n).is_ok(), fits, "nodeName {want:?}");
        }
    }
}
