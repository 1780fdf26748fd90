//! Keeps the record table current: kube-runtime reflectors over Services and
//! EndpointSlices in all namespaces, and a rebuild of the whole table after changes.
//!
//! When the API server is unreachable the watchers retry with backoff while the last
//! table keeps serving, so pods keep resolving from the last known data; a re-list
//! replaces the reflector stores only once it is complete, so a reconnect never serves
//! a half-empty table either.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::records::RecordTable;
use crate::server::SharedTable;

/// Changes arriving within this window are folded into one rebuild: a rollout touches
/// many slices at once and a rebuild of 1,000 services costs a few milliseconds.
const COALESCE: Duration = Duration::from_millis(50);

/// Builds the table from the informer caches.
pub fn snapshot(
    domain: &str,
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
) -> RecordTable {
    let services = services.state();
    let slices = slices.state();
    RecordTable::build(
        domain,
        services.iter().map(|s| s.as_ref()),
        slices.iter().map(|s| s.as_ref()),
    )
}

/// Watches the API and stores a fresh table in `table` after every change, until
/// `shutdown` is cancelled. The first table is stored (marked ready) once both caches
/// have been listed.
pub async fn watch(
    client: kube::Client,
    domain: String,
    table: SharedTable,
    shutdown: CancellationToken,
) {
    let changes = Arc::new(Notify::new());
    let (svc_store, svc_writer) = reflector::store::<Service>();
    let (slice_store, slice_writer) = reflector::store::<EndpointSlice>();
    let svc_stream = reflector::reflector(
        svc_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff();
    let slice_stream = reflector::reflector(
        slice_writer,
        watcher(
            Api::<EndpointSlice>::all(client),
            watcher::Config::default(),
        ),
    )
    .default_backoff();
    let stop = shutdown.child_token();
    let drivers = [
        tokio::spawn(drive(svc_stream, changes.clone(), stop.clone(), "services")),
        tokio::spawn(drive(
            slice_stream,
            changes.clone(),
            stop.clone(),
            "endpointslices",
        )),
    ];

    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = async {
            let _ = svc_store.wait_until_ready().await;
            let _ = slice_store.wait_until_ready().await;
        } => {
            let mut serial: u32 = 1;
            loop {
                let mut next = snapshot(&domain, &svc_store, &slice_store);
                next.serial = serial;
                debug!(names = next.len(), serial, "dns records rebuilt");
                if serial == 1 {
                    info!(names = next.len(), "cluster dns caches ready; serving cluster names");
                }
                table.store(Arc::new(next));
                serial = serial.wrapping_add(1).max(1);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = changes.notified() => {}
                }
                tokio::time::sleep(COALESCE).await;
            }
        }
    }
    stop.cancel();
    for d in drivers {
        let _ = d.await;
    }
}

/// Polls a reflector stream (which keeps its store current) and signals each change.
async fn drive<S, K>(stream: S, changes: Arc<Notify>, stop: CancellationToken, what: &'static str)
where
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let mut stream = std::pin::pin!(stream);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            ev = stream.next() => match ev {
                Some(Ok(_)) => changes.notify_one(),
                Some(Err(e)) => warn!(error = %e, what, "watch failed; serving the last known records and retrying"),
                None => return,
            }
        }
    }
}
