//! An in-memory [`Runtime`] that follows containerd's state rules closely enough for
//! pod-worker unit tests and simulated nodes: names are reserved, a container needs a
//! ready sandbox and a present image, running things cannot be removed, removals of
//! unknown ids succeed, and every call is recorded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tonic::Code;

use super::api;
use super::{normalize_image, CriError, ExecOutput, Runtime};

#[derive(Debug, Clone)]
struct Sandbox {
    config: api::PodSandboxConfig,
    ready: bool,
    created_at: i64,
    ip: String,
}

#[derive(Debug, Clone)]
struct Container {
    sandbox_id: String,
    config: api::ContainerConfig,
    image_ref: String,
    state: api::ContainerState,
    created_at: i64,
    started_at: i64,
    finished_at: i64,
    exit_code: i32,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    next_ip: u32,
    /// Images a pull can find ("the registry"), by normalised name.
    pullable: HashSet<String>,
    /// Images present on the node: normalised name -> image id.
    images: BTreeMap<String, String>,
    sandboxes: BTreeMap<String, Sandbox>,
    containers: BTreeMap<String, Container>,
    calls: Vec<String>,
    failures: HashMap<&'static str, (Code, String)>,
    exec_output: Option<ExecOutput>,
    /// Images that only pull with these credentials (user, password), by normalised name.
    protected: HashMap<String, (String, String)>,
    /// The `USER` of an image's config, by normalised name (absent: root, as upstream).
    image_users: HashMap<String, String>,
    /// Every pull with the credentials it carried.
    pulls: Vec<(String, Option<api::AuthConfig>)>,
    /// Every ExecSync command, with its container id.
    execs: Vec<(String, Vec<String>)>,
}

/// The in-memory runtime. All methods take `&self`; state sits behind a mutex that is
/// never held across an await.
#[derive(Debug, Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn err(op: &'static str, code: Code, message: impl Into<String>) -> CriError {
    CriError::Call {
        op,
        code,
        message: message.into(),
    }
}

