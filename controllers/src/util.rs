//! Helpers every controller shares: label-selector matching, controller references and
//! the adopt/release decision, pod readiness and availability, requeue backoff, and
//! "expectations" (remembering our own writes until the informer cache has seen them).
//!
//! Everything here is pure except [`Backoff`] and [`Expectations`], which hold a little
//! in-memory state behind a mutex and take the current time as an argument so that they
//! can be tested without sleeping.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// `true` when `labels` satisfy `selector` (matchLabels and matchExpressions, ANDed).
/// As in Kubernetes, an empty selector matches everything; callers that must not treat
/// an empty selector as "everything" (ReplicaSets, Services) check that themselves.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(ml) = &selector.match_labels {
        if ml.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return false;
        }
    }
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.as_deref().unwrap_or_default();
        let have = labels.get(&expr.key);
        let ok = match expr.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            // An operator we do not know can never be satisfied: matching nothing is the
            // safe failure for a controller that would otherwise adopt or delete pods.
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// `true` for a selector with neither matchLabels nor matchExpressions.
pub fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// Matching for the plain `map[string]string` selectors Services use.
pub fn map_selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The labels of an object, or an empty map.
pub fn labels_of(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

/// The owner reference with `controller: true`, if any.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// A controller reference to `owner`: what a ReplicaSet puts on its pods and a
/// Deployment on its ReplicaSets. `blockOwnerDeletion` lets foreground deletion of the
/// owner wait for this dependent.
pub fn owner_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// What a controller should do about one candidate dependent (a pod for a ReplicaSet, a
/// ReplicaSet for a Deployment). Owners are matched by UID, never by name: a new
/// object with an old name must not inherit the old object's dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours and still matching the selector.
    Owned,
    /// No controller, matches, not being deleted: take it.
    Adopt,
    /// Ours but no longer matching: drop our reference.
    Release,
    /// Someone else's, or not matching and not ours.
    Ignore,
}

/// Decides [`Claim`] for `dependent` against an owner with `owner_uid` and `selector`.
/// An owner that is itself being deleted adopts nothing (upstream does the same, so that
/// a dying owner does not grab pods another controller is about to take).
pub fn claim(
    owner_uid: &str,
    owner_deleting: bool,
    selector: &LabelSelector,
    dependent: &ObjectMeta,
) -> Claim {
    let matches = !selector_is_empty(selector) && selector_matches(selector, &labels_of(dependent));
    match controller_ref(dependent) {
        Some(r) if r.uid == owner_uid => {
            if matches {
                Claim::Owned
            } else if dependent.deletion_timestamp.is_some() {
                // A dependent on its way out keeps its reference: releasing it would
                // only race with the deletion.
                Claim::Owned
            } else {
                Claim::Release
            }
        }
        Some(_) => Claim::Ignore,
        None => {
            if matches && !owner_deleting && dependent.deletion_timestamp.is_none() {
                Claim::Adopt
            } else {
                Claim::Ignore
            }
        }
    }
}

/// A pod counts towards a ReplicaSet's replicas while it is neither finished nor being
/// deleted (upstream `IsPodActive`).
pub fn pod_is_active(pod: &Pod) -> bool {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    pod.metadata.deletion_timestamp.is_none() && phase != "Succeeded" && phase != "Failed"
}

/// The pod's `Ready` condition, if it has one.
pub fn pod_ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// `Ready` condition is `True`.
pub fn pod_is_ready(pod: &Pod) -> bool {
    pod_ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// Ready for at least `min_ready_seconds` at `now` (upstream `IsPodAvailable`). A pod
/// whose Ready condition has no transition time counts from the moment it was seen.
pub fn pod_is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match pod_ready_condition(pod) {
        Some(c) if c.status == "True" => {
            if min_ready_seconds <= 0 {
                return true;
            }
            match &c.last_transition_time {
                Some(t) => t.0 + SignedDuration::from_secs(min_ready_seconds.into()) <= now,
                None => false,
            }
        }
        _ => false,
    }
}

/// When a ready pod will become available, if it is not yet: the controller requeues
/// itself for that moment instead of polling.
pub fn pod_available_at(pod: &Pod, min_ready_seconds: i32) -> Option<Timestamp> {
    let c = pod_ready_condition(pod)?;
    if c.status != "True" || min_ready_seconds <= 0 {
        return None;
    }
    Some(c.last_transition_time.as_ref()?.0 + SignedDuration::from_secs(min_ready_seconds.into()))
}

/// How long from `now` until `at`; zero if `at` has passed.
pub fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or_default()
}

