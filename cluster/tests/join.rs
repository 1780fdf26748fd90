//! Joining against a real in-process server: the token pins the CA, the node gets its
//! own credential and podCIDR, that credential reaches only the node's own objects,
//! a second join under the same name is refused with a clear answer, and deleting the
//! Node revokes the credential.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use skiff_apiserver::testing::TestServer;
use skiff_cluster::join::{join, make_token, JoinError};

async fn client_from(path: &std::path::Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

#[tokio::test]
async fn a_node_joins_and_is_limited_to_its_own_objects() {
    let server = TestServer::start().await;
    let admin = server.client().await;
    let token = make_token(server.ca_pem(), server.join_secret());
    let dir = tempfile::tempdir().unwrap();

    // A token for another CA is refused before the secret is sent.
    let wrong = make_token("some other CA", server.join_secret());
    match join(server.url(), &wrong, "n1", dir.path()).await {
        Err(JoinError::CaMismatch { .. }) => {}
        other => panic!("expected a CA mismatch, got {other:?}"),
    }
    assert!(!dir.path().join("node.kubeconfig").exists());

    let joined = join(server.url(), &token, "n1", dir.path()).await.unwrap();
    assert_eq!(joined.pod_cidr, "10.244.1.0/24");
    let node = client_from(&joined.kubeconfig).await;

    // Its own Node: yes. Another node's: no.
    let nodes: Api<Node> = Api::all(node.clone());
    let me: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
    nodes.create(&PostParams::default(), &me).await.unwrap();
    let other: Node = serde_json::from_value(json!({"metadata": {"name": "n2"}})).unwrap();
    let e = nodes
        .create(&PostParams::default(), &other)
        .await
        .unwrap_err();
    assert!(matches!(e, kube::Error::Api(ref s) if s.code == 403), "{e}");

    // Reading is fine; deleting a Deployment or creating a Pod is not.
    let pods: Api<Pod> = Api::namespaced(node.clone(), "default");
    pods.list(&Default::default()).await.unwrap();
    let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
    let e = pods.create(&PostParams::default(), &p).await.unwrap_err();
    assert!(matches!(e, kube::Error::Api(ref s) if s.code == 403), "{e}");
    let deps: Api<Deployment> = Api::namespaced(node.clone(), "default");
    let e = deps
        .delete("x", &DeleteParams::default())
        .await
        .unwrap_err();
    assert!(matches!(e, kube::Error::Api(ref s) if s.code == 403), "{e}");

    // Joining again under the same name: a clear refusal.
    let dir2 = tempfile::tempdir().unwrap();
    match join(server.url(), &token, "n1", dir2.path()).await {
        Err(JoinError::Refused(m)) => assert!(m.contains("kubectl delete node n1"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Deleting the Node revokes the credential; then the name can join again.
    Api::<Node>::all(admin)
        .delete("n1", &DeleteParams::default())
        .await
        .unwrap();
    let e = nodes.get("n1").await.unwrap_err();
    assert!(matches!(e, kube::Error::Api(ref s) if s.code == 401), "{e}");
    // Like upstream's node IPAM, the deleted node's podCIDR is free again.
    let again = join(server.url(), &token, "n1", dir2.path()).await.unwrap();
    assert_eq!(again.pod_cidr, "10.244.1.0/24");
    let other = join(
        server.url(),
        &token,
        "n2",
        tempfile::tempdir().unwrap().path(),
    )
    .await
    .unwrap();
    assert_eq!(
        other.pod_cidr, "10.244.2.0/24",
        "podCIDRs in use are never handed out twice"
    );
}