fn image_id(name: &str) -> String {
    let sum = Sha256::digest(name.as_bytes());
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn labels_match(labels: &HashMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl FakeRuntime {
    pub fn new() -> FakeRuntime {
        FakeRuntime::default()
    }

    /// Makes images pullable (as if pushed to the registry mirror).
    pub fn with_pullable(self, images: &[&str]) -> FakeRuntime {
        {
            let mut s = self.state.lock().unwrap();
            s.pullable.extend(images.iter().map(|i| normalize_image(i)));
        }
        self
    }

    /// Makes images present on the node already (as if imported).
    pub fn with_images(self, images: &[&str]) -> FakeRuntime {
        {
            let mut s = self.state.lock().unwrap();
            for i in images {
                let name = normalize_image(i);
                s.images.insert(name.clone(), image_id(&name));
            }
        }
        self
    }

    /// Makes an image pullable only with `user`/`password` (a private registry).
    pub fn with_protected(self, image: &str, user: &str, password: &str) -> FakeRuntime {
        {
            let mut s = self.state.lock().unwrap();
            let name = normalize_image(image);
            s.pullable.insert(name.clone());
            s.protected
                .insert(name, (user.to_string(), password.to_string()));
        }
        self
    }

    /// Sets the user an image runs as (its config's `USER`: a uid or a name).
    pub fn with_image_user(self, image: &str, user: &str) -> FakeRuntime {
        self.state
            .lock()
            .unwrap()
            .image_users
            .insert(normalize_image(image), user.to_string());
        self
    }

    /// Every PullImage so far: the image and the credentials it carried.
    pub fn pulls(&self) -> Vec<(String, Option<api::AuthConfig>)> {
        self.state.lock().unwrap().pulls.clone()
    }

    /// Every ExecSync so far: container id and command.
    pub fn execs(&self) -> Vec<(String, Vec<String>)> {
        self.state.lock().unwrap().execs.clone()
    }

    /// The next call of `op` (the CRI method name, e.g. `"RunPodSandbox"`) fails.
    pub fn fail_next(&self, op: &'static str, code: Code, message: &str) {
        self.state
            .lock()
            .unwrap()
            .failures
            .insert(op, (code, message.to_string()));
    }

    /// What `ExecSync` answers from now on (default: exit 0, no output).
    pub fn set_exec_output(&self, output: ExecOutput) {
        self.state.lock().unwrap().exec_output = Some(output);
    }

    /// Simulates a running container's process exiting on its own.
    pub fn exit_container(&self, container_id: &str, exit_code: i32) -> bool {
        let mut s = self.state.lock().unwrap();
        match s.containers.get_mut(container_id) {
            Some(c) if c.state == api::ContainerState::ContainerRunning => {
                c.state = api::ContainerState::ContainerExited;
                c.exit_code = exit_code;
                c.finished_at = now_nanos();
                true
            }
            _ => false,
        }
    }

    /// Every call so far, as `"Op id-or-name"` lines.
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Records the call and fires an injected failure, if any.
    fn enter(&self, s: &mut State, op: &'static str, subject: &str) -> Result<(), CriError> {
        s.calls
            .push(format!("{op} {subject}").trim_end().to_string());
        match s.failures.remove(op) {
            Some((code, message)) => Err(err(op, code, message)),
            None => Ok(()),
        }
    }

    fn new_id(s: &mut State) -> String {
        s.next_id += 1;
        format!("{:064x}", s.next_id)
    }
}

#[async_trait::async_trait]
impl Runtime for FakeRuntime {
    async fn version(&self) -> Result<api::VersionResponse, CriError> {
        let mut s = self.state.lock().unwrap();
        self.enter(&mut s, "Version", "")?;
        Ok(api::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: "0.1.0".into(),
            runtime_api_version: "v1".into(),
        })
    }

    async fn run_pod_sandbox(&self, config: api::PodSandboxConfig) -> Result<String, CriError> {
        const OP: &str = "RunPodSandbox";
        let mut s = self.state.lock().unwrap();
        let meta = config.metadata.clone().unwrap_or_default();
        self.enter(&mut s, OP, &format!("{}/{}", meta.namespace, meta.name))?;
        if meta.name.is_empty() || meta.uid.is_empty() {
            return Err(err(
                OP,
                Code::InvalidArgument,
                "sandbox config must include metadata name and uid",
            ));
        }
        let taken = s.sandboxes.values().any(|sb| {
            let m = sb.config.metadata.clone().unwrap_or_default();
            m.name == meta.name
                && m.namespace == meta.namespace
                && m.uid == meta.uid
                && m.attempt == meta.attempt
        });
        if taken {
            return Err(err(
                OP,
                Code::Unknown,
                format!(
                    "failed to reserve sandbox name {:?}: name is reserved",
                    meta.name
                ),
            ));
        }
        let id = Self::new_id(&mut s);
        s.next_ip += 1;
        let ip = format!("10.88.{}.{}", s.next_ip / 250, 2 + s.next_ip % 250);
        s.sandboxes.insert(
            id.clone(),
            Sandbox {
                config,
                ready: true,
                created_at: now_nanos(),
                ip,
            },
        );
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, sandbox_id: &str) -> Result<(), CriError> {
        const OP: &str = "StopPodSandbox";
        let mut s = self.state.lock().unwrap();
        self.enter(&mut s, OP, sandbox_id)?;
        let Some(sb) = s.sandboxes.get_mut(sandbox_id) else {
            return Err(err(
                OP,
                Code::NotFound,
                format!("an error occurred when try to find sandbox {sandbox_id:?}: not found"),
            ));
        };
        sb.ready = false;
        let now = now_nanos();
        for c in s
            .containers
            .values_mut()
            .filter(|c| c.sandbox_id == sandbox_id)
        {
            if c.state != api::ContainerState::ContainerExited {
                c.state = api::ContainerState::ContainerExited;
                c.exit_code = 137;
                c.finished_at = now;
            }
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<(), CriError> {
        const OP: &str = "RemovePodSandbox";
        let mut s = self.state.lock().unwrap();
        self.enter(&mut s, OP, sandbox_id)?;
        match s.sandboxes.get(sandbox_id) {
            None => return Ok(()),
            Some(sb) if sb.ready => {
                return Err(err(
                    OP,
                    Code::Unknown,
                    format!("sandbox container {sandbox_id:?} is not fully stopped"),
                ));
            }
            Some(_) => {}
        }
        s.sandboxes.remove(sandbox_id);
        s.containers.retain(|_, c| c.sandbox_id != sandbox_id);
        Ok(())
    }

    async fn pod_sandbox_status(
        &self,
        sandbox_id: &str,
    ) -> Result<api::PodSandboxStatus, CriError> {
        const OP: &str = "PodSandboxStatus";
        let mut s = self.state.lock().unwrap();
        self.enter(&mut s, OP, sandbox_id)?;
        let sb = s.sandboxes.get(sandbox_id).ok_or_else(|| {
            err(
                OP,
                Code::NotFound,
                format!("sandbox {sandbox_id:?} not found"),
            )
        })?;
        let state = if sb.ready {
            api::PodSandboxState::SandboxReady
        } else {
            api::PodSandboxState::SandboxNotready
        };
        Ok(api::PodSandboxStatus {
            id: sandbox_id.to_string(),
            metadata: sb.config.metadata.clone(),
            state: state as i32,
            created_at: sb.created_at,
            network: Some(api::PodSandboxNetworkStatus {
                ip: sb.ip.clone(),
                additional_ips: vec![],
            }),
            labels: sb.config.labels.clone(),
            annotations: sb.config.annotations.clone(),
            ..Default::default()
        })
    }

    async fn list_pod_sandboxes(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>, CriError> {
        let mut s = self.state.lock().unwrap();
        self.enter(&mut s, "ListPodSandbox", "")?;
        let filter = filter.unwrap_or_default();
        Ok(s.sandboxes
            .iter()
            .map(|(id, sb)| api::PodSandbox {
                id: id.clone(),
                metadata: sb.config.metadata.clone(),
                state: if sb.ready { 0 } else { 1 },
                created_at: sb.created_at,
                labels: sb.config.labels.clone(),
                annotations: sb.config.annotations.clone(),
                runtime_handler: String::new(),
            })
            .filter(|p| p.id.starts_with(&filter.id))
            .filter(|p| filter.state.as_ref().is_none_or(|st| st.state == p.state))
            .filter(|p| labels_match(&p.labels, &filter.label_selector))
            .collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        _sandbox_config: api::PodSandboxConfig,
    ) -> Result<String, CriError> {
        const OP: &str = "CreateContainer";
        let mut s = self.state.lock().unwrap();
        let meta = config.metadata.clone().unwrap_or_default();
        self.enter(&mut s, OP, &meta.name)?;
        match s.sandboxes.get(sandbox_id) {
            None => {
                return Err(err(
                    OP,
                    Code::NotFound,
                    format!("failed to find sandbox id {sandbox_id:?}: not found"),
                ))
            }
            Some(sb) if !sb.ready => {
                return Err(err(
                    OP,
                    Code::Unknown,
                    format!("sandbox {sandbox_id:?} is not ready: cannot create containers in it"),
                ));
            }
            Some(_) => {}
        }
        let image = normalize_image(&config.image.clone().unwrap_or_default().image);
        let Some(image_ref) = s.images.get(&image).cloned() else {
            return Err(err(
                OP,
                Code::NotFound,
                format!("failed to get image {image:?}: not found; pull it first"),
            ));
        };
        let taken = s.containers.values().any(|c| {
            let m = c.config.metadata.clone().unwrap_or_default();
            c.sandbox_id == sandbox_id && m.name == meta.name && m.attempt == meta.attempt
        });
        if taken {
            return Err(err(
                OP,
                Code::Unknown,
                format!(
                    "failed to reserve container name {:?}: name is reserved",
                    meta.name
                ),
            ));
        }
        let id = Self::new_id(&mut s);
        s.containers.insert(
            id.clone(),
            Container {
                sandbox_id: sandbox_id.to_string(),
                config,
                image_ref,
                state: api::ContainerState::ContainerCreated,
                created_at: now_nanos(),
                started_at: 0,
                finished_at: 0,
                exit_code: 0,
            },
        );
        Ok(id)
    }

    async fn start_container(&self, container_id: &str) -> Result<(), CriError> {
        const OP: &str = "StartContainer";
        let mut s = self.state.lock().unwrap();
        self.enter(&mut s, OP, container_id)?;
        let c = s.containers.get_mut(container_id).ok_or_else(|| {
            err(
                OP,
                Code::NotFound,
                format!("container {container_id:?} not found"),
            )
        })?;
        if c.state != api::ContainerState::ContainerCreated {
            return Err(err(
                OP,
                Code::Unknown,
                format!(
                    "container {container_id:?} is in {:?} state, not created",
                    c.state
                ),
            ));
        }
        c.state = api::ContainerState::ContainerRunning;
        c.started_at = now_nanos();
        Ok(())
    }

    async fn stop_container(&self, container_id: &str, _timeout: Duration) -> Result<(), CriError> {
        const OP: &str = "StopContainer";
        let mut s = self.state.lock().unwrap();
        self.enter(&mut s, OP, container_id)?;
        let c = s.containers.get_mut(container_id).ok_or_else(|| {
            err(
                OP,
                Code::NotFound,
                format!("container {container_id:?} not found"),
            )
        })?;
        if c.state != api::ContainerState::ContainerExited {
            // 128 + SIGTERM: the fake's processes always honour SIGTERM.
            c.exit_code = if c.state == api::ContainerState::ContainerRunning {
                143
            } else {
                0
            };
            c.state = api::ContainerState::ContainerExited;
            c.finished_at = now_nanos();
        }
        Ok(())
    }

    async fn remove_container(&self, container_id: &str) -> Result<(), CriError> {
        const OP: &str = "RemoveContainer";
        let mut s = self.state.lock().unwrap();
        self.enter(&mut s, OP, container_id)?;
        match s.containers.get(container_id) {
            None => Ok(()),
            Some(c) if c.state == api::ContainerState::ContainerRunning => Err(err(
                OP,
                Code::Unknown,
                format!("container {container_id:?} is still running, to stop first"),
            )),
            Some(_) => {
                s.containers.remove(container_id);
                Ok(())
            }
        }
    }

    async fn container_status(&self, container_id: &str) -> Result<api::ContainerStatus, CriError> {
        const OP: &str = "ContainerStatus";
        let mut s = self.state.lock().unwrap();
        self.enter(&mut s, OP, container_id)?;
        let c = s.containers.get(container_id).ok_or_else(|| {
            err(
                OP,
                Code::NotFound,
                format!("container {container_id:?} not found"),
            )
        })?;
        let reason = match (c.state, c.exit_code) {
            (api::ContainerState::ContainerExited, 0) => "Completed",
            (api::ContainerState::ContainerExited, _) => "Error",
            _ => "",
        };
        Ok(api::ContainerStatus {
            id: container_id.to_string(),
            metadata: c.config.metadata.clone(),
            state: c.state as i32,
            created_at: c.created_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
            exit_code: c.exit_code,
            image: c.config.image.clone(),
            image_ref: c.image_ref.clone(),
            reason: reason.into(),
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
            log_path: c.config.log_path.clone(),
            ..Default::default()
        })
    }

    async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>, CriError> {
        let mut s = self.state.lock().unwrap();
        self.enter(&mut s, "ListContainers", "")?;
        let filter = filter.unwrap_or_default();
        Ok(s.containers
            .iter()
            .map(|(id, c)| api::Container {
                id: id.clone(),
                pod_sandbox_id: c.sandbox_id.clone(),
                metadata: c.config.metadata.clone(),
                image: c.config.image.clone(),
                image_ref: c.image_ref.clone(),
                state: c.state as i32,
                created_at: c.created_at,
                labels: c.config.labels.clone(),
                annotations: c.config.annotations.clone(),
                image_id: c.image_ref.clone(),
            })
            .filter(|c| c.id.starts_with(&filter.id))
            .filter(|c| {
                filter.pod_sandbox_id.is_empty() || c.pod_sandbox_id == filter.pod_sandbox_id
            })
            .filter(|c| filter.state.as_ref().is_none_or(|st| st.state == c.state))
            .filter(|c| labels_match(&c.labels, &filter.label_selector))
            .collect())
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
        _sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String, CriError> {
        const OP: &str = "PullImage";
        let mut s = self.state.lock().unwrap();
        self.enter(&mut s, OP, image)?;
        s.pulls.push((image.to_string(), auth.clone()));
        let name = normalize_image(image);
        if let Some((user, password)) = s.protected.get(&name) {
            let ok = auth
                .as_ref()
                .is_some_and(|a| &a.username == user && &a.password == password);
            if !ok {
                return Err(err(
                    OP,
                    Code::Unknown,
                    format!("failed to pull and unpack image {name:?}: failed to resolve reference {name:?}: pull access denied, authorization failed: 401 Unauthorized"),
                ));
            }
        }
        if let Some(id) = s.images.get(&name) {
            return Ok(id.clone());
        }
        if !s.pullable.contains(&name) {
            return Err(err(
                OP,
                Code::Unknown,
                format!("failed to pull and unpack image {name:?}: failed to resolve reference {name:?}: not found"),
            ));
        }
        let id = image_id(&name);
        s.images.insert(name, id.clone());
        Ok(id)
    }

    async fn image_status(&self, image: &str) -> Result<Option<api::Image>, CriError> {
        let mut s = self.state.lock().unwrap();
        self.enter(&mut s, "ImageStatus", image)?;
        let name = normalize_image(image);
        let found = s
            .images
            .iter()
            .find(|(n, id)| **n == name || id.as_str() == image);
        let user = found.and_then(|(n, _)| s.image_users.get(n));
        // CRI reports a numeric USER as uid and anything else as username.
        let (uid, username) = match user.map(|u| u.parse::<i64>()) {
            Some(Ok(value)) => (Some(api::Int64Value { value }), String::new()),
            Some(Err(_)) => (None, user.cloned().unwrap_or_default()),
            None => (None, String::new()),
        };
        Ok(found.map(|(n, id)| api::Image {
            id: id.clone(),
            repo_tags: vec![n.clone()],
            size: 1 << 20,
            uid,
            username,
            ..Default::default()
        }))
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        _timeout: Duration,
    ) -> Result<ExecOutput, CriError> {
        const OP: &str = "ExecSync";
        let mut s = self.state.lock().unwrap();
        self.enter(&mut s, OP, container_id)?;
        s.execs.push((container_id.to_string(), cmd));
        match s.containers.get(container_id) {
            Some(c) if c.state == api::ContainerState::ContainerRunning => {}
            Some(_) => {
                return Err(err(
                    OP,
                    Code::Unknown,
                    format!("container {container_id:?} is not running"),
                ))
            }
            None => {
                return Err(err(
                    OP,
                    Code::NotFound,
                    format!("container {container_id:?} not found"),
                ))
            }
        }
        Ok(s.exec_output.clone().unwrap_or(ExecOutput {
            stdout: vec![],
            stderr: vec![],
            exit_code: 0,
        }))
    }

    async fn exec(&self, request: api::ExecRequest) -> Result<String, CriError> {
        let mut s = self.state.lock().unwrap();
        self.enter(&mut s, "Exec", &request.container_id)?;
        Ok(format!("http://127.0.0.1:0/exec/{}", request.container_id))
    }

    async fn attach(&self, request: api::AttachRequest) -> Result<String, CriError> {
        let mut s = self.state.lock().unwrap();
        self.enter(&mut s, "Attach", &request.container_id)?;
        Ok(format!(
            "http://127.0.0.1:0/attach/{}",
            request.container_id
        ))
    }

    async fn port_forward(&self, request: api::PortForwardRequest) -> Result<String, CriError> {
        let mut s = self.state.lock().unwrap();
        self.enter(&mut s, "PortForward", &request.pod_sandbox_id)?;
        Ok(format!(
            "http://127.0.0.1:0/portforward/{}",
            request.pod_sandbox_id
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::remove_all_pods;

    fn sandbox_config(name: &str) -> api::PodSandboxConfig {
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            labels: HashMap::from([("app".to_string(), name.to_string())]),
            ..Default::default()
        }
    }

    fn container_config(name: &str, image: &str) -> api::ContainerConfig {
        api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(api::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn pod_lifecycle_follows_containerd_rules() {
        let rt = FakeRuntime::new().with_pullable(&["busybox"]);
        let sb_cfg = sandbox_config("web");
        let sb = rt.run_pod_sandbox(sb_cfg.clone()).await.unwrap();
        assert!(
            rt.run_pod_sandbox(sb_cfg.clone()).await.is_err(),
            "same name+uid+attempt is reserved"
        );

        // Image must be pulled before create.
        let e = rt
            .create_container(&sb, container_config("app", "busybox"), sb_cfg.clone())
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        let image_ref = rt
            .pull_image("docker.io/library/busybox:latest", None)
            .await
            .unwrap();
        assert_eq!(
            rt.image_status("busybox").await.unwrap().unwrap().id,
            image_ref
        );

        let c = rt
            .create_container(&sb, container_config("app", "busybox"), sb_cfg.clone())
            .await
            .unwrap();
        assert!(rt
            .create_container(&sb, container_config("app", "busybox"), sb_cfg.clone())
            .await
            .is_err());
        rt.start_container(&c).await.unwrap();
        assert!(rt.start_container(&c).await.is_err(), "start twice");
        assert_eq!(
            container_state(rt.container_status(&c).await.unwrap().state),
            api::ContainerState::ContainerRunning
        );
        assert!(
            rt.remove_container(&c).await.is_err(),
            "running containers cannot be removed"
        );
        assert!(
            rt.remove_pod_sandbox(&sb).await.is_err(),
            "ready sandboxes cannot be removed"
        );

        rt.stop_pod_sandbox(&sb).await.unwrap();
        let st = rt.container_status(&c).await.unwrap();
        assert_eq!(
            container_state(st.state),
            api::ContainerState::ContainerExited
        );
        assert_eq!(st.exit_code, 137);
        assert!(rt
            .create_container(&sb, container_config("late", "busybox"), sb_cfg)
            .await
            .is_err());
        rt.remove_pod_sandbox(&sb).await.unwrap();
        assert!(
            rt.list_containers(None).await.unwrap().is_empty(),
            "containers go with their sandbox"
        );
        rt.remove_pod_sandbox(&sb).await.unwrap(); // idempotent
        assert!(rt.stop_pod_sandbox(&sb).await.unwrap_err().is_not_found());
    }

    use crate::cri::container_state;

    #[tokio::test]
    async fn missing_image_pull_fails_with_resolve_error() {
        let rt = FakeRuntime::new();
        let e = rt.pull_image("nope:1", None).await.unwrap_err();
        assert!(e.to_string().contains("failed to resolve reference"), "{e}");
        assert!(rt.image_status("nope:1").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn filters_and_injected_failures() {
        let rt = FakeRuntime::new().with_images(&["busybox"]);
        let a = rt.run_pod_sandbox(sandbox_config("a")).await.unwrap();
        let b = rt.run_pod_sandbox(sandbox_config("b")).await.unwrap();
        let ca = rt
            .create_container(&a, container_config("x", "busybox"), sandbox_config("a"))
            .await
            .unwrap();
        rt.create_container(&b, container_config("x", "busybox"), sandbox_config("b"))
            .await
            .unwrap();

        let only_a = api::PodSandboxFilter {
            label_selector: HashMap::from([("app".into(), "a".into())]),
            ..Default::default()
        };
        let listed = rt.list_pod_sandboxes(Some(only_a)).await.unwrap();
        assert_eq!(
            listed.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            vec![a.as_str()]
        );
        let in_a = api::ContainerFilter {
            pod_sandbox_id: a.clone(),
            ..Default::default()
        };
        let listed = rt.list_containers(Some(in_a)).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, ca);

        rt.fail_next("RunPodSandbox", Code::Unknown, "cni failed");
        let e = rt.run_pod_sandbox(sandbox_config("c")).await.unwrap_err();
        assert!(e.to_string().contains("cni failed"));
        rt.run_pod_sandbox(sandbox_config("c")).await.unwrap(); // only the next call fails
        assert!(
            rt.calls()
                .iter()
                .filter(|c| c.starts_with("RunPodSandbox"))
                .count()
                == 4
        );

        assert_eq!(remove_all_pods(&rt).await.unwrap(), 3);
        assert!(rt.list_pod_sandboxes(None).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn exec_needs_a_running_container_and_returns_the_scripted_output() {
        let rt = FakeRuntime::new().with_images(&["busybox"]);
        let sb = rt.run_pod_sandbox(sandbox_config("e")).await.unwrap();
        let c = rt
            .create_container(&sb, container_config("x", "busybox"), sandbox_config("e"))
            .await
            .unwrap();
        assert!(rt
            .exec_sync(&c, vec!["true".into()], Duration::ZERO)
            .await
            .is_err());
        rt.start_container(&c).await.unwrap();
        rt.set_exec_output(ExecOutput {
            stdout: b"e\n".to_vec(),
            stderr: vec![],
            exit_code: 0,
        });
        let out = rt
            .exec_sync(&c, vec!["hostname".into()], Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(out.stdout, b"e\n");
        assert!(rt.exit_container(&c, 3));
        let st = rt.container_status(&c).await.unwrap();
        assert_eq!((st.exit_code, st.reason.as_str()), (3, "Error"));
    }
}
