//! The node lifecycle controller: notices nodes that stopped talking, and moves their
//! pods away.
//!
//! Reads Nodes, Leases in `kube-node-lease` and Pods (informer caches); writes Node
//! status (the `Ready` condition), Node taints, Pod status (`Ready=False`) and Pod
//! deletions (evictions), with Events.
//!
//! A node is healthy while its kubelet renews its Lease or posts status heartbeats.
//! Heartbeats are judged by when *this controller observed* them change, not by their
//! timestamps, so clock skew between machines does not matter (upstream does the same).
//! A node silent for longer than the grace period gets `Ready=Unknown` and the
//! `node.kubernetes.io/unreachable` taints (NoSchedule and NoExecute); a node whose
//! kubelet reports `Ready=False` gets `node.kubernetes.io/not-ready`. Pods on a node
//! with a NoExecute taint are marked not ready and deleted once their toleration for it
//! runs out (`tolerationSeconds`, counted from the taint's `timeAdded`); the ReplicaSet
//! controller then creates replacements, which the scheduler places elsewhere.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::events::{EventType, Recorder};
use crate::{ControllerError, ControllersConfig};

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// The health the controller concludes for a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Ready,
    NotReady,
    /// Silent past the grace period, or reporting Unknown.
    Unreachable,
}

/// What to change on one node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodePlan {
    /// New conditions list (with Ready=Unknown) when the node went silent.
    pub conditions: Option<Vec<NodeCondition>>,
    /// New taints list when the managed taints change.
    pub taints: Option<Vec<Taint>>,
}

fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// Health from the node's own Ready condition and whether it has gone silent.
pub fn health(node: &Node, silent: bool) -> Health {
    if silent {
        return Health::Unreachable;
    }
    match ready_status(node) {
        Some("True") => Health::Ready,
        Some("False") => Health::NotReady,
        // A node that has not reported yet gets the grace period like any other: it is
        // judged once it has been silent for that long.
        None => Health::Ready,
        Some(_) => Health::Unreachable,
    }
}

fn taint(key: &str, effect: &str, now: Timestamp) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        time_added: (effect == "NoExecute").then_some(Time(now)),
        value: None,
    }
}

/// Decides conditions and taints for one node.
pub fn plan_node(node: &Node, silent: bool, now: Timestamp) -> NodePlan {
    let h = health(node, silent);
    let mut out = NodePlan::default();
    if silent && ready_status(node) != Some("Unknown") {
        let mut conds = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        for c in conds.iter_mut() {
            // Every condition the kubelet reported is now unknown, as upstream marks them.
            if c.status != "Unknown" {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
            }
        }
        if !conds.iter().any(|c| c.type_ == "Ready") {
            conds.push(NodeCondition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_transition_time: Some(Time(now)),
                ..Default::default()
            });
        }
        out.conditions = Some(conds);
    }
    let wanted: Vec<(&str, &str)> = match h {
        Health::Ready => vec![],
        Health::NotReady => vec![(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")],
        Health::Unreachable => vec![(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")],
    };
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let managed = |t: &Taint| t.key == UNREACHABLE || t.key == NOT_READY;
    // Keep foreign taints and the managed ones that are still wanted (with their
    // original timeAdded, which eviction deadlines count from).
    let mut next: Vec<Taint> = current
        .iter()
        .filter(|t| !managed(t) || wanted.contains(&(t.key.as_str(), t.effect.as_str())))
        .cloned()
        .collect();
    for (k, e) in &wanted {
        if !next.iter().any(|t| t.key == *k && t.effect == *e) {
            next.push(taint(k, e, now));
        }
    }
    if next != current {
        out.taints = Some(next);
    }
    out
}

/// `true` when `tol` tolerates `taint` (upstream `ToleratesTaint`).
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = tol.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != taint.effect {
            return false;
        }
    }
    let key = tol.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match tol.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" => {
            !key.is_empty()
                && tol.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// When a pod must leave a node with these taints: `Some(now-or-past)` to evict now,
/// `Some(future)` to evict then, `None` never (tolerated forever, or no NoExecute taint).
/// A pod without any toleration for a taint gets `default_timeout` (see
/// [`ControllersConfig::default_eviction_timeout`]).
pub fn eviction_time(
    pod: &Pod,
    taints: &[Taint],
    default_timeout: Duration,
    now: Timestamp,
) -> Option<Timestamp> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let mut at: Option<Timestamp> = None;
    for t in taints.iter().filter(|t| t.effect == "NoExecute") {
        let added = t.time_added.as_ref().map_or(now, |x| x.0);
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|tol| tolerates(tol, t)).collect();
        let deadline = if matching.is_empty() {
            Some(added + SignedDuration::try_from(default_timeout).unwrap_or_default())
        } else if matching.iter().any(|tol| tol.toleration_seconds.is_none()) {
            None
        } else {
            let secs = matching
                .iter()
                .filter_map(|tol| tol.toleration_seconds)
                .min()
                .unwrap_or(0)
                .max(0);
            Some(added + SignedDuration::from_secs(secs))
        };
        if let Some(d) = deadline {
            at = Some(at.map_or(d, |a| a.min(d)));
        }
    }
    at
}

