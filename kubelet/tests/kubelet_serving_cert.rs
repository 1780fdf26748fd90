//! The API server trusts a kubelet only with a serving certificate its CA signed for
//! that node: an in-process API server and a kubelet on the in-memory runtime on
//! loopback; a kubelet serving a self-signed certificate is refused on `pods/log`
//! with a 500 naming the node (also as the real `kubectl logs` prints it), and one
//! that asked the server for its certificate is served. (The handshake cases in detail are unit tests in `apiserver/src/tls.rs`.)

mod common;
use common::eventually;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, LogParams, PostParams};
use skiff_apiserver::testing::TestServer;
use skiff_kubelet::cri::FakeRuntime;
use skiff_kubelet::node::Capacity;
use skiff_kubelet::server::{request_serving_cert, ServerConfig, ServingCert};
use tokio_util::sync::CancellationToken;

const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

/// What `pods/log` answered through the kube client and, when kubectl is installed,
/// what `kubectl logs` printed on stderr.
struct Answer {
    kube: Result<String, kube::Error>,
    kubectl_stderr: Option<String>,
}

/// Runs a kubelet for `node` serving `cert` (None: self-signed), creates a pod on it,
/// waits for Running and asks for its logs.
async fn logs_through(
    server: &TestServer,
    client: &kube::Client,
    node: &str,
    cert: Option<ServingCert>,
) -> Answer {
    let fake = Arc::new(FakeRuntime::new().with_pullable(&["busybox:1.36"]));
    let logs = tempfile::tempdir().unwrap();
    let mut config = skiff_kubelet::Config::new(node, client.clone(), fake);
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
        cert_names: vec!["127.0.0.1".into(), node.into()],
        serving_cert: cert,
    });
    let shutdown = CancellationToken::new();
    let kubelet = tokio::spawn(skiff_kubelet::run(config, shutdown.clone()));
    let nodes: Api<Node> = Api::all(client.clone());
    eventually(
        "kubelet endpoint on the node",
        Duration::from_secs(10),
        || {
            let nodes = nodes.clone();
            async move {
                nodes
                    .get_opt(node)
                    .await
                    .ok()??
                    .status?
                    .daemon_endpoints?
                    .kubelet_endpoint
                    .map(|_| ())
            }
        },
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let name = format!("web-{node}");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox:1.36"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    eventually("pod Running", Duration::from_secs(10), || {
        let (pods, name) = (pods.clone(), name.clone());
        async move {
            (pods.get(&name).await.ok()?.status?.phase.as_deref() == Some("Running")).then_some(())
        }
    })
    .await;
    let out = pods.logs(&name, &LogParams::default()).await;
    let kubectl_stderr = if std::path::Path::new(KUBECTL).exists() {
        let kubeconfig = server.kubeconfig_path().to_path_buf();
        let name = name.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(KUBECTL)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["logs", &name])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        Some(String::from_utf8_lossy(&out.stderr).to_string())
    } else {
        println!("skipped: the kubectl part, {KUBECTL} is not installed");
        None
    };
    shutdown.cancel();
    let _ = kubelet.await;
    Answer {
        kube: out,
        kubectl_stderr,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_kubelet_with_a_cluster_signed_certificate_is_trusted() {
    let server = TestServer::start().await;
    let client = server.client().await;

    let refused = logs_through(&server, &client, "node-self", None).await;
    if let Some(stderr) = &refused.kubectl_stderr {
        println!("kubectl logs said: {stderr}");
        assert!(
            stderr.contains("refusing the kubelet of node node-self"),
            "kubectl logs must say why: {stderr}"
        );
    }
    match refused.kube {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 500, "{s:?}");
            assert!(s.message.contains("node-self"), "{s:?}");
            assert!(s.message.contains("certificate"), "{s:?}");
        }
        other => panic!("a self-signed kubelet must be refused, got {other:?}"),
    }

    let cert = request_serving_cert(&client, "node-ok", &["127.0.0.1".into()])
        .await
        .unwrap();
    // No log file was written: an empty log, but the kubelet answered.
    let trusted = logs_through(&server, &client, "node-ok", Some(cert)).await;
    trusted
        .kube
        .expect("a kubelet with a certificate from the cluster CA is trusted");
    if let Some(stderr) = trusted.kubectl_stderr {
        assert_eq!(stderr, "", "kubectl logs of a trusted kubelet");
    }
}

/// A client for `server` that authenticates with `token`.
fn client_with_token(server: &TestServer, token: &str) -> kube::Client {
    use rustls::pki_types::pem::PemObject;
    let roots = rustls::pki_types::CertificateDer::pem_slice_iter(server.ca_pem().as_bytes())
        .map(|c| c.unwrap().to_vec())
        .collect();
    let mut cfg = kube::Config::new(server.url().parse().unwrap());
    cfg.root_cert = Some(roots);
    cfg.auth_info.token = Some(token.to_string().into());
    kube::Client::try_from(cfg).unwrap()
}

#[tokio::test]
async fn a_node_gets_a_certificate_for_itself_only() {
    let server = TestServer::start().await;
    // Join as node-a with the join secret, as `skiff agent` does.
    let joiner = client_with_token(&server, server.join_secret());
    let req = http::Request::post("/skiff/v1/join")
        .header("content-type", "application/json")
        .body(br#"{"nodeName": "node-a"}"#.to_vec())
        .unwrap();
    let joined: serde_json::Value = joiner.request(req).await.unwrap();
    let node_a = client_with_token(&server, joined["token"].as_str().unwrap());

    request_serving_cert(&node_a, "node-a", &["10.1.2.3".into(), "node-a".into()])
        .await
        .expect("a node gets its own certificate");
    let e = request_serving_cert(&node_a, "node-b", &["10.1.2.3".into()])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("only ask for its own"), "{e}");
    let e = request_serving_cert(&node_a, "node-a", &["node-b".into()])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("node-b") && e.contains("own node"), "{e}");
    // Without a credential: refused.
    let anonymous = client_with_token(&server, "nope");
    assert!(request_serving_cert(&anonymous, "node-a", &[])
        .await
        .is_err());
}
