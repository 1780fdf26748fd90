//! Malformed request bodies of every content type against the in-process server: each
//! gets a 4xx Kubernetes Status naming the problem, never a 500, a panic or a hang, and
//! the server keeps serving afterwards.

use std::time::Duration;

use http_body_util::BodyExt;
use serde_json::{json, Value};
use skiff_apiserver::testing::TestServer;

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
const PB: &str = "application/vnd.kubernetes.protobuf";

/// Sends one request; a server that does not answer within a minute has hung.
async fn call(c: &kube::Client, method: &str, path: &str, ct: &str, body: Vec<u8>) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(kube::client::Body::from(body))
        .unwrap();
    let answer = async {
        let resp = c.send(req).await.unwrap();
        let code = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            code,
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        )
    };
    tokio::time::timeout(Duration::from_secs(60), answer)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} ({ct}) got no answer: the server hung"))
}

/// Asserts a 4xx answer carrying a Status with the same code and a message.
#[track_caller]
fn assert_status(case: &str, (code, v): &(u16, Value), want: u16) {
    assert_eq!(*code, want, "{case}: {v}");
    assert_eq!(v["kind"], "Status", "{case}: {v}");
    assert_eq!(v["code"], want, "{case}: {v}");
    assert!(
        !v["message"].as_str().unwrap_or("").is_empty(),
        "{case}: a Status says why: {v}"
    );
}

/// A protobuf varint.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A length-delimited field.
fn field(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(tag) << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A `k8s\0` envelope (runtime.Unknown) around `raw`.
fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut type_meta = Vec::new();
    field(1, api_version.as_bytes(), &mut type_meta);
    field(2, kind.as_bytes(), &mut type_meta);
    let mut unknown = Vec::new();
    field(1, &type_meta, &mut unknown);
    field(2, raw, &mut unknown);
    let mut out = b"k8s\0".to_vec();
    out.extend_from_slice(&unknown);
    out
}

/// A ConfigMap named `name` in protobuf: ObjectMeta (field 1) with its name (field 1).
fn configmap_raw(name: &str) -> Vec<u8> {
    let mut meta = Vec::new();
    field(1, name.as_bytes(), &mut meta);
    let mut cm = Vec::new();
    field(1, &meta, &mut cm);
    cm
}

#[tokio::test]
async fn bad_json_and_yaml_are_bad_requests() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let json_cases: &[(&str, &[u8])] = &[
        ("syntax error", b"{not json"),
        (
            "truncated",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"#,
        ),
        ("trailing garbage", br#"{"metadata":{"name":"a"}} }"#),
        ("empty body", b""),
        ("not an object", b"[1,2,3]"),
        ("a bare string", br#""configmap""#),
        ("null", b"null"),
        ("not UTF-8", b"{\"metadata\":{\"name\":\"\xff\xfe\"}}"),
        (
            "number out of range",
            br#"{"metadata":{"name":"n"},"data":{"a":1e999}}"#,
        ),
        ("lone surrogate", br#"{"metadata":{"name":"\ud800"}}"#),
    ];
    for (case, body) in json_cases {
        let a = call(&c, "POST", CMS, "application/json", body.to_vec()).await;
        assert_status(case, &a, 400);
    }
    let yaml_cases: &[(&str, &str)] = &[
        ("unclosed flow", "metadata: {name: [x\n"),
        ("bad indentation", "metadata:\n  name: a\n bad: b\n"),
        ("tab indentation", "metadata:\n\tname: a\n"),
        (
            "two documents",
            "metadata: {name: a}\n---\nmetadata: {name: b}\n",
        ),
        ("a list", "- a\n- b\n"),
        ("undefined alias", "metadata: *nothing\n"),
        ("non-string key", "metadata: {name: a}\n? [1, 2]\n: x\n"),
    ];
    for (case, body) in yaml_cases {
        let a = call(
            &c,
            "POST",
            CMS,
            "application/yaml",
            body.as_bytes().to_vec(),
        )
        .await;
        assert_status(case, &a, 400);
    }
    let a = call(&c, "POST", CMS, "text/plain", b"metadata: {}".to_vec()).await;
    assert_status("unsupported content type", &a, 415);
    // Still serving.
    let ok = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}});
    let a = call(
        &c,
        "POST",
        CMS,
        "application/json",
        ok.to_string().into_bytes(),
    )
    .await;
    assert_eq!(a.0, 201, "{}", a.1);
}

