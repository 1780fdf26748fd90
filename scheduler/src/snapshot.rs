//! The scheduler's view of the cluster: every node with the resources already requested
//! on it and the pods bound to it, including pods this scheduler has *assumed* (decided
//! and sent a binding for) but not yet seen come back through the watch. Counting assumed
//! pods is what stops two quick decisions from overfilling one node.
//!
//! It is plain data with no I/O: the informer shell applies watch events to it and the
//! scheduling cycle reads it. Nodes live in a `Vec` so a cycle can walk them from a
//! rotating start index without hashing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Taint};

use crate::podinfo::{PodInfo, Resources};

/// One node and what is placed on it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (set by `kubectl cordon`).
    pub unschedulable: bool,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// False while pods are known to be bound to a node whose object we have not seen
    /// (or that was deleted): such a node keeps their accounting but is never chosen.
    pub present: bool,
    pub allocatable: Resources,
    /// Sum of the effective requests of the pods below (their `pods` field counts pods).
    pub requested: Resources,
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
    pub pods: Vec<Arc<PodInfo>>,
    /// How many of `pods` carry required anti-affinity terms (lets the filter skip a scan).
    pub pods_with_anti_affinity: usize,
}

impl NodeInfo {
    /// Builds the node part from the API object (no pods).
    pub fn from_node(node: &Node) -> Self {
        let mut n = NodeInfo {
            present: true,
            ..Default::default()
        };
        n.set_node(node);
        n
    }

    fn set_node(&mut self, node: &Node) {
        self.name = node.metadata.name.clone().unwrap_or_default();
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        let spec = node.spec.clone().unwrap_or_default();
        self.taints = spec.taints.unwrap_or_default();
        self.unschedulable = spec.unschedulable.unwrap_or(false);
        let status = node.status.clone().unwrap_or_default();
        self.ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        // Allocatable is what the kubelet offers to pods; fall back to capacity for nodes
        // whose agent reports only that.
        self.allocatable = status
            .allocatable
            .filter(|a| !a.is_empty())
            .or(status.capacity)
            .map(|m| Resources::from_map(&m))
            .unwrap_or_default();
        self.present = true;
    }

    fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_milli_cpu += pod.non_zero_milli_cpu;
        self.non_zero_memory += pod.non_zero_memory;
        if !pod.anti_affinity.is_empty() {
            self.pods_with_anti_affinity += 1;
        }
        self.pods.push(pod);
    }

    fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.uid == uid)?;
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_milli_cpu -= pod.non_zero_milli_cpu;
        self.non_zero_memory -= pod.non_zero_memory;
        if !pod.anti_affinity.is_empty() {
            self.pods_with_anti_affinity -= 1;
        }
        Some(pod)
    }
}

#[derive(Debug, Clone)]
struct PodEntry {
    node: String,
    /// Placed by this scheduler, not yet confirmed by the watch.
    assumed: bool,
}

/// Nodes and placed pods, keyed for quick updates.
#[derive(Debug, Default)]
pub struct Snapshot {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    pods: HashMap<String, PodEntry>,
}

impl Snapshot {
    pub fn new() -> Self {
        Self::default()
    }

    /// All node entries, including ones not `present` (filter on that).
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// Number of nodes a pod could be placed on.
    pub fn present_nodes(&self) -> usize {
        self.nodes.iter().filter(|n| n.present).count()
    }

