//! The running scheduler: informers feed watch events into [`Core`] (snapshot + queue),
//! and one loop pops a pod, runs the pure scheduling cycle, assumes the pod on the chosen
//! node and hands the binding to a background task, so the next decision does not wait
//! for the API round trip (upstream's scheduling cycle / binding cycle split).
//!
//! [`Core`] holds all decisions about events and outcomes and does no I/O, so it is unit
//! tested; [`run_scheduling`] is the shell with the watches and the writer.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::binder::{ApiWriter, BindOutcome};
use crate::framework::{schedule, Cursor, Plugins};
use crate::podinfo::PodInfo;
use crate::queue::{QueueLen, QueueTimings, SchedulingQueue};
use crate::snapshot::Snapshot;

/// A pending pod with its precomputed scheduling view.
#[derive(Debug, Clone)]
pub struct Pending {
    pub pod: Arc<Pod>,
    pub info: Arc<PodInfo>,
}

/// What the shell must do after one scheduling attempt.
#[derive(Debug, Clone)]
pub enum Action {
    Bind { pending: Pending, node: String },
    ReportUnschedulable { pending: Pending, message: String },
}

/// Is a pod finished (its resources free)?
fn terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Could this change make an unschedulable pod fit? Status writes (our own condition)
/// must not count, or every failure would wake the pod again.
fn relevant_change(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec || old.metadata.labels != new.metadata.labels
}

/// Scheduling state and the decisions over it.
pub struct Core {
    scheduler_name: String,
    snapshot: Snapshot,
    queue: SchedulingQueue<Pending>,
    plugins: Plugins,
    cursor: Cursor,
    /// Pods whose binding has been handed to the writer and not answered yet.
    binding: HashSet<String>,
}

impl Core {
    pub fn new(scheduler_name: String, plugins: Plugins, timings: QueueTimings, seed: u64) -> Self {
        Core {
            scheduler_name,
            snapshot: Snapshot::new(),
            queue: SchedulingQueue::new(timings),
            plugins,
            cursor: Cursor::new(seed),
            binding: HashSet::new(),
        }
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn queue_len(&self) -> QueueLen {
        self.queue.len()
    }

    pub fn next_backoff_expiry(&self) -> Option<Instant> {
        self.queue.next_backoff_expiry()
    }

    /// A pod was added or changed.
    pub fn on_pod(&mut self, pod: Arc<Pod>, now: Instant) {
        let info = PodInfo::from_pod(&pod);
        let uid = info.uid.clone();
        if terminal(&pod) {
            self.queue.delete(&uid);
            if self.snapshot.placement(&uid).is_some() {
                self.snapshot.remove_pod(&uid);
                self.queue.move_all_unschedulable(now);
            }
            return;
        }
        if info.node_name.is_some() {
            // Bound (by us or anyone): it counts on its node and is no longer pending.
            self.queue.delete(&uid);
            self.snapshot.add_bound_pod(Arc::new(info));
            return;
        }
        if info.scheduler_name != self.scheduler_name {
            return;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            // Being deleted before it was placed: nothing to schedule.
            self.queue.delete(&uid);
            return;
        }
        if self.snapshot.placement(&uid).is_some() {
            // We bound it and this is an older, unbound version arriving late.
            return;
        }
        let relevant = match self.queue.get(&uid) {
            Some(old) => relevant_change(&old.pod, &pod),
            None => true,
        };
        let priority = info.priority;
        self.queue.add_or_update(
            &uid,
            priority,
            Pending {
                pod,
                info: Arc::new(info),
            },
            relevant,
            now,
        );
    }

    /// A pod was deleted: it leaves the queue, and its node has room again.
    pub fn on_pod_deleted(&mut self, pod: &Pod, now: Instant) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.queue.delete(&uid);
        if self.snapshot.placement(&uid).is_some() {
            self.snapshot.remove_pod(&uid);
            self.queue.move_all_unschedulable(now);
        }
    }

