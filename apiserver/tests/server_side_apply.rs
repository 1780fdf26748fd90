//! Server-side apply over HTTPS: create-if-absent, no-op re-apply, conflicts and
//! force, removal of dropped fields, managedFields bookkeeping of ordinary writes,
//! the status subresource, dry runs and kubectl's client-side -> server-side move.

use http_body_util::BodyExt;
use serde_json::{json, Value};
use skiff_apiserver::testing::TestServer;

const APPLY: &str = "application/apply-patch+yaml";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

/// Sends a raw request; returns the status code and the body as JSON.
async fn call(
    client: &kube::Client,
    method: &str,
    path: &str,
    ct: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut b = http::Request::builder().method(method).uri(path);
    if let Some(ct) = ct {
        b = b.header("content-type", ct);
    }
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(body).unwrap()
    };
    let resp = client
        .send(b.body(kube::client::Body::from(bytes)).unwrap())
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).to_string()));
    (code, v)
}

fn web(replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}
            }
        }
    })
}

fn rv(v: &Value) -> String {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn managers(v: &Value) -> Vec<(String, String)> {
    v["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or("").to_string(),
                        e["operation"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn apply_creates_then_a_repeat_changes_nothing_and_a_change_configures() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let url = format!("{DEPLOYS}/web");

    let (code, v) = call(&c, "PATCH", &url, Some(APPLY), &web(2)).await;
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("fieldManager"),
        "{v}"
    );

    let url = format!("{url}?fieldManager=kubectl");
    let (code, created) = call(&c, "PATCH", &url, Some(APPLY), &web(2)).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(managers(&created), vec![("kubectl".into(), "Apply".into())]);
    let entry = &created["metadata"]["managedFields"][0];
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
    assert_eq!(created["spec"]["replicas"], 2);

    let (code, again) = call(&c, "PATCH", &url, Some(APPLY), &web(2)).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(rv(&again), rv(&created));

    let (code, changed) = call(&c, "PATCH", &url, Some(APPLY), &web(3)).await;
    assert_eq!(code, 200, "{changed}");
    assert_ne!(rv(&changed), rv(&created));
    assert_eq!(changed["spec"]["replicas"], 3);
    // The YAML form of the body works too.
    let yaml = serde_yaml::to_string(&web(4)).unwrap();
    let resp = c
        .send(
            http::Request::patch(url.as_str())
                .header("content-type", APPLY)
                .body(kube::client::Body::from(yaml.into_bytes()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, got) = call(&c, "GET", &format!("{DEPLOYS}/web"), None, &Value::Null).await;
    assert_eq!(got["spec"]["replicas"], 4);
}

#[tokio::test]
async fn conflicts_are_409_naming_the_field_and_force_wins() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let (code, v) = call(
        &c,
        "POST",
        &format!("{DEPLOYS}?fieldManager=kubectl-client-side-apply"),
        Some("application/json"),
        &web(2),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(
        managers(&v),
        vec![("kubectl-client-side-apply".into(), "Update".into())]
    );

    let url = format!("{DEPLOYS}/web?fieldManager=kubectl");
    let (code, v) = call(&c, "PATCH", &url, Some(APPLY), &web(3)).await;
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["reason"], "Conflict");
    assert_eq!(
        v["message"],
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    assert_eq!(
        v["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"kubectl-client-side-apply\" using apps/v1", "field": ".spec.replicas"}])
    );

    let (code, v) = call(
        &c,
        "PATCH",
        &format!("{url}&force=true"),
        Some(APPLY),
        &web(3),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["spec"]["replicas"], 3);
    let csa = v["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "kubectl-client-side-apply")
        .unwrap();
    assert!(
        csa["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
        "{csa}"
    );
}

#[tokio::test]
async fn fields_dropped_from_the_configuration_are_removed() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let url = "/api/v1/namespaces/default/configmaps/cfg?fieldManager=me";
    let cfg = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": data});
    let (code, _) = call(
        &c,
        "PATCH",
        url,
        Some(APPLY),
        &cfg(json!({"a": "1", "b": "2"})),
    )
    .await;
    assert_eq!(code, 201);
    // Another manager's key survives this manager's applies.
    let (code, _) = call(
        &c,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/cfg?fieldManager=other",
        Some("application/merge-patch+json"),
        &json!({"data": {"c": "3"}}),
    )
    .await;
    assert_eq!(code, 200);
    let (code, v) = call(&c, "PATCH", url, Some(APPLY), &cfg(json!({"a": "1"}))).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"], json!({"a": "1", "c": "3"}));
}

#[tokio::test]
async fn apply_needs_the_namespace_and_honours_dry_run() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let (code, v) = call(
        &c,
        "PATCH",
        "/apis/apps/v1/namespaces/nowhere/deployments/web?fieldManager=m",
        Some(APPLY),
        &web(1),
    )
    .await;
    assert_eq!((code, v["reason"].as_str()), (404, Some("NotFound")), "{v}");

    let (code, v) = call(
        &c,
        "PATCH",
        &format!("{DEPLOYS}/web?fieldManager=m&dryRun=All"),
        Some(APPLY),
        &web(1),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let (code, _) = call(&c, "GET", &format!("{DEPLOYS}/web"), None, &Value::Null).await;
    assert_eq!(code, 404);

    let mut wrong = web(1);
    wrong["metadata"]["name"] = json!("other");
    let (code, v) = call(
        &c,
        "PATCH",
        &format!("{DEPLOYS}/web?fieldManager=m"),
        Some(APPLY),
        &wrong,
    )
    .await;
    assert_eq!(code, 400, "{v}");
}

#[tokio::test]
async fn ordinary_writes_record_update_entries_and_managed_fields_round_trip() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}});
    let (code, v) = call(
        &c,
        "POST",
        &format!("{cms}?fieldManager=creator"),
        Some("application/json"),
        &cm,
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(managers(&v), vec![("creator".into(), "Update".into())]);

    // PUT back what was read: nothing moves.
    let (code, same) = call(
        &c,
        "PUT",
        &format!("{cms}/x?fieldManager=someone"),
        Some("application/json"),
        &v,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(rv(&same), rv(&v));
    assert_eq!(
        same["metadata"]["managedFields"],
        v["metadata"]["managedFields"]
    );

    // A patch by another manager takes the key it changes.
    let (code, p) = call(
        &c,
        "PATCH",
        &format!("{cms}/x?fieldManager=patcher"),
        Some("application/merge-patch+json"),
        &json!({"data": {"a": "2"}}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        managers(&p),
        vec![("patcher".into(), "Update".into())],
        "the creator owned only data.a, now the patcher's"
    );

    // `[]` keeps them, `[{}]` strips them.
    let (_, kept) = call(
        &c,
        "PATCH",
        &format!("{cms}/x"),
        Some("application/merge-patch+json"),
        &json!({"metadata": {"managedFields": []}}),
    )
    .await;
    assert_eq!(managers(&kept), managers(&p));
    let (code, stripped) = call(
        &c,
        "PATCH",
        &format!("{cms}/x"),
        Some("application/merge-patch+json"),
        &json!({"metadata": {"managedFields": [{}]}}),
    )
    .await;
    assert_eq!(code, 200, "{stripped}");
    assert!(
        stripped["metadata"].get("managedFields").is_none(),
        "{stripped}"
    );

    // Bad entries are refused naming the field.
    let (code, v) = call(
        &c,
        "PATCH",
        &format!("{cms}/x"),
        Some("application/merge-patch+json"),
        &json!({"metadata": {"managedFields": [{"manager": "m", "operation": "Take", "fieldsType": "FieldsV1"}]}}),
    )
    .await;
    assert_eq!(code, 422, "{v}");
    assert_eq!(
        v["details"]["causes"][0]["field"],
        "metadata.managedFields[0].operation"
    );
}

#[tokio::test]
async fn apply_through_status_is_recorded_against_the_subresource() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let (code, _) = call(
        &c,
        "PATCH",
        &format!("{DEPLOYS}/web?fieldManager=kubectl"),
        Some(APPLY),
        &web(1),
    )
    .await;
    assert_eq!(code, 201);
    let status = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                        "status": {"observedGeneration": 1, "replicas": 1}});
    let (code, v) = call(
        &c,
        "PATCH",
        &format!("{DEPLOYS}/web/status?fieldManager=ctl"),
        Some(APPLY),
        &status,
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"]["replicas"], 1);
    let e = v["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "ctl")
        .unwrap()
        .clone();
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {"f:observedGeneration": {}, "f:replicas": {}}})
    );
}

