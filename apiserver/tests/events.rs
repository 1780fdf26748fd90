//! Events are one resource served in two group-versions: core `v1` and
//! `events.k8s.io/v1`. These tests write through one API and read, list, watch, select,
//! print and delete through the other, and check that Events an older skiff kept under
//! their own events.k8s.io key prefix are moved into the shared storage at start.

use std::time::Duration;

use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use skiff_apiserver::testing::TestServer;

const CORE: &str = "/api/v1/namespaces/default/events";
const V1: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

async fn call(
    client: &kube::Client,
    method: &str,
    path: &str,
    ct: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut b = http::Request::builder().method(method).uri(path);
    if let Some(ct) = ct {
        b = b.header("content-type", ct);
    }
    let body = body
        .map(|v| kube::client::Body::from(serde_json::to_vec(&v).unwrap()))
        .unwrap_or_else(kube::client::Body::empty);
    let resp = client.send(b.body(body).unwrap()).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).to_string()));
    (code, v)
}

async fn get(c: &kube::Client, path: &str) -> (u16, Value) {
    call(c, "GET", path, None, None).await
}

async fn post(c: &kube::Client, path: &str, body: Value) -> Value {
    let (code, v) = call(c, "POST", path, Some("application/json"), Some(body)).await;
    assert_eq!(code, 201, "{v}");
    v
}

/// An old-style core Event, as a kubelet of the `record` package writes it.
fn core_event(name: &str, about: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name},
        "involvedObject": {"kind": "Pod", "name": about, "namespace": "default"},
        "reason": "Pulled", "message": "pulled the image", "type": "Normal",
        "source": {"component": "kubelet", "host": "n1"},
        "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:05Z",
        "count": 3,
    })
}

/// A new-style events.k8s.io Event, as the scheduler writes it.
fn v1_event(name: &str, about: &str) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name},
        "regarding": {"kind": "Pod", "name": about, "namespace": "default"},
        "reason": "Scheduled", "note": "assigned to n1", "type": "Normal",
        "action": "Binding", "reportingController": "skiff.dev/scheduler",
        "reportingInstance": "s1", "eventTime": "2024-01-01T00:00:00.000000Z",
    })
}

