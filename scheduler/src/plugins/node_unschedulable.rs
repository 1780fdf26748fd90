//! Filter: a cordoned node (`spec.unschedulable: true`) takes no new pods, unless the pod
//! tolerates the `node.kubernetes.io/unschedulable:NoSchedule` taint (as DaemonSet pods
//! do), like upstream's NodeUnschedulable plugin.

use k8s_openapi::api::core::v1::Taint;

use crate::framework::FilterPlugin;
use crate::plugins::taint_toleration::tolerates;
use crate::podinfo::PodInfo;
use crate::snapshot::NodeInfo;

pub const UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

pub struct NodeUnschedulable;

impl FilterPlugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
        if !node.unschedulable {
            return Ok(());
        }
        let taint = Taint {
            key: UNSCHEDULABLE_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if pod.tolerations.iter().any(|t| tolerates(t, &taint)) {
            Ok(())
        } else {
            Err(vec![UNSCHEDULABLE.into()])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::test_support::*;
    use serde_json::json;

    #[test]
    fn cordoned_nodes_need_a_toleration() {
        let plain = pod_info("p", json!({}));
        let tolerant = pod_info(
            "t",
            json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}),
        );
        let other = pod_info(
            "o",
            json!({"tolerations": [{"key": "x", "operator": "Exists"}]}),
        );
        let mut n = node_info("n", "1", "1Gi", "10");
        let cases = [
            (false, &plain, true),
            (true, &plain, false),
            (true, &tolerant, true),
            (true, &other, false),
        ];
        for (cordoned, pod, fits) in cases {
            n.unschedulable = cordoned;
            let got = NodeUnschedulable.filter(pod, &n);
            assert_eq!(got.is_ok(), fits, "cordoned={cordoned} pod={}", pod.name);
            if !fits {
                assert_eq!(got.unwrap_err(), vec![UNSCHEDULABLE.to_string()]);
            }
        }
    }
}
