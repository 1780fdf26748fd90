//! Object builders for tests and the benchmark: Ingresses, IngressClasses, Services and
//! EndpointSlices from a few arguments, so tests read as the case they check.
//!
//! Built through `serde_json` exactly as the objects arrive from the API server.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde_json::{json, Value};

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Arc<T> {
    // The builders only produce well-formed objects; a failure is a bug in the test.
    Arc::new(serde_json::from_value(v).expect("well-formed test object"))
}

/// An Ingress with the given `spec` (as JSON) and annotations.
pub fn ingress(ns: &str, name: &str, annotations: &[(&str, &str)], spec: Value) -> Arc<Ingress> {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    typed(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"namespace": ns, "name": name, "annotations": annotations},
        "spec": spec,
    }))
}

/// An Ingress with one rule: `host` (or none) with `paths` of `(path, pathType,
/// service, port number)`.
pub fn simple_ingress(
    ns: &str,
    name: &str,
    host: Option<&str>,
    paths: &[(&str, &str, &str, i32)],
) -> Arc<Ingress> {
    let paths: Vec<Value> = paths
        .iter()
        .map(|(path, ty, svc, port)| {
            json!({"path": path, "pathType": ty,
                   "backend": {"service": {"name": svc, "port": {"number": port}}}})
        })
        .collect();
    let mut rule = json!({"http": {"paths": paths}});
    if let Some(h) = host {
        rule["host"] = json!(h);
    }
    ingress(ns, name, &[], json!({"rules": [rule]}))
}

/// An IngressClass for `controller`, optionally the cluster default.
pub fn class(name: &str, controller: &str, default: bool) -> Arc<IngressClass> {
    let mut v = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": name},
        "spec": {"controller": controller},
    });
    if default {
        v["metadata"]["annotations"] =
            json!({"ingressclass.kubernetes.io/is-default-class": "true"});
    }
    typed(v)
}

/// A ClusterIP Service with `(port name, port)` pairs (name "" for unnamed).
pub fn service(ns: &str, name: &str, ports: &[(&str, i32)]) -> Arc<Service> {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p)| {
            let mut v = json!({"port": p, "protocol": "TCP"});
            if !n.is_empty() {
                v["name"] = json!(n);
            }
            v
        })
        .collect();
    typed(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"ports": ports},
    }))
}

/// An EndpointSlice for `svc` with one port (`port_name` "" for unnamed) and
/// `(address, ready)` endpoints.
pub fn slice(
    ns: &str,
    svc: &str,
    port_name: &str,
    port: u16,
    endpoints: &[(&str, bool)],
) -> Arc<EndpointSlice> {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(a, ready)| json!({"addresses": [a], "conditions": {"ready": ready}}))
        .collect();
    let mut p = json!({"port": port, "protocol": "TCP"});
    if !port_name.is_empty() {
        p["name"] = json!(port_name);
    }
    typed(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": ns, "name": format!("{svc}-abc"),
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": if endpoints.iter().any(|(a, _)| a.contains(':')) { "IPv6" } else { "IPv4" },
        "endpoints": eps,
        "ports": [p],
    }))
}

/// A `kubernetes.io/tls` Secret holding a PEM certificate chain and key.
pub fn tls_secret(ns: &str, name: &str, cert_pem: &str, key_pem: &str) -> Arc<Secret> {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    typed(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"namespace": ns, "name": name},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(cert_pem), "tls.key": b64(key_pem)},
    }))
}

/// Starts a loopback HTTP/1.1 backend on `addr` (port 0 for any) that answers every
/// request with one line describing what it received:
/// `backend=NAME path=/p?q host=H xff=.. xfp=.. xfh=.. body=N conn=C`, so a test can see
/// where a request went, how it was rewritten and on which backend connection (C counts
/// accepted connections from 1). `/slow...` paths answer after 300 ms;
/// upgrade requests get `101` and then an echo of every byte. Runs until `shutdown`.
pub async fn echo_backend(
    addr: std::net::SocketAddr,
    name: &str,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<std::net::SocketAddr> {
    use http_body_util::{BodyExt as _, Full};
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let name: Arc<str> = name.into();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = shutdown.cancelled() => return,
                a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
            };
            let _ = stream.set_nodelay(true);
            let name = name.clone();
            let conn_id = connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            let conn_shutdown = shutdown.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                    let name = name.clone();
                    async move {
                        if req.headers().contains_key(http::header::UPGRADE) {
                            let on = hyper::upgrade::on(&mut req);
                            tokio::spawn(async move {
                                if let Ok(up) = on.await {
                                    let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                                    let _ = tokio::io::copy(&mut r, &mut w).await;
                                }
                            });
                            let resp = http::Response::builder()
                                .status(http::StatusCode::SWITCHING_PROTOCOLS)
                                .header(http::header::CONNECTION, "upgrade")
                                .header(http::header::UPGRADE, "echo")
                                .body(Full::new(bytes::Bytes::new()))
                                .expect("static response");
                            return Ok::<_, hyper::Error>(resp);
                        }
                        if req.uri().path().starts_with("/slow") {
                            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                        }
                        let h = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-")
                                .to_string()
                        };
                        let line = format!(
                            "backend={name} path={} host={} xff={} xfp={} xfh={}",
                            req.uri().path_and_query().map_or("/", |p| p.as_str()),
                            h("host"),
                            h("x-forwarded-for"),
                            h("x-forwarded-proto"),
                            h("x-forwarded-host"),
                        );
                        let body = req.into_body().collect().await?.to_bytes();
                        Ok(http::Response::new(Full::new(bytes::Bytes::from(format!(
                            "{line} body={} conn={conn_id}\n",
                            body.len()
                        )))))
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades();
                tokio::select! {
                    _ = conn => {}
                    _ = conn_shutdown.cancelled() => {}
                }
            });
        }
    });
    Ok(local)
}