/// `namespace/name`, the key controllers log and remember state under.
pub fn key(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

/// Per-key exponential backoff for failed reconciles: 250 ms doubling up to a cap, reset
/// by a success. Upstream uses 5 ms..1000 s; a lab cluster wants faster recovery and a
/// lower ceiling.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(250), Duration::from_secs(60))
    }
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure for `key` and returns how long to wait before retrying.
    pub fn failure(&self, key: &str) -> Duration {
        let mut f = self.failures.lock().expect("backoff lock");
        let n = f.entry(key.to_string()).or_insert(0);
        let delay = self.base.saturating_mul(1u32 << (*n).min(20));
        *n = n.saturating_add(1);
        delay.min(self.cap)
    }

    pub fn success(&self, key: &str) {
        self.failures.lock().expect("backoff lock").remove(key);
    }
}

/// Writes a controller made that its informer cache has not shown yet.
///
/// Without this a ReplicaSet that has just created three pods would, on its next
/// reconcile, still see the old pod list and create three more (upstream
/// `ControllerExpectations`). A key with unmet expectations is not acted on; the
/// expectations expire after a timeout so a lost watch event cannot wedge a key.
#[derive(Debug)]
pub struct Expectations {
    timeout: Duration,
    pending: Mutex<HashMap<String, Pending>>,
}

#[derive(Debug, Default)]
struct Pending {
    /// Names of objects we created and have not yet seen.
    adds: HashSet<String>,
    /// Names of objects we deleted that are still present and not terminating.
    deletes: HashSet<String>,
    since: Option<Instant>,
}

impl Expectations {
    pub fn new(timeout: Duration) -> Self {
        Expectations {
            timeout,
            pending: Mutex::new(HashMap::new()),
        }
    }

    pub fn expect_add(&self, key: &str, name: &str, now: Instant) {
        let mut p = self.pending.lock().expect("expectations lock");
        let e = p.entry(key.to_string()).or_default();
        e.adds.insert(name.to_string());
        e.since.get_or_insert(now);
    }

    pub fn expect_delete(&self, key: &str, name: &str, now: Instant) {
        let mut p = self.pending.lock().expect("expectations lock");
        let e = p.entry(key.to_string()).or_default();
        e.deletes.insert(name.to_string());
        e.since.get_or_insert(now);
    }

    /// Checks the expectations of `key` against what the cache shows: `present(name)`
    /// says whether a live (not terminating) object with that name is in the cache.
    /// Returns `true` when the controller may act.
    pub fn satisfied(&self, key: &str, now: Instant, present: impl Fn(&str) -> bool) -> bool {
        let mut p = self.pending.lock().expect("expectations lock");
        let Some(e) = p.get_mut(key) else { return true };
        e.adds.retain(|n| !present(n));
        e.deletes.retain(|n| present(n));
        let expired = e
            .since
            .is_some_and(|s| now.duration_since(s) >= self.timeout);
        if e.adds.is_empty() && e.deletes.is_empty() || expired {
            p.remove(key);
            return true;
        }
        false
    }

    pub fn forget(&self, key: &str) {
        self.pending.lock().expect("expectations lock").remove(key);
    }
}