    /// After a re-list: drop pods that disappeared while the watch was down.
    pub fn retain_pods(&mut self, uids: &HashSet<String>, now: Instant) {
        let keep: HashSet<String> = uids.union(&self.binding).cloned().collect();
        self.snapshot.retain_pods(&keep);
        self.queue.retain(|k| uids.contains(k));
        self.queue.move_all_unschedulable(now);
    }

    /// A node was added or changed. Only changes that matter for placement wake parked
    /// pods; a heartbeat that rewrites the same status does not.
    pub fn on_node(&mut self, node: &Node, now: Instant) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let before = self.snapshot.node(&name).filter(|n| n.present).cloned();
        self.snapshot.upsert_node(node);
        let after = self.snapshot.node(&name);
        let changed = match (before, after) {
            (Some(b), Some(a)) => {
                b.labels != a.labels
                    || b.taints != a.taints
                    || b.unschedulable != a.unschedulable
                    || b.ready != a.ready
                    || b.allocatable != a.allocatable
            }
            _ => true,
        };
        if changed {
            self.queue.move_all_unschedulable(now);
        }
    }

    pub fn on_node_deleted(&mut self, name: &str) {
        self.snapshot.remove_node(name);
    }

    pub fn retain_nodes(&mut self, names: &HashSet<String>, now: Instant) {
        self.snapshot.retain_nodes(names);
        self.queue.move_all_unschedulable(now);
    }

    /// Safety net against a missed wake-up (see [`SchedulingQueue::flush_stale_unschedulable`]).
    pub fn flush_stale(&mut self, now: Instant) {
        self.queue.flush_stale_unschedulable(now);
    }

    /// One scheduling attempt, if a pod is due.
    pub fn schedule_next(&mut self, now: Instant) -> Option<Action> {
        let popped = self.queue.pop(now)?;
        let pending = popped.item;
        let _span = tracing::debug_span!("schedule", pod = %pending.info.key()).entered();
        match schedule(
            &pending.info,
            &self.snapshot,
            &self.plugins,
            &mut self.cursor,
        ) {
            Ok(node) => {
                self.snapshot.assume(&pending.info, &node);
                self.binding.insert(pending.info.uid.clone());
                tracing::debug!(%node, "assumed");
                Some(Action::Bind { pending, node })
            }
            Err(fit) => {
                let message = fit.to_string();
                tracing::debug!(%message, "unschedulable");
                let latest = self
                    .queue
                    .requeue_unschedulable(&popped.key, popped.cycle, now)
                    .unwrap_or(pending);
                Some(Action::ReportUnschedulable {
                    pending: latest,
                    message,
                })
            }
        }
    }

    /// The binding task finished.
    pub fn on_bind_outcome(&mut self, pending: &Pending, outcome: &BindOutcome, now: Instant) {
        let uid = &pending.info.uid;
        self.binding.remove(uid);
        match outcome {
            BindOutcome::Bound => self.queue.done(uid),
            BindOutcome::AlreadyBound { node } => {
                tracing::info!(pod = %pending.info.key(), %node, "pod was bound by someone else");
                self.snapshot.forget(uid);
                self.queue.delete(uid);
            }
            BindOutcome::PodGone => {
                self.snapshot.forget(uid);
                self.queue.delete(uid);
                self.queue.move_all_unschedulable(now);
            }
            BindOutcome::Retry { error } => {
                tracing::warn!(pod = %pending.info.key(), %error, "binding failed, will retry after backoff");
                self.snapshot.forget(uid);
                self.queue.requeue_backoff(uid, now);
                self.queue.move_all_unschedulable(now);
            }
        }
    }
}

/// Settings of the scheduling loop.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    pub max_concurrent_writes: usize,
    /// How often to run the unschedulable safety flush.
    pub flush_interval: Duration,
}

