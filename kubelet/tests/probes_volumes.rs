//! Probes, volumes, env from ConfigMaps/Secrets, init containers and sidecars,
//! resources (cgroup limits, the OOM kill), the downward API and restartPolicy
//! OnFailure/Never on the real parts:
//! the kubelet component with an in-process API server drives a containerd running in
//! a network namespace this test creates (prefix `skv`). Needs root and the Debian
//! packages named in the skip message; it skips (and says why) when any is missing.
//!
//! Probes here are exec probes (CRI ExecSync): the test process is not in the node
//! namespace, so it could not reach pod IPs with HTTP or TCP probes.
//!
//! Network safety: the pod CIDR 10.88.79.0/24 and the registry on 127.0.0.1 exist only
//! inside this test's namespace; nothing is added to the host namespace.

mod common;
use common::eventually;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

use skiff_kubelet::cri::logs;
use skiff_kubelet::images;
use skiff_kubelet::node_runtime::{NodeRuntime, NodeRuntimeConfig};

const POD_CIDR: &str = "10.88.79.0/24";

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
    ];
    for (tool, package) in tools {
        let found = std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()));
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

/// The test's network namespace, deleted on drop (also after a panic).
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

fn run(program: &str, args: &[&str]) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// containerd and the registry mirror in the namespace; fields drop in order, so the
/// namespace goes last.
struct LabNode {
    work: PathBuf,
    runtime: NodeRuntime,
    _tmp: tempfile::TempDir,
    _netns: Netns,
}

impl LabNode {
    async fn start() -> LabNode {
        let name = format!("skv{}", std::process::id());
        let netns = Netns::create(&name);
        let tmp = tempfile::Builder::new().prefix("skv").tempdir().unwrap();
        let work = tmp.path().to_path_buf();
        let built = images::build_all(&work.join("images")).unwrap();
        let mut config = NodeRuntimeConfig::new(&work, POD_CIDR);
        config.netns = Some(name);
        config.bridge = "skv0".into();
        config.images = Some(built);
        let runtime = NodeRuntime::start(config).await.unwrap();
        LabNode {
            work,
            runtime,
            _tmp: tmp,
            _netns: netns,
        }
    }
}

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn pod(name: &str, spec: serde_json::Value) -> Pod {
    let mut spec = spec;
    spec["nodeName"] = "skv-node".into();
    spec["terminationGracePeriodSeconds"] = 1.into();
    obj(
        serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec}),
    )
}

fn ready(p: &Pod) -> Option<bool> {
    let st = p.status.as_ref()?;
    if st.phase.as_deref() != Some("Running") {
        return None;
    }
    Some(
        st.conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
    )
}

