//! The node runtime path end to end, on the real parts: a network namespace standing in
//! for a node, the registry mirror on that namespace's loopback, a containerd inside it
//! configured by this crate, the CNI bridge, and a pause-plus-busybox pod driven through
//! the CRI client. Needs root and the Debian packages named in the skip messages; it
//! skips (and says why) when any is missing.
//!
//! The second test puts the kubelet component on top: a Pod created in an in-process
//! API server runs on that containerd.
//!
//! Network safety: every address used (registry on 127.0.0.1 inside the namespace, pod
//! CIDRs 10.88.77.0/24 and 10.88.78.0/24 on the namespaces' own bridges) exists only inside the namespace
//! this test creates; nothing is added to the host namespace.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use skiff_kubelet::cri::{self, api, logs, ContainerdRuntime, Runtime};
use skiff_kubelet::images;
use skiff_kubelet::node_runtime::{NodeRuntime, NodeRuntimeConfig};

const POD_CIDR: &str = "10.88.77.0/24";

fn missing_prerequisite() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (network namespaces, containerd)".into());
    }
    let tools = [
        ("containerd", "containerd"),
        ("runc", "runc"),
        ("docker-registry", "docker-registry"),
        ("skopeo", "skopeo"),
        ("nsenter", "util-linux"),
        ("ip", "iproute2"),
        ("iptables", "iptables"),
        ("gcc", "gcc libc6-dev"),
    ];
    for (tool, package) in tools {
        let found = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            return Some(format!(
                "{tool} not found (Debian: apt-get install {package})"
            ));
        }
    }
    for (file, package) in [
        ("/bin/busybox", "busybox-static"),
        ("/usr/lib/cni/bridge", "containernetworking-plugins"),
    ] {
        if !Path::new(file).exists() {
            return Some(format!(
                "{file} not found (Debian: apt-get install {package})"
            ));
        }
    }
    None
}

/// A network namespace for this test, deleted on drop (also after a panic).
struct Netns(String);

