//! The API server's side of `kubectl logs`, `exec`, `attach` and `port-forward`: find
//! the pod's node and its kubelet (InternalIP, `status.daemonEndpoints.kubeletEndpoint.Port`),
//! forward the request over TLS, and stream the answer back. For the streaming calls the
//! HTTP upgrade is passed through: when the kubelet (and behind it the runtime's
//! streaming server) switches protocols, both upgraded connections are joined and bytes
//! copied both ways, so SPDY and websocket framing are never parsed here.
//!
//! The kubelet's serving certificate is verified like upstream's
//! `--kubelet-certificate-authority`: it must chain to the cluster CA (which signs it
//! when the node's agent asks, `handlers/join.rs`) and name both the address dialled
//! and the node, so a machine that takes over a node's address cannot read the
//! streams. A kubelet that fails this is refused with a 500 naming the node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use skiff_api::ApiError;

use super::objects::key_of;
use super::{Api, Req};
use crate::response::Body;

/// The port when a Node does not say (the upstream kubelet default).
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// How long connecting to a kubelet may take before the node counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a pod's kubelet listens, from the pod and its Node (`None`: the Node object
/// is missing). Errors are the Status the client sees.
pub fn kubelet_address(
    pod_name: &str,
    pod: &Value,
    node: Option<&Value>,
) -> Result<(String, SocketAddr), ApiError> {
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {pod_name} is not scheduled to a node yet; wait for it to be scheduled"
        )));
    }
    let Some(node) = node else {
        return Err(ApiError::service_unavailable(format!(
            "node {node_name} of pod {pod_name} is not registered; is its kubelet running?"
        )));
    };
    let ip = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .and_then(|s| s.parse::<std::net::IpAddr>().ok())
        .ok_or_else(|| {
            ApiError::service_unavailable(format!(
                "node {node_name} reports no InternalIP, so its kubelet cannot be reached"
            ))
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .filter(|p| (1..=u16::MAX as u64).contains(p))
        .map_or(DEFAULT_KUBELET_PORT, |p| p as u16);
    Ok((node_name.to_string(), SocketAddr::new(ip, port)))
}

/// The container a request is about: the `container` parameter, else the pod's only
/// container, else the `kubectl.kubernetes.io/default-container` annotation.
pub fn pick_container(
    pod_name: &str,
    pod: &Value,
    asked: Option<&str>,
) -> Result<String, ApiError> {
    let names: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let inits: Vec<&str> = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match asked.filter(|a| !a.is_empty()) {
        Some(a) if names.contains(&a) || inits.contains(&a) => Ok(a.to_string()),
        Some(a) => Err(ApiError::bad_request(format!(
            "container {a} is not valid for pod {pod_name}; choose one of: [{}]",
            names.join(" ")
        ))),
        None if names.len() == 1 => Ok(names[0].to_string()),
        None => pod
            .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
            .and_then(Value::as_str)
            .filter(|d| names.contains(d))
            .map(str::to_string)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    names.join(" ")
                ))
            }),
    }
}

/// The kubelet path and query for a pod subresource request.
pub fn kubelet_path(
    sub: &str,
    ns: &str,
    pod: &str,
    container: Option<&str>,
    query: &str,
) -> String {
    let base = match (sub, container) {
        ("log", Some(c)) => format!("/containerLogs/{ns}/{pod}/{c}"),
        ("exec", Some(c)) => format!("/exec/{ns}/{pod}/{c}"),
        ("attach", Some(c)) => format!("/attach/{ns}/{pod}/{c}"),
        _ => format!("/portForward/{ns}/{pod}"),
    };
    if query.is_empty() {
        base
    } else {
        format!("{base}?{query}")
    }
}

