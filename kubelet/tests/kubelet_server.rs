//! Logs through the API server to the kubelet's HTTPS server: an in-process API server,
//! a kubelet on the in-memory runtime serving on loopback, a CRI log file written the
//! way containerd writes it, then `kube` and the real `kubectl logs` (plain, `--tail`,
//! `-f` streaming), and the Status errors for a pod that cannot have logs (400, 404).
//! Then exec's HTTP upgrade passed by the kubelet to a stand-in streaming server.

mod common;
use common::eventually;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, LogParams, PostParams};
use skiff_apiserver::testing::TestServer;
use skiff_kubelet::cri::{api, CriError, ExecOutput, FakeRuntime, Runtime};
use skiff_kubelet::node::Capacity;
use skiff_kubelet::server::ServerConfig;
use tokio_util::sync::CancellationToken;

const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

fn pod(name: &str, node: Option<&str>) -> Pod {
    let mut spec = serde_json::json!({"containers": [{"name": "app", "image": "busybox:1.36", "command": ["sleep", "3600"]}]});
    if let Some(n) = node {
        spec["nodeName"] = serde_json::json!(n);
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap()
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Kills the kubectl we started (by its own handle) also when an assertion fails.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_reach_kubectl_through_the_api_server_and_the_kubelet() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let server = TestServer::start().await;
    let client = server.client().await;
    let fake = Arc::new(FakeRuntime::new().with_pullable(&["busybox:1.36"]));
    let logs = tempfile::tempdir().unwrap();

    let mut config = skiff_kubelet::Config::new("node-a", client.clone(), fake.clone());
    config.node_ip = "127.0.0.1".into();
    config.capacity = Some(Capacity {
        cpu_millis: 1000,
        memory_bytes: 1 << 30,
        pods: 10,
    });
    config.log_root = logs.path().to_path_buf();
    config.resync = Duration::from_millis(300);
    config.server = Some(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        token: None,
        streaming_netns: None,
        cert_names: vec!["127.0.0.1".into()],
        serving_cert: Some(
            skiff_kubelet::server::request_serving_cert(&client, "node-a", &["127.0.0.1".into()])
                .await
                .unwrap(),
        ),
    });
    let shutdown = CancellationToken::new();
    let kubelet = tokio::spawn(skiff_kubelet::run(config, shutdown.clone()));

    // The node says where its kubelet listens.
    let nodes: Api<Node> = Api::all(client.clone());
    let port = eventually(
        "kubelet endpoint on the node",
        Duration::from_secs(10),
        || {
            let nodes = nodes.clone();
            async move {
                nodes
                    .get_opt("node-a")
                    .await
                    .ok()??
                    .status?
                    .daemon_endpoints?
                    .kubelet_endpoint?
                    .port
                    .into()
            }
        },
    )
    .await;
    assert_ne!(port, 0);

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let created = pods
        .create(&PostParams::default(), &pod("web", Some("node-a")))
        .await
        .unwrap();
    let uid = created.metadata.uid.unwrap();
    eventually("pod Running", Duration::from_secs(10), || {
        let pods = pods.clone();
        async move {
            (pods.get("web").await.ok()?.status?.phase.as_deref() == Some("Running")).then_some(())
        }
    })
    .await;
    let dir: PathBuf = logs.path().join(format!("default_web_{uid}/app"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("0.log");
    append(
        &file,
        "2024-01-01T00:00:00.000000001Z stdout F hello from web\n\
         2024-01-01T00:00:01.000000001Z stderr F a warning\n\
         2024-01-01T00:00:02.000000001Z stdout P split \n\
         2024-01-01T00:00:02.500000001Z stdout F line\n",
    );

    // The kube client (GET pods/web/log) sees the joined lines of both streams.
    let text = pods.logs("web", &LogParams::default()).await.unwrap();
    assert_eq!(text, "hello from web\na warning\nsplit line\n");
    let tail = pods
        .logs(
            "web",
            &LogParams {
                tail_lines: Some(1),
                timestamps: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail, "2024-01-01T00:00:02.000000001Z split line\n");

    // A pod that is not scheduled: 400 saying so; a missing pod: 404.
    pods.create(&PostParams::default(), &pod("pending", None))
        .await
        .unwrap();
    match pods.logs("pending", &LogParams::default()).await {
        Err(kube::Error::Api(s)) => assert!(
            s.code == 400 && s.message.contains("not scheduled"),
            "{s:?}"
        ),
        other => panic!("expected 400, got {other:?}"),
    }
    match pods.logs("nope", &LogParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404, "{s:?}"),
        other => panic!("expected 404, got {other:?}"),
    }
    // (A node whose kubelet is unreachable answers 503 naming the node: the kube
    // client retries 503s with back-off for minutes, so that case is covered by the
    // apiserver's unit tests of `kubelet_address` instead.)

    if !Path::new(KUBECTL).exists() {
        println!("skipped: kubectl part of the test, {KUBECTL} is not installed");
    } else {
        let kubeconfig = server.kubeconfig_path().to_path_buf();
        let out = Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["logs", "web"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl logs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello from web\na warning\nsplit line\n"
        );

        // `kubectl logs -f` prints what is appended while it runs.
        let child = Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["logs", "-f", "--tail=1", "web"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut guard = ChildGuard(child);
        let stdout = guard.0.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("kubectl logs -f prints the tail");
        assert_eq!(first, "split line");
        append(
            &file,
            "2024-01-01T00:00:03.000000001Z stdout F appended later\n",
        );
        let next = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("kubectl logs -f streams new lines");
        assert_eq!(next, "appended later");
        drop(guard);
    }

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), kubelet)
        .await
        .expect("kubelet stops")
        .unwrap()
        .unwrap();
    server.shutdown().await;
}

/// The fake runtime, except that its streaming calls point at `stream_url`.
struct StreamingFake {
    inner: FakeRuntime,
    stream_url: String,
}

#[async_trait::async_trait]
impl Runtime for StreamingFake {
    async fn version(&self) -> Result<api::VersionResponse, CriError> {
        self.inner.version().await
    }
    async fn run_pod_sandbox(&self, c: api::PodSandboxConfig) -> Result<String, CriError> {
        self.inner.run_pod_sandbox(c).await
    }
    async fn stop_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        self.inner.stop_pod_sandbox(id).await
    }
    async fn remove_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        self.inner.remove_pod_sandbox(id).await
    }
    async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus, CriError> {
        self.inner.pod_sandbox_status(id).await
    }
    async fn list_pod_sandboxes(
        &self,
        f: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>, CriError> {
        self.inner.list_pod_sandboxes(f).await
    }
    async fn create_container(
        &self,
        sb: &str,
        c: api::ContainerConfig,
        s: api::PodSandboxConfig,
    ) -> Result<String, CriError> {
        self.inner.create_container(sb, c, s).await
    }
    async fn start_container(&self, id: &str) -> Result<(), CriError> {
        self.inner.start_container(id).await
    }
    async fn stop_container(&self, id: &str, t: Duration) -> Result<(), CriError> {
        self.inner.stop_container(id, t).await
    }
    async fn remove_container(&self, id: &str) -> Result<(), CriError> {
        self.inner.remove_container(id).await
    }
    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus, CriError> {
        self.inner.container_status(id).await
    }
    async fn list_containers(
        &self,
        f: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>, CriError> {
        self.inner.list_containers(f).await
    }
    async fn pull_image(
        &self,
        i: &str,
        s: Option<api::PodSandboxConfig>,
    ) -> Result<String, CriError> {
        self.inner.pull_image(i, s).await
    }
    async fn image_status(&self, i: &str) -> Result<Option<api::Image>, CriError> {
        self.inner.image_status(i).await
    }
    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        t: Duration,
    ) -> Result<ExecOutput, CriError> {
        self.inner.exec_sync(id, cmd, t).await
    }
    async fn exec(&self, r: api::ExecRequest) -> Result<String, CriError> {
        self.inner.exec(r.clone()).await?;
        Ok(format!(
            "{}/exec/{}?cmd={}",
            self.stream_url,
            r.container_id,
            r.cmd.join("+")
        ))
    }
    async fn attach(&self, r: api::AttachRequest) -> Result<String, CriError> {
        self.inner.attach(r).await
    }
    async fn port_forward(&self, r: api::PortForwardRequest) -> Result<String, CriError> {
        self.inner.port_forward(r.clone()).await?;
        Ok(format!(
            "{}/portforward/{}",
            self.stream_url, r.pod_sandbox_id
        ))
    }
}