/// The stdout lines of a container's first attempt.
fn stdout_of(work: &Path, p: &Pod, container: &str) -> Vec<String> {
    let dir = format!(
        "default_{}_{}",
        p.metadata.name.as_deref().unwrap(),
        p.metadata.uid.as_deref().unwrap()
    );
    let text = std::fs::read_to_string(work.join("pods").join(dir).join(container).join("0.log"))
        .unwrap_or_default();
    logs::lines(&text)
        .into_iter()
        .filter(|(s, _)| *s == logs::Stream::Stdout)
        .map(|(_, l)| l)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_volumes_env_and_init_containers_on_containerd() {
    if let Some(why) = missing_prerequisite() {
        println!("skipped: {why}");
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let node = LabNode::start().await;
    let runtime = Arc::new(node.runtime.runtime().await.unwrap());
    let work = node.work.clone();
    let outcome = std::panic::AssertUnwindSafe(scenario(runtime, work))
        .catch_unwind()
        .await;
    let left = node.runtime.shutdown().await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    println!("sandboxes left at teardown: {left}");
}

async fn scenario(runtime: Arc<skiff_kubelet::cri::ContainerdRuntime>, work: PathBuf) {
    let server = skiff_apiserver::testing::TestServer::start().await;
    let client = server.client().await;
    let mut config = skiff_kubelet::Config::new("skv-node", client.clone(), runtime);
    config.node_ip = "10.88.79.1".into();
    config.pod_cidr = Some(POD_CIDR.into());
    config.log_root = work.join("pods");
    config.root_dir = work.join("kubelet");
    config.resync = Duration::from_secs(1);
    config.heartbeat = Duration::from_secs(1);
    let shutdown = CancellationToken::new();
    let kubelet = tokio::spawn(skiff_kubelet::run(config, shutdown.clone()));

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &obj(serde_json::json!({"metadata": {"name": "app-conf"}, "data": {"greeting": "hello-from-cm", "MODE": "fast"}})))
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &obj(serde_json::json!({"metadata": {"name": "app-secret"}, "stringData": {"password": "s3cret"}})))
        .await
        .unwrap();

    // The readiness probe looks for a file in a hostPath directory the test controls.
    let flag_dir = work.join("flags");
    std::fs::create_dir_all(&flag_dir).unwrap();
    let busybox = "busybox:1.36";
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let specs = [
        pod(
            "readiness",
            serde_json::json!({
            "volumes": [{"name": "flags", "hostPath": {"path": flag_dir.display().to_string()}}],
            "containers": [{"name": "app", "image": busybox, "command": ["sleep", "3600"],
                "volumeMounts": [{"name": "flags", "mountPath": "/flags", "readOnly": true}],
                "readinessProbe": {"exec": {"command": ["cat", "/flags/ready"]}, "periodSeconds": 1, "failureThreshold": 1}}]}),
        ),
        pod(
            "liveness",
            serde_json::json!({
            "containers": [{"name": "app", "image": busybox, "command": ["sleep", "3600"],
                "livenessProbe": {"exec": {"command": ["sh", "-c", "exit 1"]}, "periodSeconds": 1, "failureThreshold": 1}}]}),
        ),
        pod(
            "config",
            serde_json::json!({
            "volumes": [{"name": "conf", "configMap": {"name": "app-conf", "items": [{"key": "greeting", "path": "greeting.txt"}]}}],
            "containers": [{"name": "app", "image": busybox,
                "command": ["sh", "-c", "cat /etc/conf/greeting.txt; echo; echo pw=$PW; echo mode=$MODE; sleep 3600"],
                "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "password"}}}],
                "envFrom": [{"configMapRef": {"name": "app-conf"}}],
                "volumeMounts": [{"name": "conf", "mountPath": "/etc/conf"}]}]}),
        ),
        pod(
            "init",
            serde_json::json!({
            "volumes": [{"name": "shared", "emptyDir": {}}],
            "initContainers": [{"name": "prepare", "image": busybox, "command": ["sh", "-c", "echo written-by-init > /work/msg"],
                "volumeMounts": [{"name": "shared", "mountPath": "/work"}]}],
            "containers": [{"name": "app", "image": busybox, "command": ["sh", "-c", "cat /work/msg; sleep 3600"],
                "volumeMounts": [{"name": "shared", "mountPath": "/work"}]}]}),
        ),
        // Requests/limits become the container's cgroup settings; the downward API
        // (env fieldRef/resourceFieldRef, a downwardAPI volume) reads the pod.
        pod(
            "limits",
            serde_json::json!({
            "volumes": [{"name": "info", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu", "divisor": "1m"}}]}}],
            "containers": [{"name": "app", "image": busybox,
                "command": ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max; echo mem=$MEM_MI cpu=$CPU_M pod=$POD node=$NODE; cat /etc/info/name; echo; cat /etc/info/cpu; echo; sleep 3600"],
                "resources": {"requests": {"cpu": "250m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "64Mi"}},
                "env": [
                    {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                "volumeMounts": [{"name": "info", "mountPath": "/etc/info"}]}]}),
        ),
        // The shell itself outgrows its memory limit: the kernel kills it.
        pod(
            "oom",
            serde_json::json!({
            "restartPolicy": "Never",
            "containers": [{"name": "app", "image": busybox,
                "command": ["sh", "-c", "a=aaaaaaaaaaaaaaaa; while :; do a=$a$a; done"],
                "resources": {"limits": {"memory": "16Mi"}}}]}),
        ),
        // OnFailure: the first run fails, the restart succeeds, the pod completes.
        pod(
            "onfailure",
            serde_json::json!({
            "restartPolicy": "OnFailure",
            "volumes": [{"name": "state", "emptyDir": {}}],
            "containers": [{"name": "app", "image": busybox,
                "command": ["sh", "-c", "test -f /state/ran && exit 0; touch /state/ran; exit 3"],
                "volumeMounts": [{"name": "state", "mountPath": "/state"}]}]}),
        ),
        // A sidecar starts before the next init container (which waits for it), keeps
        // running beside the app, and does not keep a finished pod alive.
        pod(
            "sidecar",
            serde_json::json!({
            "restartPolicy": "Never",
            "volumes": [{"name": "shared", "emptyDir": {}}],
            "initContainers": [
                {"name": "side", "image": busybox, "restartPolicy": "Always",
                 "command": ["sh", "-c", "echo up > /shared/side; sleep 3600"],
                 "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
                {"name": "after", "image": busybox,
                 "command": ["sh", "-c", "until test -f /shared/side; do sleep 0.2; done"],
                 "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}],
            "containers": [{"name": "app", "image": busybox, "command": ["sh", "-c", "cat /shared/side"],
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}]}),
        ),
    ];
    for p in &specs {
        pods.create(&PostParams::default(), p).await.unwrap();
    }
    let get = |name: &'static str| {
        let pods = pods.clone();
        async move { pods.get(name).await.ok() }
    };

    // Readiness: Running but not Ready until the probe passes, then Ready, then not
    // Ready again when it fails.
    eventually(
        "readiness pod Running and not Ready",
        Duration::from_secs(60),
        || async {
            let p = get("readiness").await?;
            (!ready(&p)? && !p.status?.container_statuses?[0].ready).then_some(())
        },
    )
    .await;
    std::fs::write(flag_dir.join("ready"), "ok").unwrap();
    eventually("readiness pod Ready", Duration::from_secs(20), || async {
        ready(&get("readiness").await?)?.then_some(())
    })
    .await;
    std::fs::remove_file(flag_dir.join("ready")).unwrap();
    eventually(
        "readiness pod not Ready again",
        Duration::from_secs(20),
        || async { (!ready(&get("readiness").await?)?).then_some(()) },
    )
    .await;

    // Liveness: the failing probe gets the container killed and restarted.
    let restarts = eventually("liveness restarts", Duration::from_secs(60), || async {
        let p = get("liveness").await?;
        let n = p.status?.container_statuses?[0].restart_count;
        (n >= 1).then_some(n)
    })
    .await;
    println!("liveness pod restarted {restarts} time(s)");
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let reasons: Vec<String> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some("liveness"))
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons.iter().any(|r| r == "Unhealthy") && reasons.iter().any(|r| r == "Killing"),
        "{reasons:?}"
    );

    // configMap volume, secretKeyRef and envFrom are visible in the container.
    let config_pod = eventually("config pod Running", Duration::from_secs(60), || async {
        let p = get("config").await?;
        ready(&p)?.then_some(p)
    })
    .await;
    let lines = eventually("config pod output", Duration::from_secs(20), || {
        let lines = stdout_of(&work, &config_pod, "app");
        async move { (lines.len() >= 3).then_some(lines) }
    })
    .await;
    assert_eq!(
        lines[..3],
        ["hello-from-cm", "pw=s3cret", "mode=fast"],
        "{lines:?}"
    );

    // The init container ran first, wrote into the emptyDir, and the app read it.
    let init_pod = eventually("init pod Running", Duration::from_secs(60), || async {
        let p = get("init").await?;
        ready(&p)?.then_some(p)
    })
    .await;
    let st = init_pod.status.clone().unwrap();
    let init = &st
        .init_container_statuses
        .as_ref()
        .expect("initContainerStatuses")[0];
    let done = init
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .expect("the init container terminated");
    assert_eq!((done.exit_code, init.ready), (0, true));
    assert!(st
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_ == "Initialized" && c.status == "True"));
    let lines = eventually("init pod output", Duration::from_secs(20), || {
        let lines = stdout_of(&work, &init_pod, "app");
        async move { (!lines.is_empty()).then_some(lines) }
    })
    .await;
    assert_eq!(lines[0], "written-by-init");

    // Limits reached the cgroups; the downward API reached env and the volume.
    let limits_pod = eventually("limits pod Running", Duration::from_secs(60), || async {
        let p = get("limits").await?;
        ready(&p)?.then_some(p)
    })
    .await;
    let lines = eventually("limits pod output", Duration::from_secs(20), || {
        let lines = stdout_of(&work, &limits_pod, "app");
        async move { (lines.len() >= 5).then_some(lines) }
    })
    .await;
    assert_eq!(
        lines[..5],
        [
            "67108864",
            "50000",
            "mem=64 cpu=250 pod=limits node=skv-node",
            "limits",
            "500"
        ],
        "{lines:?}"
    );

    // The OOM kill shows as kubectl shows it: terminated, reason OOMKilled, 137.
    let oom = eventually("oom pod terminated", Duration::from_secs(60), || async {
        let st = get("oom").await?.status?;
        let cs = st.container_statuses?.into_iter().next()?;
        let t = cs.state?.terminated?;
        Some((st.phase, t.reason, t.exit_code))
    })
    .await;
    assert_eq!(
        oom,
        (Some("Failed".into()), Some("OOMKilled".into()), 137),
        "{oom:?}"
    );

    // OnFailure restarted the failed run once; the pod then Succeeded, Completed.
    let done = eventually(
        "onfailure pod Succeeded",
        Duration::from_secs(60),
        || async {
            let st = get("onfailure").await?.status?;
            (st.phase.as_deref() == Some("Succeeded")).then_some(st)
        },
    )
    .await;
    let cs = &done.container_statuses.unwrap()[0];
    let t = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(
        (cs.restart_count, t.reason.as_deref(), t.exit_code),
        (1, Some("Completed"), 0)
    );
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((last.reason.as_deref(), last.exit_code), (Some("Error"), 3));

    // The sidecar ran before `after` and beside the app; the pod completed anyway.
    let st = eventually("sidecar pod Succeeded", Duration::from_secs(60), || async {
        let st = get("sidecar").await?.status?;
        (st.phase.as_deref() == Some("Succeeded")).then_some(st)
    })
    .await;
    let app = &st.container_statuses.unwrap()[0];
    assert_eq!(
        app.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        0
    );
    let side = &st.init_container_statuses.unwrap()[0];
    assert_eq!((side.name.as_str(), side.restart_count), ("side", 0));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), kubelet)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    server.shutdown().await;
}