#[tokio::test]
async fn client_side_applied_objects_move_to_server_side_keeping_the_spec() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let (code, created) = call(
        &c,
        "POST",
        &format!("{DEPLOYS}?fieldManager=kubectl-client-side-apply"),
        Some("application/json"),
        &web(2),
    )
    .await;
    assert_eq!(code, 201);
    // What kubectl 1.27+ sends first: the client-side entry rewritten as an Apply entry.
    let mut entries = created["metadata"]["managedFields"].clone();
    entries[0]["manager"] = json!("kubectl");
    entries[0]["operation"] = json!("Apply");
    let (code, moved) = call(
        &c,
        "PATCH",
        &format!("{DEPLOYS}/web"),
        Some("application/json-patch+json"),
        &json!([{"op": "test", "path": "/metadata/resourceVersion", "value": rv(&created)},
                {"op": "replace", "path": "/metadata/managedFields", "value": entries}]),
    )
    .await;
    assert_eq!(code, 200, "{moved}");
    assert_eq!(managers(&moved), vec![("kubectl".into(), "Apply".into())]);

    let (code, applied) = call(
        &c,
        "PATCH",
        &format!("{DEPLOYS}/web?fieldManager=kubectl"),
        Some(APPLY),
        &web(2),
    )
    .await;
    assert_eq!(code, 200, "{applied}");
    assert_eq!(applied["spec"], created["spec"]);
    assert_eq!(managers(&applied), vec![("kubectl".into(), "Apply".into())]);
}

