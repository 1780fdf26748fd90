//! The node as the API sees it: the `Node` object this kubelet registers (addresses,
//! capacity, podCIDR, system info, the `Ready` condition) and the heartbeat that keeps
//! it alive — a `Lease` in `kube-node-lease` renewed every few seconds, which the node
//! lifecycle controller watches, plus a periodic `nodes/status` update.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};

/// Where node leases live (upstream's `kube-node-lease` namespace).
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The version this kubelet reports; kubectl shows it in `get nodes -o wide`.
pub const KUBELET_VERSION: &str = "v1.33.0-skiff";
/// Upstream's default pod limit per node.
pub const DEFAULT_MAX_PODS: u32 = 110;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("registering node {node} failed: {source}")]
    Register {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("updating the status of node {node} failed: {source}")]
    Status {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("renewing the lease of node {node} failed: {source}")]
    Lease {
        node: String,
        #[source]
        source: kube::Error,
    },
}

/// What the node offers to pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub pods: u32,
}

/// The facts the Node object is made from.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub name: String,
    pub internal_ip: String,
    pub pod_cidr: Option<String>,
    pub capacity: Capacity,
    /// e.g. `containerd://1.6.20`.
    pub container_runtime_version: String,
    pub kernel_version: String,
    pub os_image: String,
    pub labels: BTreeMap<String, String>,
    /// The pressures last measured ([`crate::pressure::measure`]); none by default.
    pub pressure: crate::pressure::Pressure,
    /// When each condition took its current status (its `lastTransitionTime`);
    /// absent means now. [`set_pressure`] keeps it.
    pub transitions: BTreeMap<String, Timestamp>,
    /// The machine's identifiers for `nodeInfo` ([`host_ids`]).
    pub ids: HostIds,
}

/// What identifies this machine and boot in `nodeInfo`: the systemd machine ID, the
/// firmware's product UUID and the kernel's boot ID (it changes on every reboot, which
/// tells a restarted kubelet from a rebooted node). Empty when unreadable (the DMI
/// file is root-only and absent in VMs without firmware tables).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostIds {
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
}

/// Reads [`HostIds`] from `/etc/machine-id`, `/sys/class/dmi/id/product_uuid` and
/// `/proc/sys/kernel/random/boot_id`.
pub fn host_ids() -> HostIds {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    HostIds {
        machine_id: read("/etc/machine-id"),
        system_uuid: read("/sys/class/dmi/id/product_uuid"),
        boot_id: read("/proc/sys/kernel/random/boot_id"),
    }
}

/// Records newly measured pressures at `now`: a condition whose status flips gets a
/// new transition time, the others keep theirs (upstream moves `lastTransitionTime`
/// only on a change). Pure.
pub fn set_pressure(facts: &mut NodeFacts, new: crate::pressure::Pressure, now: Timestamp) {
    let before = crate::pressure::conditions(facts.pressure);
    for (old, cur) in before.iter().zip(crate::pressure::conditions(new).iter()) {
        if old.1 != cur.1 || !facts.transitions.contains_key(cur.0) {
            facts.transitions.insert(cur.0.to_string(), now);
        }
    }
    facts.pressure = new;
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(value * 1024),
        _ => None,
    }
}

/// `PRETTY_NAME` from `/etc/os-release`.
pub fn parse_os_release(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("PRETTY_NAME="))?;
    Some(line["PRETTY_NAME=".len()..].trim_matches('"').to_string())
}

/// This machine's capacity: all CPUs and all memory (skiff reserves nothing yet).
pub fn host_capacity() -> Capacity {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as u64;
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_meminfo_total(&t))
        .unwrap_or(0);
    Capacity {
        cpu_millis: cpus * 1000,
        memory_bytes: memory,
        pods: DEFAULT_MAX_PODS,
    }
}

/// Kernel release and OS name of this machine, for `nodeInfo`.
pub fn host_os() -> (String, String) {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| parse_os_release(&t))
        .unwrap_or_else(|| "Linux".into());
    (kernel, os)
}

fn quantity_cpu(millis: u64) -> Quantity {
    let (whole, fraction) = (millis / 1000, millis % 1000);
    Quantity(if fraction == 0 {
        whole.to_string()
    } else {
        format!("{millis}m")
    })
}

fn resources(c: &Capacity) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), quantity_cpu(c.cpu_millis)),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", c.memory_bytes / 1024)),
        ),
        ("pods".to_string(), Quantity(c.pods.to_string())),
        ("ephemeral-storage".to_string(), Quantity("10Gi".into())),
    ])
}

fn node_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &Time,
    since: Option<&Timestamp>,
) -> NodeCondition {
    NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(since.map(|t| Time(*t)).unwrap_or_else(|| now.clone())),
    }
}

