//! The single writer: opens the sled database, then commits writes in groups.
//!
//! Why one thread: preconditions (create-if-absent, revision checks) are decided in
//! commit order without locks, revisions are handed out without gaps, and every request
//! that arrived while the previous fsync ran shares the next one (group commit).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::state::{Event, EventType, State};
use super::{Precondition, Shared, StoreError, StoreOptions};

const FORMAT: &[u8] = b"skiff-store-v1";
const K_FORMAT: &[u8] = b"mformat";
const K_REV: &[u8] = b"mrev";
const K_COMPACTED: &[u8] = b"mcompacted";
/// Most requests committed under one fsync.
const MAX_BATCH: usize = 1024;

pub(crate) enum WriteOp {
    Put {
        key: String,
        obj: Value,
        pre: Precondition,
    },
    Delete {
        key: String,
        pre: Precondition,
    },
}

pub(crate) struct WriteRequest {
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<Arc<Value>, StoreError>>,
}

fn obj_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(b'o');
    k.extend_from_slice(key.as_bytes());
    k
}

fn log_key(rev: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'l';
    k[1..].copy_from_slice(&rev.to_be_bytes());
    k
}

fn read_u64(tree: &sled::Db, key: &[u8], path: &str) -> Result<u64, StoreError> {
    match tree.get(key).map_err(|e| StoreError::Io(e.to_string()))? {
        None => Ok(0),
        Some(v) => {
            let arr: [u8; 8] = v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                path: path.to_string(),
                reason: format!("metadata key {} is not a u64", String::from_utf8_lossy(key)),
            })?;
            Ok(u64::from_be_bytes(arr))
        }
    }
}

/// Opens the database in `dir` and loads the in-memory state, refusing anything that
/// does not read back whole.
/// How long `open` waits for the directory lock. sled's helper threads let go of the
/// lock file a moment after the `Db` is dropped, so a close-then-reopen in the same
/// process (tests, an in-process restart) can find it briefly held.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

fn is_lock_busy(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// Opens sled, retrying while another holder still has the lock file.
fn open_locked(dir: &Path) -> Result<sled::Db, sled::Error> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sled::Config::new().path(dir).open() {
            Err(e) if is_lock_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

pub(crate) fn open(dir: &Path, opts: &StoreOptions) -> Result<(sled::Db, State), StoreError> {
    let path = dir.display().to_string();
    std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let db = open_locked(dir).map_err(|e| match e {
        sled::Error::Corruption { .. } | sled::Error::Unsupported(_) => StoreError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        },
        other if is_lock_busy(&other) => StoreError::Open {
            path: path.clone(),
            reason: format!(
                "{other}; another skiff server is using this data dir (stop it, or pass another --data-dir)"
            ),
        },
        other => StoreError::Open {
            path: path.clone(),
            reason: other.to_string(),
        },
    })?;

    match db
        .get(K_FORMAT)
        .map_err(|e| StoreError::Io(e.to_string()))?
    {
        Some(f) if f.as_ref() == FORMAT => {}
        Some(f) => {
            return Err(StoreError::Corrupt {
                path,
                reason: format!("unknown format marker {:?}", String::from_utf8_lossy(&f)),
            })
        }
        None if db.is_empty() => {
            db.insert(K_FORMAT, FORMAT)
                .map_err(|e| StoreError::Io(e.to_string()))?;
            db.flush().map_err(|e| StoreError::Io(e.to_string()))?;
        }
        None => {
            return Err(StoreError::Corrupt {
                path,
                reason: "format marker is missing".into(),
            })
        }
    }

    let mut state = State {
        rev: read_u64(&db, K_REV, &path)?,
        compacted: read_u64(&db, K_COMPACTED, &path)?,
        ..State::default()
    };
    for item in db.scan_prefix(b"o") {
        let (k, v) = item.map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let key = String::from_utf8_lossy(&k[1..]).to_string();
        let obj: Value = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: format!("object {key} does not parse: {e}"),
        })?;
        state.objects.insert(key, Arc::new(obj));
    }
    for item in db.scan_prefix(b"l") {
        let (k, v) = item.map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let arr: [u8; 8] = k[1..].try_into().map_err(|_| StoreError::Corrupt {
            path: path.clone(),
            reason: "event log key is not a revision".into(),
        })?;
        let rev = u64::from_be_bytes(arr);
        if rev <= state.compacted {
            continue;
        }
        if rev > state.rev {
            return Err(StoreError::Corrupt {
                path,
                reason: format!("event {rev} is newer than the store revision {}", state.rev),
            });
        }
        let ev = Event::from_record(rev, &v).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: format!("event {rev} does not parse: {e}"),
        })?;
        state.ring.push_back(Arc::new(ev));
    }
    let _ = opts;
    Ok((db, state))
}

/// Starts the writer thread. It ends when every sender of `rx` is dropped.
pub(crate) fn spawn(
    db: sled::Db,
    rx: mpsc::Receiver<WriteRequest>,
    shared: Arc<Shared>,
    opts: StoreOptions,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("skiff-store-writer".into())
        .spawn(move || run(db, rx, shared, opts))
        .expect("spawning the store writer thread")
}

fn set_rv(obj: &mut Value, rev: u64) {
    skiff_api::meta::set(obj, "resourceVersion", Value::String(rev.to_string()));
}

