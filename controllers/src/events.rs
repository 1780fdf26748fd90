//! The event recorder: what controllers did, as core/v1 Events (`ScalingReplicaSet`,
//! `SuccessfulCreate`, `TaintManagerEviction`, ...), which `kubectl describe` shows
//! under "Events".
//!
//! Repeats of the same event (same object, type, reason and message) are aggregated the
//! way upstream's recorder does: the first one is created, later ones bump `count` and
//! `lastTimestamp` of that object instead of writing a new Event. Events are best
//! effort: a failure to record one is logged and never fails the reconcile.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

/// `Normal` or `Warning`, the two event types Kubernetes knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What identifies "the same event" for aggregation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AggKey {
    uid: String,
    namespace: String,
    name: String,
    type_: EventType,
    reason: String,
    message: String,
}

#[derive(Debug, Clone)]
struct Seen {
    event_name: String,
    count: i32,
    first: Timestamp,
}

/// What to write for one occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// A new Event object with this name.
    Create { event_name: String },
    /// Patch the existing Event: new count and lastTimestamp.
    Bump { event_name: String, count: i32 },
}

/// The pure aggregation state: remembers recent events by [`AggKey`].
#[derive(Debug, Default)]
pub struct Aggregator {
    seen: HashMap<AggKey, Seen>,
}

/// Bound on remembered keys, so a controller that emits many distinct messages does not
/// grow without limit (upstream keeps an LRU of 4096).
const MAX_REMEMBERED: usize = 4096;

impl Aggregator {
    fn decide(&mut self, key: AggKey, now: Timestamp) -> (Write, Timestamp) {
        if let Some(s) = self.seen.get_mut(&key) {
            s.count += 1;
            return (
                Write::Bump {
                    event_name: s.event_name.clone(),
                    count: s.count,
                },
                s.first,
            );
        }
        if self.seen.len() >= MAX_REMEMBERED {
            self.seen.clear();
        }
        // Upstream names events `<object>.<hex nanoseconds>`; unique enough per object.
        let nanos = now.as_nanosecond();
        let event_name = format!("{}.{:x}", key.name, nanos);
        self.seen.insert(
            key,
            Seen {
                event_name: event_name.clone(),
                count: 1,
                first: now,
            },
        );
        (Write::Create { event_name }, now)
    }

    /// Forgets a key whose Event could not be written, so the next occurrence creates
    /// it afresh instead of patching an object that does not exist.
    fn forget(&mut self, event_name: &str) {
        self.seen.retain(|_, s| s.event_name != event_name);
    }
}

/// Records Events for one component (`deployment-controller`, ...).
pub struct Recorder {
    client: Client,
    component: String,
    agg: Mutex<Aggregator>,
}

impl Recorder {
    pub fn new(client: Client, component: &str) -> Self {
        Recorder {
            client,
            component: component.to_string(),
            agg: Mutex::new(Aggregator::default()),
        }
    }

    /// Records an event about the object `regarding` (kind/apiVersion given separately
    /// because k8s-openapi metadata does not carry them).
    pub async fn record(
        &self,
        api_version: &str,
        kind: &str,
        regarding: &ObjectMeta,
        type_: EventType,
        reason: &str,
        message: &str,
    ) {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let key = AggKey {
            uid: regarding.uid.clone().unwrap_or_default(),
            namespace: namespace.clone(),
            name: regarding.name.clone().unwrap_or_default(),
            type_,
            reason: reason.to_string(),
            message: message.to_string(),
        };
        let now = Timestamp::now();
        let (write, first) = self
            .agg
            .lock()
            .expect("event aggregator lock")
            .decide(key, now);
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let result = match &write {
            Write::Create { event_name } => {
                let ev = Event {
                    metadata: ObjectMeta {
                        name: Some(event_name.clone()),
                        namespace: Some(namespace.clone()),
                        ..Default::default()
                    },
                    involved_object: ObjectReference {
                        api_version: Some(api_version.to_string()),
                        kind: Some(kind.to_string()),
                        name: regarding.name.clone(),
                        namespace: regarding.namespace.clone(),
                        uid: regarding.uid.clone(),
                        resource_version: regarding.resource_version.clone(),
                        ..Default::default()
                    },
                    reason: Some(reason.to_string()),
                    message: Some(message.to_string()),
                    type_: Some(type_.as_str().to_string()),
                    count: Some(1),
                    first_timestamp: Some(Time(first)),
                    last_timestamp: Some(Time(now)),
                    event_time: Some(MicroTime(now)),
                    source: Some(EventSource {
                        component: Some(self.component.clone()),
                        host: None,
                    }),
                    reporting_component: Some(self.component.clone()),
                    reporting_instance: Some(self.component.clone()),
                    action: Some(reason.to_string()),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &ev).await.map(|_| ())
            }
            Write::Bump { event_name, count } => {
                let patch = serde_json::json!({
                    "count": count,
                    "lastTimestamp": Time(now),
                });
                api.patch(event_name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ())
            }
        };
        if let Err(e) = result {
            let name = match &write {
                Write::Create { event_name } | Write::Bump { event_name, .. } => event_name.clone(),
            };
            self.agg
                .lock()
                .expect("event aggregator lock")
                .forget(&name);
            tracing::debug!(error = %e, reason, "could not record event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::SignedDuration;

    fn key(reason: &str, message: &str) -> AggKey {
        AggKey {
            uid: "u1".into(),
            namespace: "default".into(),
            name: "web".into(),
            type_: EventType::Normal,
            reason: reason.into(),
            message: message.into(),
        }
    }

    #[test]
    fn repeats_are_aggregated_and_distinct_events_are_not() {
        let mut a = Aggregator::default();
        let t0 = Timestamp::now();
        let (w1, f1) = a.decide(key("SuccessfulCreate", "Created pod: a"), t0);
        let Write::Create { event_name } = w1 else {
            panic!("first occurrence must create")
        };
        assert!(event_name.starts_with("web."));
        assert_eq!(f1, t0);
        let t1 = t0 + SignedDuration::from_secs(3);
        let (w2, f2) = a.decide(key("SuccessfulCreate", "Created pod: a"), t1);
        assert_eq!(
            w2,
            Write::Bump {
                event_name: event_name.clone(),
                count: 2
            }
        );
        assert_eq!(f2, t0, "firstTimestamp stays the first occurrence");
        let (w3, _) = a.decide(key("SuccessfulCreate", "Created pod: b"), t1);
        assert!(matches!(w3, Write::Create { .. }));
        a.forget(&event_name);
        let (w4, _) = a.decide(key("SuccessfulCreate", "Created pod: a"), t1);
        assert!(
            matches!(w4, Write::Create { .. }),
            "a forgotten event is created again"
        );
    }
}
