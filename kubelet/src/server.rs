//! The kubelet's HTTPS server (port 10250 upstream): what the API server calls for
//! `kubectl logs`, `exec`, `attach` and `port-forward`.
//!
//! - `GET /containerLogs/{ns}/{pod}/{container}?follow=&tailLines=&sinceSeconds=&previous=&timestamps=`
//!   reads the CRI log file of the container (the runtime's `log_path`) and, with
//!   `follow`, keeps sending what is appended until the container stops.
//! - `/exec/{ns}/{pod}/{container}?command=..&stdin=&stdout=&stderr=&tty=`,
//!   `/attach/{ns}/{pod}/{container}` and `/portForward/{ns}/{pod}` ask the runtime for
//!   its streaming URL (CRI `Exec`, `Attach`, `PortForward`) and pass the client's
//!   request, HTTP upgrade included, through to the runtime's streaming server, then
//!   copy bytes both ways. containerd speaks SPDY and websocket there, so the kubelet
//!   never parses either protocol.
//!
//! The serving certificate is signed by the cluster CA when the agent got one
//! ([`request_serving_cert`]: the key is made here and never leaves the node; the API
//! server signs it for this node's name and addresses and verifies it when it dials
//! in). Without one the certificate is self-signed, which only direct callers accept.
//! Callers authenticate with a bearer token when one is configured.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use crate::cri::logs::{self, Stream};
use crate::cri::{api, container_state, CriError, Runtime};
use crate::cri_config::{LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE};

/// The upstream kubelet port; the Node's `status.daemonEndpoints.kubeletEndpoint.Port`.
pub const DEFAULT_PORT: u16 = 10250;

type Body = BoxBody<Bytes, std::io::Error>;

/// How the server listens and whom it trusts.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// When set, every request must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// The network namespace containerd (and so its streaming server on 127.0.0.1)
    /// lives in, when it is not this process's one (lab nodes).
    pub streaming_netns: Option<String>,
    /// Names and addresses written into the self-signed certificate.
    pub cert_names: Vec<String>,
    /// The certificate to serve, signed by the cluster CA; `None`: self-signed for
    /// `cert_names`.
    pub serving_cert: Option<ServingCert>,
}

/// A serving certificate and its key, both PEM.
#[derive(Clone)]
pub struct ServingCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("ServingCert").finish_non_exhaustive()
    }
}

/// Makes a key pair and asks the API server (`POST /skiff/v1/kubelet-serving-cert`)
/// to sign a serving certificate for `node` naming `names` (the node's addresses and
/// its own name). `client` is the node's credential, so the server signs for this
/// node only; an admin client works too (tests).
pub async fn request_serving_cert(
    client: &kube::Client,
    node: &str,
    names: &[String],
) -> Result<ServingCert, ServerError> {
    let key = rcgen::KeyPair::generate()?;
    let body = serde_json::json!({
        "nodeName": node,
        "publicKey": key.public_key_pem(),
        "names": names,
    });
    let req = http::Request::post("/skiff/v1/kubelet-serving-cert")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).expect("json"))
        .expect("valid request");
    let answer: serde_json::Value = client
        .request(req)
        .await
        .map_err(|e| ServerError::CertRequest(e.to_string()))?;
    let cert_pem = answer["certificate"]
        .as_str()
        .ok_or_else(|| ServerError::CertRequest("the answer holds no certificate".into()))?;
    Ok(ServingCert {
        cert_pem: cert_pem.to_string(),
        key_pem: key.serialize_pem(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr} for the kubelet server: {source}; is the port taken?")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("generating the kubelet serving certificate failed: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("the kubelet tls configuration is invalid: {0}")]
    Tls(#[from] rustls::Error),
    #[error("the API server did not sign the kubelet serving certificate: {0}")]
    CertRequest(String),
    #[error("the kubelet serving certificate or key is not usable PEM: {0}")]
    BadPem(String),
}

/// One parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    ContainerLogs {
        namespace: String,
        pod: String,
        container: String,
    },
    Exec {
        namespace: String,
        pod: String,
        container: String,
    },
    Attach {
        namespace: String,
        pod: String,
        container: String,
    },
    PortForward {
        namespace: String,
        pod: String,
    },
}