    fn entry(&mut self, name: &str) -> &mut NodeInfo {
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.nodes.push(NodeInfo {
                    name: name.to_string(),
                    ..Default::default()
                });
                self.index.insert(name.to_string(), self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        &mut self.nodes[i]
    }

    fn drop_entry(&mut self, name: &str) {
        if let Some(i) = self.index.remove(name) {
            self.nodes.swap_remove(i);
            if i < self.nodes.len() {
                let moved = self.nodes[i].name.clone();
                self.index.insert(moved, i);
            }
        }
    }

    /// A node was added or changed.
    pub fn upsert_node(&mut self, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        self.entry(&name).set_node(node);
    }

    /// A node was deleted. Its pods stay counted until they are deleted too, so a node
    /// that comes back with the same name is not overfilled.
    pub fn remove_node(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        if self.nodes[i].pods.is_empty() {
            self.drop_entry(name);
        } else {
            self.nodes[i].present = false;
        }
    }

    /// Keeps only the named nodes (after a re-list).
    pub fn retain_nodes(&mut self, names: &HashSet<String>) {
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.present && !names.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
        for name in gone {
            self.remove_node(&name);
        }
    }

    /// A pod seen bound through the watch (`spec.nodeName` set). Confirms an assumed pod,
    /// moves one that was placed elsewhere, and refreshes labels of a known one.
    pub fn add_bound_pod(&mut self, pod: Arc<PodInfo>) {
        let Some(node) = pod.node_name.clone() else {
            return;
        };
        self.remove_pod(&pod.uid);
        self.pods.insert(
            pod.uid.clone(),
            PodEntry {
                node: node.clone(),
                assumed: false,
            },
        );
        self.entry(&node).add_pod(pod);
    }

    /// A pod was deleted or finished: it no longer uses its node.
    pub fn remove_pod(&mut self, uid: &str) {
        let Some(entry) = self.pods.remove(uid) else {
            return;
        };
        if let Some(&i) = self.index.get(&entry.node) {
            self.nodes[i].remove_pod(uid);
            if !self.nodes[i].present && self.nodes[i].pods.is_empty() {
                self.drop_entry(&entry.node);
            }
        }
    }

    /// Keeps only the named pods (after a re-list). The caller adds the pods whose
    /// binding is still in flight: they may not be in the list yet. An assumed pod that is
    /// in neither was deleted while the watch was down.
    pub fn retain_pods(&mut self, uids: &HashSet<String>) {
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|u| !uids.contains(*u))
            .cloned()
            .collect();
        for uid in gone {
            self.remove_pod(&uid);
        }
    }

    /// Counts a pod on `node` as soon as the scheduler decides, before the binding lands.
    pub fn assume(&mut self, pod: &PodInfo, node: &str) {
        let mut placed = pod.clone();
        placed.node_name = Some(node.to_string());
        self.remove_pod(&pod.uid);
        self.pods.insert(
            pod.uid.clone(),
            PodEntry {
                node: node.to_string(),
                assumed: true,
            },
        );
        self.entry(node).add_pod(Arc::new(placed));
    }

    /// Undoes [`Snapshot::assume`] after a failed binding; a confirmed pod stays.
    pub fn forget(&mut self, uid: &str) {
        if self.pods.get(uid).is_some_and(|e| e.assumed) {
            self.remove_pod(uid);
        }
    }

