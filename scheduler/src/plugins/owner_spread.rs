//! Score: spread pods of the same owner (ReplicaSet, StatefulSet...) across nodes, so a
//! node failure takes down as few replicas as possible (upstream's old SelectorSpread,
//! by controller UID instead of by selector).

use crate::framework::{ScorePlugin, MAX_NODE_SCORE};
use crate::podinfo::PodInfo;
use crate::snapshot::NodeInfo;

pub struct OwnerSpread;

impl ScorePlugin for OwnerSpread {
    fn name(&self) -> &'static str {
        "OwnerSpread"
    }

    /// Raw score: how many pods of the same owner are already on the node.
    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(owner) = &pod.owner_uid else {
            return 0;
        };
        node.pods
            .iter()
            .filter(|p| {
                p.uid != pod.uid
                    && p.owner_uid.as_ref() == Some(owner)
                    && p.namespace == pod.namespace
            })
            .count() as i64
    }

    /// Fewest siblings gets 100, most gets 0.
    fn normalize(&self, scores: &mut [i64]) {
        let max = scores.iter().copied().max().unwrap_or(0);
        for s in scores.iter_mut() {
            *s = if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::test_support::*;

    fn owned(name: &str, owner: Option<&str>) -> PodInfo {
        let mut p = sized_pod(name, "0", "0");
        p.owner_uid = owner.map(String::from);
        p
    }

    #[test]
    fn fewer_siblings_scores_higher() {
        let pod = owned("new", Some("rs1"));
        let nodes = [
            with_pods(
                node_info("a", "1", "1Gi", "10"),
                vec![owned("x1", Some("rs1")), owned("x2", Some("rs1"))],
            ),
            with_pods(
                node_info("b", "1", "1Gi", "10"),
                vec![owned("x3", Some("rs1")), owned("y", Some("rs2"))],
            ),
            with_pods(node_info("c", "1", "1Gi", "10"), vec![owned("z", None)]),
        ];
        let mut scores: Vec<i64> = nodes.iter().map(|n| OwnerSpread.score(&pod, n)).collect();
        assert_eq!(scores, vec![2, 1, 0]);
        OwnerSpread.normalize(&mut scores);
        assert_eq!(scores, vec![0, 50, 100]);

        let orphan = owned("o", None);
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| OwnerSpread.score(&orphan, n))
            .collect();
        OwnerSpread.normalize(&mut scores);
        assert_eq!(
            scores,
            vec![100, 100, 100],
            "pods without owner are not spread"
        );
    }
}
