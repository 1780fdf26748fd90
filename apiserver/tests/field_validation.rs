//! Server-side field validation (`?fieldValidation=Strict|Warn|Ignore`) on create,
//! update and patch, as kubectl 1.27+ relies on once `/openapi/v3` advertises it:
//! Strict refuses unknown and duplicate fields with upstream's message, Warn (the
//! default) answers with `Warning` headers, Ignore says nothing; unknown fields are
//! never stored.

use http_body_util::BodyExt;
use serde_json::{json, Value};
use skiff_apiserver::testing::TestServer;

const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

struct Answer {
    code: u16,
    body: Value,
    warnings: Vec<String>,
}

async fn call(c: &kube::Client, method: &str, path: &str, ct: &str, body: &[u8]) -> Answer {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(kube::client::Body::from(body.to_vec()))
        .unwrap();
    let resp = c.send(req).await.unwrap();
    let code = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        code,
        body,
        warnings,
    }
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    })
}

fn with_typo(name: &str) -> Vec<u8> {
    let mut d = deployment(name);
    d["spec"]["replicaz"] = json!(2);
    d["spec"]["template"]["spec"]["containers"][0]["imagee"] = json!("x");
    serde_json::to_vec(&d).unwrap()
}

async fn get(c: &kube::Client, name: &str) -> Answer {
    call(
        c,
        "GET",
        &format!("{DEPLOYS}/{name}"),
        "application/json",
        b"",
    )
    .await
}

#[tokio::test]
async fn strict_create_refuses_unknown_fields_with_upstreams_message() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let a = call(
        &c,
        "POST",
        &format!("{DEPLOYS}?fieldValidation=Strict"),
        "application/json",
        &with_typo("strict"),
    )
    .await;
    assert_eq!(a.code, 400, "{}", a.body);
    assert_eq!(a.body["reason"], "BadRequest");
    assert_eq!(
        a.body["message"],
        "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replicaz\", unknown field \"spec.template.spec.containers[0].imagee\""
    );
    assert_eq!(get(&c, "strict").await.code, 404);

    let a = call(
        &c,
        "POST",
        &format!("{DEPLOYS}?fieldValidation=Strict"),
        "application/json",
        &serde_json::to_vec(&deployment("fine")).unwrap(),
    )
    .await;
    assert_eq!((a.code, a.warnings.len()), (201, 0), "{}", a.body);
}

#[tokio::test]
async fn warn_is_the_default_and_unknown_fields_are_never_stored() {
    let server = TestServer::start().await;
    let c = server.client().await;
    for (query, name, want_warnings) in [
        ("", "default", true),
        ("?fieldValidation=Warn", "warn", true),
        ("?fieldValidation=Ignore", "ignore", false),
    ] {
        let a = call(
            &c,
            "POST",
            &format!("{DEPLOYS}{query}"),
            "application/json",
            &with_typo(name),
        )
        .await;
        assert_eq!(a.code, 201, "{query}: {}", a.body);
        let expected: Vec<String> = if want_warnings {
            vec![
                r#"299 - "unknown field \"spec.replicaz\"""#.to_string(),
                r#"299 - "unknown field \"spec.template.spec.containers[0].imagee\"""#.to_string(),
            ]
        } else {
            vec![]
        };
        assert_eq!(a.warnings, expected, "{query}");
        let stored = get(&c, name).await.body;
        assert!(stored["spec"].get("replicaz").is_none(), "{stored}");
        assert!(stored["spec"]["template"]["spec"]["containers"][0]
            .get("imagee")
            .is_none());
        assert_eq!(stored["spec"]["replicas"], 1);
    }
}

