//! Watches: a chunked stream of `{"type": ..., "object": ...}` lines, one per change,
//! flushed as it happens.
//!
//! Semantics follow upstream: `resourceVersion` unset or "0" starts with synthetic
//! ADDED events for what exists; `resourceVersion=N` replays what came after N, or
//! sends an ERROR event with a 410 Expired Status if N was compacted away;
//! `allowWatchBookmarks` adds periodic BOOKMARK events; `sendInitialEvents=true` ends
//! the initial events with a bookmark annotated `k8s.io/initial-events-end`; selectors
//! turn "stopped matching" into DELETED and "started matching" into ADDED.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{header, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};
use skiff_api::{convert, meta, ApiError, ResourceInfo};
use tokio::sync::mpsc;

use super::objects::{prefix_of, store_error, Filter};
use super::{Api, Req};
use crate::request::{self, IncludeObject, Output};
use crate::response::{self, Body};
use crate::router::ResourcePath;
use crate::store::{EventType, StoreError, WatchFrom};

/// How often a watch with bookmarks allowed gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);
/// Upstream's default watch length is 30-60 minutes; clients re-watch after.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Shape {
    res: &'static ResourceInfo,
    output: Output,
    include: IncludeObject,
}

impl Shape {
    fn render(&self, obj: &Value) -> Value {
        match self.output {
            Output::Json => obj.clone(),
            Output::PartialMetadata => response::partial_metadata(obj),
            Output::Table => response::table(
                self.res,
                &[obj],
                self.include,
                meta::resource_version(obj).map(str::to_string),
                None,
                true,
            ),
        }
    }

    fn line(&self, ty: &str, obj: &Value) -> Bytes {
        let mut b = serde_json::to_vec(&json!({"type": ty, "object": self.render(obj)}))
            .expect("serialise");
        b.push(b'\n');
        Bytes::from(b)
    }

    fn bookmark(&self, rev: u64, initial_end: bool) -> Bytes {
        let mut m = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            m["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj =
            json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": m});
        // Bookmarks carry only a resourceVersion, in the plain form, whatever the output.
        let mut b =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).expect("serialise");
        b.push(b'\n');
        Bytes::from(b)
    }
}

fn error_line(e: &ApiError) -> Bytes {
    let mut b =
        serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()})).expect("serialise");
    b.push(b'\n');
    Bytes::from(b)
}

pub fn serve(api: &Arc<Api>, rp: &ResourcePath, req: &Req) -> Result<Response<Body>, ApiError> {
    let res = rp.res;
    let filter = Filter::from_query(res, &req.query)?;
    let only_name = rp.name.clone();
    let shape = Shape {
        res,
        output: request::output(req.header("accept")),
        include: IncludeObject::from_query(&req.query)?,
    };
    let send_initial = req.query.flag("sendInitialEvents");
    let from = match req.query.get("resourceVersion") {
        None | Some("0") => WatchFrom::Snapshot,
        Some(_) if send_initial => WatchFrom::Snapshot,
        Some(v) => WatchFrom::After(v.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid resourceVersion {v:?}: must be a number"))
        })?),
    };
    let bookmarks = req.query.flag("allowWatchBookmarks");
    let timeout = req
        .query
        .u64("timeoutSeconds")?
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let prefix = prefix_of(res, rp.namespace.as_deref());

    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
            .map(|b| Ok::<_, std::io::Error>(Frame::data(b)));
    let body: Body = BodyExt::boxed(StreamBody::new(stream));

    match api.store.watch(&prefix, from) {
        Err(StoreError::Expired {
            requested,
            compacted,
        }) => {
            let e = ApiError::expired(format!(
                "too old resource version: {requested} ({compacted})"
            ));
            let _ = tx.try_send(error_line(&e));
        }
        Err(e) => return Err(store_error(res, "", e)),
        Ok(mut w) => {
            let shutdown = api.shutdown.clone();
            let snapshot_rev = w.snapshot_rev;
            let initial_count = w.initial_events;
            tokio::spawn(async move {
                let matches = |o: &Value| {
                    filter.matches(o)
                        && only_name
                            .as_deref()
                            .is_none_or(|n| meta::name(o) == Some(n))
                };
                let deadline = tokio::time::sleep(timeout);
                tokio::pin!(deadline);
                let mut tick = tokio::time::interval(BOOKMARK_EVERY);
                tick.tick().await;
                let mut last_rev = snapshot_rev;
                // Synthetic ADDED events come first; after them, the initial-events-end
                // bookmark for clients that asked for one.
                let mut initial_left = initial_count;
                if send_initial
                    && initial_left == 0
                    && tx.send(shape.bookmark(snapshot_rev, true)).await.is_err()
                {
                    return;
                }
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = &mut deadline => break,
                        _ = tick.tick(), if bookmarks => {
                            if tx.send(shape.bookmark(last_rev, false)).await.is_err() { break; }
                        }
                        ev = w.next() => {
                            let ev = match ev {
                                Ok(ev) => ev,
                                Err(StoreError::Expired { requested, compacted }) => {
                                    let e = ApiError::expired(format!("too old resource version: {requested} ({compacted})"));
                                    let _ = tx.send(error_line(&e)).await;
                                    break;
                                }
                                Err(_) => break,
                            };
                            let initial = initial_left > 0;
                            if initial {
                                initial_left -= 1;
                            } else {
                                last_rev = ev.rev;
                            }
                            // Stored objects in the shape this resource serves
                            // (events.k8s.io Events are stored as core ones).
                            let obj = convert::from_storage_arc(res, ev.obj.clone());
                            let prev = ev.prev.clone().map(|p| convert::from_storage_arc(res, p));
                            let now = matches(&obj);
                            let before = prev.as_deref().is_some_and(&matches);
                            let line = match ev.kind {
                                EventType::Added if now => Some(shape.line("ADDED", &obj)),
                                EventType::Deleted if before || now => Some(shape.line("DELETED", &obj)),
                                EventType::Modified => match (before, now) {
                                    (true, true) => Some(shape.line("MODIFIED", &obj)),
                                    (false, true) => Some(shape.line("ADDED", &obj)),
                                    (true, false) => Some(shape.line("DELETED", &obj)),
                                    (false, false) => None,
                                },
                                _ => None,
                            };
                            if let Some(l) = line {
                                if tx.send(l).await.is_err() { break; }
                            }
                            if initial && initial_left == 0 && send_initial
                                && tx.send(shape.bookmark(snapshot_rev, true)).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    }
    Ok(Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .expect("valid response"))
}
