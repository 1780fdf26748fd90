//! The proxy end to end on loopback: in-process hyper backends on 127.0.0.x, the
//! ingress server on 127.0.0.1 port 0, route tables and certificate stores built from
//! real objects and swapped in as the watch layer would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use skiff_ingress::proxy::Shared;
use skiff_ingress::routes::{self, ClassSelector, Inputs};
use skiff_ingress::testing::{echo_backend, ingress, service, simple_ingress, slice, tls_secret};
use skiff_ingress::{tls, IngressConfig, Limits, Timeouts};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

fn sel() -> ClassSelector {
    ClassSelector {
        class_name: "skiff".into(),
        controller: "skiff.dev/ingress-controller".into(),
        claim_classless: true,
    }
}

struct Harness {
    shared: Arc<Shared>,
    http: SocketAddr,
    https: SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Harness {
    async fn start() -> Harness {
        let config = IngressConfig {
            timeouts: Timeouts {
                header_read: Duration::from_millis(500),
                connect: Duration::from_millis(500),
                response_header: Duration::from_secs(2),
                backend_idle: Duration::from_secs(5),
                drain: Duration::from_secs(1),
            },
            limits: Limits {
                max_header_bytes: 8192,
                max_headers: 50,
                max_body_bytes: 64 * 1024,
            },
            ..IngressConfig::default()
        };
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http_addr, https_addr) = (http.local_addr().unwrap(), https.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let shutdown = CancellationToken::new();
        let (s, t) = (shared.clone(), shutdown.clone());
        tokio::spawn(
            async move { skiff_ingress::serve(&config, s, Some(http), Some(https), t).await },
        );
        Harness {
            shared,
            http: http_addr,
            https: https_addr,
            shutdown,
        }
    }

    fn set_routes(&self, inputs: &Inputs) {
        let table = routes::build(inputs, &sel());
        self.shared.routes.store(Arc::new(table));
    }

    fn set_certs(&self, inputs: &Inputs, secrets: &[Arc<k8s_openapi::api::core::v1::Secret>]) {
        let store = tls::build(
            &routes::served(inputs, &sel()),
            secrets,
            &mut tls::CertCache::default(),
        );
        assert!(store.warnings.is_empty(), "{:?}", store.warnings);
        self.shared.certs.store(Arc::new(store));
    }

    async fn backend(&self, ip: &str, name: &str) -> SocketAddr {
        echo_backend(
            format!("{ip}:0").parse().unwrap(),
            name,
            self.shutdown.clone(),
        )
        .await
        .unwrap()
    }
}

/// One request on a fresh HTTP/1.1 connection.
async fn send(
    addr: SocketAddr,
    req: Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

async fn get(addr: SocketAddr, host: &str, path: &str) -> (StatusCode, String) {
    let req = Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, body) = send(addr, req).await;
    (status, body)
}

/// Writes raw bytes and reads until the server closes or `limit` passes.
async fn raw(addr: SocketAddr, bytes: &[u8], limit: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn svc_and_slice(
    name: &str,
    endpoints: &[SocketAddr],
) -> (
    Arc<k8s_openapi::api::core::v1::Service>,
    Arc<k8s_openapi::api::discovery::v1::EndpointSlice>,
) {
    let port = endpoints.first().map_or(80, |e| e.port());
    let ips: Vec<String> = endpoints.iter().map(|e| e.ip().to_string()).collect();
    let eps: Vec<(&str, bool)> = ips.iter().map(|i| (i.as_str(), true)).collect();
    (
        service("default", name, &[("http", 80)]),
        slice("default", name, "http", port, &eps),
    )
}

fn inputs(
    ingresses: Vec<Arc<k8s_openapi::api::networking::v1::Ingress>>,
    backends: &[(&str, &[SocketAddr])],
) -> Inputs {
    let mut i = Inputs {
        ingresses,
        ..Default::default()
    };
    for (name, eps) in backends {
        let (s, sl) = svc_and_slice(name, eps);
        i.services.push(s);
        i.slices.push(sl);
    }
    i
}

#[tokio::test]
async fn routes_by_host_and_path_and_sets_forwarded_headers() {
    let h = Harness::start().await;
    let a = h.backend("127.0.0.1", "a").await;
    let b = h.backend("127.0.0.1", "b").await;
    h.set_routes(&inputs(
        vec![
            simple_ingress("default", "a", Some("a.test"), &[("/", "Prefix", "a", 80)]),
            simple_ingress(
                "default",
                "b",
                Some("b.test"),
                &[("/api", "Prefix", "b", 80), ("/", "Prefix", "a", 80)],
            ),
        ],
        &[("a", &[a]), ("b", &[b])],
    ));
    let cases = [
        ("a.test", "/x?q=1", "backend=a path=/x?q=1"),
        ("A.Test:80", "/", "backend=a path=/"),
        ("b.test", "/api/v1", "backend=b path=/api/v1"),
        ("b.test", "/apix", "backend=a path=/apix"),
        ("b.test", "/", "backend=a"),
    ];
    for (host, path, want) in cases {
        let (status, body) = get(h.http, host, path).await;
        assert_eq!(status, StatusCode::OK, "{host}{path}: {body}");
        assert!(body.starts_with(want), "{host}{path}: {body}");
    }
    let (_, body) = get(h.http, "a.test", "/").await;
    assert!(
        body.contains("host=a.test xff=127.0.0.1 xfp=http xfh=a.test"),
        "{body}"
    );
    let (status, _) = get(h.http, "c.test", "/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // an existing X-Forwarded-For is extended, not replaced
    let req = Request::get("/")
        .header("host", "a.test")
        .header("x-forwarded-for", "203.0.113.9")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (_, _, body) = send(h.http, req).await;
    assert!(body.contains("xff=203.0.113.9, 127.0.0.1"), "{body}");
}

#[tokio::test]
async fn default_backend_catches_unmatched_requests() {
    let h = Harness::start().await;
    let app = h.backend("127.0.0.1", "app").await;
    let fallback = h.backend("127.0.0.1", "fallback").await;
    let ing = ingress(
        "default",
        "web",
        &[],
        json!({
            "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
            "rules": [{"host": "app.test", "http": {"paths": [{"path": "/app", "pathType": "Exact",
                "backend": {"service": {"name": "app", "port": {"name": "http"}}}}]}}]
        }),
    );
    h.set_routes(&inputs(
        vec![ing],
        &[("app", &[app]), ("fallback", &[fallback])],
    ));
    assert!(get(h.http, "app.test", "/app")
        .await
        .1
        .starts_with("backend=app"));
    assert!(get(h.http, "app.test", "/app/x")
        .await
        .1
        .starts_with("backend=fallback"));
    assert!(get(h.http, "other.test", "/")
        .await
        .1
        .starts_with("backend=fallback"));
}

#[tokio::test]
async fn rewrite_target_and_ssl_redirect() {
    let h = Harness::start().await;
    let a = h.backend("127.0.0.1", "a").await;
    let rewrite = ingress(
        "default",
        "rw",
        &[("nginx.ingress.kubernetes.io/rewrite-target", "/v2")],
        json!({"rules": [{"host": "rw.test", "http": {"paths": [{"path": "/old", "pathType": "Prefix",
            "backend": {"service": {"name": "a", "port": {"number": 80}}}}]}}]}),
    );
    let secure = ingress(
        "default",
        "secure",
        &[],
        json!({"tls": [{"hosts": ["secure.test"], "secretName": "s"}],
               "rules": [{"host": "secure.test", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "a", "port": {"number": 80}}}}]}}]}),
    );
    h.set_routes(&inputs(vec![rewrite, secure], &[("a", &[a])]));
    let (_, body) = get(h.http, "rw.test", "/old/users?id=3").await;
    assert!(body.starts_with("backend=a path=/v2/users?id=3"), "{body}");
    let req = Request::get("/p?x=1")
        .header("host", "secure.test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, _) = send(h.http, req).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        headers["location"],
        format!("https://secure.test:{}/p?x=1", h.https.port())
    );
}

