//! The scheduling queue: which pending pod to try next, and when to try a failed one
//! again. Pure data with an injected clock (every call takes `now`), so tests replay time
//! exactly. Shaped like upstream's PriorityQueue
//! (<https://github.com/kubernetes/enhancements/tree/master/keps/sig-scheduling/1635-scheduling-queue>):
//!
//! - **active**: ready to be scheduled, highest priority first, FIFO within a priority;
//! - **backoff**: failed recently; waits `initial * 2^(attempts-1)` (capped) before it is
//!   active again, so a broken pod cannot hog the scheduler;
//! - **unschedulable**: no node fitted; stays parked until the cluster changes (a node is
//!   added or updated, a pod is deleted) — not retried on a timer, except for a long safety
//!   flush in case an event was missed;
//! - **in flight**: popped and being scheduled or bound; updates are remembered, and a
//!   cluster change seen meanwhile sends the pod to backoff instead of parking it, so a
//!   wake-up is never lost.
//!
//! Keys are pod UIDs; `T` is whatever the caller wants back (the pod object).

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// Backoff and flush timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueTimings {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Unschedulable pods are retried after this long even without a cluster event.
    pub max_unschedulable: Duration,
}

impl Default for QueueTimings {
    fn default() -> Self {
        // Upstream's defaults: podInitialBackoffSeconds 1, podMaxBackoffSeconds 10,
        // podMaxInUnschedulablePodsDuration 5 minutes.
        QueueTimings {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_unschedulable: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active { seq: u64 },
    Backoff { until: Instant, seq: u64 },
    Unschedulable { since: Instant },
    InFlight,
}

#[derive(Debug)]
struct Entry<T> {
    item: T,
    priority: i32,
    attempts: u32,
    last_failure: Option<Instant>,
    state: State,
}

/// Heap order: higher priority first, then lower sequence number (earlier) first.
#[derive(Debug, PartialEq, Eq)]
struct ActiveKey {
    priority: i32,
    seq: Reverse<u64>,
    key: String,
}

impl Ord for ActiveKey {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.priority, self.seq).cmp(&(o.priority, o.seq))
    }
}

impl PartialOrd for ActiveKey {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// A pod handed out for one scheduling attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Popped<T> {
    pub key: String,
    pub item: T,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The scheduling cycle this attempt belongs to (pass it back on failure).
    pub cycle: u64,
}

/// Sizes, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueLen {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
    pub in_flight: usize,
}

#[derive(Debug)]
pub struct SchedulingQueue<T> {
    timings: QueueTimings,
    entries: HashMap<String, Entry<T>>,
    // Both indexes may hold stale keys; an index key counts only while it equals the
    // entry's state (lazy deletion keeps every operation O(log n)).
    active: BinaryHeap<ActiveKey>,
    backoff: BTreeSet<(Instant, u64, String)>,
    seq: u64,
    cycle: u64,
    move_request_cycle: u64,
}

