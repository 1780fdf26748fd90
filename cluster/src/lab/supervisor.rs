//! The process that owns a running lab: brings it up step by step (writing a progress
//! line per step), keeps it running, and tears it down in order on SIGTERM.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use skiff_kubelet::containerd::{Containerd, ContainerdConfig};
use skiff_kubelet::process::{command_in, Daemon};
use skiff_kubelet::registry::{Registry, RegistryConfig};
use tokio_util::sync::CancellationToken;

use super::net::{self, Host};
use super::state::{HostState, LabState};
use super::{lab_id, LabConfig, LabError};
use crate::control_plane::{self, ControlPlane, ControlPlaneConfig};

/// The demo the lab applies, kept in the binary so `lab up` works from anywhere.
pub const DEMO: &str = include_str!("../../../manifests/demo/web.yaml");
pub const DEMO_NODE_PORT: u16 = 30080;
/// The API server's port on the lab network (inside the hub namespace).
pub const LAB_API_PORT: u16 = 6443;
pub const REGISTRY_PORT: u16 = 5000;

struct Progress {
    file: std::fs::File,
    started: Instant,
}

impl Progress {
    fn line(&mut self, msg: &str) {
        let l = format!("[{:>5.1}s] {msg}\n", self.started.elapsed().as_secs_f64());
        let _ = self.file.write_all(l.as_bytes());
        tracing::info!("{msg}");
    }
    fn raw(&mut self, msg: &str) {
        let _ = self.file.write_all(format!("{msg}\n").as_bytes());
    }
}

/// Everything running, torn down in reverse.
#[derive(Default)]
struct Running {
    registry: Option<Registry>,
    control_plane: Option<(ControlPlane, CancellationToken)>,
    /// How the control plane was started, to start it again (`skiff lab restart-server`).
    control_plane_config: Option<ControlPlaneConfig>,
    containerds: Vec<(String, Containerd)>,
    agents: Vec<(String, Daemon)>,
    /// How each agent was started, to start it again when it dies.
    specs: Vec<AgentSpec>,
}

/// One node's agent command line.
#[derive(Debug, Clone)]
struct AgentSpec {
    node: String,
    netns: String,
    exe: PathBuf,
    args: Vec<String>,
    log: PathBuf,
}

impl AgentSpec {
    fn spawn(&self) -> Result<Daemon, skiff_kubelet::process::ProcessError> {
        tracing::info!(node = %self.node, "starting the agent");
        let mut cmd = command_in(Some(&self.netns), &self.exe.display().to_string())?;
        cmd.args(&self.args);
        Daemon::spawn("skiff agent", cmd, &self.log)
    }
}

impl Running {
    async fn teardown(mut self, dir: &Path, id: &str) {
        for (name, a) in self.agents.iter_mut() {
            tracing::info!(node = %name, "stopping agent");
            a.stop(Duration::from_secs(10)).await;
        }
        for (name, c) in self.containerds.iter_mut() {
            // Removing pods through CRI releases their network namespaces, IPs and
            // mounts properly; killing processes alone would leak them.
            if let Ok(rt) = c.runtime().await {
                match skiff_kubelet::cri::remove_all_pods(&rt).await {
                    Ok(n) => tracing::info!(node = %name, pods = n, "removed pods"),
                    Err(e) => tracing::warn!(node = %name, error = %e, "removing pods failed"),
                }
            }
            c.stop().await;
        }
        if let Some(mut r) = self.registry.take() {
            r.stop().await;
        }
        if let Some((cp, token)) = self.control_plane.take() {
            token.cancel();
            cp.wait().await;
        }
        drop(self);
        super::cleanup::force(dir, id);
    }
}

