//! One node's whole runtime side brought up in one call, as `skiff lab up` and the
//! node tests need it: the registry mirror (filled with the offline images), the CNI
//! conflist for the node's podCIDR, and containerd configured to use both — all inside
//! the node's network namespace when one is given.
//!
//! Teardown is explicit and async ([`NodeRuntime::shutdown`]): pods are removed through
//! CRI first, so no container, mount or pod namespace outlives the node.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::containerd::{Containerd, ContainerdConfig, ContainerdError};
use crate::cri::{self, ContainerdRuntime, CriError};
use crate::images::{self, BuiltImage, ImageError};
use crate::network::{self, NetworkError, PodNetwork};
use crate::registry::{Registry, RegistryConfig, RegistryError};

#[derive(Debug, thiserror::Error)]
pub enum NodeRuntimeError {
    #[error(transparent)]
    Images(#[from] ImageError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Containerd(#[from] ContainerdError),
    #[error(transparent)]
    Cri(#[from] CriError),
}

/// What to bring up.
#[derive(Debug, Clone)]
pub struct NodeRuntimeConfig {
    /// Everything of this node lives under here (keep it short: it holds a unix socket).
    pub base_dir: PathBuf,
    /// The node's network namespace (`/var/run/netns/NAME`), or `None` for this one.
    pub netns: Option<String>,
    pub pod_cidr: String,
    /// The bridge device of the pod network (one per node namespace, so the same
    /// name may be used by every node).
    pub bridge: String,
    /// Where the node's registry listens; loopback of the node namespace is enough.
    pub registry_addr: SocketAddr,
    /// Images already built (e.g. once for a whole lab); `None` builds them here.
    pub images: Option<Vec<BuiltImage>>,
}

impl NodeRuntimeConfig {
    pub fn new(base_dir: &Path, pod_cidr: &str) -> NodeRuntimeConfig {
        NodeRuntimeConfig {
            base_dir: base_dir.to_path_buf(),
            netns: None,
            pod_cidr: pod_cidr.into(),
            bridge: "skiff0".into(),
            registry_addr: "127.0.0.1:5000".parse().expect("a valid address"),
            images: None,
        }
    }
}

/// A node's running registry and containerd.
#[derive(Debug)]
pub struct NodeRuntime {
    pub containerd: Containerd,
    pub registry: Registry,
}

impl NodeRuntime {
    /// Builds (if needed) and pushes the images, writes the CNI config, starts
    /// containerd and waits for CRI.
    pub async fn start(config: NodeRuntimeConfig) -> Result<NodeRuntime, NodeRuntimeError> {
        let images = match &config.images {
            Some(built) => built.clone(),
            None => images::build_all(&config.base_dir.join("images"))?,
        };
        let registry = Registry::start(RegistryConfig {
            addr: config.registry_addr,
            dir: config.base_dir.join("registry"),
            netns: config.netns.clone(),
        })
        .await?;
        registry.push_all(&images).await?;

        let mut cfg = ContainerdConfig::new(&config.base_dir.join("containerd"));
        cfg.netns = config.netns.clone();
        cfg.mirror = Some(registry.addr().to_string());
        let mut net = PodNetwork::new(&config.pod_cidr, &config.base_dir.join("ipam"));
        net.bridge = config.bridge.clone();
        network::write_config(&cfg.cni_conf_dir, &net)?;
        let containerd = Containerd::start(cfg).await?;
        Ok(NodeRuntime {
            containerd,
            registry,
        })
    }

    /// A CRI client on this node's containerd.
    pub async fn runtime(&self) -> Result<ContainerdRuntime, CriError> {
        self.containerd.runtime().await
    }

    /// Removes every pod through CRI, then stops containerd and the registry. Returns
    /// how many sandboxes were left to remove.
    pub async fn shutdown(mut self) -> Result<usize, NodeRuntimeError> {
        let removed = match self.containerd.runtime().await {
            Ok(rt) => cri::remove_all_pods(&rt).await,
            Err(e) => Err(e),
        };
        self.containerd.stop().await;
        self.registry.stop().await;
        Ok(removed?)
    }
}
