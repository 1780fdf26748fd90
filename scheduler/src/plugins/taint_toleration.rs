//! Filter: every `NoSchedule` and `NoExecute` taint of a node must be tolerated by the pod
//! (upstream's TaintToleration filter); `PreferNoSchedule` taints only lower the score.
//! See <https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/>.

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::framework::{FilterPlugin, ScorePlugin, MAX_NODE_SCORE};
use crate::podinfo::PodInfo;
use crate::snapshot::NodeInfo;

/// Does one toleration match one taint? An empty effect matches every effect, an empty
/// key with `Exists` matches every key, `Equal` (the default) also compares values.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

pub struct TaintToleration;

impl FilterPlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
        let untolerated = node.taints.iter().find(|taint| {
            (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
                && !pod.tolerations.iter().any(|t| tolerates(t, taint))
        });
        match untolerated {
            None => Ok(()),
            Some(t) => Err(vec![format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            )]),
        }
    }
}

/// Score: fewer untolerated `PreferNoSchedule` taints is better.
pub struct PreferNoScheduleTaints;

impl ScorePlugin for PreferNoScheduleTaints {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        node.taints
            .iter()
            .filter(|taint| {
                taint.effect == "PreferNoSchedule"
                    && !pod.tolerations.iter().any(|t| tolerates(t, taint))
            })
            .count() as i64
    }

    /// Raw scores count taints; the node with most gets 0, nodes with none get 100.
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
    use serde_json::json;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn toleration(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn toleration_matching() {
        let t = taint("dedicated", "gpu", "NoSchedule");
        let cases = [
            (
                json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}),
                true,
            ),
            (
                json!({"key": "dedicated", "operator": "Equal", "value": "gpu"}),
                true,
            ),
            (json!({"key": "dedicated", "value": "cpu"}), false),
            (json!({"key": "dedicated", "operator": "Exists"}), true),
            (
                json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}),
                false,
            ),
            (json!({"operator": "Exists"}), true),
            (json!({"operator": "Exists", "effect": "NoSchedule"}), true),
            (json!({"key": "other", "operator": "Exists"}), false),
            (json!({"value": "gpu"}), false), // Equal needs a key
            (json!({"key": "dedicated", "operator": "Bogus"}), false),
        ];
        for (tol, want) in cases {
            assert_eq!(tolerates(&toleration(tol.clone()), &t), want, "{tol}");
        }
    }

    #[test]
    fn filter_blocks_untolerated_hard_taints() {
        let mut n = node_info("n", "1", "1Gi", "10");
        let plain = pod_info("p", json!({}));
        let tolerant = pod_info(
            "t",
            json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
        );
        let cases = [
            (vec![], &plain, Ok(())),
            (
                vec![taint("dedicated", "gpu", "PreferNoSchedule")],
                &plain,
                Ok(()),
            ),
            (
                vec![taint("dedicated", "gpu", "NoSchedule")],
                &plain,
                Err(vec![
                    "node(s) had untolerated taint {dedicated: gpu}".to_string()
                ]),
            ),
            (
                vec![taint("gone", "", "NoExecute")],
                &plain,
                Err(vec!["node(s) had untolerated taint {gone: }".to_string()]),
            ),
            (
                vec![taint("dedicated", "gpu", "NoSchedule")],
                &tolerant,
                Ok(()),
            ),
            (
                vec![
                    taint("dedicated", "gpu", "NoSchedule"),
                    taint("x", "1", "NoSchedule"),
                ],
                &tolerant,
                Err(vec!["node(s) had untolerated taint {x: 1}".to_string()]),
            ),
        ];
        for (taints, pod, want) in cases {
            n.taints = taints.clone();
            assert_eq!(
                TaintToleration.filter(pod, &n),
                want,
                "taints {taints:?} pod {}",
                pod.name
            );
        }
    }

    #[test]
    fn prefer_no_schedule_scores() {
        let pod = pod_info("p", json!({}));
        let mut a = node_info("a", "1", "1Gi", "10");
        a.taints = vec![
            taint("x", "", "PreferNoSchedule"),
            taint("y", "", "PreferNoSchedule"),
        ];
        let mut b = node_info("b", "1", "1Gi", "10");
        b.taints = vec![taint("x", "", "PreferNoSchedule")];
        let c = node_info("c", "1", "1Gi", "10");
        let mut scores: Vec<i64> = [&a, &b, &c]
            .iter()
            .map(|n| PreferNoScheduleTaints.score(&pod, n))
            .collect();
        assert_eq!(scores, vec![2, 1, 0]);
        PreferNoScheduleTaints.normalize(&mut scores);
        assert_eq!(scores, vec![0, 50, 100]);
    }
}
