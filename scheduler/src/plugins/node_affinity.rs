//! Node affinity (upstream's NodeAffinity plugin): as a filter, the node must match one of
//! the `requiredDuringSchedulingIgnoredDuringExecution` terms; as a score, the sum of the
//! weights of matching `preferredDuringSchedulingIgnoredDuringExecution` terms, scaled so
//! the best node gets 100.

use crate::framework::{FilterPlugin, ScorePlugin, MAX_NODE_SCORE};
use crate::plugins::node_selector::AFFINITY_MISMATCH;
use crate::podinfo::PodInfo;
use crate::selectors::{node_selector_term_matches, node_selector_terms_match};
use crate::snapshot::NodeInfo;

pub struct NodeAffinity;

impl FilterPlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
        match &pod.required_node_affinity {
            Some(terms) if !node_selector_terms_match(terms, &node.name, &node.labels) => {
                Err(vec![AFFINITY_MISMATCH.into()])
            }
            _ => Ok(()),
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        pod.preferred_node_affinity
            .iter()
            .filter(|p| {
                p.weight != 0 && node_selector_term_matches(&p.preference, &node.name, &node.labels)
            })
            .map(|p| i64::from(p.weight))
            .sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        let max = scores.iter().copied().max().unwrap_or(0);
        if max > 0 {
            for s in scores.iter_mut() {
                *s = MAX_NODE_SCORE * *s / max;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::test_support::*;
    use serde_json::json;

    fn labelled(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
        let mut n = node_info(name, "1", "1Gi", "10");
        for (k, v) in labels {
            n.labels.insert(k.to_string(), v.to_string());
        }
        n
    }

    #[test]
    fn required_terms() {
        let n = labelled("n1", &[("zone", "a"), ("cores", "16")]);
        let req = |terms: serde_json::Value| {
            pod_info(
                "p",
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}),
            )
        };
        let cases = [
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]),
                true,
            ),
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]),
                false,
            ),
            (
                json!([{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}]),
                false,
            ),
            (
                json!([{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}]),
                true,
            ),
            (
                json!([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]}]),
                true,
            ),
            (
                json!([{"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["8"]}]}]),
                false,
            ),
            (
                json!([{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
                       {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
                true,
            ),
            (json!([]), false),
        ];
        for (terms, fits) in cases {
            let got = NodeAffinity.filter(&req(terms.clone()), &n);
            assert_eq!(got.is_ok(), fits, "{terms}");
            if !fits {
                assert_eq!(got.unwrap_err(), vec![AFFINITY_MISMATCH.to_string()]);
            }
        }
        assert!(
            NodeAffinity.filter(&pod_info("p", json!({})), &n).is_ok(),
            "no affinity fits anywhere"
        );
    }

    #[test]
    fn preferred_terms_score() {
        let pod = pod_info(
            "p",
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
                {"weight": 30, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}
            ]}}}),
        );
        let nodes = [
            labelled("a", &[("zone", "a")]),
            labelled("b", &[("disk", "ssd")]),
            labelled("c", &[("zone", "a"), ("disk", "ssd")]),
            labelled("d", &[]),
        ];
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| ScorePlugin::score(&NodeAffinity, &pod, n))
            .collect();
        assert_eq!(scores, vec![10, 30, 40, 0]);
        ScorePlugin::normalize(&NodeAffinity, &mut scores);
        assert_eq!(scores, vec![25, 75, 100, 0]);
        let mut zeros = vec![0, 0];
        ScorePlugin::normalize(&NodeAffinity, &mut zeros);
        assert_eq!(zeros, vec![0, 0]);
    }
}
