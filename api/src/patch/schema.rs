//! Strategic-merge-patch metadata: how each list field of the served kinds merges.
//!
//! Kubernetes carries this in Go struct tags (`patchStrategy:"merge"`,
//! `patchMergeKey:"name"`); skiff writes it down as a small type graph. Each entry
//! says, for a field of a type, whether it is a nested struct (merged recursively), a
//! list merged element by element on a key, a list of scalars merged as a set, or an
//! atomic list replaced whole. Types are shared: `PodSpec` is reached from a Pod's
//! `spec` and from the `spec.template.spec` of Deployments and ReplicaSets.
//!
//! Anything not listed follows the defaults of the algorithm: maps merge key by key,
//! lists are replaced. Tolerations, node taints, ingress rules and endpoint subsets
//! are atomic upstream and therefore stay out of the table (replacing them whole is
//! what lets `kubectl taint node n key-` remove a taint).

/// A type in the graph. `Unknown` is any map without list metadata below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Unknown,
    /// Any kind whose only patch metadata is in `metadata`.
    Object,
    ObjectMeta,
    Pod,
    PodSpec,
    PodStatus,
    PodTemplateSpec,
    Container,
    Deployment,
    DeploymentSpec,
    DeploymentStatus,
    ReplicaSet,
    ReplicaSetSpec,
    ReplicaSetStatus,
    Service,
    ServiceSpec,
    ServiceStatus,
    Node,
    NodeSpec,
    NodeStatus,
    Namespace,
    NamespaceStatus,
    ServiceAccount,
}

/// How one field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// A nested object merged key by key.
    Struct(Ty),
    /// A list of objects merged element by element, matched on `key`.
    MergeList { key: &'static str, elem: Ty },
    /// A list of scalars merged as a set (`patchStrategy:"merge"` without a key).
    PrimitiveSet,
    /// A list replaced whole by the patch.
    Atomic,
}

use Field::{Atomic, MergeList, PrimitiveSet, Struct};
use Ty::*;

const fn by(key: &'static str, elem: Ty) -> Field {
    MergeList { key, elem }
}

/// The graph, as `(type, field, how it merges)`.
static FIELDS: &[(Ty, &str, Field)] = &[
    (ObjectMeta, "finalizers", PrimitiveSet),
    (ObjectMeta, "ownerReferences", by("uid", Unknown)),
    (Object, "metadata", Struct(ObjectMeta)),
    // Pods and pod templates.
    (Pod, "metadata", Struct(ObjectMeta)),
    (Pod, "spec", Struct(PodSpec)),
    (Pod, "status", Struct(PodStatus)),
    (PodTemplateSpec, "metadata", Struct(ObjectMeta)),
    (PodTemplateSpec, "spec", Struct(PodSpec)),
    (PodSpec, "containers", by("name", Container)),
    (PodSpec, "initContainers", by("name", Container)),
    (PodSpec, "ephemeralContainers", by("name", Container)),
    (PodSpec, "volumes", by("name", Unknown)),
    (PodSpec, "imagePullSecrets", by("name", Unknown)),
    (PodSpec, "hostAliases", by("ip", Unknown)),
    (
        PodSpec,
        "topologySpreadConstraints",
        by("topologyKey", Unknown),
    ),
    (PodSpec, "resourceClaims", by("name", Unknown)),
    (PodSpec, "schedulingGates", by("name", Unknown)),
    (PodSpec, "tolerations", Atomic),
    (PodSpec, "readinessGates", Atomic),
    (Container, "ports", by("containerPort", Unknown)),
    (Container, "env", by("name", Unknown)),
    (Container, "volumeMounts", by("mountPath", Unknown)),
    (Container, "volumeDevices", by("devicePath", Unknown)),
    (PodStatus, "conditions", by("type", Unknown)),
    (PodStatus, "podIPs", by("ip", Unknown)),
    (PodStatus, "hostIPs", by("ip", Unknown)),
    (PodStatus, "resourceClaimStatuses", by("name", Unknown)),
    // Workloads.
    (Deployment, "metadata", Struct(ObjectMeta)),
    (Deployment, "spec", Struct(DeploymentSpec)),
    (Deployment, "status", Struct(DeploymentStatus)),
    (DeploymentSpec, "template", Struct(PodTemplateSpec)),
    (DeploymentStatus, "conditions", by("type", Unknown)),
    (ReplicaSet, "metadata", Struct(ObjectMeta)),
    (ReplicaSet, "spec", Struct(ReplicaSetSpec)),
    (ReplicaSet, "status", Struct(ReplicaSetStatus)),
    (ReplicaSetSpec, "template", Struct(PodTemplateSpec)),
    (ReplicaSetStatus, "conditions", by("type", Unknown)),
    // Services.
    (Service, "metadata", Struct(ObjectMeta)),
    (Service, "spec", Struct(ServiceSpec)),
    (Service, "status", Struct(ServiceStatus)),
    (ServiceSpec, "ports", by("port", Unknown)),
    (ServiceStatus, "conditions", by("type", Unknown)),
    // Nodes and namespaces.
    (Node, "metadata", Struct(ObjectMeta)),
    (Node, "spec", Struct(NodeSpec)),
    (Node, "status", Struct(NodeStatus)),
    (NodeSpec, "podCIDRs", PrimitiveSet),
    (NodeSpec, "taints", Atomic),
    (NodeStatus, "conditions", by("type", Unknown)),
    (NodeStatus, "addresses", by("type", Unknown)),
    (Namespace, "metadata", Struct(ObjectMeta)),
    (Namespace, "status", Struct(NamespaceStatus)),
    (NamespaceStatus, "conditions", by("type", Unknown)),
    (ServiceAccount, "metadata", Struct(ObjectMeta)),
    (ServiceAccount, "secrets", by("name", Unknown)),
];