fn run(
    db: sled::Db,
    mut rx: mpsc::Receiver<WriteRequest>,
    shared: Arc<Shared>,
    opts: StoreOptions,
) {
    let mut pending_removals: Vec<u64> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut reqs = vec![first];
        while reqs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => reqs.push(r),
                Err(_) => break,
            }
        }

        // Decide every request against the committed state plus this batch's earlier
        // writes.
        let mut overlay: HashMap<String, Option<Arc<Value>>> = HashMap::new();
        let mut batch = sled::Batch::default();
        let mut events: Vec<Arc<Event>> = Vec::new();
        let mut answers: Vec<(
            oneshot::Sender<Result<Arc<Value>, StoreError>>,
            Result<Arc<Value>, StoreError>,
        )> = Vec::with_capacity(reqs.len());
        let (mut rev, compacted) = {
            let state = shared.state.read().expect("store lock");
            let mut rev = state.rev;
            for req in reqs {
                let key = match &req.op {
                    WriteOp::Put { key, .. } | WriteOp::Delete { key, .. } => key.clone(),
                };
                let current = match overlay.get(&key) {
                    Some(v) => v.clone(),
                    None => state.objects.get(&key).cloned(),
                };
                let pre = match &req.op {
                    WriteOp::Put { pre, .. } | WriteOp::Delete { pre, .. } => *pre,
                };
                if let Err(e) = check(pre, current.as_deref()) {
                    answers.push((req.reply, Err(e)));
                    continue;
                }
                rev += 1;
                let ev = match req.op {
                    WriteOp::Put { mut obj, .. } => {
                        set_rv(&mut obj, rev);
                        let bytes = serde_json::to_vec(&obj).expect("json values always serialise");
                        batch.insert(obj_key(&key), bytes);
                        let obj = Arc::new(obj);
                        overlay.insert(key.clone(), Some(obj.clone()));
                        let kind = if current.is_some() {
                            EventType::Modified
                        } else {
                            EventType::Added
                        };
                        Event {
                            rev,
                            kind,
                            key,
                            obj,
                            prev: current,
                            at: Instant::now(),
                        }
                    }
                    WriteOp::Delete { .. } => {
                        let mut last = (*current.clone().expect("checked to exist")).clone();
                        set_rv(&mut last, rev);
                        batch.remove(obj_key(&key));
                        overlay.insert(key.clone(), None);
                        Event {
                            rev,
                            kind: EventType::Deleted,
                            key,
                            obj: Arc::new(last),
                            prev: current,
                            at: Instant::now(),
                        }
                    }
                };
                batch.insert(&log_key(rev)[..], ev.to_record());
                let ev = Arc::new(ev);
                answers.push((req.reply, Ok(ev.obj.clone())));
                events.push(ev);
            }
            (rev, state.compacted)
        };

        if !events.is_empty() {
            batch.insert(K_REV, &rev.to_be_bytes()[..]);
            for old in pending_removals.drain(..) {
                batch.remove(&log_key(old)[..]);
            }
            batch.insert(K_COMPACTED, &compacted.to_be_bytes()[..]);
            let durable = db.apply_batch(batch).and_then(|_| db.flush().map(|_| ()));
            if let Err(e) = durable {
                // We cannot tell what reached the disk: refuse everything from now on
                // rather than serve state that may not survive a restart.
                tracing::error!(error = %e, "store write failed; the store stops accepting writes");
                for (reply, res) in answers {
                    let _ = reply.send(res.and(Err(StoreError::Io(e.to_string()))));
                }
                rx.close();
                return;
            }

            let mut state = shared.state.write().expect("store lock");
            for (k, v) in overlay {
                match v {
                    Some(obj) => {
                        state.objects.insert(k, obj);
                    }
                    None => {
                        state.objects.remove(&k);
                    }
                }
            }
            state.rev = rev;
            for ev in &events {
                state.ring.push_back(ev.clone());
                // Sending under the lock: a watcher that copies the ring and subscribes
                // under the same lock can neither miss nor repeat an event.
                let _ = shared.events.send(ev.clone());
            }
            // Compact the log tail behind the window.
            while state.ring.len() > opts.min_events
                && (state.ring.len() > opts.max_events
                    || state
                        .ring
                        .front()
                        .is_some_and(|e| e.at.elapsed() > opts.window))
            {
                let old = state.ring.pop_front().expect("non-empty");
                state.compacted = old.rev;
                pending_removals.push(old.rev);
            }
            rev = state.rev;
            let _ = rev;
        }
        for (reply, res) in answers {
            let _ = reply.send(res);
        }
    }
    let _ = db.flush();
}

fn check(pre: Precondition, current: Option<&Value>) -> Result<(), StoreError> {
    match (pre, current) {
        (Precondition::Absent, None) => Ok(()),
        (Precondition::Absent, Some(_)) => Err(StoreError::AlreadyExists),
        (Precondition::Exists, Some(_)) => Ok(()),
        (_, None) => Err(StoreError::NotFound),
        (Precondition::Revision(want), Some(cur)) => {
            let have = skiff_api::meta::resource_version(cur)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            if have == want {
                Ok(())
            } else {
                Err(StoreError::Conflict { current: have })
            }
        }
    }
}