impl<T: Clone> SchedulingQueue<T> {
    pub fn new(timings: QueueTimings) -> Self {
        SchedulingQueue {
            timings,
            entries: HashMap::new(),
            active: BinaryHeap::new(),
            backoff: BTreeSet::new(),
            seq: 0,
            cycle: 0,
            move_request_cycle: 0,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn backoff_duration(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(20);
        (self.timings.initial_backoff * (1u32 << shift)).min(self.timings.max_backoff)
    }

    fn backoff_until(&self, e: &Entry<T>) -> Option<Instant> {
        e.last_failure
            .map(|t| t + self.backoff_duration(e.attempts))
    }

    fn set_active(&mut self, key: &str) {
        let seq = self.next_seq();
        if let Some(e) = self.entries.get_mut(key) {
            e.state = State::Active { seq };
            self.active.push(ActiveKey {
                priority: e.priority,
                seq: Reverse(seq),
                key: key.to_string(),
            });
        }
    }

    fn set_backoff(&mut self, key: &str, until: Instant) {
        let seq = self.next_seq();
        if let Some(e) = self.entries.get_mut(key) {
            e.state = State::Backoff { until, seq };
            self.backoff.insert((until, seq, key.to_string()));
        }
    }

    /// Active, or backoff if the pod is still serving a backoff.
    fn activate_or_backoff(&mut self, key: &str, now: Instant) {
        let until = self.entries.get(key).and_then(|e| self.backoff_until(e));
        match until {
            Some(until) if until > now => self.set_backoff(key, until),
            _ => self.set_active(key),
        }
    }

    fn leave_current_state(&mut self, key: &str) {
        if let Some(e) = self.entries.get(key) {
            if let State::Backoff { until, seq } = e.state {
                self.backoff.remove(&(until, seq, key.to_string()));
            }
            // Active heap entries go stale by themselves once the state changes.
        }
    }

    /// A new pending pod, or a newer version of one already queued. `relevant` says the
    /// change may make it schedulable (spec, labels), as opposed to a status write such as
    /// our own PodScheduled condition, which must not wake it up.
    pub fn add_or_update(
        &mut self,
        key: &str,
        priority: i32,
        item: T,
        relevant: bool,
        now: Instant,
    ) {
        let Some(e) = self.entries.get_mut(key) else {
            self.entries.insert(
                key.to_string(),
                Entry {
                    item,
                    priority,
                    attempts: 0,
                    last_failure: None,
                    state: State::InFlight,
                },
            );
            self.set_active(key);
            return;
        };
        e.item = item;
        let priority_changed = e.priority != priority;
        e.priority = priority;
        match e.state {
            State::Active { seq } if priority_changed => {
                // Keep its place in line (same sequence), under the new priority.
                self.active.push(ActiveKey {
                    priority,
                    seq: Reverse(seq),
                    key: key.to_string(),
                });
            }
            State::Unschedulable { .. } if relevant => self.activate_or_backoff(key, now),
            _ => {}
        }
    }

    /// The pod is gone (deleted, or bound by someone else): forget it wherever it is.
    pub fn delete(&mut self, key: &str) {
        self.leave_current_state(key);
        self.entries.remove(key);
    }

    /// The latest item of a queued pod.
    pub fn get(&self, key: &str) -> Option<&T> {
        self.entries.get(key).map(|e| &e.item)
    }

    /// Keeps only the keys `keep` accepts, plus pods in flight (their binding decides).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self
            .entries
            .iter()
            .filter(|(k, e)| e.state != State::InFlight && !keep(k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.delete(&k);
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Moves expired backoffs to active, then hands out the best active pod.
    pub fn pop(&mut self, now: Instant) -> Option<Popped<T>> {
        self.flush_backoff(now);
        while let Some(top) = self.active.pop() {
            let Some(e) = self.entries.get_mut(&top.key) else {
                continue;
            };
            if e.state != (State::Active { seq: top.seq.0 }) || e.priority != top.priority {
                continue;
            }
            e.state = State::InFlight;
            self.cycle += 1;
            return Some(Popped {
                key: top.key,
                item: e.item.clone(),
                attempts: e.attempts,
                cycle: self.cycle,
            });
        }
        None
    }

    fn flush_backoff(&mut self, now: Instant) {
        while self
            .backoff
            .first()
            .is_some_and(|(until, _, _)| *until <= now)
        {
            let Some((until, seq, key)) = self.backoff.pop_first() else {
                break;
            };
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.state == State::Backoff { until, seq })
            {
                self.set_active(&key);
            }
        }
    }

    /// When the earliest backoff ends (so the caller knows how long it may sleep).
    pub fn next_backoff_expiry(&self) -> Option<Instant> {
        self.backoff.first().map(|(t, _, _)| *t)
    }

    /// The attempt found no node. The pod waits for a cluster change, or goes to backoff
    /// if one happened while it was in flight. Returns the pod's latest item.
    pub fn requeue_unschedulable(&mut self, key: &str, cycle: u64, now: Instant) -> Option<T> {
        let moved_meanwhile = self.move_request_cycle >= cycle;
        let e = self.entries.get_mut(key)?;
        if e.state != State::InFlight {
            return Some(e.item.clone());
        }
        e.attempts += 1;
        e.last_failure = Some(now);
        let item = e.item.clone();
        if moved_meanwhile {
            let until = self.backoff_until(&self.entries[key]).unwrap_or(now);
            self.set_backoff(key, until);
        } else if let Some(e) = self.entries.get_mut(key) {
            e.state = State::Unschedulable { since: now };
        }
        Some(item)
    }

    /// The attempt failed for a reason unrelated to the cluster's shape (an API error):
    /// retry after backoff.
    pub fn requeue_backoff(&mut self, key: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        if e.state != State::InFlight {
            return;
        }
        e.attempts += 1;
        e.last_failure = Some(now);
        let until = self.backoff_until(&self.entries[key]).unwrap_or(now);
        self.set_backoff(key, until);
    }

    /// The pod was bound: it leaves the queue.
    pub fn done(&mut self, key: &str) {
        if self
            .entries
            .get(key)
            .is_some_and(|e| e.state == State::InFlight)
        {
            self.entries.remove(key);
        }
    }

    /// The cluster changed in a way that may make parked pods fit (node added or
    /// updated, pod deleted): retry every unschedulable pod.
    pub fn move_all_unschedulable(&mut self, now: Instant) {
        self.move_request_cycle = self.cycle;
        let keys: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Unschedulable { .. }))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.activate_or_backoff(&k, now);
        }
    }