/// Runs the lab until `shutdown`; returns after tearing it down.
pub async fn run(
    config: LabConfig,
    exe: PathBuf,
    shutdown: CancellationToken,
) -> Result<(), LabError> {
    let dir = std::fs::canonicalize(&config.dir).unwrap_or(config.dir.clone());
    let id = lab_id(&dir);
    let progress_path = dir.join("progress.log");
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&progress_path)
        .map_err(super::io(&progress_path))?;
    let mut p = Progress {
        file,
        started: Instant::now(),
    };
    let mut running = Running::default();
    let result = bring_up(&config, &dir, &id, &exe, &mut p, &mut running, &shutdown).await;
    match result {
        Ok(mut state) => {
            state.save(&dir).map_err(super::io(&dir))?;
            p.raw("READY");
            // Like a service manager with Restart=always: an agent that dies (a crash,
            // or `kill` in a failover exercise) comes back, and re-adopts its pods.
            // SIGUSR1 (`skiff lab restart-server`) restarts the control plane over its
            // data dir, as a server reboot would.
            let mut usr1 =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
                    .map_err(|e| {
                        LabError::Failed(format!("installing the SIGUSR1 handler: {e}"))
                    })?;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = usr1.recv() => {
                        if let Some((cp, token)) = running.control_plane.take() {
                            tracing::info!("restarting the control plane");
                            token.cancel();
                            cp.wait().await;
                            let token = shutdown.child_token();
                            let cfg = running.control_plane_config.clone().expect("kept at start");
                            match control_plane::start(cfg, token.clone()).await {
                                Ok(cp) => {
                                    running.control_plane = Some((cp, token));
                                    tracing::info!("control plane restarted");
                                }
                                Err(e) => tracing::error!(error = %e, "the control plane did not restart"),
                            }
                        }
                        continue;
                    }
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                let mut changed = false;
                for (i, (node, agent)) in running.agents.iter_mut().enumerate() {
                    if agent.is_running() {
                        continue;
                    }
                    tracing::warn!(node = %node, "agent exited; starting it again");
                    match running.specs[i].spawn() {
                        Ok(d) => {
                            if let Some(pid) = d.pid() {
                                state.processes.insert(format!("agent {node}"), pid);
                                changed = true;
                            }
                            *agent = d;
                        }
                        Err(e) => {
                            tracing::error!(node = %node, error = %e, "cannot restart the agent")
                        }
                    }
                }
                if changed {
                    let _ = state.save(&dir);
                }
            }
            tracing::info!("tearing the lab down");
        }
        Err(e) => {
            p.raw(&format!("FAILED {e}"));
            if std::env::var_os("SKIFF_LAB_KEEP_ON_FAILURE").is_some() {
                tracing::error!(error = %e, "lab bring-up failed; kept for debugging until `skiff lab down`");
                let partial = LabState {
                    id: id.clone(),
                    supervisor_pid: std::process::id(),
                    kubeconfig: dir.join("server/admin.kubeconfig"),
                    api_url: String::new(),
                    hosts: net::hosts(&id, config.nodes)
                        .into_iter()
                        .map(|h| HostState {
                            name: h.name,
                            netns: h.netns,
                            ip: h.ip,
                            pod_cidr: None,
                        })
                        .collect(),
                    processes: BTreeMap::new(),
                    node_port: DEMO_NODE_PORT,
                };
                let _ = partial.save(&dir);
                shutdown.cancelled().await;
            } else {
                tracing::error!(error = %e, "lab bring-up failed; tearing down");
            }
        }
    }
    running.teardown(&dir, &id).await;
    let _ = std::fs::remove_file(dir.join("state.json"));
    Ok(())
}

fn failed(step: &str) -> impl Fn(&dyn std::fmt::Display) -> LabError + '_ {
    move |e| LabError::Step(format!("{step}: {e}"))
}