/// Maps a request path to a [`Route`] (`None`: 404).
pub fn parse_route(path: &str) -> Option<Route> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let s = |i: usize| parts[i].to_string();
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    match parts.as_slice() {
        ["containerLogs", _, _, _] => Some(Route::ContainerLogs {
            namespace: s(1),
            pod: s(2),
            container: s(3),
        }),
        ["exec", _, _, _] => Some(Route::Exec {
            namespace: s(1),
            pod: s(2),
            container: s(3),
        }),
        ["attach", _, _, _] => Some(Route::Attach {
            namespace: s(1),
            pod: s(2),
            container: s(3),
        }),
        ["portForward", _, _] => Some(Route::PortForward {
            namespace: s(1),
            pod: s(2),
        }),
        _ => None,
    }
}

/// The options of a container log request (upstream `PodLogOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub since_seconds: Option<i64>,
    pub limit_bytes: Option<usize>,
}

/// The query parameters of a request; repeated keys (exec's `command`) keep order.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn flag(q: &[(String, String)], key: &str) -> bool {
    q.iter()
        .any(|(k, v)| k == key && (v == "true" || v == "1" || v.is_empty()))
}

fn value<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Parses log options; a malformed number is an error naming the parameter.
pub fn parse_log_options(q: &[(String, String)]) -> Result<LogOptions, String> {
    let num = |key: &str| -> Result<Option<i64>, String> {
        value(q, key)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| format!("{key} must be an integer, got {v:?}"))
            })
            .transpose()
    };
    let non_negative = |key: &str| -> Result<Option<usize>, String> {
        match num(key)? {
            Some(n) if n < 0 => Err(format!("{key} must be 0 or more, got {n}")),
            other => Ok(other.map(|n| n as usize)),
        }
    };
    Ok(LogOptions {
        follow: flag(q, "follow"),
        previous: flag(q, "previous"),
        timestamps: flag(q, "timestamps"),
        tail_lines: non_negative("tailLines")?,
        since_seconds: num("sinceSeconds")?,
        limit_bytes: non_negative("limitBytes")?,
    })
}

/// The lines of a CRI log text as `kubectl logs` shows them: partial records joined,
/// records older than `since` (RFC 3339 cut-off) dropped, the last `tail_lines` kept,
/// each prefixed with its time when `timestamps` is set. Both streams are merged in
/// file order, as upstream does.
pub fn render_log(
    text: &str,
    opts: &LogOptions,
    since: Option<&chrono::DateTime<chrono::Utc>>,
) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut pending: [(String, Option<String>); 2] = Default::default();
    for record in text.lines().filter_map(|l| logs::parse_record(l).ok()) {
        let slot = &mut pending[match record.stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }];
        if slot.1.is_none() {
            slot.1 = Some(record.time.to_string());
        }
        slot.0.push_str(record.content);
        if record.partial {
            continue;
        }
        let line = std::mem::take(&mut slot.0);
        let time = slot.1.take().unwrap_or_default();
        if let Some(cut) = since {
            let t =
                chrono::DateTime::parse_from_rfc3339(&time).map(|t| t.with_timezone(&chrono::Utc));
            if t.is_ok_and(|t| t < *cut) {
                continue;
            }
        }
        out.push(if opts.timestamps {
            format!("{time} {line}\n")
        } else {
            format!("{line}\n")
        });
    }
    let skip = opts.tail_lines.map_or(0, |n| out.len().saturating_sub(n));
    let mut text: String = out.into_iter().skip(skip).collect();
    if let Some(limit) = opts.limit_bytes {
        let mut cut = limit.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

struct Shared {
    runtime: Arc<dyn Runtime>,
    /// Resolves a relative CRI `log_path` (the fake runtime keeps it as given).
    log_root: std::path::PathBuf,
    config: ServerConfig,
    shutdown: CancellationToken,
}

/// Binds the server and serves it in the background until `shutdown`; returns the
/// bound address (useful with port 0).
pub async fn start(
    config: ServerConfig,
    runtime: Arc<dyn Runtime>,
    log_root: std::path::PathBuf,
    shutdown: CancellationToken,
) -> Result<SocketAddr, ServerError> {
    let tls = tls_config(&config.cert_names, config.serving_cert.as_ref())?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    tracing::info!(%addr, "kubelet server listening");
    let shared = Arc::new(Shared {
        runtime,
        log_root,
        config,
        shutdown: shutdown.clone(),
    });
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a kubelet connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let acceptor = acceptor.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => return tracing::debug!(%peer, error = %e, "tls handshake failed"),
                };
                let svc = hyper::service::service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(shared, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "kubelet connection ended with an error");
                }
            });
        }
    });
    Ok(addr)
}