/// The node's status at `now`: Ready, the measured pressures, addresses, capacity,
/// system info.
pub fn node_status(facts: &NodeFacts, now: Timestamp) -> NodeStatus {
    let now = Time(now);
    let arch = crate::images::oci::oci_arch();
    NodeStatus {
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: facts.internal_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: facts.name.clone(),
            },
        ]),
        capacity: Some(resources(&facts.capacity)),
        allocatable: Some(resources(&facts.capacity)),
        conditions: Some(
            crate::pressure::conditions(facts.pressure)
                .iter()
                .map(|(type_, status, reason, message)| {
                    node_condition(
                        type_,
                        status,
                        reason,
                        message,
                        &now,
                        facts.transitions.get(*type_),
                    )
                })
                .chain([node_condition(
                    "Ready",
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                    &now,
                    facts.transitions.get("Ready"),
                )])
                .collect(),
        ),
        node_info: Some(NodeSystemInfo {
            architecture: arch.into(),
            operating_system: "linux".into(),
            kernel_version: facts.kernel_version.clone(),
            os_image: facts.os_image.clone(),
            container_runtime_version: facts.container_runtime_version.clone(),
            kubelet_version: KUBELET_VERSION.into(),
            kube_proxy_version: String::new(),
            machine_id: facts.ids.machine_id.clone(),
            system_uuid: facts.ids.system_uuid.clone(),
            boot_id: facts.ids.boot_id.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Node object to register. The well-known labels are the ones schedulers and
/// DaemonSets select on.
pub fn node_object(facts: &NodeFacts, now: Timestamp) -> Node {
    let mut labels = facts.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), facts.name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert(
        "kubernetes.io/arch".into(),
        crate::images::oci::oci_arch().into(),
    );
    Node {
        metadata: ObjectMeta {
            name: Some(facts.name.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: facts.pod_cidr.clone(),
            pod_cidrs: facts.pod_cidr.clone().map(|c| vec![c]),
            ..Default::default()
        }),
        status: Some(node_status(facts, now)),
    }
}

/// Creates the Node, or takes over an existing one (a restarted kubelet), and writes
/// its status. Returns the stored Node (its podCIDR may have been set by the cluster).
pub async fn register(client: &kube::Client, facts: &NodeFacts) -> Result<Node, NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = node_object(facts, Timestamp::now());
    let err = |source| NodeError::Register {
        node: facts.name.clone(),
        source,
    };
    let stored = match nodes.create(&PostParams::default(), &node).await {
        Ok(n) => n,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = nodes.get(&facts.name).await.map_err(err)?;
            let has_cidr = existing
                .spec
                .as_ref()
                .and_then(|s| s.pod_cidr.as_ref())
                .is_some();
            if facts.pod_cidr.is_some() && !has_cidr {
                let patch = serde_json::json!({"spec": {"podCIDR": facts.pod_cidr, "podCIDRs": [facts.pod_cidr]}});
                nodes
                    .patch(&facts.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(err)?
            } else {
                existing
            }
        }
        Err(e) => return Err(err(e)),
    };
    // create ignores status; write it through the subresource.
    update_status(client, facts).await?;
    tracing::info!(node = %facts.name, "registered node");
    Ok(stored)
}

/// Writes the node's current status (`nodes/status`).
pub async fn update_status(client: &kube::Client, facts: &NodeFacts) -> Result<(), NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = serde_json::json!({ "status": node_status(facts, Timestamp::now()) });
    nodes
        .patch_status(&facts.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| NodeError::Status {
            node: facts.name.clone(),
            source,
        })?;
    Ok(())
}

