//! The Container Runtime Interface as the kubelet sees it: one async trait, [`Runtime`],
//! with the calls pod workers need, implemented over containerd's CRI v1 gRPC API
//! ([`containerd::ContainerdRuntime`]) and in memory ([`fake::FakeRuntime`]) for unit
//! tests and simulated nodes.
//!
//! Requests and responses are the CRI protobuf messages themselves (re-exported as
//! [`api`]): they are plain structs, and using them keeps the trait a faithful picture
//! of the protocol the kubelet speaks (kubernetes `cri-api`, `runtime/v1/api.proto`).
//!
//! # Layout
//! - [`containerd`]: the gRPC client on containerd's unix socket.
//! - [`fake`]: an in-memory runtime that follows the same state rules.
//! - [`logs`]: the CRI container log format (`<time> <stream> <P|F> <line>`).

pub mod containerd;
pub mod fake;
pub mod logs;

use std::time::Duration;

/// The CRI v1 messages (`runtime.v1`).
pub use k8s_cri::v1 as api;

pub use containerd::ContainerdRuntime;
pub use fake::FakeRuntime;

/// A failed CRI call. The gRPC status code is kept so callers can tell "not found"
/// (already gone: fine when removing) from real failures.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("cannot connect to the CRI socket {socket}: {reason}; is containerd running with this grpc.address?")]
    Connect { socket: String, reason: String },
    #[error("cri {op} failed ({code:?}): {message}")]
    Call {
        op: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error("cri {op} returned an empty response: the runtime does not follow CRI v1")]
    EmptyResponse { op: &'static str },
}

impl CriError {
    pub fn call(op: &'static str, status: tonic::Status) -> CriError {
        CriError::Call {
            op,
            code: status.code(),
            message: status.message().to_string(),
        }
    }

    /// The gRPC code of a failed call (`Unknown` for connection errors).
    pub fn code(&self) -> tonic::Code {
        match self {
            CriError::Call { code, .. } => *code,
            _ => tonic::Code::Unknown,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == tonic::Code::NotFound
    }
}

/// What `ExecSync` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

/// The node runtime the kubelet drives. Every method is one CRI call; none retries.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync {
    async fn version(&self) -> Result<api::VersionResponse, CriError>;