/// A streaming request as the proxy needs it: the raw query (exec repeats `command`)
/// and, for upgrades, hyper's handle on the client connection.
pub struct StreamRequest {
    pub method: Method,
    pub headers: http::HeaderMap,
    pub query: String,
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl StreamRequest {
    /// From the handlers' [`Req`], which keeps neither the raw query nor the upgrade
    /// handle: the query is rebuilt from the parameters kubectl sends (a repeated
    /// `command` keeps only its last value) and no upgrade is possible.
    pub fn from_req(req: &Req) -> StreamRequest {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for key in [
            "container",
            "command",
            "stdin",
            "stdout",
            "stderr",
            "tty",
            "ports",
            "input",
            "output",
            "error",
        ] {
            if let Some(v) = req.query.get(key) {
                q.append_pair(key, v);
            }
        }
        StreamRequest {
            method: req.method.clone(),
            headers: req.headers.clone(),
            query: q.finish(),
            upgrade: None,
        }
    }
}

fn pod_and_node(
    api: &Api,
    pod_res: &skiff_api::ResourceInfo,
    ns: &str,
    name: &str,
) -> Result<(Arc<Value>, String, SocketAddr), ApiError> {
    let pod = api
        .store
        .get(&key_of(pod_res, Some(ns), name))
        .ok_or_else(|| ApiError::not_found(pod_res, name))?;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let nodes =
        skiff_api::resource::lookup("", "v1", "nodes").expect("nodes are a built-in resource");
    let node = if node_name.is_empty() {
        None
    } else {
        api.store.get(&key_of(nodes, None, node_name))
    };
    let (node_name, addr) = kubelet_address(name, &pod, node.as_deref())?;
    Ok((pod, node_name, addr))
}

/// GET pods/NAME/log: the kubelet's container log, streamed as it arrives.
pub async fn log(
    api: &Api,
    pod_res: &skiff_api::ResourceInfo,
    ns: &str,
    name: &str,
    req: &Req,
) -> Result<Response<Body>, ApiError> {
    let (pod, node, addr) = pod_and_node(api, pod_res, ns, name)?;
    let container = pick_container(name, &pod, req.query.get("container"))?;
    let query = {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for key in [
            "follow",
            "previous",
            "timestamps",
            "tailLines",
            "sinceSeconds",
            "limitBytes",
        ] {
            if let Some(v) = req.query.get(key) {
                q.append_pair(key, v);
            }
        }
        q.finish()
    };
    let path = kubelet_path("log", ns, name, Some(&container), &query);
    let mut sender = open(api, &node, addr).await?;
    let out = Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))
        .map_err(|e| ApiError::internal(format!("building the kubelet request failed: {e}")))?;
    let resp = sender
        .send_request(out)
        .await
        .map_err(|e| unreachable_node(&node, addr, &e.to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(ApiError::new(
            if status == StatusCode::NOT_FOUND {
                404
            } else if status.is_client_error() {
                400
            } else {
                500
            },
            if status == StatusCode::NOT_FOUND {
                "NotFound"
            } else if status.is_client_error() {
                "BadRequest"
            } else {
                "InternalError"
            },
            format!(
                "the kubelet on node {node} refused the log request: {}",
                String::from_utf8_lossy(&text).trim()
            ),
        ));
    }
    // The spawned connection task keeps reading the body after `sender` is dropped.
    let body = resp.into_body().map_err(std::io::Error::other).boxed();
    Ok(Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(body)
        .expect("valid response"))
}

/// exec, attach and portforward: forwards the request to the kubelet and, on 101,
/// joins the upgraded client and kubelet connections.
pub async fn stream(
    api: &Api,
    pod_res: &skiff_api::ResourceInfo,
    ns: &str,
    name: &str,
    sub: &str,
    mut req: StreamRequest,
) -> Result<Response<Body>, ApiError> {
    let (pod, node, addr) = pod_and_node(api, pod_res, ns, name)?;
    let container = if sub == "portforward" {
        None
    } else {
        let asked = url::form_urlencoded::parse(req.query.as_bytes())
            .find(|(k, _)| k == "container")
            .map(|(_, v)| v.into_owned());
        Some(pick_container(name, &pod, asked.as_deref())?)
    };
    let wants_upgrade = req.headers.contains_key(http::header::UPGRADE);
    let Some(client_upgrade) = req.upgrade.take().filter(|_| wants_upgrade) else {
        return Err(ApiError::bad_request(format!(
            "{sub} needs an HTTP/1.1 upgrade (websocket or SPDY) that this connection cannot pass to the kubelet"
        )));
    };
    let query = if sub == "portforward" {
        portforward_query(&req.query)
    } else {
        req.query.clone()
    };
    let path = kubelet_path(sub, ns, name, container.as_deref(), &query);
    let mut sender = open(api, &node, addr).await?;
    let mut out = Request::builder().method(req.method.clone()).uri(path);
    for (k, v) in &req.headers {
        // Our caller's credentials are for us; the kubelet trusts the API server.
        if k == http::header::AUTHORIZATION || k == http::header::HOST {
            continue;
        }
        out = out.header(k, v);
    }
    let out = out
        .header(http::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))
        .map_err(|e| ApiError::internal(format!("building the kubelet request failed: {e}")))?;
    let mut resp = sender
        .send_request(out)
        .await
        .map_err(|e| unreachable_node(&node, addr, &e.to_string()))?;
    let status = resp.status();
    let mut back = Response::builder().status(status);
    for (k, v) in resp.headers() {
        back = back.header(k, v);
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let kubelet_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, kubelet_upgrade) {
                Ok((a, b)) => {
                    let (mut a, mut b) = (TokioIo::new(a), TokioIo::new(b));
                    if let Err(e) = tokio::io::copy_bidirectional(&mut a, &mut b).await {
                        tracing::debug!(error = %e, "streaming copy ended with an error");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "joining the upgraded connections failed"),
            }
        });
        return Ok(back
            .body(crate::response::full(Bytes::new()))
            .expect("valid response"));
    }
    // Refused upgrade (e.g. the client falls back from websocket to SPDY): pass it on.
    let body = resp.into_body().map_err(std::io::Error::other).boxed();
    Ok(back.body(body).expect("valid response"))
}

/// The API's `ports` (PodPortForwardOptions, repeated or comma-separated) becomes the
/// kubelet's repeated `port`, as upstream translates it: the runtime's websocket
/// port-forward reads its ports from there (SPDY clients name them per stream instead).
pub fn portforward_query(raw: &str) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if k == "ports" {
            for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                q.append_pair("port", p);
            }
        } else {
            q.append_pair(&k, &v);
        }
    }
    q.finish()
}