/// The type at the root of an object of `kind`.
pub fn root(kind: &str) -> Ty {
    match kind {
        "Pod" => Pod,
        "Deployment" => Deployment,
        "ReplicaSet" => ReplicaSet,
        "Service" => Service,
        "Node" => Node,
        "Namespace" => Namespace,
        "ServiceAccount" => ServiceAccount,
        _ => Object,
    }
}

/// How `field` of `ty` merges; `None` when the graph says nothing (defaults apply).
pub fn field(ty: Ty, name: &str) -> Option<Field> {
    FIELDS
        .iter()
        .find(|(t, n, _)| *t == ty && *n == name)
        .map(|(_, _, f)| *f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_spec_is_shared_by_pods_and_templates() {
        let Some(Struct(t)) = field(Deployment, "spec") else {
            panic!("deployment spec")
        };
        let Some(Struct(t)) = field(t, "template") else {
            panic!("template")
        };
        let Some(Struct(t)) = field(t, "spec") else {
            panic!("template spec")
        };
        assert_eq!(t, PodSpec);
        assert_eq!(field(PodSpec, "containers"), Some(by("name", Container)));
        assert_eq!(
            field(Container, "ports"),
            Some(by("containerPort", Unknown))
        );
        assert_eq!(field(root("Pod"), "spec"), Some(Struct(PodSpec)));
    }

    #[test]
    fn unknown_fields_and_kinds_have_no_metadata() {
        assert_eq!(field(PodSpec, "nodeSelector"), None);
        assert_eq!(root("ConfigMap"), Object);
        assert_eq!(field(Object, "metadata"), Some(Struct(ObjectMeta)));
        assert_eq!(field(ObjectMeta, "finalizers"), Some(PrimitiveSet));
    }

    #[test]
    fn every_type_is_reachable_from_a_root() {
        let roots = [
            "Pod",
            "Deployment",
            "ReplicaSet",
            "Service",
            "Node",
            "Namespace",
            "ServiceAccount",
            "ConfigMap",
        ];
        let mut seen = vec![];
        let mut todo: Vec<Ty> = roots.iter().map(|k| root(k)).collect();
        while let Some(t) = todo.pop() {
            if seen.contains(&t) {
                continue;
            }
            seen.push(t);
            for (owner, _, f) in FIELDS {
                if *owner == t {
                    match f {
                        Struct(n) | MergeList { elem: n, .. } => todo.push(*n),
                        _ => {}
                    }
                }
            }
        }
        for (owner, name, _) in FIELDS {
            assert!(seen.contains(owner), "{owner:?}.{name} is unreachable");
        }
    }
}
