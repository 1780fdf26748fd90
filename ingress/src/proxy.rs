//! The HTTP(S) front: a hyper 1 server (HTTP/1.1 and HTTP/2, plain or TLS) that looks
//! every request up in the current [`RouteTable`] and proxies it to a ready endpoint
//! of the backend Service, straight to the pod IP, over the worker thread's connection
//! pool ([`crate::upstream`]).
//!
//! Request phases, in order:
//! 1. hyper parses the head under the size limits and the header read timeout
//!    (431 for oversized heads, connection closed on a slow head) and refuses
//!    ambiguous framing (differing `Content-Length`s, a non-chunked
//!    `Transfer-Encoding`: 400); with both `Content-Length` and chunked
//!    `Transfer-Encoding` it follows RFC 9112 section 6.1: chunked wins, the length is
//!    dropped, the connection is closed after the response;
//! 2. [`Proxy::handle`] refuses declared oversized bodies (413);
//! 3. host + path -> route (404), ssl-redirect (308), no ready endpoint (503);
//! 4. the upstream request: hop-by-hop headers dropped, `X-Forwarded-For/Proto/Host`
//!    and `X-Real-IP` set, the path rewritten, the body streamed through a limit;
//! 5. round-robin endpoint; a connect failure moves on to the next endpoint as long
//!    as no body byte was sent; other failures are 502, a slow backend 504;
//! 6. the response streams back; a `101 Switching Protocols` joins both upgraded
//!    connections (websockets) and copies bytes both ways.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::annotations::BackendProtocol;
use crate::routes::{normalize_host, Match, RouteTable};
use crate::tls::CertStore;
use crate::upstream::{Failed, Pool, PooledBody};

/// Time limits of the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// Whole request head (and TLS handshake) must arrive within this (slowloris).
    pub header_read: Duration,
    /// TCP connect to one endpoint.
    pub connect: Duration,
    /// From sending the request to the backend's response head (504 after).
    pub response_header: Duration,
    /// Idle pooled backend connections are closed after this.
    pub backend_idle: Duration,
    /// Open connections get this long to finish when shutting down.
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read: Duration::from_secs(10),
            connect: Duration::from_secs(5),
            response_header: Duration::from_secs(60),
            backend_idle: Duration::from_secs(90),
            drain: Duration::from_secs(10),
        }
    }
}

/// Size limits of the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Request line plus headers, in bytes (431 above; hyper needs at least 8192).
    pub max_header_bytes: usize,
    /// Number of request headers (431 above).
    pub max_headers: usize,
    /// Request body, in bytes (413 above).
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

/// What the proxy needs besides the tables.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    pub timeouts: Timeouts,
    pub limits: Limits,
    /// Port used in ssl-redirect locations (omitted when 443).
    pub https_port: u16,
}

/// The tables the watch layer swaps and every request reads.
#[derive(Debug)]
pub struct Shared {
    pub routes: ArcSwap<RouteTable>,
    pub certs: Arc<ArcSwap<CertStore>>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            routes: ArcSwap::from_pointee(RouteTable::default()),
            certs: Arc::new(ArcSwap::from_pointee(CertStore::default())),
        }
    }
}

/// Request bodies as sent upstream: streamed through the size limit.
pub type UpstreamBody = Limited<Incoming>;

/// Response bodies: streamed from the backend, or a small page made here.
pub type ResponseBody = Either<PooledBody<UpstreamBody>, Full<Bytes>>;

/// The request handler shared by every connection.
pub struct Proxy {
    shared: Arc<Shared>,
    pool: Arc<Pool<UpstreamBody>>,
    config: ProxyConfig,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1) never forwarded in either direction.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

impl Proxy {
    /// A proxy with its own backend connection pool; make one per worker thread.
    pub fn new(shared: Arc<Shared>, config: ProxyConfig) -> Arc<Self> {
        let pool = Pool::new(
            config.timeouts.connect,
            config.timeouts.backend_idle,
            backend_tls_config(),
        );
        Arc::new(Proxy {
            shared,
            pool,
            config,
        })
    }