impl Netns {
    fn create(name: &str) -> Netns {
        run("ip", &["netns", "add", name]);
        let ns = Netns(name.to_string());
        run("ip", &["-n", name, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `wget` from inside the node namespace (the host namespace has no route to pods).
/// Debian's busybox 1.35 wget crashes with `-T`, so coreutils `timeout` bounds it.
fn wget_in(netns: &str, url: &str) -> Result<String, String> {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{netns}"))
        .args(["timeout", "3", "busybox", "wget", "-q", "-O", "-", url])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn sandbox_config(name: &str, uid: &str, log_dir: &Path) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: log_dir.display().to_string(),
        labels: HashMap::from([("skiff.test/owner".to_string(), "skk".to_string())]),
        linux: Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Kubernetes' defaults: network and IPC shared by the pod, PID per container.
fn namespaces() -> api::NamespaceOption {
    api::NamespaceOption {
        network: api::NamespaceMode::Pod as i32,
        pid: api::NamespaceMode::Container as i32,
        ipc: api::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn httpd_container(pod_name: &str) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata { name: "web".into(), attempt: 0 }),
        image: Some(api::ImageSpec { image: "busybox".into(), ..Default::default() }),
        command: vec![
            "sh".into(),
            "-c".into(),
            "mkdir -p /www && echo \"$POD_NAME\" > /www/index.html && echo \"serving $POD_NAME\" && exec httpd -f -p 8080 -h /www".into(),
        ],
        envs: vec![api::KeyValue { key: "POD_NAME".into(), value: pod_name.into() }],
        log_path: "web/0.log".into(),
        linux: Some(api::LinuxContainerConfig {
            security_context: Some(api::LinuxContainerSecurityContext {
                namespace_options: Some(namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn timed<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let out = f.await;
    println!(
        "latency {what}: {:.1} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
    out
}

/// The pod's part of the test. Everything it creates is removed by the caller through
/// `cri::remove_all_pods` even when an assertion here fails.
async fn pod_scenario(rt: &ContainerdRuntime, netns: &str, work: &Path) {
    let version = rt.version().await.unwrap();
    assert_eq!(version.runtime_name, "containerd");
    assert_eq!(version.runtime_api_version, "v1");

    // Pulls through the mirror: the sandbox image (registry.k8s.io) and busybox (docker.io).
    timed("PullImage pause", rt.pull_image(images::PAUSE_IMAGE, None))
        .await
        .unwrap();
    let busybox_ref = timed("PullImage busybox", rt.pull_image("busybox", None))
        .await
        .unwrap();
    let status = rt
        .image_status("docker.io/library/busybox:latest")
        .await
        .unwrap()
        .expect("busybox present after pull");
    assert_eq!(status.id, busybox_ref);
    assert!(
        rt.pull_image(images::BUSYBOX_PINNED_IMAGE, None)
            .await
            .is_ok(),
        "pinned tag is in the mirror too"
    );

    let missing = rt
        .pull_image("docker.io/library/skiff-no-such-image:0", None)
        .await
        .unwrap_err();
    println!("missing image error: {missing}");
    let text = missing.to_string();
    assert!(
        text.contains("PullImage")
            && text.contains("skiff-no-such-image")
            && text.contains("not found"),
        "{text}"
    );
    assert!(rt
        .image_status("docker.io/library/skiff-no-such-image:0")
        .await
        .unwrap()
        .is_none());

    let pod_name = format!("web-{}", std::process::id());
    let log_dir = work.join("pods").join(format!("default_{pod_name}"));
    std::fs::create_dir_all(log_dir.join("web")).unwrap();
    let sb_config = sandbox_config(&pod_name, &format!("uid-{pod_name}"), &log_dir);
    let sandbox = timed("RunPodSandbox", rt.run_pod_sandbox(sb_config.clone()))
        .await
        .unwrap();

    let sb_status = rt.pod_sandbox_status(&sandbox).await.unwrap();
    assert_eq!(
        cri::sandbox_state(sb_status.state),
        api::PodSandboxState::SandboxReady
    );
    let ip: std::net::Ipv4Addr = sb_status
        .network
        .expect("sandbox network status")
        .ip
        .parse()
        .expect("an IPv4 pod IP");
    let cidr: ipnet::Ipv4Net = POD_CIDR.parse().unwrap();
    assert!(
        cidr.contains(&ip),
        "pod IP {ip} is not in the node's podCIDR {POD_CIDR}"
    );
    println!("pod IP {ip}");

    let container = timed(
        "CreateContainer",
        rt.create_container(&sandbox, httpd_container(&pod_name), sb_config.clone()),
    )
    .await
    .unwrap();
    timed("StartContainer", rt.start_container(&container))
        .await
        .unwrap();
    let st = rt.container_status(&container).await.unwrap();
    assert_eq!(
        cri::container_state(st.state),
        api::ContainerState::ContainerRunning
    );

    // httpd answers from the pod IP, seen from the node's namespace.
    let url = format!("http://{ip}:8080/");
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        match wget_in(netns, &url) {
            Ok(body) => break body,
            Err(e) if Instant::now() > deadline => {
                let st = rt.container_status(&container).await.unwrap();
                let log = std::fs::read_to_string(log_dir.join("web/0.log")).unwrap_or_default();
                panic!(
                    "{url} did not answer within 10 s: {e}\ncontainer state {:?} exit {} reason {:?} {:?}\nlog:\n{log}",
                    cri::container_state(st.state), st.exit_code, st.reason, st.message
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(body.trim(), pod_name);

    // The container's output is in the CRI log file the kubelet asked for.
    let log_path = log_dir.join("web/0.log");
    assert_eq!(PathBuf::from(&st.log_path), log_path);
    let log_text = std::fs::read_to_string(&log_path).unwrap();
    let lines = logs::lines(&log_text);
    assert!(
        lines.contains(&(logs::Stream::Stdout, format!("serving {pod_name}"))),
        "log {log_path:?} has {lines:?}"
    );

    let exec = rt
        .exec_sync(&container, vec!["hostname".into()], Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (exec.exit_code, String::from_utf8_lossy(&exec.stdout).trim()),
        (0, pod_name.as_str())
    );
    let failing = rt
        .exec_sync(
            &container,
            vec!["sh".into(), "-c".into(), "exit 7".into()],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(failing.exit_code, 7);

    let listed = rt
        .list_containers(Some(api::ContainerFilter {
            pod_sandbox_id: sandbox.clone(),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        vec![container.as_str()]
    );

    // Streaming exec is served by containerd's own streaming server: CRI hands out a
    // one-time URL on the loopback of the node namespace.
    let exec_url = rt
        .exec(api::ExecRequest {
            container_id: container.clone(),
            cmd: vec!["sh".into()],
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        exec_url.starts_with("http://127.0.0.1:") && exec_url.contains("/exec/"),
        "{exec_url}"
    );

    // Orderly teardown, as the kubelet does it. httpd runs as the container's PID 1 and
    // has no SIGTERM handler, so the kernel ignores SIGTERM: the runtime must wait the
    // grace period and SIGKILL it.
    let grace = Duration::from_secs(2);
    let started = Instant::now();
    timed("StopContainer", rt.stop_container(&container, grace))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= grace,
        "the grace period was not honoured"
    );
    let st = rt.container_status(&container).await.unwrap();
    assert_eq!(
        cri::container_state(st.state),
        api::ContainerState::ContainerExited
    );
    assert_eq!(
        st.exit_code, 137,
        "killed by SIGKILL after the grace period"
    );
    rt.remove_container(&container).await.unwrap();
    assert!(rt
        .container_status(&container)
        .await
        .unwrap_err()
        .is_not_found());
    timed("StopPodSandbox", rt.stop_pod_sandbox(&sandbox))
        .await
        .unwrap();
    timed("RemovePodSandbox", rt.remove_pod_sandbox(&sandbox))
        .await
        .unwrap();
    assert!(rt.list_pod_sandboxes(None).await.unwrap().is_empty());
    assert!(wget_in(netns, &url).is_err(), "the pod must be gone");
}

/// One simulated node: a network namespace holding the registry mirror (on its
/// loopback) and a containerd set up by [`NodeRuntime`], with the pod network on a
/// bridge inside it. Fields drop in order, so the namespace goes last.
struct LabNode {
    name: String,
    work: PathBuf,
    runtime: NodeRuntime,
    _tmp: tempfile::TempDir,
    _netns: Netns,
}

impl LabNode {
    async fn start(suffix: &str, pod_cidr: &str) -> LabNode {
        let name = format!("skk{}{suffix}", std::process::id());
        // Created first: if anything below panics, the guard removes it.
        let netns = Netns::create(&name);
        let tmp = tempfile::Builder::new().prefix("skk").tempdir().unwrap();
        let work = tmp.path().to_path_buf();
        let built = timed("build images", async {
            images::build_all(&work.join("images"))
        })
        .await
        .unwrap();
        let mut config = NodeRuntimeConfig::new(&work, pod_cidr);
        config.netns = Some(name.clone());
        config.bridge = format!("skk{suffix}0");
        config.images = Some(built);
        let runtime = timed(
            "start registry + push + containerd",
            NodeRuntime::start(config),
        )
        .await
        .unwrap();
        println!(
            "node {name}: containerd pid {:?}, registry pid {:?}",
            runtime.containerd.pid(),
            runtime.registry.pid()
        );
        LabNode {
            name,
            work,
            runtime,
            _tmp: tmp,
            _netns: netns,
        }
    }

    /// Removes every pod through CRI, then stops containerd and the registry. Returns
    /// how many sandboxes were still there.
    async fn teardown(self) -> usize {
        self.runtime.shutdown().await.unwrap()
    }
}

/// Runs `body`, then `node.teardown()` whatever happened, then re-raises a panic.
async fn with_node<F>(node: LabNode, body: F) -> usize
where
    F: std::future::Future<Output = ()>,
{
    let outcome = std::panic::AssertUnwindSafe(body).catch_unwind().await;
    let left = node.teardown().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    left
}

fn init_tracing() {
    // RUST_LOG=skiff_kubelet=debug shows the crate's own progress lines.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_plus_busybox_pod_runs_on_containerd_through_cri() {
    if let Some(why) = missing_prerequisite() {
        println!("skipped: {why}");
        return;
    }
    init_tracing();
    let node = LabNode::start("c", POD_CIDR).await;
    let rt = node.runtime.runtime().await.unwrap();
    let (netns, work) = (node.name.clone(), node.work.clone());
    let left = with_node(node, async { pod_scenario(&rt, &netns, &work).await }).await;
    assert_eq!(left, 0, "the scenario removes its own pod");
}

/// The whole node path: a Pod created in an in-process API server is run by the
/// kubelet component on the real containerd, serves HTTP on its pod IP, reports its
/// status, and is stopped and removed on graceful deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_runs_a_pod_from_the_api_on_containerd() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, DeleteParams, PostParams};

    if let Some(why) = missing_prerequisite() {
        println!("skipped: {why}");
        return;
    }
    init_tracing();
    let node = LabNode::start("k", "10.88.78.0/24").await;
    let runtime = Arc::new(node.runtime.runtime().await.unwrap());
    let (netns, work) = (node.name.clone(), node.work.clone());
    let left = with_node(node, async {
        let server = skiff_apiserver::testing::TestServer::start().await;
        let client = server.client().await;
        let mut config = skiff_kubelet::Config::new("skk-node", client.clone(), runtime.clone());
        config.node_ip = "10.88.78.1".into();
        config.pod_cidr = Some("10.88.78.0/24".into());
        config.log_root = work.join("pods");
        config.resync = Duration::from_secs(1);
        config.heartbeat = Duration::from_secs(1);
        let shutdown = CancellationToken::new();
        let kubelet = tokio::spawn(skiff_kubelet::run(config, shutdown.clone()));

        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {
                "nodeName": "skk-node",
                "terminationGracePeriodSeconds": 2,
                "containers": [{
                    "name": "web", "image": "busybox:1.36",
                    "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "command": ["sh", "-c", "mkdir -p /www && echo $(POD_NAME) > /www/index.html && echo up && exec httpd -f -p 8080 -h /www"],
                }],
            },
        }))
        .unwrap();
        let started = Instant::now();
        let uid = pods.create(&PostParams::default(), &pod).await.unwrap().metadata.uid.unwrap();
        let ip = loop {
            let p = pods.get("hello").await.unwrap();
            let st = p.status.unwrap_or_default();
            if st.phase.as_deref() == Some("Running") {
                break st.pod_ip.expect("a running pod has an IP");
            }
            assert!(started.elapsed() < Duration::from_secs(30), "pod not Running after 30 s: {st:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        println!("latency create -> Running (API): {:.0} ms, pod IP {ip}", started.elapsed().as_secs_f64() * 1000.0);
        let cidr: ipnet::Ipv4Net = "10.88.78.0/24".parse().unwrap();
        assert!(cidr.contains(&ip.parse::<std::net::Ipv4Addr>().unwrap()), "{ip}");

        let url = format!("http://{ip}:8080/");
        let deadline = Instant::now() + Duration::from_secs(10);
        let body = loop {
            match wget_in(&netns, &url) {
                Ok(b) => break b,
                Err(e) => {
                    assert!(Instant::now() < deadline, "{url} did not answer: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        assert_eq!(body.trim(), "hello", "the downward API put the pod name in the page");
        let log = std::fs::read_to_string(work.join(format!("pods/default_hello_{uid}/web/0.log"))).unwrap();
        assert!(logs::lines(&log).contains(&(logs::Stream::Stdout, "up".to_string())), "{log}");

        let deleting = Instant::now();
        pods.delete("hello", &DeleteParams::default()).await.unwrap();
        while pods.get_opt("hello").await.unwrap().is_some() {
            assert!(deleting.elapsed() < Duration::from_secs(20), "pod not deleted after 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("latency delete -> gone (API): {:.0} ms", deleting.elapsed().as_secs_f64() * 1000.0);
        assert!(runtime.list_pod_sandboxes(None).await.unwrap().is_empty(), "the kubelet removed the sandbox");
        assert!(wget_in(&netns, &url).is_err());

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), kubelet).await.unwrap().unwrap().unwrap();
        server.shutdown().await;
    })
    .await;
    assert_eq!(left, 0);
}