/// Pods to act on for one node: `(pods to mark not ready, pods to evict now, next
/// eviction deadline)`.
pub fn plan_pods(
    node: &Node,
    health: Health,
    pods: &[&Pod],
    default_timeout: Duration,
    now: Timestamp,
) -> (Vec<String>, Vec<String>, Option<Timestamp>) {
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut not_ready = Vec::new();
    let mut evict = Vec::new();
    let mut next: Option<Timestamp> = None;
    for p in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        if health != Health::Ready && crate::util::pod_is_ready(p) {
            not_ready.push(p.name_any());
        }
        if let Some(at) = eviction_time(p, &taints, default_timeout, now) {
            if at <= now {
                evict.push(format!(
                    "{}/{}",
                    p.namespace().unwrap_or_default(),
                    p.name_any()
                ));
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
    }
    (not_ready, evict, next)
}

/// The latest heartbeat a node shows: its Lease's renewTime, or else its Ready
/// condition's lastHeartbeatTime. Only used to notice change.
fn heartbeat(node: &Node, lease: Option<&Lease>) -> Option<String> {
    let renew = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0.to_string());
    let hb = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0.to_string());
    Some(format!(
        "{}|{}",
        renew.unwrap_or_default(),
        hb.unwrap_or_default()
    ))
}