    /// Handles one request from `peer`; never fails, errors become status pages.
    pub async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: Arc<Peer>,
    ) -> Result<Response<ResponseBody>, Infallible> {
        let https = peer.https;
        let headers = req.headers();
        // hyper already resolves Content-Length + Transfer-Encoding on HTTP/1.1 (TE
        // wins, CL is dropped, the connection closes afterwards); this guards any
        // path where both still arrive, the classic smuggling vector.
        if headers.contains_key(header::TRANSFER_ENCODING)
            && headers.contains_key(header::CONTENT_LENGTH)
        {
            return Ok(close(page(
                StatusCode::BAD_REQUEST,
                "both Content-Length and Transfer-Encoding are set",
            )));
        }
        if let Some(len) = headers.get(header::CONTENT_LENGTH) {
            match len.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
                Some(n) if n > self.config.limits.max_body_bytes as u64 => {
                    return Ok(close(page(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large",
                    )))
                }
                Some(_) => {}
                None => {
                    return Ok(close(page(
                        StatusCode::BAD_REQUEST,
                        "invalid Content-Length",
                    )))
                }
            }
        }
        // HTTP/2 (and absolute-form HTTP/1.1) carry the host in the URI.
        let raw_host = match req.uri().authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => headers.get(header::HOST).cloned(),
        };
        let Some(raw_host) = raw_host else {
            return Ok(page(StatusCode::BAD_REQUEST, "missing Host header"));
        };
        let Ok(raw_host_str) = raw_host.to_str() else {
            return Ok(page(StatusCode::BAD_REQUEST, "invalid Host header"));
        };
        let host = normalize_host(raw_host_str);
        let table = self.shared.routes.load();
        let route = match table.route(&host, req.uri().path()) {
            Match::Found(r) => r.clone(),
            Match::NotFound => return Ok(page(StatusCode::NOT_FOUND, "404 page not found")),
        };
        drop(table);

        if !https && route.ssl_redirect {
            let port = match self.config.https_port {
                443 => String::new(),
                p => format!(":{p}"),
            };
            let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let location = format!("https://{host}{port}{pq}");
            let mut resp = page(StatusCode::PERMANENT_REDIRECT, "redirecting to https");
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            return Ok(resp);
        }
        if route.backend.endpoints.is_empty() {
            return Ok(page(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 service unavailable: no ready endpoints",
            ));
        }

        let upgrade = is_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        let upgrade_proto = headers.get(header::UPGRADE).cloned();
        strip_hop_by_hop(&mut headers);
        if let (Some(_), Some(proto)) = (&upgrade, upgrade_proto) {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, proto);
        }
        add_forwarded(&mut headers, &peer, raw_host.clone());
        if !headers.contains_key(header::HOST) {
            // HTTP/2 clients send :authority instead; HTTP/1.1 backends need Host.
            headers.insert(header::HOST, raw_host);
        }
        // Without a rewrite the original path and query are reused as they are.
        let path_and_query = match (route.rewrite_target.is_some(), parts.uri.path_and_query()) {
            (false, Some(pq)) => pq.clone(),
            (_, pq) => {
                let path = route.upstream_path(parts.uri.path());
                let query = pq
                    .and_then(|p| p.query())
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default();
                match PathAndQuery::try_from(format!("{path}{query}")) {
                    Ok(pq) => pq,
                    Err(_) => return Ok(page(StatusCode::BAD_REQUEST, "invalid request path")),
                }
            }
        };
        let tls = route.protocol == BackendProtocol::Https;
        // Backends get origin-form request lines; the host travels in Host.
        let uri = Uri::from(path_and_query);

        // The request goes to one endpoint at a time; a connect failure hands it
        // back untouched (nothing, not even the body, was sent), so it moves on to
        // the next endpoint without a copy having been made up front.
        let mut upstream = Request::new(Limited::new(body, self.config.limits.max_body_bytes));
        *upstream.method_mut() = parts.method;
        *upstream.uri_mut() = uri;
        *upstream.version_mut() = Version::HTTP_11;
        *upstream.headers_mut() = headers;
        let mut pending = Some(upstream);
        let mut last_error = None;
        for endpoint in route.backend.pick() {
            let Some(upstream) = pending.take() else {
                break;
            };
            let result = tokio::time::timeout(
                self.config.timeouts.response_header,
                self.pool.send(endpoint, tls, upstream),
            )
            .await;
            let Failed { error, request } = match result {
                Ok(Ok(resp)) => return Ok(self.respond(resp, upgrade).await),
                Ok(Err(failed)) => failed,
                Err(_) => {
                    warn!(backend = %route.backend.name, %endpoint, "backend response timed out");
                    return Ok(page(StatusCode::GATEWAY_TIMEOUT, "504 gateway timeout"));
                }
            };
            if is_length_limit(&error) {
                return Ok(close(page(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large",
                )));
            }
            warn!(backend = %route.backend.name, %endpoint, error = %error, connect = error.is_connect(), "backend request failed");
            // Only a request that never left this process is safe to replay.
            match request {
                Some(r) if error.is_connect() => pending = Some(*r),
                _ => return Ok(page(StatusCode::BAD_GATEWAY, "502 bad gateway")),
            }
            last_error = Some(error);
        }
        debug!(error = ?last_error, "every endpoint refused the connection");
        Ok(page(StatusCode::BAD_GATEWAY, "502 bad gateway"))
    }

    async fn respond(
        &self,
        mut resp: Response<PooledBody<UpstreamBody>>,
        upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Response<ResponseBody> {
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_side) = upgrade else {
                return page(
                    StatusCode::BAD_GATEWAY,
                    "502 bad gateway: unexpected protocol switch",
                );
            };
            let backend_side = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                match tokio::try_join!(client_side, backend_side) {
                    Ok((client, backend)) => {
                        let (mut client, mut backend) =
                            (TokioIo::new(client), TokioIo::new(backend));
                        if let Err(e) =
                            tokio::io::copy_bidirectional(&mut client, &mut backend).await
                        {
                            debug!(error = %e, "upgraded connection ended");
                        }
                    }
                    Err(e) => debug!(error = %e, "upgrade failed"),
                }
            });
            let (parts, _) = resp.into_parts();
            return Response::from_parts(parts, Either::Right(Full::new(Bytes::new())));
        }
        strip_hop_by_hop(resp.headers_mut());
        resp.map(Either::Left)
    }
}

fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Whether `name` is one of [`HOP_BY_HOP`].
fn is_hop_by_hop(name: &HeaderName) -> bool {
    // The standard names compare as enum tags; the two others by string.
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::TE
        || name == header::TRAILER
        || name == header::UPGRADE
        || name == header::PROXY_AUTHENTICATE
        || matches!(name.as_str(), "keep-alive" | "proxy-connection")
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them: one walk over the few names present is
    // cheaper than hashing all eight names for removal.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The client end of one connection, computed once per connection.
#[derive(Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The client IP as a header value (X-Real-IP, X-Forwarded-For).
    ip: HeaderValue,
    pub https: bool,
}

impl Peer {
    pub fn new(addr: SocketAddr, https: bool) -> Self {
        let ip = HeaderValue::from_str(&addr.ip().to_string())
            .expect("an IP address is a valid header value");
        Peer { addr, ip, https }
    }
}

fn add_forwarded(headers: &mut HeaderMap, peer: &Peer, raw_host: HeaderValue) {
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => HeaderValue::from_str(&format!("{prev}, {}", peer.addr.ip())).ok(),
        None => Some(peer.ip.clone()),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(X_REAL_IP.clone(), peer.ip.clone());
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if peer.https { "https" } else { "http" }),
    );
    headers.insert(X_FORWARDED_HOST.clone(), raw_host);
}

fn is_length_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<LengthLimitError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// A small text page for errors and redirects.
fn page(status: StatusCode, text: &str) -> Response<ResponseBody> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(format!("{text}\n")))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Asks hyper to close the connection after this response: the rest of the request
/// cannot be trusted (or is too big to drain).
fn close(mut resp: Response<ResponseBody>) -> Response<ResponseBody> {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// TLS to backends (backend-protocol: HTTPS). Pod certificates are typically
/// self-signed and issued for names the proxy cannot know, so, like ingress-nginx's
/// default (`proxy-ssl-verify: off`), the chain is not verified; the handshake
/// signature still is. This protects against passive eavesdropping only. (Public so
/// that tests can inspect the certificate a server presents.)
pub fn backend_tls_config() -> rustls::ClientConfig {
    unverified_client_config(&[&rustls::version::TLS13, &rustls::version::TLS12])
}

/// A client config that does not verify the server's chain, for the given versions.
pub fn unverified_client_config(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(NoChainVerification(provider.clone()));
    rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth()
}

#[derive(Debug)]
struct NoChainVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoChainVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An accepted connection on its way to a worker.
#[derive(Debug)]
pub struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    tls: bool,
}