fn names(list: &Value) -> Vec<String> {
    let mut n: Vec<String> = list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

#[tokio::test]
async fn an_event_written_through_one_api_is_read_through_the_other() {
    let server = TestServer::start().await;
    let c = server.client().await;

    let written = post(&c, CORE, core_event("old.1", "web")).await;
    let (code, v) = get(&c, &format!("{V1}/old.1")).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["apiVersion"], "events.k8s.io/v1");
    assert_eq!(v["regarding"]["name"], "web");
    assert_eq!(v["note"], "pulled the image");
    assert_eq!(
        v["deprecatedSource"],
        json!({"component": "kubelet", "host": "n1"})
    );
    assert_eq!(v["deprecatedCount"], 3);
    assert_eq!(v["deprecatedFirstTimestamp"], "2024-01-01T00:00:00Z");
    assert_eq!(v["deprecatedLastTimestamp"], "2024-01-01T00:00:05Z");
    assert!(
        v.get("involvedObject").is_none() && v.get("message").is_none(),
        "{v}"
    );
    assert_eq!(v["metadata"]["uid"], written["metadata"]["uid"]);
    assert_eq!(
        v["metadata"]["resourceVersion"],
        written["metadata"]["resourceVersion"]
    );

    let created = post(&c, V1, v1_event("new.1", "web")).await;
    assert_eq!(created["apiVersion"], "events.k8s.io/v1");
    assert_eq!(created["note"], "assigned to n1");
    let (code, v) = get(&c, &format!("{CORE}/new.1")).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["involvedObject"]["name"], "web");
    assert_eq!(v["message"], "assigned to n1");
    assert_eq!(v["reportingComponent"], "skiff.dev/scheduler");
    assert_eq!(v["reportingInstance"], "s1");
    assert_eq!(v["action"], "Binding");
    assert_eq!(v["eventTime"], "2024-01-01T00:00:00.000000Z");

    // Both lists hold both Events, each in its own shape.
    let (_, core_list) = get(&c, CORE).await;
    let (_, v1_list) = get(&c, V1).await;
    assert_eq!(names(&core_list), vec!["new.1", "old.1"]);
    assert_eq!(names(&v1_list), vec!["new.1", "old.1"]);
    assert_eq!(v1_list["kind"], "EventList");
    assert_eq!(v1_list["apiVersion"], "events.k8s.io/v1");
    assert!(v1_list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["apiVersion"] == "events.k8s.io/v1" && i.get("regarding").is_some()));
    assert!(core_list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["apiVersion"] == "v1" && i.get("involvedObject").is_some()));

    // Through events.k8s.io only the series of an Event may change (upstream's update
    // rules), and the core API reads the change.
    let (code, v) = call(
        &c,
        "PATCH",
        &format!("{V1}/old.1"),
        Some("application/merge-patch+json"),
        Some(json!({"note": "pulled again"})),
    )
    .await;
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["details"]["causes"][0]["field"], "message", "{v}");
    let series = json!({"count": 2, "lastObservedTime": "2024-01-01T00:00:09.000000Z"});
    let (code, v) = call(
        &c,
        "PATCH",
        &format!("{V1}/new.1"),
        Some("application/merge-patch+json"),
        Some(json!({"series": series})),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let (_, v) = get(&c, &format!("{CORE}/new.1")).await;
    assert_eq!(v["series"], series);
    // The core API has no such rule.
    let (code, v) = call(
        &c,
        "PATCH",
        &format!("{CORE}/old.1"),
        Some("application/merge-patch+json"),
        Some(json!({"message": "pulled again", "count": 4})),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let (_, v) = get(&c, &format!("{V1}/old.1")).await;
    assert_eq!(
        (v["note"].as_str(), v["deprecatedCount"].as_i64()),
        (Some("pulled again"), Some(4))
    );

    // Putting back what was read changes nothing, even an old-style Event through
    // events.k8s.io.
    let (_, before) = get(&c, &format!("{V1}/old.1")).await;
    let (code, after) = call(
        &c,
        "PUT",
        &format!("{V1}/old.1"),
        Some("application/json"),
        Some(before.clone()),
    )
    .await;
    assert_eq!(code, 200, "{after}");
    assert_eq!(
        after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"],
        "{before}\n{after}"
    );

    // Deleting through one API removes the Event from both.
    let (code, v) = call(&c, "DELETE", &format!("{V1}/old.1"), None, None).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["apiVersion"], "events.k8s.io/v1");
    assert_eq!(get(&c, &format!("{CORE}/old.1")).await.0, 404);
    let (code, _) = call(&c, "DELETE", &format!("{CORE}/new.1"), None, None).await;
    assert_eq!(code, 200);
    assert_eq!(get(&c, &format!("{V1}/new.1")).await.0, 404);
    let (_, v1_list) = get(&c, V1).await;
    assert!(names(&v1_list).is_empty(), "{v1_list}");
}

/// Reads watch lines until `want` arrived or a few seconds passed.
async fn watch_lines(
    c: &kube::Client,
    path: &str,
    want: usize,
    write: impl std::future::Future,
) -> Vec<Value> {
    let req = http::Request::get(path)
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = c.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body().into_data_stream();
    write.await;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while text.lines().count() < want && tokio::time::Instant::now() < deadline {
        if let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_secs(5), body.next()).await
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_watch_through_one_api_sees_writes_through_the_other() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let (_, list) = get(&c, V1).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let lines = watch_lines(
        &c,
        &format!("{V1}?watch=true&resourceVersion={rv}&timeoutSeconds=10"),
        2,
        async {
            post(&c, CORE, core_event("a.1", "web")).await;
            call(&c, "DELETE", &format!("{CORE}/a.1"), None, None).await;
        },
    )
    .await;
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["ADDED", "DELETED"], "{lines:?}");
    for l in &lines {
        assert_eq!(l["object"]["apiVersion"], "events.k8s.io/v1", "{l}");
        assert_eq!(l["object"]["regarding"]["name"], "web", "{l}");
        assert_eq!(l["object"]["note"], "pulled the image", "{l}");
    }

    // A core watch with a field selector sees only Events about its object, written
    // through events.k8s.io.
    let lines = watch_lines(
        &c,
        &format!("{CORE}?watch=true&fieldSelector=involvedObject.name%3Dweb&timeoutSeconds=10"),
        1,
        async {
            post(&c, V1, v1_event("b.1", "other")).await;
            post(&c, V1, v1_event("b.2", "web")).await;
        },
    )
    .await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["type"], "ADDED");
    assert_eq!(lines[0]["object"]["metadata"]["name"], "b.2");
    assert_eq!(lines[0]["object"]["apiVersion"], "v1");
    assert_eq!(lines[0]["object"]["involvedObject"]["name"], "web");
    assert_eq!(lines[0]["object"]["message"], "assigned to n1");
}