fn cert(name: &str) -> (String, String, Vec<u8>) {
    let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    (
        c.cert.pem(),
        c.signing_key.serialize_pem(),
        c.cert.der().to_vec(),
    )
}

/// TLS handshake with `sni`; returns the leaf certificate presented, the negotiated
/// ALPN protocol and the stream.
async fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    alpn: &[&[u8]],
) -> (
    Vec<u8>,
    Option<Vec<u8>>,
    tokio_rustls::client::TlsStream<TcpStream>,
) {
    let mut config = skiff_ingress::proxy::backend_tls_config();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    let (_, conn) = stream.get_ref();
    let leaf = conn.peer_certificates().unwrap()[0].to_vec();
    let alpn = conn.alpn_protocol().map(|p| p.to_vec());
    (leaf, alpn, stream)
}

async fn tls_get(stream: tokio_rustls::client::TlsStream<TcpStream>, host: &str) -> String {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned()
}

#[tokio::test]
async fn tls_picks_certificates_by_sni_and_serves_http2() {
    let h = Harness::start().await;
    let a = h.backend("127.0.0.1", "a").await;
    let b = h.backend("127.0.0.1", "b").await;
    let (a_crt, a_key, a_der) = cert("a.test");
    let (b_crt, b_key, b_der) = cert("b.test");
    let ing = |name: &str, host: &str| {
        ingress(
            "default",
            name,
            &[],
            json!({
            "tls": [{"hosts": [host], "secretName": name}],
            "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}),
        )
    };
    let inp = inputs(
        vec![ing("a", "a.test"), ing("b", "b.test")],
        &[("a", &[a]), ("b", &[b])],
    );
    h.set_routes(&inp);
    h.set_certs(
        &inp,
        &[
            tls_secret("default", "a", &a_crt, &a_key),
            tls_secret("default", "b", &b_crt, &b_key),
        ],
    );

    let (leaf, alpn, stream) = tls_connect(h.https, "a.test", &[b"http/1.1"]).await;
    assert_eq!(leaf, a_der);
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let body = tls_get(stream, "a.test").await;
    assert!(
        body.starts_with("backend=a") && body.contains("xfp=https"),
        "{body}"
    );

    let (leaf, alpn, stream) = tls_connect(h.https, "b.test", &[b"h2", b"http/1.1"]).await;
    assert_eq!(leaf, b_der);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://b.test/h2")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body =
        String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned();
    assert!(body.starts_with("backend=b path=/h2 host=b.test"), "{body}");

    // unknown names get the self-signed fallback, not a or b
    let (leaf, _, _) = tls_connect(h.https, "nobody.test", &[]).await;
    assert!(leaf != a_der && leaf != b_der);
}

#[tokio::test]
async fn rotated_secret_is_served_on_the_next_handshake() {
    let h = Harness::start().await;
    let a = h.backend("127.0.0.1", "a").await;
    let (old_crt, old_key, old_der) = cert("a.test");
    let (new_crt, new_key, new_der) = cert("a.test");
    let ing = ingress(
        "default",
        "a",
        &[],
        json!({
        "tls": [{"hosts": ["a.test"], "secretName": "a"}],
        "rules": [{"host": "a.test", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "a", "port": {"number": 80}}}}]}}]}),
    );
    let inp = inputs(vec![ing], &[("a", &[a])]);
    h.set_routes(&inp);
    h.set_certs(&inp, &[tls_secret("default", "a", &old_crt, &old_key)]);
    let (leaf, _, old_conn) = tls_connect(h.https, "a.test", &[]).await;
    assert_eq!(leaf, old_der);

    h.set_certs(&inp, &[tls_secret("default", "a", &new_crt, &new_key)]);
    let (leaf, _, _) = tls_connect(h.https, "a.test", &[]).await;
    assert_eq!(leaf, new_der);
    // the connection opened before the rotation keeps working
    assert!(tls_get(old_conn, "a.test").await.starts_with("backend=a"));
}