/// Creates or renews the node's Lease (holder = node name).
pub async fn renew_lease(
    client: &kube::Client,
    node: &str,
    duration_seconds: i32,
) -> Result<Lease, NodeError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let err = |source| NodeError::Lease {
        node: node.to_string(),
        source,
    };
    let now = MicroTime(Timestamp::now());
    match leases.get_opt(node).await.map_err(err)? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.holder_identity = Some(node.to_string());
            spec.lease_duration_seconds = Some(duration_seconds);
            spec.renew_time = Some(now);
            leases
                .replace(node, &PostParams::default(), &lease)
                .await
                .map_err(err)
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(node.to_string()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(node.to_string()),
                    lease_duration_seconds: Some(duration_seconds),
                    renew_time: Some(now.clone()),
                    acquire_time: Some(now),
                    ..Default::default()
                }),
            };
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map_err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts {
            name: "node-a".into(),
            internal_ip: "192.168.77.2".into(),
            pod_cidr: Some("10.244.1.0/24".into()),
            capacity: Capacity {
                cpu_millis: 2500,
                memory_bytes: 4 << 30,
                pods: 110,
            },
            container_runtime_version: "containerd://1.6.20".into(),
            kernel_version: "6.1.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            labels: BTreeMap::from([("tier".to_string(), "lab".to_string())]),
            pressure: Default::default(),
            transitions: BTreeMap::new(),
            ids: HostIds {
                machine_id: "m1".into(),
                system_uuid: "u1".into(),
                boot_id: "b1".into(),
            },
        }
    }

    #[test]
    fn transition_times_move_only_when_a_status_flips() {
        let t = |s: i64| Timestamp::from_second(1_700_000_000 + s).unwrap();
        let since = |f: &NodeFacts, c: &str| {
            node_status(f, t(99))
                .conditions
                .unwrap()
                .into_iter()
                .find(|x| x.type_ == c)
                .unwrap()
                .last_transition_time
                .unwrap()
                .0
        };
        let mut f = facts();
        assert_eq!(since(&f, "DiskPressure"), t(99), "nothing recorded: now");
        set_pressure(&mut f, Default::default(), t(0));
        set_pressure(&mut f, Default::default(), t(10));
        assert_eq!(
            since(&f, "DiskPressure"),
            t(0),
            "unchanged status keeps its time"
        );
        let disk = crate::pressure::Pressure {
            disk: true,
            ..Default::default()
        };
        set_pressure(&mut f, disk, t(20));
        set_pressure(&mut f, disk, t(30));
        assert_eq!(
            (since(&f, "DiskPressure"), since(&f, "MemoryPressure")),
            (t(20), t(0))
        );
        set_pressure(&mut f, Default::default(), t(40));
        assert_eq!(since(&f, "DiskPressure"), t(40));
    }

    #[test]
    fn pressure_shows_in_the_conditions() {
        let cond = |f: &NodeFacts, t: &str| {
            node_status(f, Timestamp::from_second(1_700_000_000).unwrap())
                .conditions
                .unwrap()
                .into_iter()
                .find(|c| c.type_ == t)
                .map(|c| (c.status, c.reason.unwrap()))
                .unwrap()
        };
        let calm = facts();
        assert_eq!(
            cond(&calm, "DiskPressure"),
            ("False".into(), "KubeletHasNoDiskPressure".into())
        );
        let mut hot = facts();
        hot.pressure.disk = true;
        assert_eq!(
            cond(&hot, "DiskPressure"),
            ("True".into(), "KubeletHasDiskPressure".into())
        );
        assert_eq!(cond(&hot, "MemoryPressure").0, "False");
        assert_eq!(cond(&hot, "Ready").0, "True");
    }

    #[test]
    fn meminfo_and_os_release_parse() {
        assert_eq!(
            parse_meminfo_total("MemTotal:       24555812 kB\nMemFree: 1 kB\n"),
            Some(24555812 * 1024)
        );
        assert_eq!(parse_meminfo_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo_total("MemTotal: x kB\n"), None);
        assert_eq!(
            parse_os_release("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")
                .as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn node_object_has_labels_cidr_capacity_and_ready() {
        let n = node_object(&facts(), Timestamp::from_second(1_700_000_000).unwrap());
        let labels = n.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "node-a");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["tier"], "lab");
        assert_eq!(
            n.spec.unwrap().pod_cidrs,
            Some(vec!["10.244.1.0/24".to_string()])
        );
        let st = n.status.unwrap();
        let cap = st.capacity.unwrap();
        assert_eq!(cap["cpu"].0, "2500m");
        assert_eq!(cap["memory"].0, "4194304Ki");
        assert_eq!(cap["pods"].0, "110");
        let ready = st
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("True", Some("KubeletReady"))
        );
        assert_eq!(st.addresses.unwrap()[0].address, "192.168.77.2");
        let info = st.node_info.unwrap();
        assert_eq!(
            (
                info.container_runtime_version.as_str(),
                info.kernel_version.as_str(),
                info.os_image.as_str(),
                info.operating_system.as_str(),
                info.kubelet_version.as_str(),
                info.machine_id.as_str(),
                info.system_uuid.as_str(),
                info.boot_id.as_str(),
            ),
            (
                "containerd://1.6.20",
                "6.1.0",
                "Debian GNU/Linux 12 (bookworm)",
                "linux",
                KUBELET_VERSION,
                "m1",
                "u1",
                "b1"
            )
        );
        assert!(!info.architecture.is_empty());
        assert_eq!(quantity_cpu(2000).0, "2");
    }

    #[test]
    fn host_boot_id_is_read() {
        // Every Linux kernel has a boot ID; machine-id and the DMI UUID may be absent.
        assert_eq!(host_ids().boot_id.len(), 36, "{:?}", host_ids());
    }

    #[test]
    fn host_capacity_is_plausible() {
        let c = host_capacity();
        assert!(c.cpu_millis >= 1000);
        assert!(c.memory_bytes > 64 << 20, "{c:?}");
    }
}
