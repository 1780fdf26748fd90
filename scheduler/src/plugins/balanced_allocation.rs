//! Score: prefer nodes whose CPU and memory would be used in similar proportions after
//! placing the pod (upstream's NodeResourcesBalancedAllocation), so that one resource is
//! not exhausted while the other sits idle.

use crate::framework::{ScorePlugin, MAX_NODE_SCORE};
use crate::podinfo::PodInfo;
use crate::snapshot::NodeInfo;

pub struct BalancedAllocation;

fn fraction(requested: i64, capacity: i64) -> f64 {
    if capacity <= 0 {
        return 1.0;
    }
    (requested as f64 / capacity as f64).min(1.0)
}

impl ScorePlugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let cpu = fraction(
            node.non_zero_milli_cpu + pod.non_zero_milli_cpu,
            node.allocatable.milli_cpu,
        );
        let mem = fraction(
            node.non_zero_memory + pod.non_zero_memory,
            node.allocatable.memory,
        );
        // The standard deviation of two values is half their distance.
        let std = (cpu - mem).abs() / 2.0;
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::test_support::*;

    #[test]
    fn even_use_scores_higher() {
        let pod = sized_pod("p", "1", "1Gi");
        let cases = [
            ("same share of both", node_info("n", "4", "4Gi", "10"), 100),
            ("cpu 50%, memory 25%", node_info("n", "2", "4Gi", "10"), 87),
            (
                "cpu 100%, memory 0%",
                with_pods(
                    node_info("n", "2", "1000Gi", "10"),
                    vec![sized_pod("a", "1", "0")],
                ),
                50,
            ),
        ];
        for (what, node, want) in cases {
            assert_eq!(BalancedAllocation.score(&pod, &node), want, "{what}");
        }
    }
}
