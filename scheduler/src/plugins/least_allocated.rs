//! Score: prefer the node with the most CPU and memory left after placing the pod
//! (upstream's NodeResourcesFit `LeastAllocated` strategy), which spreads load.
//! Requests here use defaults for containers that ask for nothing, so request-less pods
//! still spread.

use crate::framework::{ScorePlugin, MAX_NODE_SCORE};
use crate::podinfo::PodInfo;
use crate::snapshot::NodeInfo;

pub struct LeastAllocated;

/// Free share of one resource after the pod, 0..=100.
fn free_score(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

impl ScorePlugin for LeastAllocated {
    fn name(&self) -> &'static str {
        "NodeResourcesLeastAllocated"
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let cpu = free_score(
            node.non_zero_milli_cpu + pod.non_zero_milli_cpu,
            node.allocatable.milli_cpu,
        );
        let mem = free_score(
            node.non_zero_memory + pod.non_zero_memory,
            node.allocatable.memory,
        );
        (cpu + mem) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::test_support::*;

    #[test]
    fn emptier_nodes_score_higher() {
        let pod = sized_pod("p", "1", "1Gi");
        let cases = [
            ("empty 4 cpu / 4Gi", node_info("n", "4", "4Gi", "10"), 75),
            (
                "half full",
                with_pods(
                    node_info("n", "4", "4Gi", "10"),
                    vec![sized_pod("a", "1", "1Gi")],
                ),
                50,
            ),
            (
                "cpu full, memory empty",
                with_pods(
                    node_info("n", "2", "4Gi", "10"),
                    vec![sized_pod("a", "1", "0")],
                ),
                75 / 2,
            ),
            (
                "overcommitted",
                with_pods(
                    node_info("n", "1", "1Gi", "10"),
                    vec![sized_pod("a", "1", "1Gi")],
                ),
                0,
            ),
            ("no allocatable", node_info("n", "0", "0", "10"), 0),
        ];
        for (what, node, want) in cases {
            assert_eq!(LeastAllocated.score(&pod, &node), want, "{what}");
        }
        // A pod with no requests counts as 100m / 200Mi.
        let empty = pod_info("e", serde_json::json!({"containers": [{"name": "c"}]}));
        assert_eq!(
            LeastAllocated.score(&empty, &node_info("n", "1", "400Mi", "10")),
            (90 + 50) / 2
        );
    }
}
