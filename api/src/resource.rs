//! The registry of resources skiff serves.
//!
//! One table drives routing (`/apis/<group>/<version>/namespaces/<ns>/<plural>`),
//! discovery (`/api/v1`, `/apis/apps/v1`: verbs, short names, categories), storage keys
//! (`/registry/<group>/<plural>/...`) and the per-kind rules elsewhere in this crate. A
//! resource is identified by `(group, plural)`; the core group is the empty string, as
//! in Kubernetes.

/// Whether objects of a resource live in a namespace or at cluster level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// Everything skiff knows about one served resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; "" for the core (legacy) group served under `/api`.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Lower-case plural used in URLs, e.g. `deployments`.
    pub plural: &'static str,
    /// Lower-case singular, e.g. `deployment`.
    pub singular: &'static str,
    pub scope: Scope,
    pub short_names: &'static [&'static str],
    /// Categories such as `all` (what `kubectl get all` expands to).
    pub categories: &'static [&'static str],
    /// Subresources served under `<plural>/<name>/<sub>`.
    pub subresources: &'static [&'static str],
    /// Whether the main resource has a `status` stanza that only the status
    /// subresource may change.
    pub has_status: bool,
}

impl ResourceInfo {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods` for the core group: how Kubernetes names a
    /// resource in messages such as `deployments.apps "web" not found`.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps`, or `Pod`: how Kubernetes names a kind in `Invalid` messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }

    /// The storage group segment: `core` for the legacy group, so keys never have an
    /// empty path segment.
    pub fn storage_group(&self) -> &'static str {
        if self.group.is_empty() {
            "core"
        } else {
            self.group
        }
    }
}

const NONE: &[&str] = &[];
const ALL: &[&str] = &["all"];

/// Every resource skiff serves, in discovery order.
pub static RESOURCES: &[ResourceInfo] = &[
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        scope: Scope::Cluster,
        short_names: &["ns"],
        categories: NONE,
        subresources: &["status", "finalize"],
        has_status: true,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        scope: Scope::Cluster,
        short_names: &["no"],
        categories: NONE,
        subresources: &["status", "proxy"],
        has_status: true,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        scope: Scope::Namespaced,
        short_names: &["po"],
        categories: ALL,
        subresources: &[
            "status",
            "binding",
            "log",
            "exec",
            "attach",
            "portforward",
            "eviction",
        ],
        has_status: true,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        scope: Scope::Namespaced,
        short_names: &["svc"],
        categories: ALL,
        subresources: &["status"],
        has_status: true,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        scope: Scope::Namespaced,
        short_names: &["ep"],
        categories: NONE,
        subresources: NONE,
        has_status: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        scope: Scope::Namespaced,
        short_names: &["cm"],
        categories: NONE,
        subresources: NONE,
        has_status: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        scope: Scope::Namespaced,
        short_names: NONE,
        categories: NONE,
        subresources: NONE,
        has_status: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        scope: Scope::Namespaced,
        short_names: &["ev"],
        categories: NONE,
        subresources: NONE,
        has_status: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        scope: Scope::Namespaced,
        short_names: &["sa"],
        categories: NONE,
        subresources: NONE,
        has_status: false,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        scope: Scope::Namespaced,
        short_names: &["deploy"],
        categories: ALL,
        subresources: &["status", "scale"],
        has_status: true,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        scope: Scope::Namespaced,
        short_names: &["rs"],
        categories: ALL,
        subresources: &["status", "scale"],
        has_status: true,
    },
    ResourceInfo {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        scope: Scope::Namespaced,
        short_names: NONE,
        categories: NONE,
        subresources: NONE,
        has_status: false,
    },
    ResourceInfo {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        scope: Scope::Namespaced,
        short_names: &["ev"],
        categories: NONE,
        subresources: NONE,
        has_status: false,
    },
    ResourceInfo {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        scope: Scope::Namespaced,
        short_names: NONE,
        categories: NONE,
        subresources: NONE,
        has_status: false,
    },
    ResourceInfo {
        group: "networking.k8s.io",
        version: "v1",
        kind: "Ingress",
        plural: "ingresses",
        singular: "ingress",
        scope: Scope::Namespaced,
        short_names: &["ing"],
        categories: NONE,
        subresources: &["status"],
        has_status: true,
    },
    ResourceInfo {
        group: "networking.k8s.io",
        version: "v1",
        kind: "IngressClass",
        plural: "ingressclasses",
        singular: "ingressclass",
        scope: Scope::Cluster,
        short_names: NONE,
        categories: NONE,
        subresources: NONE,
        has_status: false,
    },
];

/// Finds a resource by group and plural, the way URLs name it.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a resource by group and kind, the way object bodies name it.
pub fn lookup_kind(group: &str, version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// Splits an `apiVersion` such as `apps/v1` into group and version.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The distinct `(group, version)` pairs served, core first, in registry order.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_find_core_and_grouped_resources() {
        assert_eq!(lookup("", "v1", "pods").unwrap().kind, "Pod");
        assert_eq!(
            lookup("apps", "v1", "deployments").unwrap().kind,
            "Deployment"
        );
        assert!(lookup("apps", "v1", "pods").is_none());
        assert_eq!(
            lookup_kind("networking.k8s.io", "v1", "Ingress")
                .unwrap()
                .plural,
            "ingresses"
        );
    }

    #[test]
    fn names_read_like_kubernetes_messages() {
        let d = lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(d.qualified_plural(), "deployments.apps");
        assert_eq!(d.qualified_kind(), "Deployment.apps");
        assert_eq!(d.api_version(), "apps/v1");
        let p = lookup("", "v1", "pods").unwrap();
        assert_eq!(p.qualified_plural(), "pods");
        assert_eq!(p.storage_group(), "core");
    }

    #[test]
    fn group_versions_put_core_first_and_list_each_once() {
        let gv = group_versions();
        assert_eq!(gv[0], ("", "v1"));
        let mut seen = std::collections::HashSet::new();
        assert!(gv.iter().all(|g| seen.insert(*g)));
        assert!(gv.contains(&("apps", "v1")));
    }

    #[test]
    fn split_api_version_handles_core() {
        assert_eq!(split_api_version("v1"), ("", "v1"));
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
    }
}
