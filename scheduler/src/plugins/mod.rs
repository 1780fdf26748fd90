//! The built-in filter and score plugins, one per file, and the default profile.
//!
//! Filters run cheapest and most selective first, so most rejected nodes cost one check.

pub mod balanced_allocation;
pub mod least_allocated;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_ready;
pub mod node_resources_fit;
pub mod node_selector;
pub mod node_unschedulable;
pub mod owner_spread;
pub mod pod_anti_affinity;
pub mod taint_toleration;

use crate::framework::Plugins;

/// Score weights of the default profile (upstream's defaults where a counterpart exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weights {
    pub least_allocated: i64,
    pub balanced_allocation: i64,
    pub node_affinity: i64,
    pub owner_spread: i64,
    pub taint_toleration: i64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            least_allocated: 1,
            balanced_allocation: 1,
            node_affinity: 2,
            owner_spread: 2,
            taint_toleration: 3,
        }
    }
}

/// The default profile.
pub fn default_plugins(weights: &Weights, percentage_of_nodes_to_score: u32) -> Plugins {
    let mut scores: Vec<(Box<dyn crate::framework::ScorePlugin>, i64)> = vec![
        (
            Box::new(least_allocated::LeastAllocated),
            weights.least_allocated,
        ),
        (
            Box::new(balanced_allocation::BalancedAllocation),
            weights.balanced_allocation,
        ),
        (Box::new(node_affinity::NodeAffinity), weights.node_affinity),
        (Box::new(owner_spread::OwnerSpread), weights.owner_spread),
        (
            Box::new(taint_toleration::PreferNoScheduleTaints),
            weights.taint_toleration,
        ),
    ];
    // A zero weight switches a score off; skip the work.
    scores.retain(|(_, w)| *w != 0);
    Plugins {
        filters: vec![
            Box::new(node_ready::NodeReady),
            Box::new(node_unschedulable::NodeUnschedulable),
            Box::new(node_name::NodeName),
            Box::new(taint_toleration::TaintToleration),
            Box::new(node_selector::NodeSelector),
            Box::new(node_affinity::NodeAffinity),
            Box::new(node_ports::NodePorts),
            Box::new(node_resources_fit::NodeResourcesFit),
            Box::new(pod_anti_affinity::PodAntiAffinity),
        ],
        scores,
        percentage_of_nodes_to_score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::{schedule, Cursor};
    use crate::snapshot::test_support::*;
    use crate::snapshot::Snapshot;
    use serde_json::json;

    /// The profile as a whole: the message users see for a mixed cluster.
    #[test]
    fn default_profile_explains_rejections() {
        let mut s = Snapshot::new();
        s.upsert_node(&node("small-1", "500m", "1Gi", "10"));
        s.upsert_node(&node("small-2", "500m", "1Gi", "10"));
        let mut tainted = node("tainted", "8", "8Gi", "10");
        tainted.spec = Some(
            serde_json::from_value(
                json!({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
            )
            .unwrap(),
        );
        s.upsert_node(&tainted);
        let plugins = default_plugins(&Weights::default(), 0);
        let pod = sized_pod("p", "1", "100Mi");
        let err = schedule(&pod, &s, &plugins, &mut Cursor::new(1)).unwrap_err();
        assert_eq!(err.to_string(), "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu.");

        let tolerant = pod_info(
            "t",
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}],
                   "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
        );
        assert_eq!(
            schedule(&tolerant, &s, &plugins, &mut Cursor::new(1)).unwrap(),
            "tainted"
        );
    }

    /// Scores steer replicas of one owner onto different nodes.
    #[test]
    fn replicas_spread_over_nodes() {
        let mut s = Snapshot::new();
        for n in ["a", "b", "c"] {
            s.upsert_node(&node(n, "4", "8Gi", "110"));
        }
        let plugins = default_plugins(&Weights::default(), 0);
        let mut cursor = Cursor::new(9);
        let mut placed = Vec::new();
        for i in 0..3 {
            let mut p = sized_pod(&format!("r{i}"), "100m", "100Mi");
            p.owner_uid = Some("rs".into());
            let n = schedule(&p, &s, &plugins, &mut cursor).unwrap();
            s.assume(&p, &n);
            placed.push(n);
        }
        placed.sort();
        assert_eq!(placed, vec!["a", "b", "c"]);
    }
}