    /// Safety net: pods parked longer than `max_unschedulable` are retried anyway.
    pub fn flush_stale_unschedulable(&mut self, now: Instant) {
        let max = self.timings.max_unschedulable;
        let keys: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Unschedulable { since } if now.duration_since(since) >= max))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.activate_or_backoff(&k, now);
        }
    }

    pub fn len(&self) -> QueueLen {
        let mut l = QueueLen::default();
        for e in self.entries.values() {
            match e.state {
                State::Active { .. } => l.active += 1,
                State::Backoff { .. } => l.backoff += 1,
                State::Unschedulable { .. } => l.unschedulable += 1,
                State::InFlight => l.in_flight += 1,
            }
        }
        l
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> SchedulingQueue<&'static str> {
        SchedulingQueue::new(QueueTimings::default())
    }

    fn drain(q: &mut SchedulingQueue<&'static str>, now: Instant) -> Vec<String> {
        let mut out = vec![];
        while let Some(p) = q.pop(now) {
            q.done(&p.key);
            out.push(p.key);
        }
        out
    }

    #[test]
    fn priority_then_fifo() {
        let t0 = Instant::now();
        type Case = (Vec<(&'static str, i32)>, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            (vec![("a", 0), ("b", 0), ("c", 0)], vec!["a", "b", "c"]),
            (
                vec![("a", 0), ("b", 10), ("c", 0), ("d", 10)],
                vec!["b", "d", "a", "c"],
            ),
            (
                vec![("low", -5), ("crit", 2_000_000_000), ("mid", 100)],
                vec!["crit", "mid", "low"],
            ),
        ];
        for (adds, want) in cases {
            let mut q = q();
            for (k, p) in &adds {
                q.add_or_update(k, *p, "v1", true, t0);
            }
            assert_eq!(drain(&mut q, t0), want, "{adds:?}");
            assert!(q.is_empty());
        }
    }

    #[test]
    fn updates_replace_item_and_keep_place() {
        let t0 = Instant::now();
        let mut q = q();
        q.add_or_update("a", 0, "a1", true, t0);
        q.add_or_update("b", 0, "b1", true, t0);
        q.add_or_update("a", 0, "a2", true, t0);
        let p = q.pop(t0).unwrap();
        assert_eq!((p.key.as_str(), p.item), ("a", "a2"));
        // Raising b's priority above c keeps b ahead; raising c's lets it overtake.
        q.add_or_update("c", 0, "c1", true, t0);
        q.add_or_update("c", 5, "c2", true, t0);
        assert_eq!(q.pop(t0).unwrap().item, "c2");
        assert_eq!(q.pop(t0).unwrap().item, "b1");
        assert!(q.pop(t0).is_none(), "stale heap entries are skipped");
    }

    #[test]
    fn unschedulable_waits_for_cluster_change() {
        let t0 = Instant::now();
        let mut q = q();
        q.add_or_update("a", 0, "v1", true, t0);
        let p = q.pop(t0).unwrap();
        assert_eq!(q.requeue_unschedulable("a", p.cycle, t0), Some("v1"));
        assert_eq!(
            q.len(),
            QueueLen {
                unschedulable: 1,
                ..Default::default()
            }
        );
        // Time alone (short of the safety flush) does not bring it back.
        assert!(q.pop(t0 + Duration::from_secs(60)).is_none());
        // A status-only update does not either; a spec change does.
        q.add_or_update("a", 0, "v2", false, t0 + Duration::from_secs(61));
        assert!(q.pop(t0 + Duration::from_secs(61)).is_none());
        q.move_all_unschedulable(t0 + Duration::from_secs(62));
        let p = q.pop(t0 + Duration::from_secs(62)).unwrap();
        assert_eq!((p.item, p.attempts), ("v2", 1));
    }

    #[test]
    fn cluster_change_during_backoff_waits_for_backoff() {
        let t0 = Instant::now();
        let mut q = q();
        q.add_or_update("a", 0, "v", true, t0);
        let p = q.pop(t0).unwrap();
        q.requeue_unschedulable("a", p.cycle, t0);
        q.move_all_unschedulable(t0 + Duration::from_millis(200));
        assert_eq!(q.len().backoff, 1);
        assert!(q.pop(t0 + Duration::from_millis(999)).is_none());
        assert_eq!(q.next_backoff_expiry(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(q.pop(t0 + Duration::from_secs(1)).unwrap().key, "a");
    }

    #[test]
    fn change_while_in_flight_is_not_lost() {
        let t0 = Instant::now();
        let mut q = q();
        q.add_or_update("a", 0, "v", true, t0);
        let p = q.pop(t0).unwrap();
        // A node is added while "a" is being scheduled against the old snapshot.
        q.move_all_unschedulable(t0);
        q.requeue_unschedulable("a", p.cycle, t0);
        assert_eq!(q.len().backoff, 1, "goes to backoff, not parked");
        assert_eq!(q.pop(t0 + Duration::from_secs(1)).unwrap().key, "a");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let t0 = Instant::now();
        let mut q = q();
        q.add_or_update("a", 0, "v", true, t0);
        let mut now = t0;
        let mut waits = vec![];
        for _ in 0..6 {
            let p = q.pop(now).expect("pod is due");
            q.requeue_backoff(&p.key, now);
            let due = q.next_backoff_expiry().unwrap();
            waits.push(due.duration_since(now).as_secs());
            assert!(q.pop(due - Duration::from_millis(1)).is_none());
            now = due;
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn delete_anywhere_and_done() {
        let t0 = Instant::now();
        let mut q = q();
        for k in ["a", "b", "c", "d"] {
            q.add_or_update(k, 0, "v", true, t0);
        }
        let a = q.pop(t0).unwrap();
        let b = q.pop(t0).unwrap();
        let c = q.pop(t0).unwrap();
        q.requeue_backoff(&b.key, t0);
        q.requeue_unschedulable(&c.key, c.cycle, t0);
        // a is deleted while in flight: its requeue is a no-op and nothing comes back.
        q.delete("a");
        assert_eq!(q.requeue_unschedulable(&a.key, a.cycle, t0), None);
        q.delete("b");
        q.delete("c");
        q.delete("d");
        assert!(q.is_empty());
        q.move_all_unschedulable(t0);
        assert!(q.pop(t0 + Duration::from_secs(100)).is_none());
        // done only removes in-flight pods.
        q.add_or_update("e", 0, "v", true, t0);
        q.done("e");
        assert!(q.contains("e"));
    }

    #[test]
    fn safety_flush_after_max_unschedulable() {
        let t0 = Instant::now();
        let mut q = q();
        q.add_or_update("a", 0, "v", true, t0);
        let p = q.pop(t0).unwrap();
        q.requeue_unschedulable("a", p.cycle, t0);
        q.flush_stale_unschedulable(t0 + Duration::from_secs(299));
        assert_eq!(q.len().unschedulable, 1);
        q.flush_stale_unschedulable(t0 + Duration::from_secs(300));
        assert_eq!(q.pop(t0 + Duration::from_secs(300)).unwrap().key, "a");
    }

    #[test]
    fn re_adding_in_flight_pod_does_not_duplicate() {
        let t0 = Instant::now();
        let mut q = q();
        q.add_or_update("a", 0, "v1", true, t0);
        let p = q.pop(t0).unwrap();
        q.add_or_update("a", 0, "v2", true, t0);
        assert!(
            q.pop(t0).is_none(),
            "in flight pods are not handed out twice"
        );
        assert_eq!(q.requeue_unschedulable(&p.key, p.cycle, t0), Some("v2"));
    }
}