/// Accepts connections until `shutdown` and deals them round-robin to the workers,
/// so that the load is spread evenly however the kernel would have woken them.
pub async fn accept_loop(
    listener: TcpListener,
    tls: bool,
    workers: Vec<tokio::sync::mpsc::UnboundedSender<Accepted>>,
    shutdown: CancellationToken,
) {
    let mut next = 0usize;
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Typically EMFILE: back off briefly instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        if workers.is_empty() {
            return;
        }
        let _ = workers[next % workers.len()].send(Accepted { stream, peer, tls });
        next = next.wrapping_add(1);
    }
}

/// A worker: serves the connections it is dealt until the dealers stop or
/// `shutdown`, then lets open connections finish for the drain timeout at most.
/// `tls` is required for connections accepted as TLS.
pub async fn serve_connections(
    mut incoming: tokio::sync::mpsc::UnboundedReceiver<Accepted>,
    tls: Option<TlsAcceptor>,
    proxy: Arc<Proxy>,
    shutdown: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(proxy.config.timeouts.header_read)
        .max_buf_size(proxy.config.limits.max_header_bytes.max(8192))
        .max_headers(proxy.config.limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(
            u32::try_from(proxy.config.limits.max_header_bytes).unwrap_or(u32::MAX),
        );
    let graceful = GracefulShutdown::new();
    let sweeper = {
        let (pool, every, stop) = (
            proxy.pool.clone(),
            proxy.config.timeouts.backend_idle / 2,
            shutdown.clone(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => pool.sweep(),
                }
            }
        })
    };
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = incoming.recv() => match a { Some(a) => a, None => break },
        };
        let Accepted {
            stream,
            peer,
            tls: is_tls,
        } = accepted;
        let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
            continue;
        };
        let acceptor = match (is_tls, &tls) {
            (false, _) => None,
            (true, Some(a)) => Some(a.clone()),
            (true, None) => continue,
        };
        let builder = builder.clone();
        let proxy = proxy.clone();
        let watcher = graceful.watcher();
        let handshake_timeout = proxy.config.timeouts.header_read;
        tokio::spawn(async move {
            let client = Arc::new(Peer::new(peer, is_tls));
            let service =
                hyper::service::service_fn(move |req| proxy.clone().handle(req, client.clone()));
            let result = match acceptor {
                None => {
                    watcher
                        .watch(
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service),
                        )
                        .await
                }
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(
                        handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return debug!(%peer, error = %e, "tls handshake failed"),
                        Err(_) => return debug!(%peer, "tls handshake timed out"),
                    };
                    watcher
                        .watch(
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service),
                        )
                        .await
                }
            };
            if let Err(e) = result {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(proxy.config.timeouts.drain, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("connections still open after the drain timeout; closing them");
    }
    sweeper.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn hop_by_hop_headers_are_stripped_and_others_kept() {
        // (headers in, names that must survive)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[Case] = &[
            (&[("host", "a"), ("accept", "*/*")], &["host", "accept"]),
            (&[("host", "a"), ("keep-alive", "timeout=5")], &["host"]),
            (&[("proxy-connection", "x"), ("x-a", "1")], &["x-a"]),
            (&[("te", "trailers"), ("trailer", "x")], &[]),
            (&[("transfer-encoding", "chunked"), ("upgrade", "h2c")], &[]),
            (&[("proxy-authenticate", "Basic"), ("x-b", "2")], &["x-b"]),
            // names listed in Connection go too, the others stay
            (
                &[
                    ("connection", "close, X-Secret"),
                    ("x-secret", "s"),
                    ("x-c", "3"),
                ],
                &["x-c"],
            ),
        ];
        for (input, want) in cases {
            let mut m = map(input);
            strip_hop_by_hop(&mut m);
            let mut got: Vec<&str> = m.keys().map(|k| k.as_str()).collect();
            got.sort_unstable();
            let mut want = want.to_vec();
            want.sort_unstable();
            assert_eq!(got, want, "{input:?}");
        }
    }
}