    /// Where a pod is placed (assumed or confirmed), if anywhere.
    pub fn placement(&self, uid: &str) -> Option<(&str, bool)> {
        self.pods.get(uid).map(|e| (e.node.as_str(), e.assumed))
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builders shared by the plugin tests.
    use super::*;
    use serde_json::json;

    /// A ready node with the given allocatable cpu/memory/pods and labels.
    pub fn node(name: &str, cpu: &str, mem: &str, pods: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {
                "allocatable": {"cpu": cpu, "memory": mem, "pods": pods},
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        }))
        .expect("test node must deserialize")
    }

    pub fn node_info(name: &str, cpu: &str, mem: &str, pods: &str) -> NodeInfo {
        NodeInfo::from_node(&node(name, cpu, mem, pods))
    }

    /// A pod from a JSON `spec` (namespace `default`, uid = name).
    pub fn pod_info(name: &str, spec: serde_json::Value) -> PodInfo {
        pod_info_labels(name, json!({}), spec)
    }

    pub fn pod_info_labels(
        name: &str,
        labels: serde_json::Value,
        spec: serde_json::Value,
    ) -> PodInfo {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": name, "labels": labels},
            "spec": spec
        }))
        .expect("test pod must deserialize");
        PodInfo::from_pod(&pod)
    }

    /// A pod requesting `cpu`/`memory` in one container.
    pub fn sized_pod(name: &str, cpu: &str, mem: &str) -> PodInfo {
        pod_info(
            name,
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}),
        )
    }

    /// Places pods on a node info directly (plugin tests need no full snapshot).
    pub fn with_pods(mut n: NodeInfo, pods: Vec<PodInfo>) -> NodeInfo {
        for mut p in pods {
            p.node_name = Some(n.name.clone());
            n.add_pod(Arc::new(p));
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn accounting_follows_pods_and_assumptions() {
        let mut s = Snapshot::new();
        s.upsert_node(&node("n1", "4", "8Gi", "110"));
        s.upsert_node(&node("n2", "4", "8Gi", "110"));
        let mut a = sized_pod("a", "1", "1Gi");
        a.node_name = Some("n1".into());
        s.add_bound_pod(Arc::new(a.clone()));
        let b = sized_pod("b", "500m", "0");
        s.assume(&b, "n1");
        let n1 = s.node("n1").unwrap();
        assert_eq!(n1.requested.milli_cpu, 1500);
        assert_eq!(n1.requested.memory, 1 << 30);
        assert_eq!(n1.requested.pods, 2);
        assert_eq!(s.placement("b"), Some(("n1", true)));

        // The watch confirms b elsewhere (another scheduler won): it moves.
        let mut b2 = b.clone();
        b2.node_name = Some("n2".into());
        s.add_bound_pod(Arc::new(b2));
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 1000);
        assert_eq!(s.node("n2").unwrap().requested.milli_cpu, 500);
        assert_eq!(s.placement("b"), Some(("n2", false)));

        // forget only undoes assumptions.
        s.forget("b");
        assert_eq!(s.placement("b"), Some(("n2", false)));
        let c = sized_pod("c", "1", "0");
        s.assume(&c, "n2");
        s.forget("c");
        assert_eq!(s.node("n2").unwrap().requested.milli_cpu, 500);
        assert_eq!(s.node("n2").unwrap().pods.len(), 1);

        s.remove_pod("a");
        assert_eq!(
            s.node("n1").unwrap().requested,
            Resources {
                pods: 0,
                ..Default::default()
            }
        );
    }

    #[test]
    fn deleted_node_keeps_pods_until_they_go() {
        let mut s = Snapshot::new();
        s.upsert_node(&node("n1", "4", "8Gi", "110"));
        s.upsert_node(&node("n2", "4", "8Gi", "110"));
        let mut a = sized_pod("a", "1", "0");
        a.node_name = Some("n1".into());
        s.add_bound_pod(Arc::new(a));
        s.remove_node("n1");
        s.remove_node("n2");
        assert_eq!(s.nodes().len(), 1, "n2 is gone, n1 lingers for its pod");
        assert!(!s.node("n1").unwrap().present);
        assert_eq!(s.present_nodes(), 0);
        s.upsert_node(&node("n1", "4", "8Gi", "110"));
        assert_eq!(
            s.node("n1").unwrap().requested.milli_cpu,
            1000,
            "re-added node keeps its pods"
        );
        s.remove_node("n1");
        s.remove_pod("a");
        assert!(s.node("n1").is_none());
    }

    #[test]
    fn pod_on_unknown_node_is_counted_when_the_node_appears() {
        let mut s = Snapshot::new();
        let mut a = sized_pod("a", "1", "0");
        a.node_name = Some("late".into());
        s.add_bound_pod(Arc::new(a));
        assert_eq!(s.present_nodes(), 0);
        s.upsert_node(&node("late", "2", "1Gi", "10"));
        let n = s.node("late").unwrap();
        assert!(n.present && n.ready);
        assert_eq!(n.requested.milli_cpu, 1000);
        assert_eq!(n.allocatable.pods, 10);
    }

    #[test]
    fn relist_keeps_only_named_pods() {
        let mut s = Snapshot::new();
        s.upsert_node(&node("n1", "4", "8Gi", "110"));
        s.upsert_node(&node("n2", "4", "8Gi", "110"));
        let mut a = sized_pod("a", "1", "0");
        a.node_name = Some("n1".into());
        s.add_bound_pod(Arc::new(a));
        s.assume(&sized_pod("b", "1", "0"), "n1");
        s.assume(&sized_pod("c", "1", "0"), "n1");
        s.retain_pods(&["b".to_string()].into_iter().collect());
        s.retain_nodes(&["n1".to_string()].into_iter().collect());
        assert_eq!(s.placement("a"), None);
        assert_eq!(s.placement("b"), Some(("n1", true)));
        assert_eq!(s.placement("c"), None);
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 1000);
        assert!(s.node("n2").is_none());
    }
}