#[tokio::test]
async fn scale_to_zero_gives_503_and_recovers() {
    let h = Harness::start().await;
    let a = h.backend("127.0.0.1", "a").await;
    let ing = simple_ingress("default", "a", Some("a.test"), &[("/", "Prefix", "a", 80)]);
    h.set_routes(&inputs(vec![ing.clone()], &[("a", &[a])]));
    assert_eq!(get(h.http, "a.test", "/").await.0, StatusCode::OK);
    // no endpoints (slice present but empty)
    let mut zero = inputs(vec![ing.clone()], &[]);
    zero.services.push(service("default", "a", &[("http", 80)]));
    zero.slices
        .push(slice("default", "a", "http", a.port(), &[]));
    h.set_routes(&zero);
    let (status, body) = get(h.http, "a.test", "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // only not-ready endpoints count as none
    let mut unready = inputs(vec![ing.clone()], &[]);
    unready
        .services
        .push(service("default", "a", &[("http", 80)]));
    unready.slices.push(slice(
        "default",
        "a",
        "http",
        a.port(),
        &[("127.0.0.1", false)],
    ));
    h.set_routes(&unready);
    assert_eq!(
        get(h.http, "a.test", "/").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    h.set_routes(&inputs(vec![ing], &[("a", &[a])]));
    assert_eq!(get(h.http, "a.test", "/").await.0, StatusCode::OK);
}

/// A loopback port with nothing listening.
async fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn dead_backend_is_502() {
    let h = Harness::start().await;
    let dead: SocketAddr = format!("127.0.0.1:{}", dead_port().await).parse().unwrap();
    h.set_routes(&inputs(
        vec![simple_ingress(
            "default",
            "a",
            Some("a.test"),
            &[("/", "Prefix", "a", 80)],
        )],
        &[("a", &[dead])],
    ));
    let (status, body) = get(h.http, "a.test", "/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
}

#[tokio::test]
async fn connect_failures_retry_on_another_endpoint() {
    let h = Harness::start().await;
    let live = h.backend("127.0.0.1", "live").await;
    // same port on another loopback address, where nothing listens
    let dead: SocketAddr = format!("127.0.0.2:{}", live.port()).parse().unwrap();
    h.set_routes(&inputs(
        vec![simple_ingress(
            "default",
            "a",
            Some("a.test"),
            &[("/", "Prefix", "a", 80)],
        )],
        &[("a", &[dead, live])],
    ));
    for i in 0..6 {
        // with a body too: it was never sent to the dead endpoint, so it is replayed
        let req = Request::post("/")
            .header("host", "a.test")
            .body(Full::new(Bytes::from_static(b"hello")))
            .unwrap();
        let (status, _, body) = send(h.http, req).await;
        assert_eq!(status, StatusCode::OK, "request {i}: {body}");
        assert!(
            body.starts_with("backend=live") && body.contains("body=5"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn round_robin_spreads_requests_over_endpoints() {
    let h = Harness::start().await;
    let one = h.backend("127.0.0.1", "one").await;
    let two = echo_backend(
        format!("127.0.0.2:{}", one.port()).parse().unwrap(),
        "two",
        h.shutdown.clone(),
    )
    .await
    .unwrap();
    h.set_routes(&inputs(
        vec![simple_ingress(
            "default",
            "a",
            Some("a.test"),
            &[("/", "Prefix", "a", 80)],
        )],
        &[("a", &[one, two])],
    ));
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..10 {
        let (_, body) = get(h.http, "a.test", "/").await;
        *seen
            .entry(body.split_whitespace().next().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(seen.get("backend=one"), Some(&5), "{seen:?}");
    assert_eq!(seen.get("backend=two"), Some(&5), "{seen:?}");
}

#[tokio::test]
async fn request_smuggling_is_rejected() {
    let h = Harness::start().await;
    let a = h.backend("127.0.0.1", "a").await;
    h.set_routes(&inputs(
        vec![simple_ingress(
            "default",
            "a",
            None,
            &[("/", "Prefix", "a", 80)],
        )],
        &[("a", &[a])],
    ));
    let cl_te = b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n";
    // hyper follows RFC 9112 section 6.1 here: Transfer-Encoding wins, Content-Length
    // is dropped before the request reaches us (so the backend cannot disagree about
    // framing), and the connection is closed after the response, so the bytes
    // after the chunked body are never parsed as a second request.
    let out = raw(h.http, cl_te, Duration::from_secs(2)).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains("body=0"),
        "the chunked framing was used: {out}"
    );
    assert_eq!(
        out.matches("HTTP/1.1 ").count(),
        1,
        "a second request was parsed: {out}"
    );
    assert!(!out.contains("smuggled"), "{out}");
    let two_cl =
        b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde";
    let out = raw(h.http, two_cl, Duration::from_secs(2)).await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    let bad_te = b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip\r\n\r\n";
    let out = raw(h.http, bad_te, Duration::from_secs(2)).await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
}

#[tokio::test]
async fn oversized_heads_and_bodies_are_refused() {
    let h = Harness::start().await;
    let a = h.backend("127.0.0.1", "a").await;
    h.set_routes(&inputs(
        vec![simple_ingress(
            "default",
            "a",
            None,
            &[("/", "Prefix", "a", 80)],
        )],
        &[("a", &[a])],
    ));
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: {}\r\n\r\n",
        "x".repeat(20_000)
    );
    let out = raw(h.http, big_header.as_bytes(), Duration::from_secs(2)).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    let many: String = (0..80).map(|i| format!("X-H{i}: v\r\n")).collect();
    let out = raw(
        h.http,
        format!("GET / HTTP/1.1\r\nHost: a.test\r\n{many}\r\n").as_bytes(),
        Duration::from_secs(2),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");

    let declared = b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10000000\r\n\r\n";
    let out = raw(h.http, declared, Duration::from_secs(2)).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");

    // chunked, so the size is only known while streaming
    let chunk = "a".repeat(16 * 1024);
    let mut chunked =
        String::from("POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..8 {
        chunked.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    chunked.push_str("0\r\n\r\n");
    let out = raw(h.http, chunked.as_bytes(), Duration::from_secs(2)).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");

    // under the limit, streamed through
    let ok = Request::post("/")
        .header("host", "a.test")
        .body(Full::new(Bytes::from(vec![b'x'; 60_000])))
        .unwrap();
    let (status, _, body) = send(h.http, ok).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("body=60000"), "{body}");
}

#[tokio::test]
async fn slow_request_heads_are_cut_off() {
    let h = Harness::start().await;
    let mut s = TcpStream::connect(h.http).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    // keep dribbling a header line now and then, as slowloris does
    let dribble = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if s.write_all(b"X-A: b\r\n").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), dribble).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut buf)).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "connection held open for {elapsed:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(!text.contains("200 OK"), "{text}");
}

#[tokio::test]
async fn websocket_style_upgrades_pass_through() {
    let h = Harness::start().await;
    let a = h.backend("127.0.0.1", "a").await;
    h.set_routes(&inputs(
        vec![simple_ingress(
            "default",
            "a",
            None,
            &[("/", "Prefix", "a", 80)],
        )],
        &[("a", &[a])],
    ));
    let mut s = TcpStream::connect(h.http).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    for msg in [&b"ping"[..], b"second message"] {
        s.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, msg);
    }
}

#[tokio::test]
async fn table_swaps_do_not_disturb_open_connections() {
    let h = Harness::start().await;
    let a = h.backend("127.0.0.1", "a").await;
    let b = h.backend("127.0.0.1", "b").await;
    let to =
        |svc: &str| simple_ingress("default", "x", Some("x.test"), &[("/", "Prefix", svc, 80)]);
    h.set_routes(&inputs(vec![to("a")], &[("a", &[a]), ("b", &[b])]));

    let stream = TcpStream::connect(h.http).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let slow = sender.send_request(
        Request::get("/slow")
            .header("host", "x.test")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    );
    let swap = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.set_routes(&inputs(vec![to("b")], &[("a", &[a]), ("b", &[b])]));
    };
    let (resp, ()) = tokio::join!(slow, swap);
    let body = resp
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    assert!(
        body.starts_with(b"backend=a path=/slow"),
        "in-flight request finished on the old route"
    );
    // same keep-alive connection, next request follows the new table
    sender.ready().await.unwrap();
    let resp = sender
        .send_request(
            Request::get("/")
                .header("host", "x.test")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        body.starts_with(b"backend=b"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

#[tokio::test]
async fn slow_backends_time_out_with_504() {
    let h = Harness::start().await;
    // accepts connections (kernel backlog) but never answers
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    h.set_routes(&inputs(
        vec![simple_ingress(
            "default",
            "a",
            None,
            &[("/", "Prefix", "a", 80)],
        )],
        &[("a", &[addr])],
    ));
    let started = Instant::now();
    let (status, _) = get(h.http, "a.test", "/").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(4));
    drop(silent);
}

#[tokio::test]
async fn tls_1_2_clients_are_served_too() {
    let h = Harness::start().await;
    let a = h.backend("127.0.0.1", "a").await;
    let (crt, key, der) = cert("a.test");
    let ing = ingress(
        "default",
        "a",
        &[],
        json!({
        "tls": [{"hosts": ["a.test"], "secretName": "a"}],
        "rules": [{"host": "a.test", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "a", "port": {"number": 80}}}}]}}]}),
    );
    let inp = inputs(vec![ing], &[("a", &[a])]);
    h.set_routes(&inp);
    h.set_certs(&inp, &[tls_secret("default", "a", &crt, &key)]);
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = skiff_ingress::proxy::unverified_client_config(&[version]);
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(h.https).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
        let stream = connector.connect(name, tcp).await.unwrap();
        let (_, conn) = stream.get_ref();
        assert_eq!(conn.protocol_version(), Some(version.version));
        assert_eq!(conn.peer_certificates().unwrap()[0].to_vec(), der);
        assert!(tls_get(stream, "a.test").await.starts_with("backend=a"));
    }
}