fn tls_config(
    names: &[String],
    signed: Option<&ServingCert>,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    use rustls::pki_types::pem::PemObject;
    let (certs, key) = match signed {
        Some(s) => {
            let certs = rustls::pki_types::CertificateDer::pem_slice_iter(s.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ServerError::BadPem(e.to_string()))?;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(s.key_pem.as_bytes())
                .map_err(|e| ServerError::BadPem(e.to_string()))?;
            (certs, key)
        }
        None => {
            let mut names = names.to_vec();
            if names.is_empty() {
                names.push("localhost".into());
            }
            let certified = rcgen::generate_simple_self_signed(names)?;
            let cert = certified.cert.der().clone();
            let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
                certified.signing_key.serialize_der().into(),
            );
            (vec![cert], key)
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // HTTP/1.1 only: the streaming calls are HTTP/1.1 upgrades.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn text(code: StatusCode, s: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(full(s.into()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    if let Some(token) = &shared.config.token {
        let got = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if got != Some(format!("Bearer {token}").as_str()) {
            return text(
                StatusCode::UNAUTHORIZED,
                "unauthorized: the kubelet needs the bearer token it was configured with",
            );
        }
    }
    let Some(route) = parse_route(req.uri().path()) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no kubelet endpoint at {}", req.uri().path()),
        );
    };
    let span = tracing::info_span!("kubelet request", route = ?route);
    tracing::Instrument::instrument(serve_route(shared, route, req), span).await
}

async fn serve_route(shared: Arc<Shared>, route: Route, req: Request<Incoming>) -> Response<Body> {
    let q = query_pairs(req.uri().query());
    let result = match route {
        Route::ContainerLogs {
            namespace,
            pod,
            container,
        } => container_logs(&shared, &namespace, &pod, &container, &q).await,
        Route::Exec {
            namespace,
            pod,
            container,
        } => {
            let id =
                match find_container(shared.runtime.as_ref(), &namespace, &pod, &container, false)
                    .await
                {
                    Ok(id) => id,
                    Err(r) => return r,
                };
            let command: Vec<String> = q
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.clone())
                .collect();
            if command.is_empty() {
                return text(
                    StatusCode::BAD_REQUEST,
                    "exec needs at least one command parameter",
                );
            }
            let request = api::ExecRequest {
                container_id: id,
                cmd: command,
                tty: flag(&q, "tty"),
                stdin: flag(&q, "stdin") || flag(&q, "input"),
                stdout: flag(&q, "stdout") || flag(&q, "output"),
                stderr: flag(&q, "stderr") || flag(&q, "error"),
            };
            match shared.runtime.exec(request).await {
                Ok(url) => Ok(proxy_upgrade(&shared, req, &url).await),
                Err(e) => Err(runtime_error("exec", e)),
            }
        }
        Route::Attach {
            namespace,
            pod,
            container,
        } => {
            let id =
                match find_container(shared.runtime.as_ref(), &namespace, &pod, &container, false)
                    .await
                {
                    Ok(id) => id,
                    Err(r) => return r,
                };
            let request = api::AttachRequest {
                container_id: id,
                stdin: flag(&q, "stdin") || flag(&q, "input"),
                tty: flag(&q, "tty"),
                stdout: flag(&q, "stdout") || flag(&q, "output"),
                stderr: flag(&q, "stderr") || flag(&q, "error"),
            };
            match shared.runtime.attach(request).await {
                Ok(url) => Ok(proxy_upgrade(&shared, req, &url).await),
                Err(e) => Err(runtime_error("attach", e)),
            }
        }
        Route::PortForward { namespace, pod } => {
            let labels = HashMap::from([
                (LABEL_POD_NAMESPACE.to_string(), namespace.clone()),
                (LABEL_POD_NAME.to_string(), pod.clone()),
            ]);
            let filter = api::PodSandboxFilter {
                label_selector: labels,
                ..Default::default()
            };
            match shared.runtime.list_pod_sandboxes(Some(filter)).await {
                Ok(sandboxes) => {
                    let ready = sandboxes
                        .into_iter()
                        .find(|s| s.state == api::PodSandboxState::SandboxReady as i32);
                    match ready {
                        None => Ok(text(
                            StatusCode::NOT_FOUND,
                            format!("pod {namespace}/{pod} has no running sandbox on this node"),
                        )),
                        Some(sb) => {
                            let ports = q
                                .iter()
                                .filter(|(k, _)| k == "port")
                                .filter_map(|(_, v)| v.parse().ok())
                                .collect();
                            let request = api::PortForwardRequest {
                                pod_sandbox_id: sb.id,
                                port: ports,
                            };
                            match shared.runtime.port_forward(request).await {
                                Ok(url) => Ok(proxy_upgrade(&shared, req, &url).await),
                                Err(e) => Err(runtime_error("port-forward", e)),
                            }
                        }
                    }
                }
                Err(e) => Err(runtime_error("port-forward", e)),
            }
        }
    };
    result.unwrap_or_else(|r| r)
}