#[tokio::test]
async fn alias_bombs_and_deep_nesting_are_refused_quickly() {
    let server = TestServer::start().await;
    let c = server.client().await;
    // Nine levels of nine-fold aliases: ~387 million nodes if expanded.
    let mut bomb = String::from("metadata: {name: bomb}\nl0: &l0 [x,x,x,x,x,x,x,x,x]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!(
            "l{i}: &l{i} [*l{p},*l{p},*l{p},*l{p},*l{p},*l{p},*l{p},*l{p},*l{p}]\n"
        ));
    }
    let a = call(&c, "POST", CMS, "application/yaml", bomb.into_bytes()).await;
    assert_status("billion laughs", &a, 400);

    let deep_json = format!(
        r#"{{"metadata":{{"name":"deep"}},"data":{}1{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let a = call(&c, "POST", CMS, "application/json", deep_json.into_bytes()).await;
    assert_status("deep JSON arrays", &a, 400);
    let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(50_000), "}".repeat(50_000));
    let a = call(
        &c,
        "POST",
        CMS,
        "application/json",
        deep_objects.into_bytes(),
    )
    .await;
    assert_status("deep JSON objects", &a, 400);

    let deep_yaml = format!(
        "metadata: {{name: deep}}\ndata: {}1{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let a = call(&c, "POST", CMS, "application/yaml", deep_yaml.into_bytes()).await;
    assert_status("deep YAML flow", &a, 400);
    let mut block = String::from("metadata: {name: deep}\ndata:\n");
    for i in 0..2_000 {
        block.push_str(&" ".repeat(i + 1));
        block.push_str("- \n");
    }
    let a = call(&c, "POST", CMS, "application/yaml", block.into_bytes()).await;
    assert_status("deep YAML blocks", &a, 400);

    let deep_patch = format!("{}1{}", r#"{"data":"#.repeat(50_000), "}".repeat(50_000));
    let ok = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}});
    assert_eq!(
        call(
            &c,
            "POST",
            CMS,
            "application/json",
            ok.to_string().into_bytes()
        )
        .await
        .0,
        201
    );
    for ct in [
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
    ] {
        let a = call(
            &c,
            "PATCH",
            &format!("{CMS}/p"),
            ct,
            deep_patch.clone().into_bytes(),
        )
        .await;
        assert_status(ct, &a, 400);
        let a = call(&c, "PATCH", &format!("{CMS}/p"), ct, b"{oops".to_vec()).await;
        assert_status(ct, &a, 400);
    }
}

#[tokio::test]
async fn bad_protobuf_is_a_bad_request() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let good = envelope("v1", "ConfigMap", &configmap_raw("pb"));
    let mut giant = b"k8s\0".to_vec();
    // Field 2 (raw) claiming an 8 EiB payload.
    giant.push(2 << 3 | 2);
    varint(u64::MAX >> 1, &mut giant);
    giant.extend_from_slice(b"abc");
    let mut g = Vec::new();
    g.push(1 << 3 | 2);
    varint(1 << 40, &mut g);
    let giant_object = envelope("v1", "ConfigMap", &g);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no magic", b"\x0a\x00".to_vec()),
        ("magic only, nothing after", b"k8s\0".to_vec()),
        (
            "JSON labelled protobuf",
            br#"{"kind":"ConfigMap"}"#.to_vec(),
        ),
        ("truncated envelope", good[..good.len() - 3].to_vec()),
        ("giant length prefix in the envelope", giant),
        ("giant length prefix in the object", giant_object),
        (
            "overlong varint",
            b"k8s\0\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01".to_vec(),
        ),
        ("field number zero", b"k8s\0\x02\x00".to_vec()),
        ("wire type 7", b"k8s\0\x0f".to_vec()),
        ("no kind", envelope("v1", "", &configmap_raw("x"))),
        ("unknown kind", envelope("v1", "Gadget", b"")),
        ("scalar kind", envelope("meta.k8s.io/v1", "Time", b"")),
        (
            "object garbage",
            envelope("v1", "ConfigMap", b"\xff\xff\xff"),
        ),
        (
            "wrong kind for the URL",
            envelope("v1", "Secret", &configmap_raw("x")),
        ),
        (
            "wrong apiVersion for the URL",
            envelope("apps/v1", "Deployment", &configmap_raw("x")),
        ),
    ];
    for (case, body) in cases {
        let a = call(&c, "POST", CMS, PB, body).await;
        assert_status(case, &a, 400);
    }
    let a = call(&c, "POST", CMS, PB, good).await;
    assert_eq!(a.0, 201, "{}", a.1);
}

