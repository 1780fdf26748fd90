//! Connections to backend pods: a small HTTP/1.1 connection pool per proxy thread.
//!
//! Each proxy worker thread owns one [`Pool`], so checkout and return are an
//! uncontended lock and a `Vec` push/pop, and a backend connection is driven on the
//! same thread as the client connection it serves (no cross-thread wake-ups). A
//! connection goes back to the pool when its response body has been read to the end;
//! one dropped half-way (client went away) is closed instead, since its framing is no
//! longer known. Idle connections are closed after the idle timeout.
//!
//! Errors say whether the request may be replayed on another endpoint: only when it
//! never left this process (connect failure, or a pooled connection that turned out
//! to be closed before the request was written).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tracing::debug;

/// Most idle connections kept per endpoint; more are closed when returned.
const MAX_IDLE_PER_ENDPOINT: usize = 256;

/// Why a backend request failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Nothing was sent: safe to try another endpoint.
    #[error("connecting to {endpoint} failed: {reason}")]
    Connect {
        endpoint: SocketAddr,
        reason: String,
    },
    /// The request may have reached the backend.
    #[error("request to {endpoint} failed: {source}")]
    Request {
        endpoint: SocketAddr,
        source: hyper::Error,
    },
}

impl UpstreamError {
    pub fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect { .. })
    }
}

/// A request that could not be sent: the error, and the request itself when it
/// never left this process (a connect failure), ready for another endpoint.
pub struct Failed<B> {
    pub error: UpstreamError,
    pub request: Option<Box<Request<B>>>,
}

impl<B> std::fmt::Debug for Failed<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Failed")
            .field("error", &self.error)
            .field("request_returned", &self.request.is_some())
            .finish()
    }
}

type Key = (SocketAddr, bool);

struct Idle<B> {
    sender: SendRequest<B>,
    since: Instant,
}

/// A per-thread pool of HTTP/1.1 connections to endpoints.
pub struct Pool<B> {
    idle: Mutex<HashMap<Key, Vec<Idle<B>>>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    tls: TlsConnector,
}

impl<B> std::fmt::Debug for Pool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl<B> Pool<B> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Vec<Idle<B>>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn checkout(&self, key: Key) -> Option<SendRequest<B>> {
        let mut idle = self.lock();
        let list = idle.get_mut(&key)?;
        while let Some(c) = list.pop() {
            if !c.sender.is_closed() && c.since.elapsed() < self.idle_timeout {
                return Some(c.sender);
            }
        }
        None
    }

    fn put(&self, key: Key, sender: SendRequest<B>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE_PER_ENDPOINT {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Closes idle connections past the idle timeout (call periodically).
    pub fn sweep(&self) {
        let mut idle = self.lock();
        for list in idle.values_mut() {
            list.retain(|c| !c.sender.is_closed() && c.since.elapsed() < self.idle_timeout);
        }
        idle.retain(|_, l| !l.is_empty());
    }
}

impl<B> Pool<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    pub fn new(
        connect_timeout: Duration,
        idle_timeout: Duration,
        tls: rustls::ClientConfig,
    ) -> Arc<Self> {
        Arc::new(Pool {
            idle: Mutex::new(HashMap::new()),
            connect_timeout,
            idle_timeout,
            tls: TlsConnector::from(Arc::new(tls)),
        })
    }

    /// Sends `req` to `endpoint` (over TLS when `tls`), on a pooled connection when
    /// one is idle. `req` must have an absolute-form or origin-form URI; only its path
    /// and query are written. On a connect failure the untouched request comes back
    /// with the error, so the caller can try another endpoint without having kept a
    /// copy of it.
    pub async fn send(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        tls: bool,
        mut req: Request<B>,
    ) -> Result<Response<PooledBody<B>>, Failed<B>> {
        let key = (endpoint, tls);
        // Pooled connections first; one closed under us hands the request back.
        while let Some(mut sender) = self.checkout(key) {
            // Normally ready at once (checked without arming a timer); a connection
            // whose backend answered before the request body was fully sent is still
            // busy, so do not wait on it long.
            let ready = match std::future::poll_fn(|cx| Poll::Ready(sender.poll_ready(cx))).await {
                Poll::Ready(r) => r.is_ok(),
                Poll::Pending => matches!(
                    tokio::time::timeout(self.connect_timeout, sender.ready()).await,
                    Ok(Ok(()))
                ),
            };
            if !ready {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.wrap(key, sender, resp)),
                Err(mut e) => match e.take_message() {
                    Some(r) => req = r,
                    None => {
                        return Err(Failed {
                            error: UpstreamError::Request {
                                endpoint,
                                source: e.into_error(),
                            },
                            request: None,
                        })
                    }
                },
            }
        }
        let mut sender = match self.connect(endpoint, tls).await {
            Ok(s) => s,
            Err(error) => {
                return Err(Failed {
                    error,
                    request: Some(Box::new(req)),
                })
            }
        };
        match sender.send_request(req).await {
            Ok(resp) => Ok(self.wrap(key, sender, resp)),
            Err(source) => Err(Failed {
                error: UpstreamError::Request { endpoint, source },
                request: None,
            }),
        }
    }

    async fn connect(
        &self,
        endpoint: SocketAddr,
        tls: bool,
    ) -> Result<SendRequest<B>, UpstreamError> {
        let fail = |reason: String| UpstreamError::Connect { endpoint, reason };
        let tcp =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(endpoint)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(fail(e.to_string())),
                Err(_) => return Err(fail(format!("timed out after {:?}", self.connect_timeout))),
            };
        let _ = tcp.set_nodelay(true);
        let builder = http1::Builder::new();
        if tls {
            let name = rustls::pki_types::ServerName::IpAddress(endpoint.ip().into());
            let stream =
                match tokio::time::timeout(self.connect_timeout, self.tls.connect(name, tcp)).await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return Err(fail(format!("tls handshake: {e}"))),
                    Err(_) => return Err(fail("tls handshake timed out".into())),
                };
            let (sender, conn) = builder
                .handshake(TokioIo::new(stream))
                .await
                .map_err(|e| fail(e.to_string()))?;
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    debug!(%endpoint, error = %e, "backend connection ended");
                }
            });
            Ok(sender)
        } else {
            let (sender, conn) = builder
                .handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| fail(e.to_string()))?;
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    debug!(%endpoint, error = %e, "backend connection ended");
                }
            });
            Ok(sender)
        }
    }

    fn wrap(
        self: &Arc<Self>,
        key: Key,
        sender: SendRequest<B>,
        resp: Response<Incoming>,
    ) -> Response<PooledBody<B>> {
        // A protocol switch consumes the connection: it is never pooled again.
        let sender = (resp.status() != http::StatusCode::SWITCHING_PROTOCOLS).then_some(sender);
        let pool = Arc::downgrade(self);
        resp.map(|inner| PooledBody {
            inner,
            sender,
            pool,
            key,
        })
    }
}

/// A backend response body that returns its connection to the pool once read to the
/// end.
pub struct PooledBody<B> {
    inner: Incoming,
    sender: Option<SendRequest<B>>,
    pool: Weak<Pool<B>>,
    key: Key,
}

impl<B> PooledBody<B> {
    fn release(&mut self) {
        if let (Some(sender), Some(pool)) = (self.sender.take(), self.pool.upgrade()) {
            pool.put(self.key, sender);
        }
    }
}

impl<B> Drop for PooledBody<B> {
    fn drop(&mut self) {
        // hyper may stop polling once a sized body reports its end; the connection is
        // still clean then. A body dropped half-way closes its connection.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

impl<B> Body for PooledBody<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.release();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