fn runtime_error(what: &str, e: CriError) -> Response<Body> {
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("{what} failed in the container runtime: {e}"),
    )
}

/// The id of the container `name` of a pod: the newest attempt, or with `previous` the
/// one before it.
async fn find_container(
    runtime: &dyn Runtime,
    ns: &str,
    pod: &str,
    name: &str,
    previous: bool,
) -> Result<String, Response<Body>> {
    find_container_labels(runtime, ns, pod, name, previous)
        .await
        .map(|(id, _)| id)
}

async fn find_container_labels(
    runtime: &dyn Runtime,
    ns: &str,
    pod: &str,
    name: &str,
    previous: bool,
) -> Result<(String, HashMap<String, String>), Response<Body>> {
    let labels = HashMap::from([
        (LABEL_POD_NAMESPACE.to_string(), ns.to_string()),
        (LABEL_POD_NAME.to_string(), pod.to_string()),
        (LABEL_CONTAINER_NAME.to_string(), name.to_string()),
    ]);
    let filter = api::ContainerFilter {
        label_selector: labels,
        ..Default::default()
    };
    let mut found = runtime
        .list_containers(Some(filter))
        .await
        .map_err(|e| runtime_error("listing containers", e))?;
    found.sort_by_key(|c| {
        std::cmp::Reverse((c.metadata.as_ref().map_or(0, |m| m.attempt), c.created_at))
    });
    let index = usize::from(previous);
    match found.get(index) {
        Some(c) => Ok((c.id.clone(), c.labels.clone())),
        None if previous => Err(text(
            StatusCode::BAD_REQUEST,
            format!("previous terminated container \"{name}\" in pod \"{pod}\" not found"),
        )),
        None => Err(text(
            StatusCode::NOT_FOUND,
            format!("container \"{name}\" of pod {ns}/{pod} is not on this node (yet)"),
        )),
    }
}