/// Runs the node lifecycle controller until `shutdown` fires.
pub async fn run(
    config: ControllersConfig,
    client: Client,
    shutdown: CancellationToken,
) -> Result<(), ControllerError> {
    let (nodes, nw) = reflector::store::<Node>();
    let (leases, lw) = reflector::store::<Lease>();
    let (pods, pw) = reflector::store::<Pod>();
    let node_stream = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(nw)
        .touched_objects();
    let lease_stream = watcher(
        Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(lw)
    .touched_objects();
    let pod_stream = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pw)
        .touched_objects();
    // The streams only feed the caches; the controller works on a timer.
    let drain = async move {
        let mut all = futures::stream::select(
            futures::stream::select(
                node_stream.map(|_| ()).boxed(),
                lease_stream.map(|_| ()).boxed(),
            ),
            pod_stream.map(|_| ()).boxed(),
        );
        while all.next().await.is_some() {}
    };
    let recorder = Recorder::new(client.clone(), "node-controller");
    let mut observed: HashMap<String, (Option<String>, Instant)> = HashMap::new();
    let work = async {
        if nodes.wait_until_ready().await.is_err() || pods.wait_until_ready().await.is_err() {
            return;
        }
        let mut tick = tokio::time::interval(config.node_monitor_period);
        loop {
            tick.tick().await;
            if let Err(e) = monitor(
                &config,
                &client,
                &nodes,
                &leases,
                &pods,
                &recorder,
                &mut observed,
            )
            .await
            {
                tracing::warn!(error = %e, "node monitor pass failed; retrying next period");
            }
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = drain => {}
        _ = work => {}
    }
    Ok(())
}

async fn monitor(
    config: &ControllersConfig,
    client: &Client,
    nodes: &Store<Node>,
    leases: &Store<Lease>,
    pods: &Store<Pod>,
    recorder: &Recorder,
    observed: &mut HashMap<String, (Option<String>, Instant)>,
) -> Result<(), ControllerError> {
    let now_i = Instant::now();
    let now = Timestamp::now();
    let node_api: Api<Node> = Api::all(client.clone());
    let all_pods: Vec<Arc<Pod>> = pods.state();
    let names: Vec<String> = nodes.state().iter().map(|n| n.name_any()).collect();
    observed.retain(|k, _| names.contains(k));
    for node in nodes.state() {
        let name = node.name_any();
        let lease = leases.get(&reflector::ObjectRef::new(&name).within(LEASE_NAMESPACE));
        let hb = heartbeat(&node, lease.as_deref());
        let entry = observed.entry(name.clone()).or_insert((hb.clone(), now_i));
        if entry.0 != hb {
            *entry = (hb, now_i);
        }
        let silent = now_i.duration_since(entry.1) > config.node_grace_period;
        let np = plan_node(&node, silent, now);
        if let Some(conds) = &np.conditions {
            tracing::warn!(node = %name, "node stopped posting status; marking Ready=Unknown");
            let patch = serde_json::json!({"status": {"conditions": conds}});
            node_api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            recorder
                .record(
                    "v1",
                    "Node",
                    &node.metadata,
                    EventType::Normal,
                    "NodeNotReady",
                    &format!("Node {name} status is now: NodeNotReady"),
                )
                .await;
        }
        if let Some(taints) = &np.taints {
            let patch = serde_json::json!({"metadata": {"resourceVersion": node.metadata.resource_version}, "spec": {"taints": taints}});
            match node_api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => tracing::info!(node = %name, ?taints, "node taints updated"),
                // Changed meanwhile (kubelet heartbeat): next pass.
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(e.into()),
            }
            // Evictions count from the taint as stored; wait for it to be in the cache.
            continue;
        }
        let h = health(&node, silent);
        let on_node: Vec<&Pod> = all_pods
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()))
            .map(|p| p.as_ref())
            .collect();
        let (not_ready, evict, _next) =
            plan_pods(&node, h, &on_node, config.default_eviction_timeout, now);
        for pname in not_ready {
            let Some(p) = on_node.iter().find(|p| p.name_any() == pname) else {
                continue;
            };
            let ns = p.namespace().unwrap_or_default();
            let mut conds = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            for c in conds.iter_mut().filter(|c| c.type_ == "Ready") {
                c.status = "False".into();
                c.reason = Some("NodeNotReady".into());
                c.last_transition_time = Some(Time(now));
            }
            let patch = serde_json::json!({"status": {"conditions": conds}});
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            if let Err(e) = api
                .patch_status(&pname, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::debug!(pod = %pname, error = %e, "could not mark pod not ready");
            }
        }
        for key in evict {
            let (ns, pname) = key.split_once('/').unwrap_or(("", &key));
            let api: Api<Pod> = Api::namespaced(client.clone(), ns);
            match api.delete(pname, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(pod = %key, node = %name, "evicted pod from tainted node");
                    if let Some(p) = on_node.iter().find(|p| p.name_any() == pname) {
                        recorder
                            .record(
                                "v1",
                                "Pod",
                                &p.metadata,
                                EventType::Normal,
                                "TaintManagerEviction",
                                &format!("Marking for deletion Pod {key}"),
                            )
                            .await;
                    }
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(ready: &str, taints: Vec<Taint>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn keys(p: &NodePlan) -> Vec<(String, String)> {
        p.taints
            .iter()
            .flatten()
            .map(|t| (t.key.clone(), t.effect.clone()))
            .collect()
    }

    #[test]
    fn taints_follow_health() {
        let now = Timestamp::now();
        let foreign = Taint {
            key: "dedicated".into(),
            effect: "NoSchedule".into(),
            value: Some("gpu".into()),
            time_added: None,
        };
        // healthy: nothing to do
        assert_eq!(
            plan_node(&node("True", vec![foreign.clone()]), false, now),
            NodePlan::default()
        );
        // silent: Ready=Unknown and unreachable taints, foreign taint kept
        let p = plan_node(&node("True", vec![foreign.clone()]), true, now);
        let c = &p.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("Unknown", Some("NodeStatusUnknown"))
        );
        assert_eq!(
            keys(&p),
            vec![
                ("dedicated".into(), "NoSchedule".into()),
                (UNREACHABLE.into(), "NoSchedule".into()),
                (UNREACHABLE.into(), "NoExecute".into())
            ]
        );
        assert!(p.taints.as_ref().unwrap()[2].time_added.is_some());
        // kubelet says NotReady
        let p = plan_node(&node("False", vec![]), false, now);
        assert_eq!(
            keys(&p),
            vec![
                (NOT_READY.into(), "NoSchedule".into()),
                (NOT_READY.into(), "NoExecute".into())
            ]
        );
        // recovered: managed taints removed
        let tainted = node(
            "True",
            vec![taint(UNREACHABLE, "NoExecute", now), foreign.clone()],
        );
        let p = plan_node(&tainted, false, now);
        assert_eq!(keys(&p), vec![("dedicated".into(), "NoSchedule".into())]);
        // a node that never reported is left alone until the grace period passes
        let fresh = Node {
            status: None,
            ..node("True", vec![])
        };
        assert_eq!(plan_node(&fresh, false, now), NodePlan::default());
        assert!(plan_node(&fresh, true, now).taints.is_some());
        // still silent, already marked: no rewrite
        let marked = node(
            "Unknown",
            vec![
                taint(UNREACHABLE, "NoSchedule", now),
                taint(UNREACHABLE, "NoExecute", now),
            ],
        );
        assert_eq!(plan_node(&marked, true, now), NodePlan::default());
    }

    fn tol(key: Option<&str>, op: &str, effect: Option<&str>, secs: Option<i64>) -> Toleration {
        Toleration {
            key: key.map(str::to_string),
            operator: Some(op.into()),
            effect: effect.map(str::to_string),
            toleration_seconds: secs,
            value: None,
        }
    }

    fn pod_with(tols: Vec<Toleration>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                tolerations: Some(tols),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn eviction_follows_tolerations() {
        let now = Timestamp::now();
        let added = now - SignedDuration::from_secs(10);
        let taints = vec![Taint {
            key: UNREACHABLE.into(),
            effect: "NoExecute".into(),
            value: None,
            time_added: Some(Time(added)),
        }];
        let default = Duration::from_secs(300);
        let cases = vec![
            (
                "default 300s toleration",
                vec![tol(
                    Some(UNREACHABLE),
                    "Exists",
                    Some("NoExecute"),
                    Some(300),
                )],
                Some(added + SignedDuration::from_secs(300)),
            ),
            (
                "short toleration already over",
                vec![tol(Some(UNREACHABLE), "Exists", Some("NoExecute"), Some(5))],
                Some(added + SignedDuration::from_secs(5)),
            ),
            (
                "forever",
                vec![tol(Some(UNREACHABLE), "Exists", None, None)],
                None,
            ),
            (
                "tolerate everything",
                vec![tol(None, "Exists", None, None)],
                None,
            ),
            (
                "no toleration: configured default",
                vec![],
                Some(added + SignedDuration::from_secs(300)),
            ),
            (
                "other key does not match",
                vec![tol(Some("x"), "Exists", None, None)],
                Some(added + SignedDuration::from_secs(300)),
            ),
        ];
        for (name, tols, want) in cases {
            assert_eq!(
                eviction_time(&pod_with(tols), &taints, default, now),
                want,
                "{name}"
            );
        }
        // NoSchedule taints never evict.
        let soft = vec![Taint {
            key: UNREACHABLE.into(),
            effect: "NoSchedule".into(),
            value: None,
            time_added: None,
        }];
        assert_eq!(eviction_time(&pod_with(vec![]), &soft, default, now), None);
    }

    #[test]
    fn plan_pods_evicts_due_pods_and_schedules_the_rest() {
        let now = Timestamp::now();
        let added = now - SignedDuration::from_secs(10);
        let mut n = node("Unknown", vec![]);
        n.spec.as_mut().unwrap().taints = Some(vec![Taint {
            key: UNREACHABLE.into(),
            effect: "NoExecute".into(),
            value: None,
            time_added: Some(Time(added)),
        }]);
        let mut due = pod_with(vec![tol(
            Some(UNREACHABLE),
            "Exists",
            Some("NoExecute"),
            Some(5),
        )]);
        due.metadata.name = Some("due".into());
        let mut later = pod_with(vec![tol(
            Some(UNREACHABLE),
            "Exists",
            Some("NoExecute"),
            Some(60),
        )]);
        later.metadata.name = Some("later".into());
        let (_, evict, next) = plan_pods(
            &n,
            Health::Unreachable,
            &[&due, &later],
            Duration::from_secs(300),
            now,
        );
        assert_eq!(evict, vec!["default/due".to_string()]);
        assert_eq!(next, Some(added + SignedDuration::from_secs(60)));
    }
}