#[tokio::test]
async fn backend_connections_are_pooled_and_reused() {
    let config = IngressConfig {
        workers: 1,
        ..IngressConfig::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = Arc::new(Shared::default());
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let (s, t) = (shared.clone(), shutdown.clone());
    tokio::spawn(async move { skiff_ingress::serve(&config, s, Some(listener), None, t).await });
    let a = echo_backend("127.0.0.1:0".parse().unwrap(), "a", shutdown.clone())
        .await
        .unwrap();
    let table = routes::build(
        &inputs(
            vec![simple_ingress(
                "default",
                "a",
                None,
                &[("/", "Prefix", "a", 80)],
            )],
            &[("a", &[a])],
        ),
        &sel(),
    );
    shared.routes.store(Arc::new(table));
    // sequential requests on fresh client connections share one backend connection
    let mut conns = std::collections::BTreeSet::new();
    for i in 0..5 {
        let (status, body) = get(addr, "a.test", &format!("/{i}")).await;
        assert_eq!(status, StatusCode::OK);
        conns.insert(body.trim().rsplit("conn=").next().unwrap().to_string());
    }
    assert_eq!(conns.len(), 1, "backend connections used: {conns:?}");
}

#[tokio::test]
async fn https_backends_are_reached_over_tls() {
    let h = Harness::start().await;
    // a TLS backend with a self-signed certificate, as pods usually have
    let generated = rcgen::generate_simple_self_signed(vec!["pod.local".to_string()]).unwrap();
    let key = tls::certified_key_from_pem(
        "backend",
        generated.cert.pem().as_bytes(),
        generated.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    let store = Arc::new(arc_swap::ArcSwap::from_pointee(tls::CertStore::default()));
    let server_config = tls::server_config(tls::SniResolver::new(store, Arc::new(key))).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let stop = h.shutdown.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => a.unwrap(),
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let line = format!("tls-backend path={}", req.uri().path());
                        Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from(line))))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    let ing = ingress(
        "default",
        "secure-backend",
        &[("nginx.ingress.kubernetes.io/backend-protocol", "HTTPS")],
        json!({"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "b", "port": {"number": 80}}}}]}}]}),
    );
    h.set_routes(&inputs(vec![ing], &[("b", &[backend])]));
    for _ in 0..2 {
        let (status, body) = get(h.http, "any.test", "/x").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, "tls-backend path=/x");
    }
}