/// Trusts any certificate: the kubelet's is self-signed (the API server does the same).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A stand-in for the runtime's streaming server: answers one upgrade request with 101,
/// writes the request line it saw, then echoes.
async fn echo_streaming_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tcp = tokio::io::BufReader::new(tcp);
        let mut request_line = String::new();
        tcp.read_line(&mut request_line).await.unwrap();
        let mut upgrade = String::new();
        loop {
            let mut h = String::new();
            tcp.read_line(&mut h).await.unwrap();
            if h.to_ascii_lowercase().starts_with("upgrade:") {
                upgrade = h.trim().to_string();
            }
            if h == "\r\n" || h.is_empty() {
                break;
            }
        }
        let head = format!("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test-echo\r\n\r\n{} {}\n", request_line.trim(), upgrade);
        tcp.get_mut().write_all(head.as_bytes()).await.unwrap();
        let (mut r, mut w) = tokio::io::split(tcp);
        let _ = tokio::io::copy(&mut r, &mut w).await;
    });
    (addr, task)
}

/// The kubelet passes an exec upgrade through to the runtime's streaming URL: the
/// client sees 101, the streaming server gets the CRI URL's path, bytes flow both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_upgrades_pass_through_the_kubelet_to_the_streaming_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let client = server.client().await;
    let (stream_addr, echo) = echo_streaming_server().await;
    let inner = FakeRuntime::new().with_pullable(&["busybox:1.36"]);
    let runtime = Arc::new(StreamingFake {
        inner,
        stream_url: format!("http://{stream_addr}"),
    });
    let logs = tempfile::tempdir().unwrap();
    let mut config = skiff_kubelet::Config::new("node-x", client.clone(), runtime);
    config.node_ip = "127.0.0.1".into();
    config.capacity = Some(Capacity {
        cpu_millis: 1000,
        memory_bytes: 1 << 30,
        pods: 10,
    });
    config.log_root = logs.path().to_path_buf();
    config.resync = Duration::from_millis(300);
    config.server = Some(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        token: Some("s3cret".into()),
        streaming_netns: None,
        cert_names: vec!["127.0.0.1".into()],
        serving_cert: Some(
            skiff_kubelet::server::request_serving_cert(&client, "node-x", &["127.0.0.1".into()])
                .await
                .unwrap(),
        ),
    });
    let shutdown = CancellationToken::new();
    let kubelet = tokio::spawn(skiff_kubelet::run(config, shutdown.clone()));
    let nodes: Api<Node> = Api::all(client.clone());
    let port: i32 = eventually("kubelet endpoint", Duration::from_secs(10), || {
        let nodes = nodes.clone();
        async move {
            nodes
                .get_opt("node-x")
                .await
                .ok()??
                .status?
                .daemon_endpoints?
                .kubelet_endpoint?
                .port
                .into()
        }
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("sh", Some("node-x")))
        .await
        .unwrap();
    eventually("pod Running", Duration::from_secs(10), || {
        let pods = pods.clone();
        async move {
            (pods.get("sh").await.ok()?.status?.phase.as_deref() == Some("Running")).then_some(())
        }
    })
    .await;

    let connect = || async {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port as u16))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .unwrap()
    };
    let read_head = |buf: &[u8]| buf.windows(4).position(|w| w == b"\r\n\r\n");

    // Without the token: 401.
    let mut tls = connect().await;
    tls.write_all(b"GET /exec/default/sh/app?command=hostname HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let mut tls = connect().await;
    tls.write_all(
        b"GET /exec/default/sh/app?command=sh&command=-c&command=hostname&stdout=true HTTP/1.1\r\nHost: k\r\n\
          Authorization: Bearer s3cret\r\nConnection: Upgrade\r\nUpgrade: test-echo\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&buf).contains("test-echo\n") {
        assert!(
            Instant::now() < deadline,
            "no upgrade answer: {}",
            String::from_utf8_lossy(&buf)
        );
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    let head_end = read_head(&buf).unwrap();
    let first = &text[head_end + 4..];
    assert!(
        first.starts_with("GET /exec/"),
        "the streaming server got the CRI url: {first}"
    );
    assert!(
        first.contains("cmd=sh+-c+hostname"),
        "the command reached CRI in order: {first}"
    );
    assert!(
        first.to_ascii_lowercase().contains("upgrade: test-echo"),
        "{first}"
    );
    tls.write_all(b"ping through the kubelet").await.unwrap();
    let mut echoed = vec![0u8; 24];
    tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"ping through the kubelet");
    drop(tls);

    echo.abort();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), kubelet)
        .await
        .expect("kubelet stops")
        .unwrap()
        .unwrap();
    server.shutdown().await;
}
