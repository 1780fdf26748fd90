//! How skiff's components are put together into processes.
//!
//! # Layout
//! - [`control_plane`]: what `skiff server` runs: the API server, and the
//!   controller-manager and scheduler as ordinary API clients of it.
//! - [`agent`]: what `skiff agent` runs on a node: the kubelet on containerd, the
//!   service proxy, the ingress controller, and routes to other nodes' pods.
//! - [`join`]: join tokens (CA pinning) and trading one for a node credential.
//! - [`apply`]: creating objects from multi-document YAML (the lab's demo, tests).
//! - [`lab`]: `skiff lab up/down/exec/status`: a whole cluster on one machine, one
//!   network namespace per node, with its own containerd and agent.

pub mod agent;
pub mod apply;
pub mod control_plane;
pub mod join;
pub mod lab;