fn unreachable_node(node: &str, addr: SocketAddr, why: &str) -> ApiError {
    ApiError::service_unavailable(format!(
        "the kubelet of node {node} at {addr} is unreachable: {why}"
    ))
}

/// The Status for a failed TLS handshake with a kubelet: a certificate that does not
/// verify is a 500 that says so (the node is up but not trusted, so retrying will not
/// help); anything else counts as unreachable.
fn tls_failure(node: &str, addr: SocketAddr, e: &std::io::Error) -> ApiError {
    let bad_cert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    if bad_cert {
        ApiError::internal(format!(
            "refusing the kubelet of node {node} at {addr}: its serving certificate does not verify against the cluster CA for this node and address ({e}); restart the node's agent so it gets a certificate from this server"
        ))
    } else {
        unreachable_node(node, addr, &format!("tls: {e}"))
    }
}

/// A TLS connection to the kubelet with an HTTP/1.1 client on it.
async fn open(
    api: &Api,
    node: &str,
    addr: SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ApiError> {
    // In a lab the nodes' addresses exist only inside its namespaces: connect from
    // there, never through the host's routes.
    let tcp = match &api.kubelet_netns {
        Some(ns) => crate::netns::connect_in(ns, addr, CONNECT_TIMEOUT)
            .await
            .map_err(|e| unreachable_node(node, addr, &e.to_string()))?,
        None => tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| unreachable_node(node, addr, "connect timed out"))?
            .map_err(|e| unreachable_node(node, addr, &e.to_string()))?,
    };
    let server_name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let config = crate::tls::kubelet_client_config(&api.ca_pem, node).map_err(|e| {
        ApiError::internal(format!(
            "cannot verify the kubelet of node {node}: its name cannot be checked: {e}"
        ))
    })?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await
        .map_err(|e| tls_failure(node, addr, &e))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| unreachable_node(node, addr, &e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "kubelet connection ended with an error");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubelet_address_comes_from_the_node_or_says_why_not() {
        let pod = json!({"spec": {"nodeName": "n1", "containers": [{"name": "app"}]}});
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "192.168.9.2"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 11250}},
        }});
        assert_eq!(
            kubelet_address("p", &pod, Some(&node)).unwrap(),
            ("n1".into(), "192.168.9.2:11250".parse().unwrap())
        );
        let no_port =
            json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.3"}]}});
        assert_eq!(
            kubelet_address("p", &pod, Some(&no_port)).unwrap().1,
            "10.0.0.3:10250".parse().unwrap()
        );

        let unscheduled = json!({"spec": {"containers": []}});
        let e = kubelet_address("p", &unscheduled, None).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("not scheduled"), "{}", e.message);
        let e = kubelet_address("p", &pod, None).unwrap_err();
        assert_eq!(e.code, 503);
        assert!(e.message.contains("n1"), "{}", e.message);
        let e = kubelet_address("p", &pod, Some(&json!({"status": {}}))).unwrap_err();
        assert_eq!(e.code, 503);
        assert!(e.message.contains("InternalIP"), "{}", e.message);
    }

    #[test]
    fn containers_are_picked_like_upstream() {
        let one = json!({"spec": {"containers": [{"name": "app"}]}});
        assert_eq!(pick_container("p", &one, None).unwrap(), "app");
        assert_eq!(pick_container("p", &one, Some("")).unwrap(), "app");
        assert_eq!(
            pick_container("p", &one, Some("nope")).unwrap_err().code,
            400
        );
        let two = json!({"metadata": {}, "spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        assert!(pick_container("p", &two, None)
            .unwrap_err()
            .message
            .contains("choose one of: [a b]"));
        assert_eq!(pick_container("p", &two, Some("i")).unwrap(), "i");
        let annotated = json!({"metadata": {"annotations": {"kubectl.kubernetes.io/default-container": "b"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(pick_container("p", &annotated, None).unwrap(), "b");
    }

    #[test]
    fn portforward_ports_become_the_kubelets_port_list() {
        assert_eq!(portforward_query("ports=8080"), "port=8080");
        assert_eq!(
            portforward_query("ports=80,81&ports=82"),
            "port=80&port=81&port=82"
        );
        assert_eq!(portforward_query(""), "");
    }

    #[test]
    fn kubelet_paths_follow_the_kubelet_api() {
        assert_eq!(
            kubelet_path("log", "d", "p", Some("c"), "follow=true"),
            "/containerLogs/d/p/c?follow=true"
        );
        assert_eq!(
            kubelet_path("exec", "d", "p", Some("c"), "command=ls"),
            "/exec/d/p/c?command=ls"
        );
        assert_eq!(
            kubelet_path("attach", "d", "p", Some("c"), ""),
            "/attach/d/p/c"
        );
        assert_eq!(
            kubelet_path("portforward", "d", "p", None, ""),
            "/portForward/d/p"
        );
    }
}
