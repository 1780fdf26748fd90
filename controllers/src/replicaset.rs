//! The ReplicaSet controller: keeps `spec.replicas` pods matching the selector.
//!
//! Reads ReplicaSets and Pods (informer caches); writes Pods (create from the template
//! with a controller ownerReference, delete, adopt, release) and ReplicaSet status
//! (`replicas`, `fullyLabeledReplicas`, `readyReplicas`, `availableReplicas`,
//! `observedGeneration`). [`plan`] is the whole decision; [`reconcile`] applies it.
//!
//! Scaling down deletes the least valuable pods first, as upstream's `ActivePods`
//! ordering does: unscheduled before scheduled, pending before running, not ready before
//! ready, ready for less time before ready for longer, more restarts first, newest first.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::events::{EventType, Recorder};
use crate::util::{self, Backoff, Claim, Expectations};
use crate::ControllerError;

/// Most pods created or deleted in one reconcile (upstream `burstReplicas`); the rest
/// follow on the next pass, so a huge scale-up does not starve other keys.
pub const BURST: usize = 500;
/// How many pod writes of one reconcile are in flight at once.
const PARALLEL_WRITES: usize = 16;

/// What one reconcile of a ReplicaSet should do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Orphan pods to take (by name).
    pub adopt: Vec<String>,
    /// Owned pods that no longer match the selector (by name).
    pub release: Vec<String>,
    /// How many pods to create from the template.
    pub create: usize,
    /// Pods to delete, in deletion order.
    pub delete: Vec<String>,
    /// The status to write (written only if it differs from the current one).
    pub status: ReplicaSetStatus,
    /// When to look again even if nothing changes: the moment a ready pod becomes
    /// available under `minReadySeconds`.
    pub requeue_after: Option<Duration>,
}

/// Decides what a ReplicaSet needs, from the ReplicaSet and every pod in its namespace.
pub fn plan(rs: &ReplicaSet, pods: &[Arc<Pod>], now: Timestamp) -> Plan {
    let mut out = Plan::default();
    let uid = rs.metadata.uid.as_deref().unwrap_or("");
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let spec = rs.spec.as_ref();
    let selector = spec.map(|s| s.selector.clone()).unwrap_or_default();
    let want = spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as usize;
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels: BTreeMap<String, String> = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();

    let mut mine: Vec<&Pod> = Vec::new();
    for pod in pods {
        match util::claim(uid, deleting, &selector, &pod.metadata) {
            Claim::Owned => mine.push(pod),
            Claim::Adopt => {
                out.adopt.push(pod.name_any());
                mine.push(pod);
            }
            Claim::Release => out.release.push(pod.name_any()),
            Claim::Ignore => {}
        }
    }
    let mut active: Vec<&Pod> = mine
        .iter()
        .copied()
        .filter(|p| util::pod_is_active(p))
        .collect();

    if !deleting {
        if active.len() < want {
            out.create = (want - active.len()).min(BURST);
        } else if active.len() > want {
            active.sort_by(|a, b| deletion_order(a, b, now));
            let n = (active.len() - want).min(BURST);
            out.delete = active[..n].iter().map(|p| p.name_any()).collect();
        }
    }

    let mut next: Option<Timestamp> = None;
    let mut status = ReplicaSetStatus {
        replicas: active.len() as i32,
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        ..Default::default()
    };
    let (mut labeled, mut ready, mut available) = (0, 0, 0);
    for p in &active {
        let labels = util::labels_of(&p.metadata);
        if template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            labeled += 1;
        }
        if util::pod_is_ready(p) {
            ready += 1;
            if util::pod_is_available(p, min_ready, now) {
                available += 1;
            } else if let Some(at) = util::pod_available_at(p, min_ready) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
    }
    status.fully_labeled_replicas = Some(labeled);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    out.status = status;
    out.requeue_after = next.map(|at| crate::util::until(now, at) + Duration::from_millis(50));
    out
}