async fn bring_up(
    config: &LabConfig,
    dir: &Path,
    id: &str,
    exe: &Path,
    p: &mut Progress,
    running: &mut Running,
    shutdown: &CancellationToken,
) -> Result<LabState, LabError> {
    let hosts: Vec<Host> = net::hosts(id, config.nodes);
    let hub = net::hub_netns(id);
    let nodes: Vec<&Host> = hosts.iter().filter(|h| h.name != "client").collect();

    // 1. Network.
    net::apply(&net::plan_up(id, &hosts)).map_err(|e| failed("network")(&e))?;
    for h in &nodes {
        net::sysctl_in(&h.netns, "net.ipv4.ip_forward", "1").map_err(|e| failed("network")(&e))?;
        // Pods on one node reach each other's ClusterIPs through the bridge: bridged
        // traffic must pass iptables for the DNAT to apply.
        let _ = net::sysctl_in(&h.netns, "net.bridge.bridge-nf-call-iptables", "1");
    }
    p.line(&format!(
        "network: hub {hub}, {} nodes and a client on 172.30.0.0/24",
        nodes.len()
    ));

    // 2. Images and the registry mirror.
    let images_dir = dir.join("images");
    let images = tokio::task::spawn_blocking({
        let d = images_dir.clone();
        move || skiff_kubelet::images::build_all(&d)
    })
    .await
    .map_err(|e| failed("images")(&e))?
    .map_err(|e| failed("images")(&e))?;
    p.line(&format!(
        "images: built {}",
        images
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let reg_addr = SocketAddr::from((net::HUB_IP, REGISTRY_PORT));
    let registry = Registry::start(RegistryConfig {
        addr: reg_addr,
        dir: dir.join("registry"),
        netns: Some(hub.clone()),
    })
    .await
    .map_err(|e| failed("registry")(&e))?;
    registry
        .push_all(&images)
        .await
        .map_err(|e| failed("registry push")(&e))?;
    let mut processes = BTreeMap::new();
    if let Some(pid) = registry.pid() {
        processes.insert("registry".to_string(), pid);
    }
    running.registry = Some(registry);
    p.line(&format!(
        "registry: mirror for docker.io at {reg_addr} (inside the lab), images pushed"
    ));

    // 3. Control plane.
    let mut controllers = skiff_controllers::ControllersConfig::default();
    if config.fast_failover {
        controllers.node_grace_period = Duration::from_secs(15);
        controllers.node_monitor_period = Duration::from_secs(2);
        controllers.default_eviction_timeout = Duration::from_secs(15);
    }
    let api = skiff_apiserver::Config {
        data_dir: dir.join("server"),
        listen: vec![SocketAddr::from(([127, 0, 0, 1], config.api_port))],
        netns_listen: vec![(hub.clone(), SocketAddr::from((net::HUB_IP, LAB_API_PORT)))],
        tls_sans: vec![net::HUB_IP.to_string()],
        default_toleration_seconds: if config.fast_failover { 10 } else { 300 },
        kubelet_netns: Some(hub.clone()),
        ..Default::default()
    };
    let cp_token = shutdown.child_token();
    let cp_config = ControlPlaneConfig {
        api,
        controllers: Some(controllers),
        scheduler: Some(control_plane::default_scheduler()),
    };
    running.control_plane_config = Some(cp_config.clone());
    let cp = control_plane::start(cp_config, cp_token.clone())
        .await
        .map_err(|e| failed("control plane")(&e))?;
    let kubeconfig = cp.api.kubeconfig.clone();
    let api_url = cp.api.url.clone();
    // Agents reach the server on the lab network, not on the host's loopback.
    let agent_kc = dir.join("agent.kubeconfig");
    let text = std::fs::read_to_string(&kubeconfig).map_err(super::io(&kubeconfig))?;
    std::fs::write(
        &agent_kc,
        text.replace(&api_url, &format!("https://{}:{LAB_API_PORT}", net::HUB_IP)),
    )
    .map_err(super::io(&agent_kc))?;
    let client = control_plane::admin_client(&kubeconfig, "skiff-lab")
        .await
        .map_err(|e| failed("control plane")(&e))?;
    running.control_plane = Some((cp, cp_token));
    p.line(&format!(
        "control plane: API server at {api_url} (host) and https://{}:{LAB_API_PORT} (lab)",
        net::HUB_IP
    ));

    // 4. One containerd and one agent per node.
    let mut host_states = Vec::new();
    for (i, h) in nodes.iter().enumerate() {
        let pod_cidr = net::pod_cidr(i + 1);
        let base = dir.join("nodes").join(&h.name);
        let mut cc = ContainerdConfig::new(&base.join("containerd"));
        cc.netns = Some(h.netns.clone());
        cc.mirror = Some(reg_addr.to_string());
        let pod_net = skiff_kubelet::network::PodNetwork::new(&pod_cidr, &base.join("ipam"));
        skiff_kubelet::network::write_config(&cc.cni_conf_dir, &pod_net)
            .map_err(|e| failed("pod network")(&e))?;
        let containerd = Containerd::start(cc)
            .await
            .map_err(|e| failed(&format!("containerd on {}", h.name))(&e))?;
        if let Some(pid) = containerd.pid() {
            processes.insert(format!("containerd {}", h.name), pid);
        }
        let socket = containerd.socket();
        running.containerds.push((h.name.clone(), containerd));

        let mut args: Vec<String> = vec![
            "agent".into(),
            "--kubeconfig".into(),
            agent_kc.display().to_string(),
        ];
        args.extend(
            [
                "--node-name",
                &h.name,
                "--node-ip",
                &h.ip.to_string(),
                "--pod-cidr",
                &pod_cidr,
            ]
            .map(String::from),
        );
        args.extend([
            "--containerd-socket".to_string(),
            socket.display().to_string(),
        ]);
        args.extend([
            "--data-dir".to_string(),
            base.join("agent").display().to_string(),
        ]);
        if config.fast_failover {
            args.extend(["--heartbeat-seconds".to_string(), "2".to_string()]);
        }
        // The lab has no way out: names outside the cluster fail at once instead of
        // waiting for resolvers that cannot be reached from inside it.
        args.push("--no-dns-upstream".to_string());
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(super::io(&logs))?;
        let spec = AgentSpec {
            node: h.name.clone(),
            netns: h.netns.clone(),
            exe: exe.to_path_buf(),
            args,
            log: logs.join(format!("{}-agent.log", h.name)),
        };
        let agent = spec.spawn().map_err(|e| failed("agent")(&e))?;
        if let Some(pid) = agent.pid() {
            processes.insert(format!("agent {}", h.name), pid);
        }
        running.specs.push(spec);
        running.agents.push((h.name.clone(), agent));
        host_states.push(HostState {
            name: h.name.clone(),
            netns: h.netns.clone(),
            ip: h.ip,
            pod_cidr: Some(pod_cidr.clone()),
        });
        p.line(&format!(
            "{}: {} on {pod_cidr}, containerd and agent started",
            h.name, h.ip
        ));
    }
    let client_host = hosts
        .iter()
        .find(|h| h.name == "client")
        .expect("client host");
    host_states.push(HostState {
        name: "client".into(),
        netns: client_host.netns.clone(),
        ip: client_host.ip,
        pod_cidr: None,
    });

    // 5. Nodes Ready.
    let nodes_api: kube::Api<Node> = kube::Api::all(client.clone());
    wait_until(Duration::from_secs(90), shutdown, || async {
        let list = nodes_api.list(&Default::default()).await.ok()?;
        let ready = list.items.iter().filter(|n| is_ready(n)).count();
        (ready >= nodes.len()).then_some(())
    })
    .await
    .ok_or_else(|| {
        LabError::Step(format!(
            "nodes did not become Ready within 90 s; see {}/logs/*-agent.log",
            dir.display()
        ))
    })?;
    p.line(&format!("nodes: {} Ready", nodes.len()));

    // 6. The demo.
    let lines = crate::apply::create_all(&client, DEMO)
        .await
        .map_err(|e| failed("demo")(&e))?;
    p.line(&format!("demo: {}", lines.join(", ")));
    let deploys: kube::Api<Deployment> = kube::Api::namespaced(client.clone(), "demo");
    wait_until(Duration::from_secs(180), shutdown, || async {
        let d = deploys.get("web").await.ok()?;
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let have = d
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        (have >= want).then_some(())
    })
    .await
    .ok_or_else(|| {
        LabError::Step("the demo Deployment did not become available within 180 s".into())
    })?;
    p.line("demo: all replicas available");
    let url = format!("http://{}:{DEMO_NODE_PORT}/", nodes[0].ip);
    let answer = wait_until(Duration::from_secs(60), shutdown, || async {
        // `timeout` rather than wget's own -T: Debian's static busybox 1.35 wget
        // crashes with -T.
        let out = tokio::process::Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", client_host.netns))
            .args(["--", "timeout", "3", "busybox", "wget", "-qO-", &url])
            .output()
            .await
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    })
    .await
    .ok_or_else(|| {
        LabError::Step(format!(
            "the demo did not answer at {url} from the client namespace within 60 s"
        ))
    })?;
    p.line(&format!(
        "demo: {url} answered from the client namespace: {answer}"
    ));

    let secs = p.started.elapsed().as_secs_f64();
    p.raw("");
    p.raw(&format!("lab up in {secs:.1}s"));
    p.raw(&format!("export KUBECONFIG={}", kubeconfig.display()));
    p.raw("kubectl get pods -o wide -n demo");
    p.raw(&format!(
        "skiff lab exec client --dir {} -- busybox wget -qO- http://{}:{DEMO_NODE_PORT}/",
        dir.display(),
        nodes[0].ip
    ));
    p.raw(&format!("skiff lab exec client --dir {} -- busybox wget -qO- --header 'Host: web.skiff.lab' http://{}/", dir.display(), nodes[0].ip));
    p.raw(&format!("skiff lab down --dir {}", dir.display()));

    Ok(LabState {
        id: id.to_string(),
        supervisor_pid: std::process::id(),
        kubeconfig,
        api_url,
        hosts: host_states,
        processes,
        node_port: DEMO_NODE_PORT,
    })
}

fn is_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Polls `f` every 300 ms until it returns Some, the time is up, or shutdown.
async fn wait_until<T, F, Fut>(limit: Duration, shutdown: &CancellationToken, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && !shutdown.is_cancelled() {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    None
}
