//! Watches over the store: a backlog of past events followed by live ones.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::broadcast;

use super::state::{Event, EventType};
use super::{Shared, StoreError};

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFrom {
    /// Synthetic ADDED events for every object that exists now, then every change
    /// (Kubernetes' `resourceVersion` unset or "0").
    Snapshot,
    /// Every change after this revision (`resourceVersion=N`).
    After(u64),
}

/// A running watch. Dropping it stops it.
pub struct Watcher {
    shared: Arc<Shared>,
    prefix: String,
    backlog: VecDeque<Arc<Event>>,
    rx: broadcast::Receiver<Arc<Event>>,
    /// The newest revision this watcher has passed (matching its prefix or not).
    last: u64,
    /// The revision the initial snapshot was taken at (for `WatchFrom::Snapshot`).
    pub snapshot_rev: u64,
    /// How many synthetic ADDED events open the watch.
    pub initial_events: usize,
}

pub(crate) fn start(
    shared: &Arc<Shared>,
    prefix: &str,
    from: WatchFrom,
) -> Result<Watcher, StoreError> {
    let state = shared.state.read().expect("store lock");
    let (backlog, last) = match from {
        WatchFrom::Snapshot => {
            let backlog = state
                .objects
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| {
                    let rev = skiff_api::meta::resource_version(v)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    Arc::new(Event {
                        rev,
                        kind: EventType::Added,
                        key: k.clone(),
                        obj: v.clone(),
                        prev: None,
                        at: Instant::now(),
                    })
                })
                .collect();
            (backlog, state.rev)
        }
        WatchFrom::After(rev) => {
            if rev < state.compacted {
                return Err(StoreError::Expired {
                    requested: rev,
                    compacted: state.compacted,
                });
            }
            (state.events_after(rev, prefix), rev.max(state.rev))
        }
    };
    // Subscribing under the read lock: the writer sends under the write lock, so every
    // event is either in the backlog above or arrives on this receiver.
    let rx = shared.events.subscribe();
    let snapshot_rev = state.rev;
    drop(state);
    let initial_events = if from == WatchFrom::Snapshot {
        backlog.len()
    } else {
        0
    };
    Ok(Watcher {
        shared: shared.clone(),
        prefix: prefix.to_string(),
        backlog,
        rx,
        last,
        snapshot_rev,
        initial_events,
    })
}

impl Watcher {
    /// The next event under the prefix. `Err(Expired)` means the watcher fell so far
    /// behind that events it needs were compacted: the client must list again.
    pub async fn next(&mut self) -> Result<Arc<Event>, StoreError> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                self.last = self.last.max(e.rev);
                return Ok(e);
            }
            match self.rx.recv().await {
                Ok(e) => {
                    if e.rev <= self.last {
                        continue;
                    }
                    self.last = e.rev;
                    if e.key.starts_with(&self.prefix) {
                        return Ok(e);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Catch up from the ring, which still holds everything after
                    // `compacted`.
                    let state = self.shared.state.read().expect("store lock");
                    if self.last < state.compacted {
                        return Err(StoreError::Expired {
                            requested: self.last,
                            compacted: state.compacted,
                        });
                    }
                    self.backlog = state.events_after(self.last, &self.prefix);
                    self.rx = self.shared.events.subscribe();
                    self.last = state.rev;
                    // `last` now covers the backlog; backlog entries are returned as is.
                }
                Err(broadcast::error::RecvError::Closed) => return Err(StoreError::Closed),
            }
        }
    }
}
