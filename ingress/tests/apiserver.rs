//! The whole controller against the in-process skiff API server: objects created
//! through the API are watched, routed, served (HTTP and TLS), and the Ingress gets
//! its `status.loadBalancer`. Backends are in-process hyper servers on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, PostParams};
use serde_json::json;
use skiff_apiserver::testing::TestServer;
use skiff_ingress::testing::{echo_backend, tls_secret};
use skiff_ingress::{ClassSelector, IngressConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

async fn get(addr: SocketAddr, host: &str) -> Option<(StatusCode, String)> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Polls until `check` holds (bounded), returning the last observation on failure.
async fn eventually<T: std::fmt::Debug, F, Fut>(
    what: &str,
    mut probe: F,
    check: impl Fn(&T) -> bool,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = probe().await;
        if check(&v) {
            return v;
        }
        if Instant::now() > deadline {
            panic!("{what}: gave up, last seen {v:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn slice_json(port: u16, ips: &[&str]) -> serde_json::Value {
    let eps: Vec<_> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}]
    })
}

async fn leaf_for(addr: SocketAddr, sni: &str) -> Option<Vec<u8>> {
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(skiff_ingress::proxy::backend_tls_config()));
    let tcp = TcpStream::connect(addr).await.ok()?;
    let stream = connector
        .connect(
            rustls::pki_types::ServerName::try_from(sni.to_string()).ok()?,
            tcp,
        )
        .await
        .ok()?;
    Some(stream.get_ref().1.peer_certificates()?[0].to_vec())
}

#[tokio::test]
async fn serves_ingresses_created_through_the_api() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let backend = echo_backend("127.0.0.1:0".parse().unwrap(), "web", shutdown.clone())
        .await
        .unwrap();

    let pp = PostParams::default();
    let classes: Api<IngressClass> = Api::all(client.clone());
    classes
        .create(&pp, &serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "lab", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": "skiff.dev/ingress-controller"}
        })).unwrap())
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    services
        .create(
            &pp,
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    slices
        .create(
            &pp,
            &serde_json::from_value(slice_json(backend.port(), &["127.0.0.1"])).unwrap(),
        )
        .await
        .unwrap();
    let make_cert = || {
        let c = rcgen::generate_simple_self_signed(vec!["web.test".to_string()]).unwrap();
        (
            c.cert.pem(),
            c.signing_key.serialize_pem(),
            c.cert.der().to_vec(),
        )
    };
    let (crt, key, first_der) = make_cert();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    secrets
        .create(&pp, &tls_secret("default", "web-tls", &crt, &key))
        .await
        .unwrap();
    // no ingressClassName: picked up through the default IngressClass
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "default");
    ingresses
        .create(&pp, &serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web"},
            "spec": {
                "tls": [{"hosts": ["web.test"], "secretName": "web-tls"}],
                "rules": [{"host": "web.test", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}]
            }
        })).unwrap())
        .await
        .unwrap();

    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (http_addr, https_addr) = (http.local_addr().unwrap(), https.local_addr().unwrap());
    let config = IngressConfig {
        class: ClassSelector {
            class_name: "skiff".into(),
            controller: "skiff.dev/ingress-controller".into(),
            claim_classless: false,
        },
        publish_addresses: vec!["192.0.2.10".into()],
        ..IngressConfig::default()
    };
    let task = tokio::spawn(skiff_ingress::run_with_listeners(
        config,
        client.clone(),
        Some(http),
        Some(https),
        shutdown.clone(),
    ));

    // the host is in spec.tls, so plain HTTP redirects
    let (status, _) = eventually(
        "routed",
        || get(http_addr, "web.test"),
        |r| r.as_ref().is_some_and(|(s, _)| *s != StatusCode::NOT_FOUND),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    let leaf = eventually(
        "certificate from the secret",
        || leaf_for(https_addr, "web.test"),
        |l| l.as_deref() == Some(&first_der[..]),
    )
    .await;
    assert!(leaf.is_some());

    let ing = eventually(
        "status.loadBalancer",
        || {
            let ingresses = ingresses.clone();
            async move { ingresses.get("web").await.ok() }
        },
        |i| {
            i.as_ref()
                .and_then(|i| i.status.as_ref())
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.as_ref())
                .is_some()
        },
    )
    .await
    .unwrap();
    let lb = ing.status.unwrap().load_balancer.unwrap().ingress.unwrap();
    assert_eq!(lb[0].ip.as_deref(), Some("192.0.2.10"));

    // turn the redirect off: requests now reach the backend
    let mut ing = ingresses.get("web").await.unwrap();
    ing.metadata.annotations = Some(
        [(
            "ingress.skiff.dev/ssl-redirect".to_string(),
            "false".to_string(),
        )]
        .into(),
    );
    ingresses.replace("web", &pp, &ing).await.unwrap();
    let (_, body) = eventually(
        "proxied",
        || get(http_addr, "web.test"),
        |r| r.as_ref().is_some_and(|(s, _)| *s == StatusCode::OK),
    )
    .await
    .unwrap();
    assert!(body.starts_with("backend=web"), "{body}");

    // scale to zero: 503, and back
    let mut s = slices.get("web-1").await.unwrap();
    s.endpoints = vec![];
    slices.replace("web-1", &pp, &s).await.unwrap();
    eventually(
        "503 without endpoints",
        || get(http_addr, "web.test"),
        |r| {
            r.as_ref()
                .is_some_and(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        },
    )
    .await;
    let mut s = slices.get("web-1").await.unwrap();
    s.endpoints =
        serde_json::from_value(slice_json(backend.port(), &["127.0.0.1"])["endpoints"].clone())
            .unwrap();
    slices.replace("web-1", &pp, &s).await.unwrap();
    eventually(
        "back to 200",
        || get(http_addr, "web.test"),
        |r| r.as_ref().is_some_and(|(s, _)| *s == StatusCode::OK),
    )
    .await;

    // rotate the certificate through the Secret
    let (crt, key, second_der) = make_cert();
    let mut secret = secrets.get("web-tls").await.unwrap();
    secret.data = tls_secret("default", "web-tls", &crt, &key).data.clone();
    secrets.replace("web-tls", &pp, &secret).await.unwrap();
    eventually(
        "rotated certificate",
        || leaf_for(https_addr, "web.test"),
        |l| l.as_deref() == Some(&second_der[..]),
    )
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("ingress stops on shutdown")
        .unwrap()
        .unwrap();
    server.shutdown().await;
}
