//! skiff-kubelet: the node agent's runtime path. It prepares a node to run pods the way
//! Kubernetes does (a pause "sandbox" holding the pod's namespaces, app containers
//! joining it, a CNI bridge network) and drives containerd through CRI.
//!
//! [`run`] is the component: it registers the Node, keeps its Lease fresh and syncs
//! the Pods bound to this node: init containers, probes, volumes, crash-loop back-off.
//!
//! # Layout
//! - [`agent`]: [`run`] and its [`Config`]: node registration, heartbeat, the pod
//!   controller and orphan housekeeping.
//! - [`pod_sync`]: one pod: observe the runtime, plan steps (pure), execute them,
//!   compute the `PodStatus` (pure).
//! - [`cri_config`]: Pod spec -> CRI sandbox and container configs (pure).
//! - [`probes`]: liveness/readiness/startup probes: the state machine (pure) and the
//!   prober the pod sync runs.
//! - [`insecure_tls`]: the certificate-blind TLS client of HTTPS probes and hooks.
//! - [`lifecycle`]: postStart and preStop hooks; stopping a container the upstream way.
//! - [`security`]: pod + container `securityContext` merged into CRI's, `runAsNonRoot`.
//! - [`pull_secrets`]: `imagePullSecrets` matched to an image's registry, as CRI auth.
//! - [`events`]: the Events the kubelet records on pods, with repeats aggregated.
//! - [`pressure`]: the node's MemoryPressure/DiskPressure/PIDPressure conditions from
//!   `/proc/meminfo`, `statvfs` and the pid count against eviction thresholds.
//! - [`volumes`]: emptyDir, hostPath, configMap, secret, downwardAPI and projected
//!   volumes; the ConfigMaps and Secrets a pod refers to.
//! - [`node`]: the Node object, its status and Lease.
//! - [`cri`]: the [`cri::Runtime`] trait (CRI v1 calls), the containerd client and an
//!   in-memory fake; the CRI log format.
//! - [`containerd`]: one containerd per node: config, registry mirror, start/stop.
//! - [`network`]: the node's pod network as a CNI conflist (bridge, host-local, portmap).
//! - [`images`]: offline `pause` and `busybox` images written as OCI layouts.
//! - [`registry`]: a local `docker-registry` mirror and pushing images into it.
//! - [`node_runtime`]: all of the above for one node in one call (the lab's entry).
//! - [`process`]: daemons this crate starts (by PID, optionally in a netns).
//! - [`server`]: the HTTPS server for logs, exec, attach and port-forward.
//! - [`netns`]: reaching addresses that exist only inside a network namespace.
//!
//! # Bringing up a node (what the lab does; [`node_runtime::NodeRuntime::start`])
//! 1. [`images::build_all`] into a directory;
//! 2. [`registry::Registry::start`] on the node namespace's loopback, then `push_all`;
//! 3. [`network::write_config`] for the node's podCIDR into the containerd CNI dir;
//! 4. [`containerd::Containerd::start`] with the mirror address;
//! 5. [`cri::ContainerdRuntime::connect`] and run pods.

pub mod agent;
pub mod containerd;
pub mod cri;
pub mod cri_config;
pub mod events;
pub mod images;
pub mod insecure_tls;
pub mod lifecycle;
pub mod netns;
pub mod network;
pub mod node;
pub mod node_runtime;
pub mod pod_sync;
pub mod pressure;
pub mod probes;
pub mod process;
pub mod pull_secrets;
pub mod registry;
pub mod security;
pub mod server;
pub mod volumes;

pub use agent::{run, CniTarget, Config, KubeletError};