async fn container_logs(
    shared: &Shared,
    ns: &str,
    pod: &str,
    container: &str,
    q: &[(String, String)],
) -> Result<Response<Body>, Response<Body>> {
    let opts = parse_log_options(q).map_err(|e| text(StatusCode::BAD_REQUEST, e))?;
    let (id, labels) =
        find_container_labels(shared.runtime.as_ref(), ns, pod, container, opts.previous).await?;
    let status = shared
        .runtime
        .container_status(&id)
        .await
        .map_err(|e| runtime_error("container status", e))?;
    let mut path = std::path::PathBuf::from(&status.log_path);
    if path.is_relative() {
        let uid = labels
            .get(crate::cri_config::LABEL_POD_UID)
            .map_or("", String::as_str);
        path = crate::cri_config::pod_log_dir(&shared.log_root, ns, pod, uid).join(path);
    }
    let content = tokio::fs::read(&path).await.unwrap_or_default();
    // Only whole records are rendered now; a follower starts from the last newline.
    let complete = content
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let since = opts
        .since_seconds
        .map(|s| chrono::Utc::now() - chrono::Duration::seconds(s));
    let first = render_log(
        &String::from_utf8_lossy(&content[..complete]),
        &opts,
        since.as_ref(),
    );
    let mut resp = Response::new(full(first.clone()));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    if !opts.follow || opts.previous {
        return Ok(resp);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    let runtime = shared.runtime.clone();
    let shutdown = shared.shutdown.clone();
    let render_opts = LogOptions {
        tail_lines: None,
        limit_bytes: None,
        ..opts
    };
    tokio::spawn(async move {
        if !first.is_empty() && tx.send(Ok(Frame::data(Bytes::from(first)))).await.is_err() {
            return;
        }
        let mut offset = complete as u64;
        let mut idle_checks = 0u32;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            let grown = read_from(&path, offset).await;
            let complete = grown.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if complete > 0 {
                offset += complete as u64;
                let chunk = render_log(
                    &String::from_utf8_lossy(&grown[..complete]),
                    &render_opts,
                    None,
                );
                if !chunk.is_empty() && tx.send(Ok(Frame::data(Bytes::from(chunk)))).await.is_err()
                {
                    return;
                }
                continue;
            }
            // Nothing new: end the stream once the container has stopped.
            idle_checks += 1;
            if idle_checks.is_multiple_of(5) {
                let running = runtime.container_status(&id).await.is_ok_and(|s| {
                    container_state(s.state) == api::ContainerState::ContainerRunning
                });
                if !running {
                    return;
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    *resp.body_mut() = StreamBody::new(stream).boxed();
    Ok(resp)
}

async fn read_from(path: &std::path::Path, offset: u64) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let Ok(mut f) = tokio::fs::File::open(path).await else {
        return Vec::new();
    };
    if f.seek(std::io::SeekFrom::Start(offset)).await.is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf).await;
    buf
}

/// Connects to `addr`, from inside `netns` when given: the socket is created on a
/// thread of its own that entered the namespace, and keeps that namespace afterwards.
async fn connect(addr: SocketAddr, netns: Option<&str>) -> std::io::Result<tokio::net::TcpStream> {
    let Some(netns) = netns else {
        return tokio::net::TcpStream::connect(addr).await;
    };
    let path = crate::process::netns_path(netns);
    let handle = std::thread::spawn(move || -> std::io::Result<std::net::TcpStream> {
        let file = std::fs::File::open(&path)?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::from)?;
        let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_nonblocking(true)?;
        Ok(s)
    });
    let std_stream = tokio::task::spawn_blocking(move || handle.join())
        .await
        .map_err(std::io::Error::other)?
        .map_err(|_| std::io::Error::other("the connecting thread panicked"))??;
    tokio::net::TcpStream::from_std(std_stream)
}

/// Sends the client's request to the runtime's streaming `url` and, when the runtime
/// switches protocols, joins the two upgraded connections.
async fn proxy_upgrade(shared: &Shared, mut req: Request<Incoming>, url: &str) -> Response<Body> {
    let bad_gateway = |why: String| text(StatusCode::BAD_GATEWAY, why);
    let Ok(target) = url.parse::<http::Uri>() else {
        return bad_gateway(format!("the runtime returned a bad streaming url {url:?}"));
    };
    let host = target
        .host()
        .unwrap_or("127.0.0.1")
        .trim_matches(['[', ']']);
    let port = target.port_u16().unwrap_or(80);
    let Ok(ip) = host.parse::<std::net::IpAddr>() else {
        return bad_gateway(format!(
            "the runtime's streaming url {url:?} does not name an ip address"
        ));
    };
    let addr = SocketAddr::new(ip, port);
    let tcp = match connect(addr, shared.config.streaming_netns.as_deref()).await {
        Ok(t) => t,
        Err(e) => {
            return bad_gateway(format!(
                "cannot reach the runtime's streaming server at {addr}: {e}"
            ))
        }
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await {
        Ok(x) => x,
        Err(e) => {
            return bad_gateway(format!(
                "http handshake with the streaming server failed: {e}"
            ))
        }
    };
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "streaming server connection ended with an error");
        }
    });
    let client_upgrade = hyper::upgrade::on(&mut req);
    let mut out = Request::builder()
        .method(req.method().clone())
        .uri(target.path_and_query().map_or("/", |p| p.as_str()));
    for (k, v) in req.headers() {
        // The runtime authorises by the token in its URL, not by our caller's credentials.
        if k == http::header::AUTHORIZATION || k == http::header::HOST {
            continue;
        }
        out = out.header(k, v);
    }
    out = out.header(http::header::HOST, addr.to_string());
    let Ok(out) = out.body(Full::new(Bytes::new())) else {
        return bad_gateway("cannot build the streaming request".into());
    };
    let mut resp = match sender.send_request(out).await {
        Ok(r) => r,
        Err(e) => return bad_gateway(format!("the streaming server did not answer: {e}")),
    };
    let status = resp.status();
    let mut back = Response::builder().status(status);
    for (k, v) in resp.headers() {
        back = back.header(k, v);
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let runtime_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, runtime_upgrade) {
                Ok((a, b)) => {
                    let mut a = TokioIo::new(a);
                    let mut b = TokioIo::new(b);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut a, &mut b).await {
                        tracing::debug!(error = %e, "streaming copy ended with an error");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "upgrading the streaming connection failed"),
            }
        });
        return back
            .body(full(Bytes::new()))
            .unwrap_or_else(|_| bad_gateway("bad upgrade response".into()));
    }
    let body = resp.into_body().map_err(std::io::Error::other).boxed();
    back.body(body)
        .unwrap_or_else(|_| bad_gateway("bad streaming response".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        let s = String::from;
        let cases = [
            (
                "/containerLogs/default/web/app",
                Some(Route::ContainerLogs {
                    namespace: s("default"),
                    pod: s("web"),
                    container: s("app"),
                }),
            ),
            (
                "/exec/ns/p/c",
                Some(Route::Exec {
                    namespace: s("ns"),
                    pod: s("p"),
                    container: s("c"),
                }),
            ),
            (
                "/attach/ns/p/c",
                Some(Route::Attach {
                    namespace: s("ns"),
                    pod: s("p"),
                    container: s("c"),
                }),
            ),
            (
                "/portForward/ns/p",
                Some(Route::PortForward {
                    namespace: s("ns"),
                    pod: s("p"),
                }),
            ),
            ("/portForward/ns/p/extra", None),
            ("/containerLogs/default//app", None),
            ("/healthz", None),
        ];
        for (path, want) in cases {
            assert_eq!(parse_route(path), want, "{path}");
        }
    }

    #[test]
    fn log_options_parse_and_reject_bad_numbers() {
        let q = query_pairs(Some(
            "follow=true&tailLines=3&sinceSeconds=60&timestamps=true",
        ));
        let o = parse_log_options(&q).unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!((o.tail_lines, o.since_seconds), (Some(3), Some(60)));
        assert!(parse_log_options(&query_pairs(Some("tailLines=x")))
            .unwrap_err()
            .contains("tailLines"));
        assert!(parse_log_options(&query_pairs(Some("tailLines=-1")))
            .unwrap_err()
            .contains("0 or more"));
        let cmd = query_pairs(Some("command=sh&command=-c&command=echo+hi"));
        assert_eq!(
            cmd.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>(),
            ["sh", "-c", "echo hi"]
        );
    }

    #[test]
    fn logs_render_with_tail_since_timestamps_and_limit() {
        let text = "\
2024-01-01T00:00:00Z stdout F one
2024-01-01T00:00:10Z stdout P tw
2024-01-01T00:00:11Z stderr F err
2024-01-01T00:00:12Z stdout F o
2024-01-01T00:00:20Z stdout F three
";
        let plain = LogOptions::default();
        assert_eq!(render_log(text, &plain, None), "one\nerr\ntwo\nthree\n");
        let tail = LogOptions {
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(render_log(text, &tail, None), "two\nthree\n");
        let zero = LogOptions {
            tail_lines: Some(0),
            ..Default::default()
        };
        assert_eq!(render_log(text, &zero, None), "");
        let ts = LogOptions {
            timestamps: true,
            tail_lines: Some(1),
            ..Default::default()
        };
        assert_eq!(render_log(text, &ts, None), "2024-01-01T00:00:20Z three\n");
        // A joined line carries the time of its first record.
        let cut: chrono::DateTime<chrono::Utc> = "2024-01-01T00:00:10Z".parse().unwrap();
        assert_eq!(render_log(text, &plain, Some(&cut)), "err\ntwo\nthree\n");
        let limit = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        assert_eq!(render_log(text, &limit, None), "one\ner");
    }
}
