//! The scheduling framework: the contracts of filter and score plugins, and one
//! scheduling cycle as a pure function from a pod and a snapshot to a node name or a
//! [`FitError`] that explains, per reason, how many nodes were rejected.
//!
//! This mirrors upstream's `FilterPlugin`/`ScorePlugin`
//! (<https://kubernetes.io/docs/concepts/scheduling-eviction/scheduling-framework/>):
//! - filters run in order on each node; the first plugin that rejects a node gives the
//!   reasons recorded for it;
//! - only a share of the nodes is searched once enough feasible ones are found
//!   (`percentageOfNodesToScore`, adaptive by default), starting where the previous cycle
//!   stopped so every node gets its turn;
//! - scores are 0..=100 per plugin after normalising, multiplied by the plugin's weight and
//!   summed; among equal best scores one is picked uniformly at random (reservoir sampling).

use std::collections::BTreeMap;
use std::fmt;

use crate::podinfo::PodInfo;
use crate::snapshot::{NodeInfo, Snapshot};

/// The largest score a plugin gives a node (after normalising).
pub const MAX_NODE_SCORE: i64 = 100;

/// Decides whether one pod may run on one node.
pub trait FilterPlugin: Send + Sync {
    fn name(&self) -> &'static str;
    /// `Ok(())` when the pod fits; otherwise the reasons, worded as upstream's
    /// (`Insufficient cpu`, `node(s) had untolerated taint {k: v}`), because users search
    /// for those strings.
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>>;
}

/// Ranks feasible nodes for one pod.
pub trait ScorePlugin: Send + Sync {
    fn name(&self) -> &'static str;
    /// A raw score; 0..=[`MAX_NODE_SCORE`] unless [`ScorePlugin::normalize`] maps it there.
    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64;
    /// Maps raw scores of all feasible nodes onto 0..=[`MAX_NODE_SCORE`].
    fn normalize(&self, _scores: &mut [i64]) {}
}

/// The plugins of one scheduler profile.
pub struct Plugins {
    pub filters: Vec<Box<dyn FilterPlugin>>,
    /// Score plugins with their weights.
    pub scores: Vec<(Box<dyn ScorePlugin>, i64)>,
    /// Share of nodes to search for feasible ones; 0 means adaptive (as upstream), 100 all.
    pub percentage_of_nodes_to_score: u32,
}

/// Rotating state kept between cycles: where the next search starts and the random
/// state for tie breaking. Deterministic for a given seed, so tests can replay it.
#[derive(Debug, Clone)]
pub struct Cursor {
    next_start: usize,
    rng: u64,
}

impl Cursor {
    pub fn new(seed: u64) -> Self {
        // xorshift must not start at zero.
        Cursor {
            next_start: 0,
            rng: seed | 1,
        }
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// No node could take the pod; [`fmt::Display`] gives upstream's message, e.g.
/// `0/3 nodes are available: 1 node(s) had untolerated taint {a: b}, 2 Insufficient cpu.`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    /// Nodes that were considered.
    pub nodes: usize,
    /// How many nodes each reason rejected (a node may count under several reasons).
    pub reasons: BTreeMap<String, usize>,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nodes == 0 {
            return write!(f, "no nodes available to schedule pods");
        }
        // Upstream sorts the "<count> <reason>" strings, count first.
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        parts.sort();
        write!(
            f,
            "0/{} nodes are available: {}.",
            self.nodes,
            parts.join(", ")
        )
    }
}

impl std::error::Error for FitError {}

/// Upstream's minimum number of feasible nodes to look for before scoring.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
const MIN_FEASIBLE_PERCENTAGE: usize = 5;