#[tokio::test]
async fn wrong_kinds_types_and_sizes_are_refused() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let cases: &[(&str, &str, Value)] = &[
        (
            "a Secret to configmaps",
            CMS,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}),
        ),
        (
            "apps/v1 to the core group",
            CMS,
            json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
        ),
        (
            "an unknown apiVersion",
            DEPLOYS,
            json!({"apiVersion": "apps/v9", "kind": "Deployment", "metadata": {"name": "x"}}),
        ),
        (
            "kind is a number",
            CMS,
            json!({"apiVersion": "v1", "kind": 5, "metadata": {"name": "x"}}),
        ),
        (
            "metadata is a string",
            CMS,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": "x"}),
        ),
        (
            "name is a number",
            CMS,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": 5}}),
        ),
        (
            "labels are a list",
            CMS,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": ["a"]}}),
        ),
        (
            "data is a list",
            CMS,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": [1]}),
        ),
        (
            "spec is a string",
            DEPLOYS,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": "big"}),
        ),
        (
            "replicas is a string",
            DEPLOYS,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"replicas": "two", "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        ),
        (
            "containers is an object",
            DEPLOYS,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": {"name": "c"}}}}}),
        ),
    ];
    let mut wrong = Vec::new();
    for (i, (case, path, body)) in cases.iter().enumerate() {
        // A name of its own, so that no case passes by hitting AlreadyExists.
        let mut body = body.clone();
        if body["metadata"]["name"] == "x" {
            body["metadata"]["name"] = json!(format!("bad{i}"));
        }
        let (code, v) = call(
            &c,
            "POST",
            path,
            "application/json",
            body.to_string().into_bytes(),
        )
        .await;
        if !(400..500).contains(&code) || v["kind"] != "Status" || v["code"] != code {
            wrong.push(format!("{case}: {code} {v}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // Upstream's limit is 3 MiB; one byte over is 413, whatever the content type.
    for ct in [
        "application/json",
        "application/yaml",
        PB,
        "application/merge-patch+json",
    ] {
        let big = vec![b' '; 3 * 1024 * 1024 + 1];
        let method = if ct.contains("patch") {
            "PATCH"
        } else {
            "POST"
        };
        let path = if ct.contains("patch") {
            format!("{CMS}/x")
        } else {
            CMS.to_string()
        };
        let a = call(&c, method, &path, ct, big).await;
        assert_status(ct, &a, 413);
    }
    // Just under the limit is read and judged on its content.
    let mut almost =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"}}"#.to_vec();
    almost.resize(3 * 1024 * 1024, b' ');
    let a = call(&c, "POST", CMS, "application/json", almost).await;
    assert_eq!(a.0, 201, "{}", a.1);
}

#[tokio::test]
async fn updates_and_apply_patches_get_the_same_answers() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let ok = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "u"}});
    let a = call(
        &c,
        "POST",
        CMS,
        "application/json; charset=utf-8",
        ok.to_string().into_bytes(),
    )
    .await;
    assert_eq!(a.0, 201, "parameters of the media type are fine: {}", a.1);
    let item = format!("{CMS}/u");
    let a = call(
        &c,
        "PUT",
        &item,
        "application/json",
        b"{\"metadata\":".to_vec(),
    )
    .await;
    assert_status("truncated PUT", &a, 400);
    let a = call(
        &c,
        "PUT",
        &item,
        PB,
        envelope("v1", "ConfigMap", b"\x0a\xff"),
    )
    .await;
    assert_status("truncated protobuf PUT", &a, 400);
    let wrong = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "u"}});
    let a = call(
        &c,
        "PUT",
        &item,
        "application/json",
        wrong.to_string().into_bytes(),
    )
    .await;
    assert_status("PUT of another kind", &a, 400);
    let apply = format!("{item}?fieldManager=t");
    let ct = "application/apply-patch+yaml";
    let deep = format!(
        "apiVersion: v1\nkind: ConfigMap\ndata: {}\n",
        "{a: ".repeat(100_000)
    );
    let a = call(&c, "PATCH", &apply, ct, deep.into_bytes()).await;
    assert_status("deep apply configuration", &a, 400);
    let a = call(
        &c,
        "PATCH",
        &apply,
        ct,
        b"apiVersion: v1\nkind: [\n".to_vec(),
    )
    .await;
    assert_status("broken apply configuration", &a, 400);
    let a = call(
        &c,
        "PATCH",
        &item,
        "application/x-unknown-patch",
        b"{}".to_vec(),
    )
    .await;
    assert_status("unknown patch type", &a, 415);
}