/// Splits `total` into the integer and percentage forms Kubernetes accepts for
/// maxSurge/maxUnavailable: `IntOrString` "25%" against `total`, rounding up or down.
pub fn scaled_value(
    v: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    default: &str,
    total: i32,
    round_up: bool,
) -> i32 {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let s = match v {
        Some(IntOrString::Int(i)) => return (*i).max(0),
        Some(IntOrString::String(s)) => s.clone(),
        None => default.to_string(),
    };
    match s
        .strip_suffix('%')
        .and_then(|p| p.trim().parse::<i64>().ok())
    {
        Some(pct) => {
            let num = pct * i64::from(total);
            let v = if round_up {
                (num + 99) / 100
            } else {
                num / 100
            };
            v.max(0) as i32
        }
        // A plain number in a string ("1") is accepted by Kubernetes too.
        None => s.trim().parse::<i32>().unwrap_or(0).max(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn selector_matching_follows_kubernetes_rules() {
        let app_web = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        };
        let cases: Vec<(&str, LabelSelector, BTreeMap<String, String>, bool)> = vec![
            (
                "matchLabels hit",
                app_web.clone(),
                labels(&[("app", "web"), ("x", "y")]),
                true,
            ),
            (
                "matchLabels miss",
                app_web.clone(),
                labels(&[("app", "db")]),
                false,
            ),
            ("matchLabels absent", app_web.clone(), labels(&[]), false),
            (
                "empty matches all",
                LabelSelector::default(),
                labels(&[("a", "b")]),
                true,
            ),
            (
                "In",
                LabelSelector {
                    match_expressions: Some(vec![req("tier", "In", &["a", "b"])]),
                    ..Default::default()
                },
                labels(&[("tier", "b")]),
                true,
            ),
            (
                "NotIn absent key matches",
                LabelSelector {
                    match_expressions: Some(vec![req("tier", "NotIn", &["a"])]),
                    ..Default::default()
                },
                labels(&[]),
                true,
            ),
            (
                "NotIn listed value",
                LabelSelector {
                    match_expressions: Some(vec![req("tier", "NotIn", &["a"])]),
                    ..Default::default()
                },
                labels(&[("tier", "a")]),
                false,
            ),
            (
                "Exists",
                LabelSelector {
                    match_expressions: Some(vec![req("tier", "Exists", &[])]),
                    ..Default::default()
                },
                labels(&[("tier", "")]),
                true,
            ),
            (
                "DoesNotExist",
                LabelSelector {
                    match_expressions: Some(vec![req("tier", "DoesNotExist", &[])]),
                    ..Default::default()
                },
                labels(&[("tier", "x")]),
                false,
            ),
            (
                "unknown operator never matches",
                LabelSelector {
                    match_expressions: Some(vec![req("tier", "Near", &["x"])]),
                    ..Default::default()
                },
                labels(&[("tier", "x")]),
                false,
            ),
        ];
        for (name, sel, l, want) in cases {
            assert_eq!(selector_matches(&sel, &l), want, "{name}");
        }
    }

    fn meta(uid: &str, labels_: &[(&str, &str)], owner: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some("p".into()),
            uid: Some(uid.into()),
            labels: Some(labels(labels_)),
            owner_references: owner.map(|o| {
                vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: "rs".into(),
                    uid: o.into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            }),
            ..Default::default()
        }
    }

    #[test]
    fn claim_matches_owners_by_uid() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        };
        let cases = vec![
            (
                "ours and matching",
                meta("p1", &[("app", "web")], Some("rs1")),
                false,
                Claim::Owned,
            ),
            (
                "ours, labels changed",
                meta("p1", &[("app", "db")], Some("rs1")),
                false,
                Claim::Release,
            ),
            (
                "orphan matching",
                meta("p1", &[("app", "web")], None),
                false,
                Claim::Adopt,
            ),
            (
                "orphan, owner deleting",
                meta("p1", &[("app", "web")], None),
                true,
                Claim::Ignore,
            ),
            (
                "orphan not matching",
                meta("p1", &[("app", "db")], None),
                false,
                Claim::Ignore,
            ),
            // Same name as our owner would have, different uid: not ours.
            (
                "other owner",
                meta("p1", &[("app", "web")], Some("rs-old")),
                false,
                Claim::Ignore,
            ),
        ];
        for (name, m, deleting, want) in cases {
            assert_eq!(claim("rs1", deleting, &sel, &m), want, "{name}");
        }
        // An empty selector adopts nothing.
        assert_eq!(
            claim(
                "rs1",
                false,
                &LabelSelector::default(),
                &meta("p", &[], None)
            ),
            Claim::Ignore
        );
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        assert_eq!(b.failure("a"), Duration::from_millis(100));
        assert_eq!(b.failure("a"), Duration::from_millis(200));
        assert_eq!(b.failure("a"), Duration::from_millis(350));
        assert_eq!(b.failure("b"), Duration::from_millis(100));
        b.success("a");
        assert_eq!(b.failure("a"), Duration::from_millis(100));
    }

    #[test]
    fn expectations_hold_until_cache_catches_up_or_expire() {
        let e = Expectations::new(Duration::from_secs(10));
        let t0 = Instant::now();
        e.expect_add("ns/rs", "p1", t0);
        e.expect_delete("ns/rs", "p9", t0);
        assert!(!e.satisfied("ns/rs", t0, |n| n == "p9"));
        assert!(!e.satisfied("ns/rs", t0, |n| n == "p1" || n == "p9"));
        assert!(e.satisfied("ns/rs", t0, |n| n == "p1"));
        assert!(e.satisfied("other", t0, |_| false));
        e.expect_add("ns/rs", "p2", t0);
        assert!(!e.satisfied("ns/rs", t0 + Duration::from_secs(5), |_| false));
        assert!(e.satisfied("ns/rs", t0 + Duration::from_secs(11), |_| false));
    }

    #[test]
    fn scaled_values_round_like_upstream() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled_value(Some(&pct("25%")), "25%", 10, true), 3);
        assert_eq!(scaled_value(Some(&pct("25%")), "25%", 10, false), 2);
        assert_eq!(scaled_value(None, "25%", 4, true), 1);
        assert_eq!(scaled_value(Some(&IntOrString::Int(2)), "25%", 10, true), 2);
        assert_eq!(scaled_value(Some(&pct("0%")), "25%", 10, true), 0);
        assert_eq!(scaled_value(Some(&pct("3")), "25%", 10, true), 3);
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let now = Timestamp::now();
        let pod = Pod {
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(now - SignedDuration::from_secs(5))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(pod_is_ready(&pod));
        assert!(pod_is_available(&pod, 0, now));
        assert!(pod_is_available(&pod, 5, now));
        assert!(!pod_is_available(&pod, 10, now));
        assert_eq!(
            pod_available_at(&pod, 10),
            Some(now + SignedDuration::from_secs(5))
        );
        assert!(!pod_is_available(&Pod::default(), 0, now));
    }
}