/// How many feasible nodes to find before stopping the search, as upstream's
/// `numFeasibleNodesToFind`: all of a small cluster, 50% minus one point per 125 nodes
/// (at least 5%) of a large one when adaptive.
pub fn num_feasible_nodes_to_find(total: usize, percentage: u32) -> usize {
    if total < MIN_FEASIBLE_NODES_TO_FIND || percentage >= 100 {
        return total;
    }
    let pct = if percentage == 0 {
        50usize
            .saturating_sub(total / 125)
            .max(MIN_FEASIBLE_PERCENTAGE)
    } else {
        percentage as usize
    };
    (total * pct / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Runs the filters on one node; the first rejecting plugin's reasons.
pub fn run_filters(plugins: &Plugins, pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
    for f in &plugins.filters {
        f.filter(pod, node)?;
    }
    Ok(())
}

/// One scheduling cycle: the node to bind `pod` to, or why there is none.
pub fn schedule(
    pod: &PodInfo,
    snapshot: &Snapshot,
    plugins: &Plugins,
    cursor: &mut Cursor,
) -> Result<String, FitError> {
    let nodes = snapshot.nodes();
    let total = nodes.len();
    if total == 0 {
        return Err(FitError {
            nodes: 0,
            reasons: BTreeMap::new(),
        });
    }
    let to_find = num_feasible_nodes_to_find(total, plugins.percentage_of_nodes_to_score);
    let start = cursor.next_start % total;
    let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(to_find.min(1024));
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut considered = 0;
    let mut visited = 0;
    for k in 0..total {
        let node = &nodes[(start + k) % total];
        visited += 1;
        if !node.present {
            continue;
        }
        considered += 1;
        match run_filters(plugins, pod, node) {
            Ok(()) => {
                feasible.push(node);
                if feasible.len() >= to_find {
                    break;
                }
            }
            Err(rs) => {
                for r in rs {
                    *reasons.entry(r).or_default() += 1;
                }
            }
        }
    }
    cursor.next_start = (start + visited) % total;
    if feasible.is_empty() {
        return Err(FitError {
            nodes: considered,
            reasons,
        });
    }
    if feasible.len() == 1 {
        return Ok(feasible[0].name.clone());
    }

    let mut totals = vec![0i64; feasible.len()];
    let mut scores = vec![0i64; feasible.len()];
    for (plugin, weight) in &plugins.scores {
        for (s, node) in scores.iter_mut().zip(&feasible) {
            *s = plugin.score(pod, node);
        }
        plugin.normalize(&mut scores);
        for (t, s) in totals.iter_mut().zip(&scores) {
            *t += s * weight;
        }
    }

    let mut best = 0;
    let mut ties = 0u64;
    for (i, &t) in totals.iter().enumerate() {
        if i == 0 || t > totals[best] {
            best = i;
            ties = 1;
        } else if t == totals[best] {
            ties += 1;
            if cursor.next_random().is_multiple_of(ties) {
                best = i;
            }
        }
    }
    Ok(feasible[best].name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::test_support::*;
    use std::collections::HashMap;

    /// Rejects nodes named in the map with the given reason.
    struct Reject(HashMap<&'static str, Vec<&'static str>>);
    impl FilterPlugin for Reject {
        fn name(&self) -> &'static str {
            "Reject"
        }
        fn filter(&self, _: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
            match self.0.get(node.name.as_str()) {
                Some(rs) => Err(rs.iter().map(|s| s.to_string()).collect()),
                None => Ok(()),
            }
        }
    }

    /// Scores by a fixed table.
    struct Fixed(HashMap<&'static str, i64>);
    impl ScorePlugin for Fixed {
        fn name(&self) -> &'static str {
            "Fixed"
        }
        fn score(&self, _: &PodInfo, node: &NodeInfo) -> i64 {
            self.0.get(node.name.as_str()).copied().unwrap_or(0)
        }
    }

    fn snapshot(names: &[&str]) -> Snapshot {
        let mut s = Snapshot::new();
        for n in names {
            s.upsert_node(&node(n, "1", "1Gi", "10"));
        }
        s
    }

    fn plugins(
        reject: &[(&'static str, &[&'static str])],
        scores: &[(&'static str, i64)],
    ) -> Plugins {
        Plugins {
            filters: vec![Box::new(Reject(
                reject.iter().map(|(n, r)| (*n, r.to_vec())).collect(),
            ))],
            scores: vec![(Box::new(Fixed(scores.iter().copied().collect())), 2)],
            percentage_of_nodes_to_score: 100,
        }
    }

    #[test]
    fn message_counts_and_sorts_reasons() {
        let s = snapshot(&["a", "b", "c"]);
        let p = plugins(
            &[
                ("a", &["Insufficient cpu"]),
                ("b", &["Insufficient cpu", "Insufficient memory"]),
                ("c", &["node(s) had untolerated taint {x: y}"]),
            ],
            &[],
        );
        let err = schedule(
            &pod_info("p", serde_json::json!({})),
            &s,
            &p,
            &mut Cursor::new(1),
        )
        .unwrap_err();
        assert_eq!(err.nodes, 3);
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint {x: y}, 2 Insufficient cpu."
        );
    }

    #[test]
    fn no_nodes_message() {
        let err = schedule(
            &pod_info("p", serde_json::json!({})),
            &Snapshot::new(),
            &plugins(&[], &[]),
            &mut Cursor::new(1),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "no nodes available to schedule pods");
    }

    #[test]
    fn picks_highest_weighted_score_among_feasible() {
        let s = snapshot(&["a", "b", "c", "d"]);
        type Case = (
            Vec<(&'static str, &'static [&'static str])>,
            Vec<(&'static str, i64)>,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (vec![], vec![("a", 10), ("b", 90), ("c", 50)], "b"),
            (
                vec![("b", &["no"])],
                vec![("a", 10), ("b", 90), ("c", 50)],
                "c",
            ),
            (
                vec![("a", &["no"]), ("b", &["no"]), ("c", &["no"])],
                vec![("a", 100)],
                "d",
            ),
        ];
        for (reject, scores, want) in cases {
            let p = plugins(&reject, &scores);
            for seed in 1..20 {
                let got = schedule(
                    &pod_info("p", serde_json::json!({})),
                    &s,
                    &p,
                    &mut Cursor::new(seed),
                )
                .unwrap();
                assert_eq!(got, want, "reject {reject:?} scores {scores:?}");
            }
        }
    }

    #[test]
    fn ties_are_broken_fairly() {
        let s = snapshot(&["a", "b", "c", "d"]);
        let p = plugins(&[("d", &["no"])], &[]);
        let mut cursor = Cursor::new(42);
        let mut seen: HashMap<String, usize> = HashMap::new();
        for _ in 0..3000 {
            *seen
                .entry(
                    schedule(&pod_info("p", serde_json::json!({})), &s, &p, &mut cursor).unwrap(),
                )
                .or_default() += 1;
        }
        assert!(!seen.contains_key("d"));
        for n in ["a", "b", "c"] {
            let c = seen[n];
            assert!(
                (800..1200).contains(&c),
                "node {n} chosen {c} of 3000 times: {seen:?}"
            );
        }
    }

    #[test]
    fn feasible_nodes_to_find() {
        let cases = [
            (10, 0, 10),
            (99, 0, 99),
            (1000, 0, 420),  // 50 - 8 = 42%
            (5000, 0, 500),  // 50 - 40 = 10%
            (10000, 0, 500), // floor of 5%
            (150, 0, 100),   // at least 100
            (1000, 30, 300),
            (1000, 100, 1000),
        ];
        for (total, pct, want) in cases {
            assert_eq!(
                num_feasible_nodes_to_find(total, pct),
                want,
                "total {total} pct {pct}"
            );
        }
    }

    #[test]
    fn search_rotates_through_large_clusters() {
        let names: Vec<String> = (0..1000).map(|i| format!("n{i:04}")).collect();
        let mut s = Snapshot::new();
        for n in &names {
            s.upsert_node(&node(n, "1", "1Gi", "10"));
        }
        let p = Plugins {
            filters: vec![],
            scores: vec![],
            percentage_of_nodes_to_score: 0,
        };
        let mut cursor = Cursor::new(7);
        let mut chosen = std::collections::HashSet::new();
        for _ in 0..20 {
            chosen.insert(
                schedule(&pod_info("p", serde_json::json!({})), &s, &p, &mut cursor).unwrap(),
            );
        }
        // 420 nodes searched per cycle: 20 cycles wrap around the cluster several times,
        // and random ties spread the picks.
        assert!(
            chosen.len() > 15,
            "picks concentrated on {} nodes",
            chosen.len()
        );
        assert_eq!(cursor.next_start, (20 * 420) % 1000);
    }

    #[test]
    fn absent_nodes_are_never_chosen() {
        let mut s = snapshot(&["a"]);
        let mut ghost = sized_pod("g", "1", "0");
        ghost.node_name = Some("gone".into());
        s.add_bound_pod(std::sync::Arc::new(ghost));
        let p = plugins(&[], &[]);
        for seed in 1..10 {
            assert_eq!(
                schedule(
                    &pod_info("p", serde_json::json!({})),
                    &s,
                    &p,
                    &mut Cursor::new(seed)
                )
                .unwrap(),
                "a"
            );
        }
        let p = plugins(&[("a", &["no"])], &[]);
        let err = schedule(
            &pod_info("p", serde_json::json!({})),
            &s,
            &p,
            &mut Cursor::new(1),
        )
        .unwrap_err();
        assert_eq!(err.nodes, 1, "the ghost node is not counted");
    }
}