#[tokio::test]
async fn field_selectors_use_each_apis_field_names() {
    let server = TestServer::start().await;
    let c = server.client().await;
    post(&c, CORE, core_event("c.1", "web")).await;
    post(&c, CORE, core_event("c.2", "db")).await;
    post(&c, V1, v1_event("v.1", "web")).await;
    post(&c, V1, v1_event("v.2", "db")).await;

    let cases: &[(&str, &str, &[&str])] = &[
        (CORE, "involvedObject.name=web", &["c.1", "v.1"]),
        (
            CORE,
            "involvedObject.kind=Pod,involvedObject.name!=web",
            &["c.2", "v.2"],
        ),
        (CORE, "reason=Scheduled", &["v.1", "v.2"]),
        (CORE, "source=kubelet", &["c.1", "c.2"]),
        (
            CORE,
            "reportingComponent=skiff.dev/scheduler",
            &["v.1", "v.2"],
        ),
        (V1, "regarding.name=web", &["c.1", "v.1"]),
        (V1, "regarding.name=db,reason=Pulled", &["c.2"]),
        (
            V1,
            "reportingController=skiff.dev/scheduler",
            &["v.1", "v.2"],
        ),
        (V1, "type=Normal", &["c.1", "c.2", "v.1", "v.2"]),
    ];
    for (base, sel, want) in cases {
        let q = sel
            .replace('=', "%3D")
            .replace(',', "%2C")
            .replace('!', "%21");
        let (code, v) = get(&c, &format!("{base}?fieldSelector={q}")).await;
        assert_eq!(code, 200, "{base} {sel}: {v}");
        assert_eq!(names(&v), *want, "{base} {sel}");
    }
    // Each API names its own fields.
    let (code, v) = get(&c, &format!("{V1}?fieldSelector=involvedObject.name%3Dweb")).await;
    assert_eq!(code, 400, "{v}");
    let (code, v) = get(&c, &format!("{CORE}?fieldSelector=regarding.name%3Dweb")).await;
    assert_eq!(code, 400, "{v}");

    // deletecollection with a selector through events.k8s.io removes what core lists.
    let (code, v) = call(
        &c,
        "DELETE",
        &format!("{V1}?fieldSelector=regarding.name%3Dweb"),
        None,
        None,
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let (_, v) = get(&c, CORE).await;
    assert_eq!(names(&v), vec!["c.2", "v.2"]);
}

#[tokio::test]
async fn tables_of_both_apis_show_the_same_event() {
    let server = TestServer::start().await;
    let c = server.client().await;
    post(&c, V1, v1_event("t.1", "web")).await;
    for base in [CORE, V1] {
        let req = http::Request::get(base)
            .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
            .body(kube::client::Body::empty())
            .unwrap();
        let resp = c.send(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let t: Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(t["kind"], "Table", "{t}");
        let rows = t["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{base}: {t}");
        let cells: Vec<String> = rows[0]["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let line = cells.join(" ");
        assert!(line.contains("Scheduled"), "{base}: {line}");
        assert!(line.contains("pod/web"), "{base}: {line}");
        assert!(line.contains("assigned to n1"), "{base}: {line}");
    }
}

#[tokio::test]
async fn events_under_the_old_events_k8s_io_prefix_move_to_the_shared_storage() {
    let mut server = TestServer::start().await;
    server.stop().await;
    {
        let store = skiff_apiserver::store::Store::open(
            &server.data_dir().join("store"),
            skiff_apiserver::store::StoreOptions::default(),
        )
        .unwrap();
        let mut old = v1_event("legacy.1", "web");
        old["metadata"]["namespace"] = json!("default");
        old["metadata"]["uid"] = json!("0b7a1f4e-0000-4000-8000-000000000001");
        store
            .create("/registry/events.k8s.io/events/default/legacy.1", old)
            .await
            .unwrap();
        store.close().await;
    }
    server.restart().await;
    let c = server.client().await;
    let (code, v) = get(&c, &format!("{CORE}/legacy.1")).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["involvedObject"]["name"], "web");
    assert_eq!(v["message"], "assigned to n1");
    let (code, v) = get(&c, &format!("{V1}/legacy.1")).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["metadata"]["uid"], "0b7a1f4e-0000-4000-8000-000000000001");
    let (_, v) = get(&c, V1).await;
    assert_eq!(names(&v), vec!["legacy.1"], "moved, not copied");
}
