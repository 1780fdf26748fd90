//! What the scheduler needs to know about a pod, computed once from the API object:
//! its effective resource requests, host ports, node constraints, tolerations,
//! anti-affinity terms, owner and priority. Plugins read this, never the raw `Pod`, so a
//! scheduling cycle over thousands of nodes does no parsing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, NodeSelectorTerm, Pod, PodAffinityTerm, PreferredSchedulingTerm, Toleration,
};

use crate::quantity;

/// Requests (or capacity) in the units the scheduler compares: CPU in millicores,
/// memory and everything else in whole units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    /// Only meaningful for allocatable: how many pods the node accepts.
    pub pods: i64,
    /// ephemeral-storage and extended resources (`example.com/gpu`), by name.
    pub other: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a `requests`/`allocatable` map; quantities that do not parse are counted as
    /// zero and reported, because the API server should have rejected them already.
    pub fn from_map(
        map: &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    ) -> Self {
        let mut r = Resources::default();
        for (name, q) in map {
            let parsed = if name == "cpu" {
                quantity::parse_milli(&q.0)
            } else {
                quantity::parse_value(&q.0)
            };
            let v = match parsed {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(resource = %name, error = %e, "ignoring unparsable quantity");
                    0
                }
            };
            match name.as_str() {
                "cpu" => r.milli_cpu = v,
                "memory" => r.memory = v,
                "pods" => r.pods = v,
                _ => {
                    r.other.insert(name.clone(), v);
                }
            }
        }
        r
    }

    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.pods += o.pods;
        for (k, v) in &o.other {
            *self.other.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.pods -= o.pods;
        for (k, v) in &o.other {
            *self.other.entry(k.clone()).or_default() -= v;
        }
    }

    /// Component-wise maximum (init containers run one at a time, so a pod needs the
    /// largest of them, not their sum).
    fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        for (k, v) in &o.other {
            let e = self.other.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

/// Requests used for scoring when a container asks for nothing, so that a node full of
/// request-less pods does not look empty (upstream's `DefaultMilliCPURequest` and
/// `DefaultMemoryRequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// A host port a pod wants (`hostPort` of a container port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Empty means every address (0.0.0.0).
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Two host ports clash when protocol and port are equal and the addresses overlap
    /// (equal, or either is the wildcard).
    pub fn conflicts(&self, o: &HostPort) -> bool {
        let wildcard = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.port == o.port
            && self.protocol == o.protocol
            && (wildcard(&self.ip) || wildcard(&o.ip) || self.ip == o.ip)
    }
}

/// A required pod anti-affinity term.
#[derive(Debug, Clone)]
pub struct AntiAffinityTerm {
    pub term: PodAffinityTerm,
    /// Namespaces the selector applies to; the pod's own namespace when the term names none.
    pub namespaces: Vec<String>,
}

impl AntiAffinityTerm {
    /// Does this term (of some pod) select `other`?
    pub fn selects(&self, other: &PodInfo) -> bool {
        if !self.namespaces.contains(&other.namespace) {
            return false;
        }
        match &self.term.label_selector {
            // A term without a selector selects no pods.
            None => false,
            Some(sel) => crate::selectors::label_selector_matches(sel, &other.labels),
        }
    }
}

/// The hostname label nodes carry; anti-affinity on this key means "not on the same node".
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Everything a filter or score plugin may look at for one pod.
#[derive(Debug, Clone, Default)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `spec.nodeName`: set once bound (or by a user who skips the scheduler).
    pub node_name: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Effective requests: max(sum of containers, largest init container) plus overhead.
    pub requests: Resources,
    /// CPU and memory requests with defaults for containers that ask for nothing (scoring only).
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
    pub host_ports: Vec<HostPort>,
    pub node_selector: BTreeMap<String, String>,
    /// Required node affinity terms (ORed); `None` when the pod has none.
    pub required_node_affinity: Option<Vec<NodeSelectorTerm>>,
    pub preferred_node_affinity: Vec<PreferredSchedulingTerm>,
    pub tolerations: Vec<Toleration>,
    pub anti_affinity: Vec<AntiAffinityTerm>,
    /// UID of the controlling owner (ReplicaSet, StatefulSet...), used for spreading.
    pub owner_uid: Option<String>,
    pub priority: i32,
    pub scheduler_name: String,
}

/// Priorities of the two built-in PriorityClasses, used when the API server did not
/// resolve `priorityClassName` into `spec.priority` (skiff has no priority admission yet).
fn builtin_priority(class: &str) -> Option<i32> {
    match class {
        "system-node-critical" => Some(2_000_001_000),
        "system-cluster-critical" => Some(2_000_000_000),
        _ => None,
    }
}

fn container_requests(c: &Container) -> (Resources, i64, i64) {
    let Some(res) = &c.resources else {
        return (
            Resources::default(),
            DEFAULT_MILLI_CPU_REQUEST,
            DEFAULT_MEMORY_REQUEST,
        );
    };
    // The API server copies limits into missing requests; do the same in case it did not.
    let mut map = res.limits.clone().unwrap_or_default();
    map.extend(res.requests.clone().unwrap_or_default());
    let r = Resources::from_map(&map);
    let cpu = if map.contains_key("cpu") {
        r.milli_cpu
    } else {
        DEFAULT_MILLI_CPU_REQUEST
    };
    let mem = if map.contains_key("memory") {
        r.memory
    } else {
        DEFAULT_MEMORY_REQUEST
    };
    (r, cpu, mem)
}

