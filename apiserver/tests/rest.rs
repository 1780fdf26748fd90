//! The REST layer over HTTPS, request by request: status codes and Status bodies for bad
//! input, Tables, discovery, watch semantics (selectors, 410) and authentication.

use std::time::Duration;

use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use skiff_apiserver::testing::TestServer;

/// Sends a raw request; returns the status code and the body as JSON (or a string).
async fn call(
    client: &kube::Client,
    method: &str,
    path: &str,
    ct: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut b = http::Request::builder().method(method).uri(path);
    if let Some(ct) = ct {
        b = b.header("content-type", ct);
    }
    let resp = client
        .send(b.body(kube::client::Body::from(body)).unwrap())
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).to_string()));
    (code, v)
}

async fn accept(client: &kube::Client, path: &str, accept: &str) -> Value {
    let req = http::Request::get(path)
        .header("accept", accept)
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

fn status_of(v: &Value) -> (&str, u64) {
    assert_eq!(v["kind"], "Status", "{v}");
    (
        v["reason"].as_str().unwrap_or(""),
        v["code"].as_u64().unwrap_or(0),
    )
}

#[tokio::test]
async fn bad_input_gets_4xx_status_objects() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let cms = "/api/v1/namespaces/default/configmaps";

    let (code, v) = call(
        &c,
        "POST",
        cms,
        Some("application/json"),
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!((code, status_of(&v)), (400, ("BadRequest", 400)));

    let (code, v) = call(&c, "POST", cms, Some("text/plain"), b"x".to_vec()).await;
    assert_eq!((code, status_of(&v).1), (415, 415));

    let big = vec![b' '; 3 * 1024 * 1024 + 10];
    let (code, v) = call(&c, "POST", cms, Some("application/json"), big).await;
    assert_eq!((code, status_of(&v).1), (413, 413));

    let wrong_kind = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}});
    let (code, _) = call(
        &c,
        "POST",
        cms,
        Some("application/json"),
        serde_json::to_vec(&wrong_kind).unwrap(),
    )
    .await;
    assert_eq!(code, 400);

    let invalid =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_Valid"}});
    let (code, v) = call(
        &c,
        "POST",
        cms,
        Some("application/json"),
        serde_json::to_vec(&invalid).unwrap(),
    )
    .await;
    assert_eq!((code, status_of(&v)), (422, ("Invalid", 422)));
    assert_eq!(v["details"]["causes"][0]["field"], "metadata.name");

    let (code, _) = call(&c, "GET", "/api/v1/widgets", None, vec![]).await;
    assert_eq!(code, 404);

    let (code, v) = call(
        &c,
        "GET",
        "/api/v1/configmaps?fieldSelector=spec.nope%3Dx",
        None,
        vec![],
    )
    .await;
    assert_eq!((code, status_of(&v).1), (400, 400));

    let (code, _) = call(
        &c,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/x",
        Some("application/weird"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(code, 415);

    // YAML bodies are accepted; a YAML alias bomb is refused.
    let yaml =
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n".to_vec();
    let (code, v) = call(&c, "POST", cms, Some("application/yaml"), yaml).await;
    assert_eq!(code, 201, "{v}");
    let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x]\n");
    for (i, l) in ["b", "c", "d", "e", "f", "g", "h", "i"].iter().enumerate() {
        let prev = ["a", "b", "c", "d", "e", "f", "g", "h"][i];
        bomb.push_str(&format!(
            "{l}: &{l} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    let (code, _) = call(&c, "POST", cms, Some("application/yaml"), bomb.into_bytes()).await;
    assert_eq!(code, 400);

    // The server still answers after all of that.
    let (code, _) = call(&c, "GET", cms, None, vec![]).await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let server = TestServer::start().await;
    let text = std::fs::read_to_string(server.kubeconfig_path())
        .unwrap()
        .replace(server.token(), "wrong-token");
    let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let bad = kube::Client::try_from(cfg).unwrap();
    let (code, v) = call(&bad, "GET", "/api/v1/namespaces", None, vec![]).await;
    assert_eq!((code, status_of(&v)), (401, ("Unauthorized", 401)));
    // Health stays public, as upstream.
    let (code, _) = call(&bad, "GET", "/healthz", None, vec![]).await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn tables_and_discovery_serve_kubectl() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let t = accept(
        &c,
        "/api/v1/namespaces",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .await;
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["columnDefinitions"][0]["name"], "Name");
    assert!(t["rows"].as_array().unwrap().len() >= 4);
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let one = accept(
        &c,
        "/api/v1/namespaces/default",
        "application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    .await;
    assert_eq!(one["rows"].as_array().unwrap().len(), 1);

    let (_, apis) = call(&c, "GET", "/apis", None, vec![]).await;
    let groups: Vec<&str> = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in [
        "apps",
        "discovery.k8s.io",
        "networking.k8s.io",
        "coordination.k8s.io",
        "events.k8s.io",
    ] {
        assert!(groups.contains(&g), "{g} missing from {groups:?}");
    }
    let (_, core) = call(&c, "GET", "/api/v1", None, vec![]).await;
    let pods = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap();
    assert_eq!(pods["shortNames"], json!(["po"]));
    let (code, v) = call(&c, "GET", "/version", None, vec![]).await;
    assert_eq!((code, v["major"].as_str()), (200, Some("1")));
}

#[tokio::test]
async fn watch_applies_selectors_and_expires_old_versions() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let mk = |name: &str, tier: &str| {
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"tier": tier}}})).unwrap()
    };
    call(&c, "POST", cms, Some("application/json"), mk("a", "front")).await;

    // Watch only tier=front; moving "a" to tier=back must look like a DELETED.
    let req = http::Request::get(format!(
        "{cms}?watch=true&labelSelector=tier%3Dfront&timeoutSeconds=10"
    ))
    .body(kube::client::Body::empty())
    .unwrap();
    let resp = c.send(req).await.unwrap();
    let mut body = resp.into_body().into_data_stream();
    let patch = serde_json::to_vec(&json!({"metadata": {"labels": {"tier": "back"}}})).unwrap();
    call(
        &c,
        "PATCH",
        &format!("{cms}/a"),
        Some("application/merge-patch+json"),
        patch,
    )
    .await;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while text.lines().count() < 2 && tokio::time::Instant::now() < deadline {
        if let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_secs(5), body.next()).await
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    let types: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(types, vec!["ADDED", "DELETED"], "{text}");

    let (code, _) = call(
        &c,
        "GET",
        &format!("{cms}?watch=true&resourceVersion=abc"),
        None,
        vec![],
    )
    .await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn watching_from_a_compacted_revision_gets_410_expired() {
    let opts = skiff_apiserver::store::StoreOptions {
        max_events: 5,
        min_events: 5,
        window: Duration::from_secs(3600),
    };
    let server = TestServer::start_with(opts).await;
    let c = server.client().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    for i in 0..20 {
        let b = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}")}})).unwrap();
        assert_eq!(
            call(&c, "POST", cms, Some("application/json"), b).await.0,
            201
        );
    }
    let req = http::Request::get(format!(
        "{cms}?watch=true&resourceVersion=2&timeoutSeconds=5"
    ))
    .body(kube::client::Body::empty())
    .unwrap();
    let resp = c.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body().into_data_stream();
    let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let ev: Value = serde_json::from_slice(&chunk).unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
    // An old continue token is refused the same way.
    let list: Value = call(&c, "GET", &format!("{cms}?limit=2"), None, vec![])
        .await
        .1;
    assert!(list["metadata"]["continue"].is_string());
}