    /// Creates and starts the pod sandbox (pause container + network); returns its id.
    async fn run_pod_sandbox(&self, config: api::PodSandboxConfig) -> Result<String, CriError>;
    /// Stops every container of the sandbox and tears its network down. Idempotent.
    async fn stop_pod_sandbox(&self, sandbox_id: &str) -> Result<(), CriError>;
    /// Removes a stopped sandbox and its containers (containerd refuses a ready one:
    /// stop it first). Removing an unknown sandbox succeeds.
    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<(), CriError>;
    async fn pod_sandbox_status(&self, sandbox_id: &str)
        -> Result<api::PodSandboxStatus, CriError>;
    async fn list_pod_sandboxes(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>, CriError>;

    /// Creates a container in a sandbox; `sandbox_config` is the one the sandbox was
    /// run with (CRI wants it again). Returns the container id.
    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String, CriError>;
    async fn start_container(&self, container_id: &str) -> Result<(), CriError>;
    /// SIGTERM, then SIGKILL after `timeout`. Idempotent.
    async fn stop_container(&self, container_id: &str, timeout: Duration) -> Result<(), CriError>;
    /// Removes a stopped container (a running one is refused). Idempotent.
    async fn remove_container(&self, container_id: &str) -> Result<(), CriError>;
    async fn container_status(&self, container_id: &str) -> Result<api::ContainerStatus, CriError>;
    async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>, CriError>;

    /// Pulls an image; returns the image reference (`sha256:...` id) the runtime uses.
    async fn pull_image(
        &self,
        image: &str,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String, CriError>;
    /// PullImage with registry credentials (from the pod's `imagePullSecrets`, see
    /// [`crate::pull_secrets`]). The default ignores `auth` and calls [`Runtime::pull_image`]:
    /// it exists so that test doubles which never check credentials need not change;
    /// real runtimes and [`FakeRuntime`] override it.
    async fn pull_image_with_auth(
        &self,
        image: &str,
        auth: Option<api::AuthConfig>,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String, CriError> {
        let _ = auth;
        self.pull_image(image, sandbox_config).await
    }
    /// `None` when the image is not present on the node.
    async fn image_status(&self, image: &str) -> Result<Option<api::Image>, CriError>;

    /// Runs a command in a container and waits for it (`timeout` zero: no limit).
    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput, CriError>;
    /// Streaming calls: each returns the URL of the runtime's streaming server that the
    /// client's upgraded connection is proxied to.
    async fn exec(&self, request: api::ExecRequest) -> Result<String, CriError>;
    async fn attach(&self, request: api::AttachRequest) -> Result<String, CriError>;
    async fn port_forward(&self, request: api::PortForwardRequest) -> Result<String, CriError>;
}

/// Stops and removes every sandbox (and so every container) the runtime knows: the
/// last step of tearing a node down, also after a failure.
pub async fn remove_all_pods(runtime: &dyn Runtime) -> Result<usize, CriError> {
    let sandboxes = runtime.list_pod_sandboxes(None).await?;
    for sandbox in &sandboxes {
        if let Err(e) = runtime.stop_pod_sandbox(&sandbox.id).await {
            if !e.is_not_found() {
                return Err(e);
            }
        }
        if let Err(e) = runtime.remove_pod_sandbox(&sandbox.id).await {
            if !e.is_not_found() {
                return Err(e);
            }
        }
    }
    Ok(sandboxes.len())
}

/// The fully qualified form of an image name, as containerd stores it (the docker
/// reference rules: no host means `docker.io`, a single path element means
/// `library/`, no tag and no digest means `:latest`).
pub fn normalize_image(image: &str) -> String {
    let (host, path) = match image.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        Some(_) => ("docker.io".to_string(), image.to_string()),
        None => ("docker.io".to_string(), format!("library/{image}")),
    };
    let last = path.rsplit('/').next().unwrap_or(&path);
    let suffix = if last.contains(':') || last.contains('@') {
        ""
    } else {
        ":latest"
    };
    format!("{host}/{path}{suffix}")
}

/// The state enum of a sandbox, by its wire value.
pub fn sandbox_state(value: i32) -> api::PodSandboxState {
    api::PodSandboxState::try_from(value).unwrap_or(api::PodSandboxState::SandboxNotready)
}

/// The state enum of a container, by its wire value.
pub fn container_state(value: i32) -> api::ContainerState {
    api::ContainerState::try_from(value).unwrap_or(api::ContainerState::ContainerUnknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_normalise_like_docker_references() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("me/app:v2", "docker.io/me/app:v2"),
            ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            ("localhost/x:1", "localhost/x:1"),
            ("busybox@sha256:abc", "docker.io/library/busybox@sha256:abc"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_image(input), want, "{input}");
        }
    }

    #[test]
    fn unknown_wire_states_map_to_not_ready_and_unknown() {
        assert_eq!(sandbox_state(0), api::PodSandboxState::SandboxReady);
        assert_eq!(sandbox_state(99), api::PodSandboxState::SandboxNotready);
        assert_eq!(container_state(1), api::ContainerState::ContainerRunning);
        assert_eq!(container_state(-1), api::ContainerState::ContainerUnknown);
    }

    #[test]
    fn not_found_is_recognised_from_the_grpc_code() {
        let e = CriError::call("StopPodSandbox", tonic::Status::not_found("gone"));
        assert!(e.is_not_found());
        assert!(e.to_string().contains("StopPodSandbox"));
        let e = CriError::call("RunPodSandbox", tonic::Status::unknown("boom"));
        assert!(!e.is_not_found());
    }
}