/// The managers whose entries own `spec.replicas`, sorted.
fn replica_owners(v: &Value) -> Vec<String> {
    let mut owners: Vec<String> = v["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e.pointer("/fieldsV1/f:spec/f:replicas").is_some())
        .map(|e| e["manager"].as_str().unwrap_or("").to_string())
        .collect();
    owners.sort();
    owners
}

#[tokio::test]
async fn apply_through_scale_owns_the_replica_count() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let web_url = format!("{DEPLOYS}/web");
    let scale_url = format!("{web_url}/scale");
    let scale = |n: i64| {
        json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
               "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": n}})
    };
    let (code, _) = call(
        &c,
        "PATCH",
        &format!("{web_url}?fieldManager=apply_test"),
        Some(APPLY),
        &web(1),
    )
    .await;
    assert_eq!(code, 201);

    // Another manager's apply through /scale conflicts with the Deployment's applier.
    let (code, v) = call(
        &c,
        "PATCH",
        &format!("{scale_url}?fieldManager=apply_scale"),
        Some(APPLY),
        &scale(17),
    )
    .await;
    assert_eq!(code, 409, "{v}");
    assert!(v["message"].as_str().unwrap().contains("apply_test"), "{v}");
    assert_eq!(v["details"]["causes"][0]["field"], ".spec.replicas", "{v}");

    // Forced, it takes the field alone.
    let (code, v) = call(
        &c,
        "PATCH",
        &format!("{scale_url}?fieldManager=apply_scale&force=true"),
        Some(APPLY),
        &scale(17),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["kind"].as_str(), v["spec"]["replicas"].as_i64()),
        (Some("Scale"), Some(17))
    );
    let (_, d) = call(&c, "GET", &web_url, None, &Value::Null).await;
    assert_eq!(d["spec"]["replicas"], 17);
    assert_eq!(replica_owners(&d), vec!["apply_scale"]);
    let entry = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "apply_scale")
        .unwrap()
        .clone();
    assert_eq!(
        (
            entry["operation"].as_str(),
            entry["subresource"].as_str(),
            entry["apiVersion"].as_str()
        ),
        (Some("Apply"), Some("scale"), Some("apps/v1")),
        "{entry}"
    );
    // The rest of the Deployment stays the first applier's.
    assert!(
        managers(&d).contains(&("apply_test".into(), "Apply".into())),
        "{d}"
    );

    // Re-applying changes nothing; applying the same count as a new manager co-owns it.
    let (code, again) = call(
        &c,
        "PATCH",
        &format!("{scale_url}?fieldManager=apply_scale"),
        Some(APPLY),
        &scale(17),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(rv(&again), rv(&d));
    let (code, _) = call(
        &c,
        "PATCH",
        &format!("{scale_url}?fieldManager=co_owning_test"),
        Some(APPLY),
        &scale(17),
    )
    .await;
    assert_eq!(code, 200);
    let (_, d) = call(&c, "GET", &web_url, None, &Value::Null).await;
    assert_eq!(replica_owners(&d), vec!["apply_scale", "co_owning_test"]);

    // A plain scale write takes the field from both.
    let (code, _) = call(
        &c,
        "PATCH",
        &format!("{scale_url}?fieldManager=scale_test"),
        Some("application/merge-patch+json"),
        &json!({"spec": {"replicas": 5}}),
    )
    .await;
    assert_eq!(code, 200);
    let (_, d) = call(&c, "GET", &web_url, None, &Value::Null).await;
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(replica_owners(&d), vec!["scale_test"]);

    // Bad applies are 4xx naming what is wrong.
    let cases = [
        ("", scale(3), 400),
        (
            "?fieldManager=x",
            json!({"kind": "Deployment", "apiVersion": "apps/v1", "spec": {"replicas": 3}}),
            400,
        ),
        ("?fieldManager=x", scale(-1), 422),
    ];
    for (q, body, want) in cases {
        let (code, v) = call(&c, "PATCH", &format!("{scale_url}{q}"), Some(APPLY), &body).await;
        assert_eq!(code, want, "{q} {body}: {v}");
        assert_eq!(v["kind"], "Status");
    }
}