/// The shell: watches nodes and pods, runs the loop until `stop` is cancelled, then
/// waits briefly for bindings in flight.
pub async fn run_scheduling<W: ApiWriter>(
    client: kube::Client,
    core: Core,
    writer: Arc<W>,
    settings: LoopSettings,
    stop: CancellationToken,
) {
    let started = Instant::now();
    let core = Arc::new(Mutex::new(core));
    let wake = Arc::new(Notify::new());
    let (nodes_synced_tx, mut nodes_synced) = tokio::sync::watch::channel(false);
    let (pods_synced_tx, mut pods_synced) = tokio::sync::watch::channel(false);

    let mut informers = JoinSet::new();
    informers.spawn(watch_nodes(
        Api::all(client.clone()),
        core.clone(),
        wake.clone(),
        nodes_synced_tx,
        stop.clone(),
    ));
    informers.spawn(watch_pods(
        Api::all(client),
        core.clone(),
        wake.clone(),
        pods_synced_tx,
        stop.clone(),
    ));

    // Deciding before both caches are complete would overfill nodes whose pods we have
    // not seen yet.
    tokio::select! {
        _ = stop.cancelled() => { informers.join_all().await; return; }
        _ = async { let _ = nodes_synced.wait_for(|s| *s).await; let _ = pods_synced.wait_for(|s| *s).await; } => {}
    }
    {
        let c = core.lock().unwrap_or_else(|e| e.into_inner());
        tracing::info!(
            after_ms = started.elapsed().as_millis() as u64,
            nodes = c.snapshot().present_nodes(),
            pending = ?c.queue_len(),
            "scheduler caches synced, scheduling"
        );
    }

    let writes = Arc::new(Semaphore::new(settings.max_concurrent_writes.max(1)));
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut last_flush = Instant::now();
    loop {
        if stop.is_cancelled() {
            break;
        }
        while tasks.try_join_next().is_some() {}
        let now = Instant::now();
        if now.duration_since(last_flush) >= settings.flush_interval {
            core.lock()
                .unwrap_or_else(|e| e.into_inner())
                .flush_stale(now);
            last_flush = now;
        }
        let (action, expiry) = {
            let mut c = core.lock().unwrap_or_else(|e| e.into_inner());
            let a = c.schedule_next(now);
            (a, c.next_backoff_expiry())
        };
        let Some(action) = action else {
            let until = expiry
                .unwrap_or(now + settings.flush_interval)
                .min(last_flush + settings.flush_interval);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(until.into()) => {}
            }
            continue;
        };
        // Bound the writes in flight: past this the API server is the bottleneck anyway.
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            p = writes.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (core, writer, wake) = (core.clone(), writer.clone(), wake.clone());
        match action {
            Action::Bind { pending, node } => {
                tasks.spawn(async move {
                    let info = &pending.info;
                    // The node may have been deleted since the decision: binding there
                    // would strand the pod, so decide again instead.
                    let node_there = core
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .snapshot()
                        .node(&node)
                        .is_some_and(|n| n.present);
                    let outcome = if node_there {
                        writer
                            .bind(&info.namespace, &info.name, &info.uid, &node)
                            .await
                    } else {
                        BindOutcome::Retry {
                            error: format!("node {node} was deleted before the binding"),
                        }
                    };
                    drop(permit);
                    core.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .on_bind_outcome(&pending, &outcome, Instant::now());
                    if outcome != BindOutcome::Bound {
                        wake.notify_one();
                    }
                });
            }
            Action::ReportUnschedulable { pending, message } => {
                tasks.spawn(async move {
                    if let Err(e) = writer.report_unschedulable(&pending.pod, &message).await {
                        tracing::warn!(error = %e, "could not report an unschedulable pod");
                    }
                    drop(permit);
                });
            }
        }
    }
    // Let bindings already sent finish, so their outcome is not lost to the next leader.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    informers.join_all().await;
}

