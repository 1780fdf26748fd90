//! Kubernetes Events the kubelet records on pods (`Pulling`, `Pulled`, `Created`,
//! `Started`, `Killing`, `BackOff`, `Unhealthy`, `Failed`, `FailedPostStartHook`, ...),
//! as core/v1 Events with `source.component: kubelet` and `source.host: <node>`, the
//! shape `kubectl describe pod` lists.
//!
//! Repeats are aggregated as upstream's event correlator does: an event identical to
//! one already recorded (same pod, container, type, reason and message) is not
//! created again; the stored one gets `count + 1` and a new `lastTimestamp`, so a
//! crash-looping container shows `BackOff (x12 over 5m)` instead of filling the
//! store. The decision ([`Dedup::observe`]) is pure; [`Recorder`] does the writes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;

/// One event about a pod, before it becomes an API object.
#[derive(Debug, Clone, PartialEq)]
pub struct PodEvent {
    /// The container it is about; empty for the pod itself.
    pub container: String,
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl PodEvent {
    pub fn normal(container: &str, reason: &'static str, message: String) -> PodEvent {
        PodEvent {
            container: container.into(),
            type_: "Normal",
            reason,
            message,
        }
    }
    pub fn warning(container: &str, reason: &'static str, message: String) -> PodEvent {
        PodEvent {
            container: container.into(),
            type_: "Warning",
            reason,
            message,
        }
    }
}

/// How many distinct events are remembered for aggregation (upstream's LRU holds
/// 4096); the oldest is forgotten first.
pub const MAX_REMEMBERED: usize = 4096;

/// The identity of an event for aggregation.
pub type Key = (String, String, &'static str, &'static str, String);

fn key(pod: &Pod, ev: &PodEvent) -> Key {
    (
        pod.metadata.uid.clone().unwrap_or_default(),
        ev.container.clone(),
        ev.type_,
        ev.reason,
        ev.message.clone(),
    )
}

/// What to write for an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A new Event object.
    Create,
    /// Bump the stored Event `name` to `count`, first seen at `first`.
    Bump {
        name: String,
        count: i32,
        first: Timestamp,
    },
}

/// The events already recorded, by key: (stored name, count, first time).
#[derive(Debug, Default)]
pub struct Dedup {
    seen: HashMap<Key, (String, i32, Timestamp)>,
    order: VecDeque<Key>,
}

impl Dedup {
    /// Decides how to record `key`. Pure apart from the cache itself.
    pub fn observe(&self, key: &Key) -> Write {
        match self.seen.get(key) {
            Some((name, count, first)) => Write::Bump {
                name: name.clone(),
                count: count + 1,
                first: *first,
            },
            None => Write::Create,
        }
    }

    /// Remembers what was stored for `key`.
    pub fn stored(&mut self, key: Key, name: String, count: i32, first: Timestamp) {
        if self
            .seen
            .insert(key.clone(), (name, count, first))
            .is_none()
        {
            self.order.push_back(key);
            while self.order.len() > MAX_REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }

    /// Forgets `key` (its stored Event is gone).
    pub fn forget(&mut self, key: &Key) {
        self.seen.remove(key);
        self.order.retain(|k| k != key);
    }
}

/// The fieldPath kubectl shows in the FROM column for a container event.
pub fn field_path(pod: &Pod, container: &str) -> Option<String> {
    if container.is_empty() {
        return None;
    }
    let is_init = pod.spec.as_ref().is_some_and(|s| {
        s.init_containers
            .iter()
            .flatten()
            .any(|c| c.name == container)
    });
    let list = if is_init {
        "initContainers"
    } else {
        "containers"
    };
    Some(format!("spec.{list}{{{container}}}"))
}

/// The core/v1 Event for `ev` on `pod`, reported by `node`'s kubelet at `now`.
pub fn event_object(pod: &Pod, node: &str, ev: &PodEvent, now: Timestamp) -> serde_json::Value {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let time = now.to_string();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Event",
        // Upstream names events <object>.<unique suffix>; nanoseconds are unique enough
        // for one kubelet.
        "metadata": {"name": format!("{name}.{:x}", now.as_nanosecond()), "namespace": pod.metadata.namespace.clone().unwrap_or_else(|| "default".into())},
        "involvedObject": {
            "apiVersion": "v1", "kind": "Pod", "name": name,
            "namespace": pod.metadata.namespace, "uid": pod.metadata.uid,
            "fieldPath": field_path(pod, &ev.container),
        },
        "reason": ev.reason,
        "message": ev.message,
        "type": ev.type_,
        "source": {"component": "kubelet", "host": node},
        "reportingComponent": "kubelet",
        "reportingInstance": node,
        "firstTimestamp": time,
        "lastTimestamp": time,
        "count": 1,
    })
}

/// How many events may wait for the writer before new ones are dropped (upstream's
/// broadcaster queue holds 1000).
pub const QUEUE: usize = 1000;

/// Records events through the API, aggregating repeats. Best effort: a lost event is
/// logged and never fails a sync. [`Recorder::post`] queues them for a background
/// writer, as upstream's broadcaster does, so a pod's start never waits on its events.
pub struct Recorder {
    writer: Arc<Writer>,
    queue: tokio::sync::mpsc::Sender<(Arc<Pod>, PodEvent)>,
}

struct Writer {
    client: kube::Client,
    node: String,
    dedup: Mutex<Dedup>,
}

