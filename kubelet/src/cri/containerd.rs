//! [`Runtime`] over containerd's CRI plugin: CRI v1 gRPC on a unix socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use super::api::{
    self, image_service_client::ImageServiceClient, runtime_service_client::RuntimeServiceClient,
};
use super::{CriError, ExecOutput, Runtime};

/// containerd's own gRPC limit is 16 MiB; tonic's default (4 MiB) is too small for a
/// `ListContainers` on a busy node.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// A CRI client on one containerd socket. Cloning is cheap (one shared connection).
#[derive(Debug, Clone)]
pub struct ContainerdRuntime {
    socket: PathBuf,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl ContainerdRuntime {
    /// Connects to the CRI socket (e.g. `/run/containerd/containerd.sock`).
    pub async fn connect(socket: &Path) -> Result<ContainerdRuntime, CriError> {
        let connect_err = |reason: String| CriError::Connect {
            socket: socket.display().to_string(),
            reason,
        };
        let path = socket.to_path_buf();
        // The URI is required by tonic but unused: the connector always dials the socket.
        let channel = Endpoint::from_static("http://localhost")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|e| connect_err(format!("{e}: {}", source_chain(&e))))?;
        Ok(ContainerdRuntime {
            socket: socket.to_path_buf(),
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            images: ImageServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}

fn image_spec(image: &str) -> api::ImageSpec {
    api::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

#[async_trait::async_trait]
impl Runtime for ContainerdRuntime {
    async fn version(&self) -> Result<api::VersionResponse, CriError> {
        let req = api::VersionRequest {
            version: "v1".into(),
        };
        Ok(self
            .runtime
            .clone()
            .version(req)
            .await
            .map_err(|s| CriError::call("Version", s))?
            .into_inner())
    }

    async fn run_pod_sandbox(&self, config: api::PodSandboxConfig) -> Result<String, CriError> {
        let req = api::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        let resp = self
            .runtime
            .clone()
            .run_pod_sandbox(req)
            .await
            .map_err(|s| CriError::call("RunPodSandbox", s))?;
        Ok(resp.into_inner().pod_sandbox_id)
    }

    async fn stop_pod_sandbox(&self, sandbox_id: &str) -> Result<(), CriError> {
        let req = api::StopPodSandboxRequest {
            pod_sandbox_id: sandbox_id.into(),
        };
        self.runtime
            .clone()
            .stop_pod_sandbox(req)
            .await
            .map_err(|s| CriError::call("StopPodSandbox", s))?;
        Ok(())
    }

    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<(), CriError> {
        let req = api::RemovePodSandboxRequest {
            pod_sandbox_id: sandbox_id.into(),
        };
        self.runtime
            .clone()
            .remove_pod_sandbox(req)
            .await
            .map_err(|s| CriError::call("RemovePodSandbox", s))?;
        Ok(())
    }

    async fn pod_sandbox_status(
        &self,
        sandbox_id: &str,
    ) -> Result<api::PodSandboxStatus, CriError> {
        let req = api::PodSandboxStatusRequest {
            pod_sandbox_id: sandbox_id.into(),
            verbose: false,
        };
        let resp = self
            .runtime
            .clone()
            .pod_sandbox_status(req)
            .await
            .map_err(|s| CriError::call("PodSandboxStatus", s))?;
        resp.into_inner().status.ok_or(CriError::EmptyResponse {
            op: "PodSandboxStatus",
        })
    }

    async fn list_pod_sandboxes(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>, CriError> {
        let req = api::ListPodSandboxRequest { filter };
        let resp = self
            .runtime
            .clone()
            .list_pod_sandbox(req)
            .await
            .map_err(|s| CriError::call("ListPodSandbox", s))?;
        Ok(resp.into_inner().items)
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String, CriError> {
        let req = api::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.into(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let resp = self
            .runtime
            .clone()
            .create_container(req)
            .await
            .map_err(|s| CriError::call("CreateContainer", s))?;
        Ok(resp.into_inner().container_id)
    }

    async fn start_container(&self, container_id: &str) -> Result<(), CriError> {
        let req = api::StartContainerRequest {
            container_id: container_id.into(),
        };
        self.runtime
            .clone()
            .start_container(req)
            .await
            .map_err(|s| CriError::call("StartContainer", s))?;
        Ok(())
    }

    async fn stop_container(&self, container_id: &str, timeout: Duration) -> Result<(), CriError> {
        let req = api::StopContainerRequest {
            container_id: container_id.into(),
            timeout: timeout.as_secs() as i64,
        };
        self.runtime
            .clone()
            .stop_container(req)
            .await
            .map_err(|s| CriError::call("StopContainer", s))?;
        Ok(())
    }

    async fn remove_container(&self, container_id: &str) -> Result<(), CriError> {
        let req = api::RemoveContainerRequest {
            container_id: container_id.into(),
        };
        self.runtime
            .clone()
            .remove_container(req)
            .await
            .map_err(|s| CriError::call("RemoveContainer", s))?;
        Ok(())
    }

    async fn container_status(&self, container_id: &str) -> Result<api::ContainerStatus, CriError> {
        let req = api::ContainerStatusRequest {
            container_id: container_id.into(),
            verbose: false,
        };
        let resp = self
            .runtime
            .clone()
            .container_status(req)
            .await
            .map_err(|s| CriError::call("ContainerStatus", s))?;
        resp.into_inner().status.ok_or(CriError::EmptyResponse {
            op: "ContainerStatus",
        })
    }

    async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>, CriError> {
        let req = api::ListContainersRequest { filter };
        let resp = self
            .runtime
            .clone()
            .list_containers(req)
            .await
            .map_err(|s| CriError::call("ListContainers", s))?;
        Ok(resp.into_inner().containers)
    }

    async fn pull_image(
        &self,
        image: &str,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String, CriError> {
        self.pull_image_with_auth(image, None, sandbox_config).await
    }

    async fn pull_image_with_auth(
        &self,
        image: &str,
        auth: Option<api::AuthConfig>,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String, CriError> {
        let req = api::PullImageRequest {
            image: Some(image_spec(image)),
            auth,
            sandbox_config,
        };
        let resp = self
            .images
            .clone()
            .pull_image(req)
            .await
            .map_err(|s| CriError::call("PullImage", s))?;
        Ok(resp.into_inner().image_ref)
    }

    async fn image_status(&self, image: &str) -> Result<Option<api::Image>, CriError> {
        let req = api::ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose: false,
        };
        let resp = self
            .images
            .clone()
            .image_status(req)
            .await
            .map_err(|s| CriError::call("ImageStatus", s))?;
        Ok(resp.into_inner().image)
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput, CriError> {
        let req = api::ExecSyncRequest {
            container_id: container_id.into(),
            cmd,
            timeout: timeout.as_secs() as i64,
        };
        let resp = self
            .runtime
            .clone()
            .exec_sync(req)
            .await
            .map_err(|s| CriError::call("ExecSync", s))?
            .into_inner();
        Ok(ExecOutput {
            stdout: resp.stdout,
            stderr: resp.stderr,
            exit_code: resp.exit_code,
        })
    }

    async fn exec(&self, request: api::ExecRequest) -> Result<String, CriError> {
        let resp = self
            .runtime
            .clone()
            .exec(request)
            .await
            .map_err(|s| CriError::call("Exec", s))?;
        Ok(resp.into_inner().url)
    }

    async fn attach(&self, request: api::AttachRequest) -> Result<String, CriError> {
        let resp = self
            .runtime
            .clone()
            .attach(request)
            .await
            .map_err(|s| CriError::call("Attach", s))?;
        Ok(resp.into_inner().url)
    }

    async fn port_forward(&self, request: api::PortForwardRequest) -> Result<String, CriError> {
        let resp = self
            .runtime
            .clone()
            .port_forward(request)
            .await
            .map_err(|s| CriError::call("PortForward", s))?;
        Ok(resp.into_inner().url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connecting_to_a_missing_socket_names_the_socket() {
        let tmp = tempfile::tempdir().unwrap();
        let sock = tmp.path().join("nothing.sock");
        let err = ContainerdRuntime::connect(&sock).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("nothing.sock"), "{text}");
        assert!(text.contains("containerd running"), "{text}");
    }
}