/// Orders pods so that the ones to delete first come first.
fn deletion_order(a: &Pod, b: &Pod, now: Timestamp) -> Ordering {
    let assigned = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let phase_rank = |p: &Pod| match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    };
    let ready_since = |p: &Pod| {
        util::pod_ready_condition(p)
            .filter(|c| c.status == "True")
            .map(|c| c.last_transition_time.as_ref().map_or(now, |t| t.0))
    };
    let restarts = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count).sum::<i32>())
            .unwrap_or(0)
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    assigned(a)
        .cmp(&assigned(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(ready_since(a).is_some().cmp(&ready_since(b).is_some()))
        // Both ready: the one ready more recently goes first.
        .then_with(|| match (ready_since(a), ready_since(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            _ => Ordering::Equal,
        })
        .then(restarts(b).cmp(&restarts(a)))
        // Newer first; a missing timestamp counts as newest.
        .then_with(|| match (created(a), created(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| a.name_any().cmp(&b.name_any()))
}

/// The pod a ReplicaSet creates: its template, a name generated from the ReplicaSet's,
/// and a controller reference to it.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![util::owner_ref("apps/v1", "ReplicaSet", &rs.metadata)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// The merge patch that sets a pod's ownerReferences, guarded by its resourceVersion so
/// that a concurrent change (another controller adopting it) makes it fail with 409.
pub fn owner_refs_patch(meta: &ObjectMeta, refs: Vec<OwnerReference>) -> serde_json::Value {
    json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": meta.resource_version,
    }})
}

/// State shared by every ReplicaSet reconcile.
pub struct Context {
    pub client: Client,
    pub pods: Store<Pod>,
    pub expectations: Expectations,
    pub backoff: Backoff,
    pub recorder: Recorder,
}

/// Runs the ReplicaSet controller until `shutdown` fires.
pub async fn run(client: Client, shutdown: CancellationToken) -> Result<(), ControllerError> {
    let rs_api: Api<ReplicaSet> = Api::all(client.clone());
    let pod_api: Api<Pod> = Api::all(client.clone());
    let (pods, writer) = reflector::store();
    let pod_events = watcher(pod_api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    let ctx = Arc::new(Context {
        client: client.clone(),
        pods,
        expectations: Expectations::new(Duration::from_secs(60)),
        backoff: Backoff::default(),
        recorder: Recorder::new(client, "replicaset-controller"),
    });
    let controller = Controller::new(rs_api, watcher::Config::default());
    let rs_store = controller.store();
    controller
        .watches_stream(pod_events, move |pod: Pod| owners_of_pod(&rs_store, &pod))
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
    Ok(())
}

/// Which ReplicaSets a pod event concerns: its controller if it has one, otherwise every
/// ReplicaSet whose selector matches it (one of them may adopt it).
fn owners_of_pod(rs_store: &Store<ReplicaSet>, pod: &Pod) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace().unwrap_or_default();
    if let Some(r) = util::controller_ref(&pod.metadata) {
        if r.kind == "ReplicaSet" {
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        return Vec::new();
    }
    let labels = util::labels_of(&pod.metadata);
    rs_store
        .state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(ns.as_str()))
        .filter(|rs| {
            rs.spec.as_ref().is_some_and(|s| {
                !util::selector_is_empty(&s.selector)
                    && util::selector_matches(&s.selector, &labels)
            })
        })
        .map(|rs| ObjectRef::from_obj(rs.as_ref()))
        .collect()
}

fn error_policy(rs: Arc<ReplicaSet>, err: &ControllerError, ctx: Arc<Context>) -> Action {
    let key = util::key(&rs.metadata);
    let delay = ctx.backoff.failure(&key);
    tracing::warn!(replicaset = %key, error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Applies [`plan`] for one ReplicaSet.
#[tracing::instrument(skip_all, fields(replicaset = %util::key(&rs.metadata)))]
pub async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let key = util::key(&rs.metadata);
    let ns = rs.namespace().unwrap_or_default();
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
        .collect();
    let live = |name: &str| {
        pods.iter().any(|p| {
            p.metadata.name.as_deref() == Some(name) && p.metadata.deletion_timestamp.is_none()
        })
    };
    if !ctx.expectations.satisfied(&key, Instant::now(), live) {
        // Our last creates/deletes are not in the cache yet; their watch events will
        // trigger us again. The requeue is only a safety net.
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    let plan = plan(&rs, &pods, Timestamp::now());
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);

    for name in &plan.adopt {
        if let Some(pod) = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
        {
            let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
            refs.push(util::owner_ref("apps/v1", "ReplicaSet", &rs.metadata));
            let patch = owner_refs_patch(&pod.metadata, refs);
            pod_api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            tracing::info!(pod = %name, "adopted pod");
        }
    }
    for name in &plan.release {
        if let Some(pod) = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
        {
            let uid = rs.metadata.uid.as_deref().unwrap_or("");
            let refs: Vec<OwnerReference> = pod
                .metadata
                .owner_references
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.uid != uid)
                .collect();
            let patch = owner_refs_patch(&pod.metadata, refs);
            pod_api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            tracing::info!(pod = %name, "released pod");
        }
    }

    if plan.create > 0 {
        let template = pod_from_template(&rs);
        let results: Vec<Result<Pod, kube::Error>> = futures::stream::iter(0..plan.create)
            .map(|_| {
                let api = pod_api.clone();
                let pod = template.clone();
                async move { api.create(&PostParams::default(), &pod).await }
            })
            .buffer_unordered(PARALLEL_WRITES)
            .collect()
            .await;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(pod) => {
                    let name = pod.name_any();
                    ctx.expectations.expect_add(&key, &name, Instant::now());
                    ctx.recorder
                        .record(
                            "apps/v1",
                            "ReplicaSet",
                            &rs.metadata,
                            EventType::Normal,
                            "SuccessfulCreate",
                            &format!("Created pod: {name}"),
                        )
                        .await;
                }
                Err(e) => {
                    ctx.recorder
                        .record(
                            "apps/v1",
                            "ReplicaSet",
                            &rs.metadata,
                            EventType::Warning,
                            "FailedCreate",
                            &format!("Error creating: {e}"),
                        )
                        .await;
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e.into());
        }
    }

    if !plan.delete.is_empty() {
        for name in &plan.delete {
            ctx.expectations.expect_delete(&key, name, Instant::now());
        }
        let results: Vec<(String, Result<(), kube::Error>)> =
            futures::stream::iter(plan.delete.clone())
                .map(|name| {
                    let api = pod_api.clone();
                    async move {
                        let r = match api.delete(&name, &DeleteParams::default()).await {
                            Ok(_) => Ok(()),
                            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                            Err(e) => Err(e),
                        };
                        (name, r)
                    }
                })
                .buffer_unordered(PARALLEL_WRITES)
                .collect()
                .await;
        let mut first_err = None;
        for (name, r) in results {
            match r {
                Ok(()) => {
                    ctx.recorder
                        .record(
                            "apps/v1",
                            "ReplicaSet",
                            &rs.metadata,
                            EventType::Normal,
                            "SuccessfulDelete",
                            &format!("Deleted pod: {name}"),
                        )
                        .await
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            ctx.expectations.forget(&key);
            return Err(e.into());
        }
    }

    if rs.status.as_ref() != Some(&plan.status) {
        let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"status": plan.status});
        match rs_api
            .patch_status(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            // Deleted meanwhile: nothing left to report on.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.backoff.success(&key);
    let more = plan.create == BURST || plan.delete.len() == BURST;
    Ok(match plan.requeue_after {
        _ if more => Action::requeue(Duration::from_millis(100)),
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

/// The fixtures the unit tests (here and in the deployment controller) build on.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{
        Container, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
    use k8s_openapi::jiff::SignedDuration;

    pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels(&[("app", "web")])),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    pub fn rs(name: &str, uid: &str, replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(uid.into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(labels(&[("app", "web")])),
                    ..Default::default()
                },
                template: Some(template("nginx")),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// A pod owned by `owner_uid` (or an orphan), `ready_for` seconds ready (None = not
    /// ready), created `age` seconds ago, on `node` (None = unscheduled).
    pub fn pod(
        name: &str,
        owner_uid: Option<&str>,
        ready_for: Option<i64>,
        age: i64,
        node: Option<&str>,
        now: Timestamp,
    ) -> Arc<Pod> {
        let owner = owner_uid.map(|u| {
            vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "web".into(),
                uid: u.into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]
        });
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                labels: Some(labels(&[("app", "web")])),
                owner_references: owner,
                creation_timestamp: Some(Time(now - SignedDuration::from_secs(age))),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_string),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(if node.is_some() { "Running" } else { "Pending" }.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready_for.is_some() { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(
                        now - SignedDuration::from_secs(ready_for.unwrap_or(0)),
                    )),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn scales_up_and_down_and_reports_status() {
        let now = Timestamp::now();
        struct Case {
            name: &'static str,
            replicas: i32,
            pods: Vec<Arc<Pod>>,
            create: usize,
            delete: Vec<&'static str>,
            status_replicas: i32,
        }
        let cases = vec![
            Case {
                name: "empty",
                replicas: 3,
                pods: vec![],
                create: 3,
                delete: vec![],
                status_replicas: 0,
            },
            Case {
                name: "one missing",
                replicas: 2,
                pods: vec![pod("a", Some("u1"), Some(100), 100, Some("n1"), now)],
                create: 1,
                delete: vec![],
                status_replicas: 1,
            },
            Case {
                name: "steady",
                replicas: 1,
                pods: vec![pod("a", Some("u1"), Some(100), 100, Some("n1"), now)],
                create: 0,
                delete: vec![],
                status_replicas: 1,
            },
            Case {
                name: "scale down picks unscheduled, then not ready, then newest",
                replicas: 1,
                pods: vec![
                    pod("old-ready", Some("u1"), Some(100), 100, Some("n1"), now),
                    pod("new-ready", Some("u1"), Some(100), 10, Some("n1"), now),
                    pod("not-ready", Some("u1"), None, 200, Some("n1"), now),
                    pod("unscheduled", Some("u1"), None, 300, None, now),
                ],
                create: 0,
                delete: vec!["unscheduled", "not-ready", "new-ready"],
                status_replicas: 4,
            },
            Case {
                name: "ready more recently goes first",
                replicas: 1,
                pods: vec![
                    pod("long-ready", Some("u1"), Some(500), 50, Some("n1"), now),
                    pod("just-ready", Some("u1"), Some(5), 100, Some("n1"), now),
                ],
                create: 0,
                delete: vec!["just-ready"],
                status_replicas: 2,
            },
            Case {
                name: "other owners' pods do not count",
                replicas: 1,
                pods: vec![pod("x", Some("other"), Some(100), 100, Some("n1"), now)],
                create: 1,
                delete: vec![],
                status_replicas: 0,
            },
        ];
        for c in cases {
            let p = plan(&rs("web", "u1", c.replicas), &c.pods, now);
            assert_eq!(p.create, c.create, "{}: create", c.name);
            assert_eq!(
                p.delete,
                c.delete.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{}: delete",
                c.name
            );
            assert_eq!(
                p.status.replicas, c.status_replicas,
                "{}: status.replicas",
                c.name
            );
            assert_eq!(p.status.observed_generation, Some(1), "{}", c.name);
        }
    }

    #[test]
    fn terminating_and_finished_pods_are_replaced() {
        let now = Timestamp::now();
        let mut dying = (*pod("dying", Some("u1"), Some(100), 100, Some("n1"), now)).clone();
        dying.metadata.deletion_timestamp = Some(Time(now));
        let mut done = (*pod("done", Some("u1"), None, 100, Some("n1"), now)).clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let p = plan(&rs("web", "u1", 2), &[Arc::new(dying), Arc::new(done)], now);
        assert_eq!(p.create, 2);
        assert_eq!(p.status.replicas, 0);
    }

    #[test]
    fn adopts_orphans_and_releases_mismatches() {
        let now = Timestamp::now();
        let orphan = pod("orphan", None, Some(100), 100, Some("n1"), now);
        let mut moved = (*pod("moved", Some("u1"), Some(100), 100, Some("n1"), now)).clone();
        moved.metadata.labels = Some(labels(&[("app", "debug")]));
        let p = plan(&rs("web", "u1", 1), &[orphan, Arc::new(moved)], now);
        assert_eq!(p.adopt, vec!["orphan".to_string()]);
        assert_eq!(p.release, vec!["moved".to_string()]);
        assert_eq!(p.create, 0, "the adopted orphan counts");
        assert_eq!(p.status.replicas, 1);
    }

    #[test]
    fn deleting_replicaset_neither_creates_nor_adopts() {
        let now = Timestamp::now();
        let mut r = rs("web", "u1", 3);
        r.metadata.deletion_timestamp = Some(Time(now));
        let p = plan(&r, &[pod("orphan", None, None, 1, None, now)], now);
        assert_eq!(p.create, 0);
        assert!(p.adopt.is_empty());
    }

    #[test]
    fn burst_limits_one_pass() {
        let p = plan(&rs("web", "u1", 1200), &[], Timestamp::now());
        assert_eq!(p.create, BURST);
    }

    #[test]
    fn status_counts_ready_available_and_labeled() {
        let now = Timestamp::now();
        let mut r = rs("web", "u1", 3);
        r.spec.as_mut().unwrap().min_ready_seconds = Some(30);
        let mut unlabeled = (*pod("c", Some("u1"), None, 1, Some("n1"), now)).clone();
        unlabeled
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("extra".into(), "x".into());
        unlabeled.metadata.labels = Some(labels(&[("app", "web"), ("extra", "x")]));
        let pods = vec![
            pod("a", Some("u1"), Some(100), 100, Some("n1"), now),
            pod("b", Some("u1"), Some(10), 100, Some("n1"), now),
            Arc::new(unlabeled),
        ];
        let p = plan(&r, &pods, now);
        assert_eq!(p.status.replicas, 3);
        assert_eq!(p.status.ready_replicas, Some(2));
        assert_eq!(p.status.available_replicas, Some(1));
        assert_eq!(p.status.fully_labeled_replicas, Some(3));
        let wait = p
            .requeue_after
            .expect("requeue for the pod becoming available");
        assert!(
            wait >= Duration::from_secs(19) && wait <= Duration::from_secs(21),
            "{wait:?}"
        );
    }

    #[test]
    fn pods_from_template_carry_a_controller_ref() {
        let p = pod_from_template(&rs("web", "u1", 1));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
        let r = util::controller_ref(&p.metadata).unwrap();
        assert_eq!(
            (r.uid.as_str(), r.kind.as_str(), r.block_owner_deletion),
            ("u1", "ReplicaSet", Some(true))
        );
        assert_eq!(p.metadata.labels.unwrap()["app"], "web");
    }
}
