//! The clients `skiff server` and `skiff agent` give their components name them in the
//! User-Agent, so the API server records each component as the field manager of what
//! it writes (before this, every component's entry had an empty manager name).

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;
use skiff_apiserver::testing::TestServer;
use skiff_cluster::control_plane::admin_client;

#[tokio::test]
async fn writes_are_managed_under_the_components_name() {
    let server = TestServer::start().await;
    let client = admin_client(server.kubeconfig_path(), "skiff-controller-manager")
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"a": "1"}})).unwrap();
    let made = cms.create(&PostParams::default(), &cm).await.unwrap();
    let managers: Vec<_> = made
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        managers,
        vec![("skiff-controller-manager".to_string(), "Update".to_string())]
    );
}
