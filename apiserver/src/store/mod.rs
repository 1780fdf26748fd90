//! The durable, revisioned, watchable object store.
//!
//! # How it works
//! - Objects are JSON values under keys `/registry/<group>/<resource>/<namespace>/<name>`
//!   (cluster-scoped objects have no namespace segment). Everything lives in one sled
//!   tree with a one-byte prefix per kind of record: `o` objects, `l` the event log by
//!   revision, `m` metadata (current revision, compacted revision, format marker).
//! - One global revision counter: every create, update and delete bumps it and the
//!   object's `metadata.resourceVersion` is that revision, exactly as etcd's
//!   `mod_revision` is in Kubernetes.
//! - All writes go through one writer thread ([`writer`]). It takes every request that
//!   is waiting, checks each one's precondition, writes the objects, the log entries and
//!   the new revision as one atomic sled batch, fsyncs once for the whole batch (group
//!   commit) and only then answers the callers. So an acknowledged write is on disk, an
//!   unacknowledged one is all-or-nothing, and durability costs one fsync per batch, not
//!   per request.
//! - Reads are served from an in-memory copy ([`State`]) updated after each commit, so a
//!   list is a consistent snapshot at one revision and never touches the disk.
//! - Watches read recent events from an in-memory ring (the log's tail, reloaded from
//!   disk at start) and then follow a broadcast channel. The log is compacted behind a
//!   window ([`StoreOptions`]); a watch from before the window gets [`StoreError::Expired`]
//!   (HTTP 410 in the API).

mod state;
mod watch;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

use state::State;
pub use state::{Event, EventType};
pub use watch::{WatchFrom, Watcher};
use writer::{WriteOp, WriteRequest};

/// Tuning of the event log window.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Keep at most this many events in the log.
    pub max_events: usize,
    /// Drop events older than this (the newest `min_events` are always kept).
    pub window: Duration,
    /// Events kept regardless of age, so a quiet cluster's watchers can still resume.
    pub min_events: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_events: 100_000,
            window: Duration::from_secs(300),
            min_events: 1_000,
        }
    }
}

/// What can go wrong in the store. The API layer maps these onto Status errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object already exists")]
    AlreadyExists,
    #[error("object not found")]
    NotFound,
    /// The object's current revision is not the one the caller based its change on.
    #[error("object has been modified (current revision {current})")]
    Conflict { current: u64 },
    /// The requested revision has been compacted away.
    #[error("too old resource version: {requested} ({compacted})")]
    Expired { requested: u64, compacted: u64 },
    #[error("store is shut down")]
    Closed,
    #[error("cannot open data dir {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("data dir {path} is corrupt: {reason}; move it aside or restore a backup, skiff will not serve a half-read store")]
    Corrupt { path: String, reason: String },
    #[error("storage failure: {0}")]
    Io(String),
}

/// The condition a write needs to hold at commit time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Create: the key must not exist.
    Absent,
    /// The key must exist (any revision).
    Exists,
    /// The key must exist at exactly this revision (optimistic concurrency).
    Revision(u64),
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    writes: mpsc::Sender<WriteRequest>,
    writer: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

pub(crate) struct Shared {
    state: RwLock<State>,
    events: broadcast::Sender<Arc<Event>>,
}

impl Store {
    /// Opens (or creates) the store in `dir`, loading every object and the event log.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        let (db, state) = writer::open(dir, &opts)?;
        let (events, _) = broadcast::channel(8192);
        let (writes, rx) = mpsc::channel(4096);
        let shared = Arc::new(Shared {
            state: RwLock::new(state),
            events,
        });
        let handle = writer::spawn(db, rx, shared.clone(), opts);
        Ok(Store {
            shared,
            writes,
            writer: Arc::new(Mutex::new(Some(handle))),
        })
    }

    /// Stops accepting writes, waits for the writer to finish what it has and closes
    /// the database (so the same directory can be opened again).
    pub async fn close(self) {
        let Store {
            shared,
            writes,
            writer,
        } = self;
        drop(writes);
        drop(shared);
        let handle = writer.lock().expect("writer lock").take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }

    /// The newest committed revision.
    pub fn revision(&self) -> u64 {
        self.shared.state.read().expect("store lock").rev
    }

    /// The oldest revision a watch may start after.
    pub fn compacted_revision(&self) -> u64 {
        self.shared.state.read().expect("store lock").compacted
    }

    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.shared
            .state
            .read()
            .expect("store lock")
            .objects
            .get(key)
            .cloned()
    }

    /// Every object whose key starts with `prefix`, in key order, and the revision the
    /// snapshot was taken at. `start_after` and `limit` page through the keys.
    pub fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> (Vec<(String, Arc<Value>)>, u64, bool) {
        let state = self.shared.state.read().expect("store lock");
        let mut out = Vec::new();
        let mut more = false;
        let iter = state.objects.range(prefix.to_string()..);
        for (k, v) in iter {
            if !k.starts_with(prefix) {
                break;
            }
            if let Some(after) = start_after {
                if k.as_str() <= after {
                    continue;
                }
            }
            if let Some(l) = limit {
                if out.len() >= l {
                    more = true;
                    break;
                }
            }
            out.push((k.clone(), v.clone()));
        }
        (out, state.rev, more)
    }

    /// Creates `key`; fails with `AlreadyExists` if it is there. Returns the stored
    /// object (with its new resourceVersion) once it is durable.
    pub async fn create(&self, key: &str, obj: Value) -> Result<Arc<Value>, StoreError> {
        self.write(WriteOp::Put {
            key: key.to_string(),
            obj,
            pre: Precondition::Absent,
        })
        .await
    }

    /// Replaces `key` if the precondition holds.
    pub async fn update(
        &self,
        key: &str,
        obj: Value,
        pre: Precondition,
    ) -> Result<Arc<Value>, StoreError> {
        self.write(WriteOp::Put {
            key: key.to_string(),
            obj,
            pre,
        })
        .await
    }

    /// Deletes `key` if the precondition holds; returns the object as it was, stamped
    /// with the deletion's revision (what a DELETED watch event carries).
    pub async fn delete(&self, key: &str, pre: Precondition) -> Result<Arc<Value>, StoreError> {
        self.write(WriteOp::Delete {
            key: key.to_string(),
            pre,
        })
        .await
    }

    async fn write(&self, op: WriteOp) -> Result<Arc<Value>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writes
            .send(WriteRequest { op, reply: tx })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Starts a watch over keys under `prefix`.
    pub fn watch(&self, prefix: &str, from: WatchFrom) -> Result<Watcher, StoreError> {
        watch::start(&self.shared, prefix, from)
    }
}

/// The storage key of an object.
pub fn key(group: &str, plural: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("/registry/{group}/{plural}/{ns}/{name}"),
        None => format!("/registry/{group}/{plural}/{name}"),
    }
}

/// The key prefix of a resource, optionally within one namespace.
pub fn prefix(group: &str, plural: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("/registry/{group}/{plural}/{ns}/"),
        None => format!("/registry/{group}/{plural}/"),
    }
}

#[cfg(test)]
mod tests;
