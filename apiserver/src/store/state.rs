//! The in-memory view of the store: every object and the tail of the event log.
//!
//! The writer thread is the only one that changes it, and only after a batch is durable;
//! readers take the read lock and see a consistent revision.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

/// The kind of change an event records, named as in the watch wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }

    fn parse(s: &str) -> Option<EventType> {
        match s {
            "ADDED" => Some(EventType::Added),
            "MODIFIED" => Some(EventType::Modified),
            "DELETED" => Some(EventType::Deleted),
            _ => None,
        }
    }
}

/// One committed change.
#[derive(Debug, Clone)]
pub struct Event {
    pub rev: u64,
    pub kind: EventType,
    pub key: String,
    /// The object after the change; for a delete, the last state stamped with the
    /// deletion's revision.
    pub obj: Arc<Value>,
    /// The object before the change (None for a create). Watches with selectors need it
    /// to turn "stopped matching" into DELETED and "started matching" into ADDED.
    pub prev: Option<Arc<Value>>,
    /// When this process learnt of the event (for the compaction window).
    pub at: Instant,
}

impl Event {
    /// The log record persisted under the event's revision.
    pub fn to_record(&self) -> Vec<u8> {
        let rec = json!({
            "t": self.kind.as_str(),
            "k": self.key,
            "o": &*self.obj,
            "p": self.prev.as_deref(),
        });
        serde_json::to_vec(&rec).expect("json values always serialise")
    }

    pub fn from_record(rev: u64, bytes: &[u8]) -> Result<Event, String> {
        let rec: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let kind = rec["t"]
            .as_str()
            .and_then(EventType::parse)
            .ok_or("bad event type")?;
        let key = rec["k"].as_str().ok_or("bad event key")?.to_string();
        let obj = Arc::new(rec["o"].clone());
        let prev = match &rec["p"] {
            Value::Null => None,
            p => Some(Arc::new(p.clone())),
        };
        Ok(Event {
            rev,
            kind,
            key,
            obj,
            prev,
            at: Instant::now(),
        })
    }
}

#[derive(Debug, Default)]
pub struct State {
    pub objects: BTreeMap<String, Arc<Value>>,
    /// Events after `compacted`, oldest first.
    pub ring: VecDeque<Arc<Event>>,
    pub rev: u64,
    /// Events up to and including this revision are gone from the log.
    pub compacted: u64,
}

impl State {
    /// Events with revision greater than `after` whose key starts with `prefix`.
    /// The caller has checked `after >= compacted`.
    pub fn events_after(&self, after: u64, prefix: &str) -> VecDeque<Arc<Event>> {
        // The ring is sorted by revision: find the first event after `after`.
        let start = self.ring.partition_point(|e| e.rev <= after);
        self.ring
            .range(start..)
            .filter(|e| e.key.starts_with(prefix))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let e = Event {
            rev: 7,
            kind: EventType::Modified,
            key: "/registry/core/pods/a/b".into(),
            obj: Arc::new(json!({"a": 1})),
            prev: Some(Arc::new(json!({"a": 0}))),
            at: Instant::now(),
        };
        let back = Event::from_record(7, &e.to_record()).unwrap();
        assert_eq!(back.kind, EventType::Modified);
        assert_eq!(back.key, e.key);
        assert_eq!(*back.obj, json!({"a": 1}));
        assert_eq!(back.prev.as_deref(), Some(&json!({"a": 0})));
        assert!(Event::from_record(1, b"{\"t\":\"NOPE\"}").is_err());
    }

    #[test]
    fn events_after_filters_by_revision_and_prefix() {
        let mut s = State::default();
        for (rev, key) in [(1, "/a/x"), (2, "/b/y"), (3, "/a/z")] {
            s.ring.push_back(Arc::new(Event {
                rev,
                kind: EventType::Added,
                key: key.into(),
                obj: Arc::new(json!({})),
                prev: None,
                at: Instant::now(),
            }));
        }
        let got: Vec<u64> = s.events_after(1, "/a/").iter().map(|e| e.rev).collect();
        assert_eq!(got, vec![3]);
        assert_eq!(s.events_after(0, "/").len(), 3);
    }
}
