//! Discovery over HTTP: the aggregated form (`apidiscovery.k8s.io` v2 and v2beta1) that
//! client-go 1.26+ asks for in `Accept`, and the legacy documents older clients read.

use http_body_util::BodyExt;
use serde_json::Value;
use skiff_apiserver::testing::TestServer;

const V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const V2BETA1: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// GETs `path` with `accept`; returns the Content-Type and the JSON body.
async fn get(c: &kube::Client, path: &str, accept: &str) -> (String, Value) {
    let req = http::Request::get(path)
        .header("accept", accept)
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = c.send(req).await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (ct, serde_json::from_slice(&body).unwrap())
}

fn resources<'a>(list: &'a Value, group: &str, version: &str) -> &'a Vec<Value> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"].as_str().unwrap_or("") == group)
        .and_then(|g| {
            g["versions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["version"] == version)
        })
        .map(|v| v["resources"].as_array().unwrap())
        .unwrap_or_else(|| panic!("{group}/{version} missing from {list}"))
}

#[tokio::test]
async fn aggregated_discovery_answers_with_the_type_asked_for() {
    let server = TestServer::start().await;
    let c = server.client().await;
    // What client-go 1.30+ sends.
    let modern = format!("{V2},{V2BETA1},application/json");
    let (ct, core) = get(&c, "/api", &modern).await;
    assert_eq!(ct, V2);
    assert_eq!(core["kind"], "APIGroupDiscoveryList");
    assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
    let pods = resources(&core, "", "v1")
        .iter()
        .find(|r| r["resource"] == "pods")
        .unwrap();
    assert_eq!(pods["shortNames"][0], "po");
    let subs: Vec<&str> = pods["subresources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subresource"].as_str().unwrap())
        .collect();
    for s in ["status", "log", "exec", "portforward"] {
        assert!(subs.contains(&s), "pods lack {s}: {subs:?}");
    }

    let (ct, apis) = get(&c, "/apis", &modern).await;
    assert_eq!(ct, V2);
    let deploy = resources(&apis, "apps", "v1")
        .iter()
        .find(|r| r["resource"] == "deployments")
        .unwrap();
    assert_eq!(deploy["responseKind"]["kind"], "Deployment");
    assert_eq!(deploy["singularResource"], "deployment");
    assert_eq!(deploy["scope"], "Namespaced");
    assert!(deploy["verbs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v == "watch"));

    // What client-go 1.26-1.29 sends: v2beta1 first.
    let (ct, old) = get(&c, "/apis", &format!("{V2BETA1},application/json")).await;
    assert_eq!(ct, V2BETA1);
    assert_eq!(old["apiVersion"], "apidiscovery.k8s.io/v2beta1");
    assert_eq!(old["items"], apis["items"]);
}

#[tokio::test]
async fn legacy_discovery_stays_for_clients_that_do_not_ask() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let (ct, core) = get(&c, "/api", "application/json").await;
    assert_eq!(ct, "application/json");
    assert_eq!(core["kind"], "APIVersions");
    let (ct, groups) = get(&c, "/apis", "application/json, */*").await;
    assert_eq!(ct, "application/json");
    assert_eq!(groups["kind"], "APIGroupList");
    // A lower q for the aggregated form leaves the legacy one preferred.
    let (_, groups) = get(&c, "/apis", &format!("{V2};q=0.5,application/json")).await;
    assert_eq!(groups["kind"], "APIGroupList");
    let (_, list) = get(&c, "/apis/apps/v1", "application/json").await;
    assert_eq!(list["kind"], "APIResourceList");
    // The kube crate discovers through the legacy documents.
    let discovery = kube::Discovery::new(c.clone()).run().await.unwrap();
    assert!(discovery.has_group("apps"));
}