async fn watch_nodes(
    api: Api<Node>,
    core: Arc<Mutex<Core>>,
    wake: Arc<Notify>,
    synced: tokio::sync::watch::Sender<bool>,
    stop: CancellationToken,
) {
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut relist: HashSet<String> = HashSet::new();
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => return,
            ev = stream.next() => ev,
        };
        let now = Instant::now();
        match ev {
            None => return,
            Some(Err(e)) => tracing::warn!(error = %e, "node watch failed, retrying with backoff"),
            Some(Ok(ev)) => {
                let mut c = core.lock().unwrap_or_else(|e| e.into_inner());
                match ev {
                    Event::Init => relist.clear(),
                    Event::InitApply(n) => {
                        relist.insert(n.metadata.name.clone().unwrap_or_default());
                        c.on_node(&n, now);
                    }
                    Event::InitDone => {
                        c.retain_nodes(&relist, now);
                        let _ = synced.send(true);
                    }
                    Event::Apply(n) => c.on_node(&n, now),
                    Event::Delete(n) => {
                        c.on_node_deleted(n.metadata.name.as_deref().unwrap_or_default())
                    }
                }
                drop(c);
                wake.notify_one();
            }
        }
    }
}

async fn watch_pods(
    api: Api<Pod>,
    core: Arc<Mutex<Core>>,
    wake: Arc<Notify>,
    synced: tokio::sync::watch::Sender<bool>,
    stop: CancellationToken,
) {
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut relist: HashSet<String> = HashSet::new();
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => return,
            ev = stream.next() => ev,
        };
        let now = Instant::now();
        match ev {
            None => return,
            Some(Err(e)) => tracing::warn!(error = %e, "pod watch failed, retrying with backoff"),
            Some(Ok(ev)) => {
                let mut c = core.lock().unwrap_or_else(|e| e.into_inner());
                match ev {
                    Event::Init => relist.clear(),
                    Event::InitApply(p) => {
                        relist.insert(p.metadata.uid.clone().unwrap_or_default());
                        c.on_pod(Arc::new(p), now);
                    }
                    Event::InitDone => {
                        c.retain_pods(&relist, now);
                        let _ = synced.send(true);
                    }
                    Event::Apply(p) => c.on_pod(Arc::new(p), now),
                    Event::Delete(p) => c.on_pod_deleted(&p, now),
                }
                drop(c);
                wake.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::{default_plugins, Weights};
    use serde_json::json;

    fn core() -> Core {
        Core::new(
            "default-scheduler".into(),
            default_plugins(&Weights::default(), 0),
            QueueTimings::default(),
            3,
        )
    }

    fn node(name: &str, cpu: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap()
    }

    fn pod(name: &str, cpu: &str, node: Option<&str>) -> Arc<Pod> {
        let mut spec =
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default", "uid": name}, "spec": spec})).unwrap())
    }

    fn bind_target(a: Option<Action>) -> String {
        match a {
            Some(Action::Bind { node, .. }) => node,
            other => panic!("expected a binding, got {other:?}"),
        }
    }

    #[test]
    fn assumed_pods_prevent_overcommit_before_the_watch_confirms() {
        let mut c = core();
        let t = Instant::now();
        c.on_node(&node("n1", "1"), t);
        c.on_pod(pod("a", "600m", None), t);
        c.on_pod(pod("b", "600m", None), t);
        assert_eq!(bind_target(c.schedule_next(t)), "n1");
        // b must not fit: a is assumed on n1 although no watch event has confirmed it.
        match c.schedule_next(t) {
            Some(Action::ReportUnschedulable { message, .. }) => {
                assert_eq!(message, "0/1 nodes are available: 1 Insufficient cpu.")
            }
            other => panic!("expected unschedulable, got {other:?}"),
        }
    }

    #[test]
    fn unschedulable_pod_retried_when_a_node_is_added() {
        let mut c = core();
        let t = Instant::now();
        c.on_pod(pod("a", "1", None), t);
        assert!(matches!(
            c.schedule_next(t),
            Some(Action::ReportUnschedulable { .. })
        ));
        assert!(
            c.schedule_next(t + Duration::from_secs(60)).is_none(),
            "parked, not polled"
        );
        c.on_node(&node("n1", "2"), t + Duration::from_secs(61));
        // Still within its 1 s backoff? No: 61 s passed; it is active again.
        assert_eq!(
            bind_target(c.schedule_next(t + Duration::from_secs(61))),
            "n1"
        );
    }

    #[test]
    fn node_heartbeat_does_not_wake_parked_pods() {
        let mut c = core();
        let t = Instant::now();
        c.on_node(&node("n1", "1"), t);
        c.on_pod(pod("big", "4", None), t);
        assert!(matches!(
            c.schedule_next(t),
            Some(Action::ReportUnschedulable { .. })
        ));
        c.on_node(&node("n1", "1"), t + Duration::from_secs(10));
        assert_eq!(c.queue_len().unschedulable, 1);
        c.on_node(&node("n1", "8"), t + Duration::from_secs(11));
        assert_eq!(c.queue_len().active, 1, "allocatable grew: retry");
    }

    #[test]
    fn deleting_a_bound_pod_frees_room_for_a_parked_one() {
        let mut c = core();
        let t = Instant::now();
        c.on_node(&node("n1", "1"), t);
        let old = pod("old", "1", Some("n1"));
        c.on_pod(old.clone(), t);
        c.on_pod(pod("new", "1", None), t);
        assert!(matches!(
            c.schedule_next(t),
            Some(Action::ReportUnschedulable { .. })
        ));
        // Our own status write comes back as an update: it must not wake the pod.
        let mut with_status = (*pod("new", "1", None)).clone();
        with_status.status = Some(
            serde_json::from_value(
                json!({"conditions": [{"type": "PodScheduled", "status": "False"}]}),
            )
            .unwrap(),
        );
        c.on_pod(Arc::new(with_status), t);
        assert_eq!(c.queue_len().unschedulable, 1);
        c.on_pod_deleted(&old, t + Duration::from_secs(5));
        assert_eq!(
            bind_target(c.schedule_next(t + Duration::from_secs(5))),
            "n1"
        );
    }

    #[test]
    fn bind_outcomes() {
        let t = Instant::now();
        for (outcome, requeued) in [
            (BindOutcome::Bound, false),
            (
                BindOutcome::AlreadyBound {
                    node: "elsewhere".into(),
                },
                false,
            ),
            (BindOutcome::PodGone, false),
            (
                BindOutcome::Retry {
                    error: "503".into(),
                },
                true,
            ),
        ] {
            let mut c = core();
            c.on_node(&node("n1", "1"), t);
            c.on_pod(pod("a", "1", None), t);
            let Some(Action::Bind { pending, .. }) = c.schedule_next(t) else {
                panic!("expected a binding")
            };
            c.on_bind_outcome(&pending, &outcome, t);
            let placed = c.snapshot().placement("a").is_some();
            assert_eq!(
                placed,
                outcome == BindOutcome::Bound,
                "{outcome:?}: only a success stays assumed"
            );
            assert_eq!(c.queue_len().backoff, usize::from(requeued), "{outcome:?}");
            if requeued {
                assert_eq!(
                    bind_target(c.schedule_next(t + Duration::from_secs(1))),
                    "n1"
                );
            }
        }
    }

    #[test]
    fn watch_confirmation_and_stale_events() {
        let mut c = core();
        let t = Instant::now();
        c.on_node(&node("n1", "4"), t);
        c.on_pod(pod("a", "1", None), t);
        let Some(Action::Bind { pending, node }) = c.schedule_next(t) else {
            panic!("expected a binding")
        };
        c.on_bind_outcome(&pending, &BindOutcome::Bound, t);
        // A stale unbound version arrives after the binding: not queued again.
        c.on_pod(pod("a", "1", None), t);
        assert!(
            c.schedule_next(t).is_none(),
            "never schedules a bound pod twice"
        );
        c.on_pod(pod("a", "1", Some(&node)), t);
        assert_eq!(c.snapshot().placement("a"), Some(("n1", false)));
        assert_eq!(c.snapshot().node("n1").unwrap().requested.milli_cpu, 1000);
        // Other schedulers' pods and finished pods are left alone.
        let mut theirs = (*pod("x", "1", None)).clone();
        theirs.spec.as_mut().unwrap().scheduler_name = Some("student-scheduler".into());
        c.on_pod(Arc::new(theirs), t);
        assert!(c.schedule_next(t).is_none());
        let mut done = (*pod("a", "1", Some("n1"))).clone();
        done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
        c.on_pod(Arc::new(done), t);
        assert_eq!(c.snapshot().node("n1").unwrap().requested.milli_cpu, 0);
    }

    #[test]
    fn taint_removal_wakes_parked_pods() {
        let mut c = core();
        let t = Instant::now();
        let mut tainted = node("n1", "4");
        tainted.spec = Some(
            serde_json::from_value(json!({"taints": [{"key": "maint", "effect": "NoSchedule"}]}))
                .unwrap(),
        );
        c.on_node(&tainted, t);
        c.on_pod(pod("a", "1", None), t);
        match c.schedule_next(t) {
            Some(Action::ReportUnschedulable { message, .. }) => {
                assert_eq!(
                    message,
                    "0/1 nodes are available: 1 node(s) had untolerated taint {maint: }."
                )
            }
            other => panic!("expected unschedulable, got {other:?}"),
        }
        c.on_node(&node("n1", "4"), t + Duration::from_secs(2));
        assert_eq!(
            bind_target(c.schedule_next(t + Duration::from_secs(2))),
            "n1"
        );
    }

    #[test]
    fn pod_deleted_while_pending_leaves_the_queue() {
        let mut c = core();
        let t = Instant::now();
        c.on_pod(pod("a", "1", None), t);
        let mut terminating = (*pod("a", "1", None)).clone();
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
            ));
        c.on_pod(Arc::new(terminating), t);
        assert_eq!(c.queue_len(), QueueLen::default());
    }

    #[test]
    fn relist_drops_pods_deleted_while_the_watch_was_down() {
        let mut c = core();
        let t = Instant::now();
        c.on_node(&node("n1", "4"), t);
        c.on_pod(pod("a", "1", None), t);
        c.on_pod(pod("b", "1", None), t);
        let Some(Action::Bind { pending: a, .. }) = c.schedule_next(t) else {
            panic!("expected a binding")
        };
        let Some(Action::Bind { .. }) = c.schedule_next(t) else {
            panic!("expected a binding")
        };
        c.on_bind_outcome(&a, &BindOutcome::Bound, t);
        // Neither is in the re-list: a (bound, then deleted) is dropped, b (binding still
        // in flight) is kept.
        c.retain_pods(&HashSet::new(), t);
        assert_eq!(c.snapshot().placement("a"), None);
        assert_eq!(c.snapshot().placement("b"), Some(("n1", true)));
    }

    #[test]
    fn higher_priority_first() {
        let mut c = core();
        let t = Instant::now();
        c.on_node(&node("n1", "1"), t);
        c.on_pod(pod("low", "1", None), t);
        let mut crit = (*pod("crit", "1", None)).clone();
        crit.spec.as_mut().unwrap().priority = Some(1000);
        c.on_pod(Arc::new(crit), t);
        let Some(Action::Bind { pending, .. }) = c.schedule_next(t) else {
            panic!("expected a binding")
        };
        assert_eq!(pending.info.name, "crit");
    }
}