impl PodInfo {
    pub fn from_pod(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let spec = pod.spec.clone().unwrap_or_default();

        let mut requests = Resources::default();
        let (mut nz_cpu, mut nz_mem) = (0, 0);
        for c in &spec.containers {
            let (r, cpu, mem) = container_requests(c);
            requests.add(&r);
            nz_cpu += cpu;
            nz_mem += mem;
        }
        for c in spec.init_containers.iter().flatten() {
            let (r, cpu, mem) = container_requests(c);
            requests.max_with(&r);
            nz_cpu = nz_cpu.max(cpu);
            nz_mem = nz_mem.max(mem);
        }
        if let Some(overhead) = &spec.overhead {
            let o = Resources::from_map(overhead);
            requests.add(&o);
            nz_cpu += o.milli_cpu;
            nz_mem += o.memory;
        }
        requests.pods = 1;

        let host_ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter(|p| p.host_port.unwrap_or(0) > 0)
            .map(|p| HostPort {
                ip: p.host_ip.clone().unwrap_or_default(),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port: p.host_port.unwrap_or(0),
            })
            .collect();

        let affinity = spec.affinity.clone().unwrap_or_default();
        let node_aff = affinity.node_affinity.unwrap_or_default();
        let anti_affinity = affinity
            .pod_anti_affinity
            .and_then(|a| a.required_during_scheduling_ignored_during_execution)
            .unwrap_or_default()
            .into_iter()
            .map(|term| {
                let namespaces = match &term.namespaces {
                    Some(ns) if !ns.is_empty() => ns.clone(),
                    _ => vec![namespace.clone()],
                };
                AntiAffinityTerm { term, namespaces }
            })
            .collect();

        let owners = meta.owner_references.as_deref().unwrap_or_default();
        let owner_uid = owners
            .iter()
            .find(|o| o.controller == Some(true))
            .or(owners.first())
            .map(|o| o.uid.clone());

        let priority = spec
            .priority
            .or_else(|| {
                spec.priority_class_name
                    .as_deref()
                    .and_then(builtin_priority)
            })
            .unwrap_or(0);

        PodInfo {
            namespace,
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
            labels: meta.labels.clone().unwrap_or_default(),
            requests,
            non_zero_milli_cpu: nz_cpu,
            non_zero_memory: nz_mem,
            host_ports,
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_node_affinity: node_aff
                .required_during_scheduling_ignored_during_execution
                .map(|s| s.node_selector_terms),
            preferred_node_affinity: node_aff
                .preferred_during_scheduling_ignored_during_execution
                .unwrap_or_default(),
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            anti_affinity,
            owner_uid,
            priority,
            scheduler_name: spec
                .scheduler_name
                .clone()
                .unwrap_or_else(|| "default-scheduler".into()),
        }
    }

    /// `namespace/name`, for logs and messages.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("test pod must deserialize")
    }

    #[test]
    fn effective_requests() {
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "X", "name": "x", "uid": "other"},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-uid", "controller": true}]},
            "spec": {
                "priorityClassName": "system-node-critical",
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}},
                     "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81}]},
                    {"name": "b", "resources": {"limits": {"cpu": "1", "example.com/gpu": "2"}}},
                    {"name": "c"}
                ],
                "initContainers": [
                    {"name": "i", "resources": {"requests": {"cpu": "2", "memory": "1Mi"}}}
                ],
                "overhead": {"cpu": "10m"}
            }
        }));
        let info = PodInfo::from_pod(&p);
        // containers: 250m + 1000m = 1250m < init 2000m; plus 10m overhead
        assert_eq!(info.requests.milli_cpu, 2010);
        assert_eq!(info.requests.memory, 64 << 20);
        assert_eq!(info.requests.pods, 1);
        assert_eq!(info.requests.other.get("example.com/gpu"), Some(&2));
        // non-zero: 250 + 1000 + 100 (default for c) = 1350 < 2000 init, + 10
        assert_eq!(info.non_zero_milli_cpu, 2010);
        // memory: 64Mi + 200Mi (b has no memory) + 200Mi (c) vs 1Mi init
        assert_eq!(info.non_zero_memory, (64 + 400) << 20);
        assert_eq!(
            info.host_ports,
            vec![HostPort {
                ip: String::new(),
                protocol: "TCP".into(),
                port: 8080
            }]
        );
        assert_eq!(info.owner_uid.as_deref(), Some("rs-uid"));
        assert_eq!(info.priority, 2_000_001_000);
        assert_eq!(info.scheduler_name, "default-scheduler");
        assert_eq!(info.key(), "ns/p");
    }

    #[test]
    fn host_port_conflicts() {
        let hp = |ip: &str, proto: &str, port| HostPort {
            ip: ip.into(),
            protocol: proto.into(),
            port,
        };
        let cases = [
            (hp("", "TCP", 80), hp("", "TCP", 80), true),
            (hp("", "TCP", 80), hp("10.0.0.1", "TCP", 80), true),
            (hp("10.0.0.2", "TCP", 80), hp("10.0.0.1", "TCP", 80), false),
            (hp("0.0.0.0", "TCP", 80), hp("10.0.0.1", "TCP", 80), true),
            (hp("", "TCP", 80), hp("", "UDP", 80), false),
            (hp("", "TCP", 80), hp("", "TCP", 81), false),
        ];
        for (a, b, want) in cases {
            assert_eq!(a.conflicts(&b), want, "{a:?} vs {b:?}");
        }
    }
}