#[tokio::test]
async fn duplicate_fields_in_json_and_yaml() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let dup_json = br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"dup"},
        "spec":{"replicas":1,"replicas":3,"selector":{"matchLabels":{"app":"d"}},
        "template":{"metadata":{"labels":{"app":"d"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}"#;
    let a = call(
        &c,
        "POST",
        &format!("{DEPLOYS}?fieldValidation=Strict"),
        "application/json",
        dup_json,
    )
    .await;
    assert_eq!(a.code, 400);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .ends_with(r#"strict decoding error: duplicate field "spec.replicas""#),
        "{}",
        a.body
    );
    let a = call(&c, "POST", DEPLOYS, "application/json", dup_json).await;
    assert_eq!(a.code, 201);
    assert_eq!(
        a.warnings,
        vec![r#"299 - "duplicate field \"spec.replicas\"""#]
    );
    // The last value wins, as in Go's decoders.
    assert_eq!(a.body["spec"]["replicas"], 3);

    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dupy\n  name: dupy\nspec:\n  selector:\n    matchLabels: {app: y}\n  template:\n    metadata:\n      labels: {app: y}\n    spec:\n      containers: [{name: c, image: busybox}]\n";
    let a = call(
        &c,
        "POST",
        &format!("{DEPLOYS}?fieldValidation=Strict"),
        "application/yaml",
        yaml.as_bytes(),
    )
    .await;
    assert_eq!(a.code, 400);
    assert!(a.body["message"]
        .as_str()
        .unwrap()
        .contains(r#"duplicate field "metadata.name""#));
}

#[tokio::test]
async fn update_and_patch_honour_the_mode() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let body = serde_json::to_vec(&deployment("u")).unwrap();
    assert_eq!(
        call(&c, "POST", DEPLOYS, "application/json", &body)
            .await
            .code,
        201
    );
    let item = format!("{DEPLOYS}/u");

    let a = call(
        &c,
        "PUT",
        &format!("{item}?fieldValidation=Strict"),
        "application/json",
        &with_typo("u"),
    )
    .await;
    assert_eq!(a.code, 400, "{}", a.body);
    assert!(a.body["message"]
        .as_str()
        .unwrap()
        .contains(r#"unknown field "spec.replicaz""#));
    let a = call(&c, "PUT", &item, "application/json", &with_typo("u")).await;
    assert_eq!(a.code, 200, "{}", a.body);
    assert_eq!(a.warnings.len(), 2, "{:?}", a.warnings);
    assert!(a.body["spec"].get("replicaz").is_none());

    for ct in [
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ] {
        let patch = br#"{"spec":{"replicas":4,"replicaz":5}}"#;
        let a = call(
            &c,
            "PATCH",
            &format!("{item}?fieldValidation=Strict"),
            ct,
            patch,
        )
        .await;
        assert_eq!(a.code, 400, "{ct}: {}", a.body);
        assert!(a.body["message"]
            .as_str()
            .unwrap()
            .contains(r#"unknown field "spec.replicaz""#));
        assert_eq!(get(&c, "u").await.body["spec"]["replicas"], 1, "{ct}");

        let a = call(&c, "PATCH", &item, ct, patch).await;
        assert_eq!(a.code, 200, "{ct}: {}", a.body);
        assert_eq!(
            a.warnings,
            vec![r#"299 - "unknown field \"spec.replicaz\"""#]
        );
        assert_eq!(a.body["spec"]["replicas"], 4);
        assert!(a.body["spec"].get("replicaz").is_none());
        // Put it back for the next content type.
        let a = call(&c, "PATCH", &item, ct, br#"{"spec":{"replicas":1}}"#).await;
        assert_eq!((a.code, a.warnings.len()), (200, 0));
    }
    let a = call(
        &c,
        "PATCH",
        &format!("{item}?fieldValidation=Strict"),
        "application/json-patch+json",
        br#"[{"op":"add","path":"/spec/replicaz","value":1}]"#,
    )
    .await;
    assert_eq!(a.code, 400, "{}", a.body);

    let a = call(
        &c,
        "PATCH",
        &format!("{item}?fieldValidation=Strict"),
        "application/merge-patch+json",
        br#"{"metadata":{"labels":{"a":"1","a":"2"}}}"#,
    )
    .await;
    assert_eq!(a.code, 400, "{}", a.body);
    assert!(a.body["message"]
        .as_str()
        .unwrap()
        .contains(r#"duplicate field "metadata.labels.a""#));
}

#[tokio::test]
async fn a_bad_mode_is_a_bad_request_and_the_openapi_advertises_the_parameter() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let a = call(
        &c,
        "POST",
        &format!("{DEPLOYS}?fieldValidation=strict"),
        "application/json",
        &serde_json::to_vec(&deployment("m")).unwrap(),
    )
    .await;
    assert_eq!(a.code, 400);
    assert!(a.body["message"]
        .as_str()
        .unwrap()
        .contains("fieldValidation"));

    let doc = call(
        &c,
        "GET",
        "/openapi/v3/apis/apps/v1",
        "application/json",
        b"",
    )
    .await;
    let params = &doc.body["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
        ["patch"]["parameters"];
    assert!(
        params
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"),
        "{params}"
    );
}
