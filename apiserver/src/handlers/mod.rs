//! Request handling: authentication, routing, and the handlers behind each route.
//!
//! # Layout
//! - [`discovery`]: `/api`, `/apis`, group and resource lists, `/version`, health.
//! - [`join`]: `/cacerts` and the node join endpoint.
//! - [`kubelet_proxy`]: log, exec, attach and portforward through the pod's kubelet.
//! - [`objects`]: get, list, create, update, patch, delete, deletecollection.
//! - [`subresources`]: status, scale, binding, eviction, finalize, log.
//! - [`watch`]: streaming watches (newline-delimited JSON events).

pub mod discovery;
pub mod join;
pub mod kubelet_proxy;
pub mod objects;
pub mod subresources;
pub mod watch;

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response};
use skiff_api::ApiError;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::alloc::Allocators;
use crate::auth::Authenticator;
use crate::request::{self, Query};
use crate::response::{self, Body};
use crate::router::{self, Route};
use crate::store::Store;

/// What every handler shares.
pub struct Api {
    pub store: Store,
    pub alloc: Allocators,
    pub auth: std::sync::RwLock<Authenticator>,
    /// The CA certificate (PEM), served at `/cacerts`.
    pub ca_pem: String,
    /// Signs kubelet serving certificates; its CA verifies kubelets the server dials.
    pub ca_signer: crate::tls::CaSigner,
    /// Where joining nodes' podCIDRs come from.
    pub cluster_cidr: ipnet::Ipv4Net,
    /// `host:port` clients should use, for `/api`'s serverAddressByClientCIDRs.
    pub advertise: String,
    /// Cancelled on shutdown: ends open watches.
    pub shutdown: CancellationToken,
    /// tolerationSeconds of the default not-ready/unreachable tolerations.
    pub default_toleration_seconds: i64,
    /// Network namespace to open kubelet connections from (a lab's hub), so they never
    /// use the host's routes; None on real machines.
    pub kubelet_netns: Option<String>,
}

/// The parts of a request the handlers need, with the body read lazily.
pub struct Req {
    pub method: Method,
    pub query: Query,
    /// The query string as sent (repeated keys such as exec's `command` kept in order).
    pub raw_query: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// The connection's upgrade handle, for exec/attach/port-forward pass-through.
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Serves one request.
pub async fn handle<B>(api: Arc<Api>, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path());
    async move {
        let started = std::time::Instant::now();
        let resp = match serve(api, req).await {
            Ok(r) => r,
            Err(e) => response::error(&e),
        };
        tracing::debug!(
            status = resp.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "done"
        );
        resp
    }
    .instrument(span)
    .await
}

/// The authorizer's decision for a non-admin user, with the stored object it may
/// depend on (a pod's node) and, for creating a Node, the name in the body.
fn authorize_node(
    api: &Api,
    user: &crate::auth::User,
    rp: &router::ResourcePath,
    r: &Req,
) -> Result<(), ApiError> {
    use crate::authz::{authorize, Verb};
    let verb = match r.method {
        Method::GET | Method::HEAD => Verb::Read,
        Method::POST if rp.name.is_none() => Verb::Create,
        Method::POST => Verb::Update, // binding, eviction: writes to an existing object
        Method::DELETE => Verb::Delete,
        _ => Verb::Update,
    };
    let target = rp.name.as_deref().and_then(|n| {
        api.store
            .get(&objects::key_of(rp.res, rp.namespace.as_deref(), n))
    });
    authorize(user, verb, rp, target.as_deref())?;
    if verb == Verb::Create && rp.res.plural == "nodes" {
        let body = request::decode_object(&r.body, r.header("content-type"))?;
        if user.node_name() != skiff_api::meta::name(&body) {
            return Err(ApiError::forbidden(format!(
                "node \"{}\" may only register itself",
                user.node_name().unwrap_or("")
            )));
        }
    }
    Ok(())
}

async fn serve<B>(api: Arc<Api>, req: Request<B>) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let route = router::route(req.uri().path());
    // Health and version are public, as on upstream clusters (system:public-info-viewer);
    // the CA is public so joining agents can pin it; join checks its own secret.
    let public = matches!(
        route,
        Route::Health(_) | Route::Version | Route::CaCerts | Route::Join
    );
    let authz = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let user = if public {
        None
    } else {
        let guard = api.auth.read().expect("auth lock");
        Some(
            guard
                .authenticate(authz.as_deref())
                .cloned()
                .ok_or_else(ApiError::unauthorized)?,
        )
    };
    let (mut parts, body) = req.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let body = match parts.method {
        Method::GET | Method::HEAD => Bytes::new(),
        _ => request::read_body(body).await?,
    };
    let r = Req {
        method: parts.method,
        query: Query::parse(parts.uri.query()),
        raw_query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        body,
        upgrade,
    };
    match route {
        Route::Health(_) => Ok(response::text(200, "ok")),
        Route::CaCerts => Ok(response::text(200, &api.ca_pem)),
        Route::Join => join::join(&api, authz.as_deref(), &r).await,
        Route::KubeletServingCert => {
            let user = user.expect("the kubelet certificate route is authenticated");
            join::kubelet_serving_cert(&api, &user, &r)
        }
        Route::Version => Ok(discovery::version()),
        Route::CoreVersions => Ok(discovery::core(&api, r.header("accept"))),
        Route::Groups => Ok(discovery::apis(r.header("accept"))),
        Route::Group(g) => Ok(discovery::group(&g)),
        Route::Resources { group, version } => Ok(discovery::resources(&group, &version)),
        Route::OpenApi(p) => {
            // `/openapi/v3` (index), `/openapi/v3/<group-version>` (its `?hash=` only busts
            // caches), `/openapi/v2` as JSON or, when asked via Accept, gnostic protobuf,
            // labelled octet-stream: Go's mime parser rejects the `@` of the Accept type.
            const V2_PB: &str = "application/octet-stream";
            let accept = r
                .headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            match p.as_str() {
                "v3" | "v3/" => Ok(response::json(200, &skiff_api::openapi::v3_index())),
                "v2" if accept.contains("protobuf") => Ok(Response::builder()
                    .header(http::header::CONTENT_TYPE, V2_PB)
                    .body(response::full(skiff_api::openapi::v2_protobuf()))
                    .expect("valid response")),
                "v2" => Ok(response::json(200, &skiff_api::openapi::v2_json())),
                _ => match p
                    .strip_prefix("v3/")
                    .and_then(skiff_api::openapi::v3_document)
                {
                    Some(doc) => Ok(response::json(200, &doc)),
                    None => Err(ApiError::new(
                        404,
                        "NotFound",
                        format!("the OpenAPI document {p:?} is not served"),
                    )),
                },
            }
        }
        Route::NotFound(p) => Err(ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({p})"),
        )),
        Route::Resource(rp) => {
            let user = user.expect("resource routes are authenticated");
            if !user.is_admin() {
                authorize_node(&api, &user, &rp, &r)?;
            }
            objects::dispatch(&api, rp, r).await
        }
    }
}