impl Recorder {
    /// Starts the background writer (on the current tokio runtime); it ends when the
    /// recorder is dropped.
    pub fn new(client: kube::Client, node: &str) -> Recorder {
        let writer = Arc::new(Writer {
            client,
            node: node.into(),
            dedup: Mutex::new(Dedup::default()),
        });
        let (queue, mut rx) = tokio::sync::mpsc::channel::<(Arc<Pod>, PodEvent)>(QUEUE);
        let w = writer.clone();
        tokio::spawn(async move {
            while let Some((pod, ev)) = rx.recv().await {
                w.record(&pod, &ev).await;
            }
        });
        Recorder { writer, queue }
    }

    /// Queues `events` about `pod` without waiting for them to be written.
    pub fn post(&self, pod: &Arc<Pod>, events: &[PodEvent]) {
        for ev in events {
            if self.queue.try_send((pod.clone(), ev.clone())).is_err() {
                tracing::debug!(reason = ev.reason, "event queue full; event dropped");
            }
        }
    }

    /// Writes one event now (aggregated like queued ones).
    pub async fn record(&self, pod: &Pod, ev: &PodEvent) {
        self.writer.record(pod, ev).await
    }
}

impl Writer {
    async fn record(&self, pod: &Pod, ev: &PodEvent) {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let api: kube::Api<Event> = kube::Api::namespaced(self.client.clone(), namespace);
        let k = key(pod, ev);
        let now = Timestamp::now();
        let decision = self.dedup.lock().unwrap().observe(&k);
        if let Write::Bump { name, count, first } = decision {
            let patch = serde_json::json!({"count": count, "lastTimestamp": now.to_string()});
            match api
                .patch(
                    &name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {
                    self.dedup.lock().unwrap().stored(k, name, count, first);
                    return;
                }
                // Gone (expired, deleted): record it afresh.
                Err(e) => {
                    tracing::debug!(error = %e, reason = ev.reason, "bumping an event failed; creating it anew");
                    self.dedup.lock().unwrap().forget(&k);
                }
            }
        }
        let object = event_object(pod, &self.node, ev, now);
        let created = match serde_json::from_value::<Event>(object) {
            Ok(e) => api.create(&kube::api::PostParams::default(), &e).await,
            Err(e) => Err(kube::Error::SerdeError(e)),
        };
        match created {
            Ok(e) => {
                let name = e.metadata.name.unwrap_or_default();
                self.dedup.lock().unwrap().stored(k, name, 1, now);
            }
            Err(e) => tracing::debug!(error = %e, reason = ev.reason, "recording an event failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "d", "uid": "u"},
            "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "a"}]},
        }))
        .unwrap()
    }

    #[test]
    fn repeats_bump_the_stored_event() {
        let p = pod();
        let mut d = Dedup::default();
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let back = PodEvent::warning("a", "BackOff", "Back-off restarting".into());
        let other = PodEvent::warning("a", "BackOff", "different message".into());
        assert_eq!(d.observe(&key(&p, &back)), Write::Create);
        d.stored(key(&p, &back), "p.1".into(), 1, t0);
        assert_eq!(
            d.observe(&key(&p, &back)),
            Write::Bump {
                name: "p.1".into(),
                count: 2,
                first: t0
            }
        );
        d.stored(key(&p, &back), "p.1".into(), 2, t0);
        assert_eq!(
            d.observe(&key(&p, &back)),
            Write::Bump {
                name: "p.1".into(),
                count: 3,
                first: t0
            }
        );
        assert_eq!(d.observe(&key(&p, &other)), Write::Create, "other message");
        let mut q = p.clone();
        q.metadata.uid = Some("v".into());
        assert_eq!(d.observe(&key(&q, &back)), Write::Create, "other pod");
        d.forget(&key(&p, &back));
        assert_eq!(d.observe(&key(&p, &back)), Write::Create, "forgotten");
    }

    #[test]
    fn the_cache_is_bounded() {
        let p = pod();
        let mut d = Dedup::default();
        let t0 = Timestamp::from_second(1).unwrap();
        for i in 0..MAX_REMEMBERED + 1 {
            let ev = PodEvent::normal("a", "Pulled", format!("m{i}"));
            d.stored(key(&p, &ev), format!("e{i}"), 1, t0);
        }
        let first = PodEvent::normal("a", "Pulled", "m0".into());
        let last = PodEvent::normal("a", "Pulled", format!("m{MAX_REMEMBERED}"));
        assert_eq!(d.observe(&key(&p, &first)), Write::Create);
        assert!(matches!(d.observe(&key(&p, &last)), Write::Bump { .. }));
    }

    #[test]
    fn event_object_names_the_container_and_the_kubelet() {
        let p = pod();
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let cases = [
            ("a", json!("spec.containers{a}")),
            ("init", json!("spec.initContainers{init}")),
            ("", json!(null)),
        ];
        for (container, want) in cases {
            let ev = PodEvent::normal(container, "Started", "x".into());
            let o = event_object(&p, "node-a", &ev, now);
            assert_eq!(o["involvedObject"]["fieldPath"], want, "{container}");
            assert_eq!(
                o["source"],
                json!({"component": "kubelet", "host": "node-a"})
            );
            assert_eq!(o["involvedObject"]["uid"], "u");
            assert_eq!(o["metadata"]["namespace"], "d");
            let _: Event = serde_json::from_value(o).unwrap();
        }
    }
}
