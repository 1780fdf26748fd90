//! The Deployment controller: one ReplicaSet per pod template, named
//! `<deployment>-<pod-template-hash>`, rolled from old to new by the Deployment's
//! strategy.
//!
//! Reads Deployments and ReplicaSets (informer caches); writes ReplicaSets (create,
//! scale, annotate, adopt, release, delete beyond `revisionHistoryLimit`), the
//! Deployment's revision annotation and its status. [`plan`] decides everything from a
//! snapshot; [`reconcile`] applies it.
//!
//! - [`hash`]: the pod-template-hash.
//! - [`revision`]: revision annotations and history cleanup.
//! - [`rolling`]: RollingUpdate steps (maxSurge / maxUnavailable).
//! - [`recreate`]: Recreate steps.
//! - [`status`]: counts and the Available / Progressing conditions.
//!
//! `kubectl rollout undo` is done by kubectl itself (it copies an old ReplicaSet's
//! template back into the Deployment); the controller then finds that ReplicaSet as the
//! new one and gives it the next revision. `kubectl rollout restart` changes a template
//! annotation, which is just a new template. Pausing stops rollouts but not scaling.
//!
//! A resize in the middle of a rollout (a "scaling event": active ReplicaSets annotated
//! with another desired size) is handled first, by upstream's proportional scaling.

pub mod hash;
pub mod recreate;
pub mod revision;
pub mod rolling;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
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
use rolling::RsView;

/// A change to an existing ReplicaSet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RsUpdate {
    pub name: String,
    pub replicas: Option<i32>,
    /// Annotations to set (merged into the existing ones).
    pub annotations: Option<BTreeMap<String, String>>,
    /// `spec.minReadySeconds` to set (the Deployment's changed).
    pub min_ready_seconds: Option<i32>,
}

/// What one reconcile of a Deployment should do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Orphan ReplicaSets to adopt / owned ones to release, by name.
    pub adopt: Vec<String>,
    pub release: Vec<String>,
    /// A new ReplicaSet to create.
    pub create: Option<ReplicaSet>,
    pub updates: Vec<RsUpdate>,
    /// Old ReplicaSets beyond the history limit.
    pub delete: Vec<String>,
    /// The Deployment's new revision annotation, if it changes.
    pub revision: Option<String>,
    pub status: DeploymentStatus,
    /// Events to record on the Deployment: (type, reason, message).
    pub events: Vec<(EventType, String, String)>,
    pub requeue_after: Option<Duration>,
}

/// `true` when `rs`'s template is `template` apart from the pod-template-hash label.
fn same_template(rs: &ReplicaSet, template: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(m) = t.metadata.as_mut() {
            if let Some(l) = m.labels.as_mut() {
                l.remove(hash::LABEL);
                if l.is_empty() {
                    m.labels = None;
                }
            }
        }
        serde_json::to_value(t).unwrap_or_default()
    };
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .is_some_and(|t| strip(t) == strip(template))
}

fn view(rs: &ReplicaSet) -> RsView {
    RsView {
        name: rs.name_any(),
        replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        available: rs
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
    }
}

/// The new ReplicaSet for `d`, named by `hash`, with `replicas` and `annotations`.
pub fn new_replicaset(
    d: &Deployment,
    hash_value: &str,
    replicas: i32,
    annotations: BTreeMap<String, String>,
) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let mut tmeta = template.metadata.take().unwrap_or_default();
    tmeta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(hash::LABEL.into(), hash_value.into());
    let labels = tmeta.labels.clone();
    template.metadata = Some(tmeta);
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(hash::LABEL.into(), hash_value.into());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{}", d.name_any(), hash_value)),
            namespace: d.metadata.namespace.clone(),
            labels,
            annotations: Some(annotations),
            owner_references: Some(vec![util::owner_ref("apps/v1", "Deployment", &d.metadata)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// Decides what a Deployment needs, from the Deployment and every ReplicaSet in its
/// namespace.
pub fn plan(d: &Deployment, all_in_ns: &[Arc<ReplicaSet>], now: Timestamp) -> Plan {
    let mut out = Plan::default();
    let Some(spec) = d.spec.as_ref() else {
        return out;
    };
    let uid = d.metadata.uid.as_deref().unwrap_or("");
    let deleting = d.metadata.deletion_timestamp.is_some();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let rolling_update =
        spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) != Some("Recreate");
    let ru = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let (surge, unavailable) = if rolling_update {
        rolling::resolve_bounds(
            replicas,
            ru.and_then(|r| r.max_surge.as_ref()),
            ru.and_then(|r| r.max_unavailable.as_ref()),
        )
    } else {
        (0, replicas)
    };

    let mut owned: Vec<Arc<ReplicaSet>> = Vec::new();
    for rs in all_in_ns {
        match util::claim(uid, deleting, &spec.selector, &rs.metadata) {
            Claim::Owned => owned.push(rs.clone()),
            Claim::Adopt => {
                out.adopt.push(rs.name_any());
                owned.push(rs.clone());
            }
            Claim::Release => out.release.push(rs.name_any()),
            Claim::Ignore => {}
        }
    }
    // Oldest first: the order old ReplicaSets are drained in.
    owned.sort_by_key(|rs| {
        (
            rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
            rs.name_any(),
        )
    });

    let collision = d.status.as_ref().and_then(|s| s.collision_count);
    let hash_value = hash::pod_template_hash(&spec.template, collision);
    let new_name = format!("{}-{}", d.name_any(), hash_value);
    let mut new_rs: Option<ReplicaSet> = owned
        .iter()
        .find(|rs| same_template(rs, &spec.template))
        .or_else(|| {
            // The API server may default the ReplicaSet's template differently from the
            // Deployment's; the name and hash label still identify it.
            owned.iter().find(|rs| {
                rs.name_any() == new_name
                    && rs.labels().get(hash::LABEL).map(String::as_str) == Some(hash_value.as_str())
            })
        })
        .map(|rs| (**rs).clone());
    let old: Vec<Arc<ReplicaSet>> = owned
        .iter()
        .filter(|rs| {
            new_rs
                .as_ref()
                .is_none_or(|n| n.metadata.uid != rs.metadata.uid)
        })
        .cloned()
        .collect();
    let mut old_views: Vec<RsView> = old.iter().map(|rs| view(rs)).collect();
    let mut happened = status::Happened::Nothing;

    if !deleting {
        let max_old_revision = revision::max_revision(&old);
        let paused = spec.paused.unwrap_or(false);
        let old_active = old_views.iter().any(|v| v.replicas > 0);
        // A resize of the Deployment shows as active ReplicaSets annotated with another
        // desired size; it is handled before (and instead of) a rollout step.
        let scaling_event = owned.iter().any(|rs| {
            rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0
                && rs
                    .annotations()
                    .get(revision::DESIRED_REPLICAS)
                    .and_then(|v| v.parse::<i32>().ok())
                    .is_some_and(|want| want != replicas)
        });

        if new_rs.is_none() && !paused && !scaling_event {
            // A ReplicaSet of another template (or someone else's) already has our
            // name: bump the collision count so the next hash differs.
            if let Some(clash) = all_in_ns.iter().find(|rs| rs.name_any() == new_name) {
                let mut s = d.status.clone().unwrap_or_default();
                s.collision_count = Some(s.collision_count.unwrap_or(0) + 1);
                s.observed_generation = d.metadata.generation;
                out.status = s;
                out.events.push((
                    EventType::Warning,
                    "HashCollision".into(),
                    format!(
                        "ReplicaSet \"{}\" has the name the new template hashes to",
                        clash.name_any()
                    ),
                ));
                out.requeue_after = Some(Duration::from_millis(100));
                return out;
            }
            let initial = if rolling_update {
                let all_total: i32 = old_views.iter().map(|v| v.replicas).sum();
                let fresh = RsView {
                    name: new_name.clone(),
                    replicas: 0,
                    available: 0,
                };
                let s = rolling::step(replicas, surge, unavailable, &fresh, &old_views);
                // With no old pods at all, start at full size (a first rollout).
                if all_total == 0 {
                    replicas
                } else {
                    s.scale_new.unwrap_or(0)
                }
            } else if old_active
                || old
                    .iter()
                    .any(|rs| rs.status.as_ref().is_some_and(|s| s.replicas > 0))
            {
                0
            } else {
                replicas
            };
            let annotations = revision::new_rs_annotations(d, None, max_old_revision, surge);
            let rs = new_replicaset(d, &hash_value, initial, annotations);
            out.events.push((
                EventType::Normal,
                "ScalingReplicaSet".into(),
                format!("Scaled up replica set {new_name} from 0 to {initial}"),
            ));
            out.revision = Some((max_old_revision + 1).to_string());
            new_rs = Some(rs.clone());
            out.create = Some(rs);
            happened = status::Happened::CreatedNew;
        } else if let Some(n) = new_rs.as_ref() {
            // Keep the new ReplicaSet's revision above every old one (after an undo)
            // and its annotations in step with the Deployment.
            let want = revision::new_rs_annotations(d, Some(&n.metadata), max_old_revision, surge);
            let have = n.metadata.annotations.clone().unwrap_or_default();
            if want != have {
                out.updates.push(RsUpdate {
                    name: n.name_any(),
                    annotations: Some(want.clone()),
                    ..Default::default()
                });
            }
            let min_ready = spec.min_ready_seconds.unwrap_or(0);
            if n.spec
                .as_ref()
                .and_then(|s| s.min_ready_seconds)
                .unwrap_or(0)
                != min_ready
            {
                match out.updates.iter_mut().find(|u| u.name == n.name_any()) {
                    Some(u) => u.min_ready_seconds = Some(min_ready),
                    None => out.updates.push(RsUpdate {
                        name: n.name_any(),
                        min_ready_seconds: Some(min_ready),
                        ..Default::default()
                    }),
                }
            }
            let rev = want.get(revision::REVISION).cloned().unwrap_or_default();
            if d.annotations().get(revision::REVISION) != Some(&rev) {
                out.revision = Some(rev);
            }
        }

        let scale = |name: &str, from: i32, to: i32, out: &mut Plan| {
            if from != to {
                let verb = if to > from { "up" } else { "down" };
                out.events.push((
                    EventType::Normal,
                    "ScalingReplicaSet".into(),
                    format!("Scaled {verb} replica set {name} from {from} to {to}"),
                ));
            }
            let ann: BTreeMap<String, String> = [
                (revision::DESIRED_REPLICAS.to_string(), replicas.to_string()),
                (
                    revision::MAX_REPLICAS.to_string(),
                    (replicas + surge).to_string(),
                ),
            ]
            .into_iter()
            .collect();
            match out.updates.iter_mut().find(|u| u.name == name) {
                Some(u) => {
                    u.replicas = Some(to);
                    u.annotations.get_or_insert_with(BTreeMap::new).extend(ann);
                }
                None => out.updates.push(RsUpdate {
                    name: name.to_string(),
                    replicas: Some(to),
                    annotations: Some(ann),
                    ..Default::default()
                }),
            }
        };

        if out.create.is_none() && (paused || scaling_event) {
            // Paused or resized: no rollout step, only sizes (upstream `scale`).
            let mut active: Vec<&ReplicaSet> = owned
                .iter()
                .map(|rs| rs.as_ref())
                .filter(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0)
                .collect();
            if let Some(n) = new_rs.as_ref() {
                // The cached copy may lag the one `plan` is changing; use the latter.
                active.retain(|rs| rs.metadata.uid != n.metadata.uid);
                if n.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0 {
                    active.push(n);
                }
            }
            let saturated = new_rs.as_ref().is_some_and(|n| {
                let v = view(n);
                v.replicas == replicas && v.available >= replicas
            });
            if active.len() <= 1 {
                let target = active
                    .first()
                    .copied()
                    .or(new_rs.as_ref())
                    .or(owned.last().map(|rs| rs.as_ref()));
                if let Some(t) = target {
                    let v = view(t);
                    if v.replicas != replicas || scaling_event {
                        scale(&v.name, v.replicas, replicas, &mut out);
                    }
                }
            } else if saturated {
                for rs in active.iter().filter(|rs| {
                    Some(rs.metadata.uid.clone()) != new_rs.as_ref().map(|n| n.metadata.uid.clone())
                }) {
                    let v = view(rs);
                    scale(&v.name, v.replicas, 0, &mut out);
                }
            } else if rolling_update {
                let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                let sizing: Vec<rolling::Sizing> = active
                    .iter()
                    .map(|rs| rolling::Sizing {
                        name: rs.name_any(),
                        replicas: view(rs).replicas,
                        max_annotation: rs
                            .annotations()
                            .get(revision::MAX_REPLICAS)
                            .and_then(|v| v.parse().ok()),
                        age_rank: owned
                            .iter()
                            .position(|o| o.metadata.uid == rs.metadata.uid)
                            .unwrap_or(usize::MAX),
                    })
                    .collect();
                for ((name, to), before) in
                    rolling::proportional(replicas, surge, status_replicas, &sizing)
                        .into_iter()
                        .zip(&sizing)
                {
                    // Every active ReplicaSet gets the new desired size annotation, so
                    // the scaling event ends even where the size stays.
                    scale(&name, before.replicas, to, &mut out);
                }
            } else {
                // Recreate with several active ReplicaSets: sizes are the rollout's
                // business; only record the new desired size so the rollout resumes.
                for rs in &active {
                    let v = view(rs);
                    scale(&v.name, v.replicas, v.replicas, &mut out);
                }
            }
        } else if out.create.is_none() {
            if let Some(n) = new_rs.as_ref() {
                let nv = view(n);
                if rolling_update {
                    let s = rolling::step(replicas, surge, unavailable, &nv, &old_views);
                    if let Some(to) = s.scale_new {
                        scale(&nv.name, nv.replicas, to, &mut out);
                    }
                    for (name, to) in &s.scale_old {
                        let from = old_views
                            .iter()
                            .find(|v| &v.name == name)
                            .map_or(0, |v| v.replicas);
                        scale(name, from, *to, &mut out);
                    }
                    for v in old_views.iter_mut() {
                        if let Some((_, to)) = s.scale_old.iter().find(|(n, _)| n == &v.name) {
                            v.replicas = *to;
                        }
                    }
                } else {
                    let old_pods: i32 = old
                        .iter()
                        .map(|rs| rs.status.as_ref().map_or(0, |s| s.replicas))
                        .sum();
                    let s = recreate::step(replicas, Some(&nv), &old_views, old_pods);
                    for name in &s.scale_old_to_zero {
                        let from = old_views
                            .iter()
                            .find(|v| &v.name == name)
                            .map_or(0, |v| v.replicas);
                        scale(name, from, 0, &mut out);
                    }
                    if let Some(to) = s.new_replicas {
                        scale(&nv.name, nv.replicas, to, &mut out);
                    }
                }
            }
        }
        out.delete = revision::history_to_delete(d, &old);
    }

    let all_refs: Vec<&ReplicaSet> = old
        .iter()
        .map(|rs| rs.as_ref())
        .chain(new_rs.iter())
        .collect();
    let (status, requeue) = status::compute(
        d,
        new_rs.as_ref(),
        &all_refs,
        unavailable.min(replicas),
        happened,
        now,
    );
    out.status = status;
    out.requeue_after = requeue;
    out
}

/// State shared by every Deployment reconcile.
pub struct Context {
    pub client: Client,
    pub replicasets: Store<ReplicaSet>,
    pub expectations: Expectations,
    pub backoff: Backoff,
    pub recorder: Recorder,
}

/// Runs the Deployment controller until `shutdown` fires.
pub async fn run(client: Client, shutdown: CancellationToken) -> Result<(), ControllerError> {
    let (replicasets, writer) = reflector::store();
    let rs_events = watcher(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .touched_objects();
    let ctx = Arc::new(Context {
        client: client.clone(),
        replicasets,
        expectations: Expectations::new(Duration::from_secs(30)),
        backoff: Backoff::default(),
        recorder: Recorder::new(client.clone(), "deployment-controller"),
    });
    let controller = Controller::new(Api::<Deployment>::all(client), watcher::Config::default());
    let deployments = controller.store();
    controller
        .watches_stream(rs_events, move |rs: ReplicaSet| {
            owners_of_rs(&deployments, &rs)
        })
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn owners_of_rs(deployments: &Store<Deployment>, rs: &ReplicaSet) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace().unwrap_or_default();
    if let Some(r) = util::controller_ref(&rs.metadata) {
        if r.kind == "Deployment" {
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        return Vec::new();
    }
    let labels = util::labels_of(&rs.metadata);
    deployments
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
        .filter(|d| {
            d.spec.as_ref().is_some_and(|s| {
                !util::selector_is_empty(&s.selector)
                    && util::selector_matches(&s.selector, &labels)
            })
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

fn error_policy(d: Arc<Deployment>, err: &ControllerError, ctx: Arc<Context>) -> Action {
    let key = util::key(&d.metadata);
    let delay = ctx.backoff.failure(&key);
    tracing::warn!(deployment = %key, error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Applies [`plan`] for one Deployment.
#[tracing::instrument(skip_all, fields(deployment = %util::key(&d.metadata)))]
pub async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let key = util::key(&d.metadata);
    let ns = d.namespace().unwrap_or_default();
    let rss: Vec<Arc<ReplicaSet>> = ctx
        .replicasets
        .state()
        .into_iter()
        .filter(|rs| rs.metadata.namespace.as_deref() == Some(ns.as_str()))
        .collect();
    // Expectations here track "the ReplicaSet I created or scaled shows my change";
    // the name encodes the expected replicas so a scale counts only once it is seen.
    let seen = |tag: &str| {
        let (name, replicas) = tag.rsplit_once('#').unwrap_or((tag, ""));
        rss.iter().any(|rs| {
            rs.metadata.name.as_deref() == Some(name)
                && (replicas.is_empty()
                    || rs
                        .spec
                        .as_ref()
                        .and_then(|s| s.replicas)
                        .map(|r| r.to_string())
                        .as_deref()
                        == Some(replicas))
        })
    };
    if !ctx.expectations.satisfied(&key, Instant::now(), seen) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let plan = plan(&d, &rss, Timestamp::now());
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);

    for (names, adopt) in [(&plan.adopt, true), (&plan.release, false)] {
        for name in names {
            let Some(rs) = rss
                .iter()
                .find(|rs| rs.metadata.name.as_deref() == Some(name))
            else {
                continue;
            };
            let mut refs: Vec<OwnerReference> =
                rs.metadata.owner_references.clone().unwrap_or_default();
            if adopt {
                refs.push(util::owner_ref("apps/v1", "Deployment", &d.metadata));
            } else {
                refs.retain(|r| Some(&r.uid) != d.metadata.uid.as_ref());
            }
            let patch = crate::replicaset::owner_refs_patch(&rs.metadata, refs);
            rs_api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
    }

    if let Some(new) = &plan.create {
        let name = new.name_any();
        match rs_api.create(&PostParams::default(), new).await {
            Ok(_) => ctx.expectations.expect_add(&key, &name, Instant::now()),
            // Created by a previous pass the cache has not shown yet.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(500)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    for u in &plan.updates {
        let mut patch = json!({});
        if let Some(a) = &u.annotations {
            patch["metadata"] = json!({"annotations": a});
        }
        let mut spec = serde_json::Map::new();
        if let Some(r) = u.replicas {
            spec.insert("replicas".into(), json!(r));
        }
        if let Some(m) = u.min_ready_seconds {
            spec.insert("minReadySeconds".into(), json!(m));
        }
        if !spec.is_empty() {
            patch["spec"] = serde_json::Value::Object(spec);
        }
        match rs_api
            .patch(&u.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                if let Some(r) = u.replicas {
                    ctx.expectations
                        .expect_add(&key, &format!("{}#{}", u.name, r), Instant::now());
                }
            }
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    for (type_, reason, message) in &plan.events {
        ctx.recorder
            .record(
                "apps/v1",
                "Deployment",
                &d.metadata,
                *type_,
                reason,
                message,
            )
            .await;
    }
    for name in &plan.delete {
        match rs_api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {
                tracing::info!(replicaset = %name, "deleted old replicaset beyond revisionHistoryLimit")
            }
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(rev) = &plan.revision {
        let patch = json!({"metadata": {"annotations": {revision::REVISION: rev}}});
        match d_api
            .patch(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if d.status.as_ref() != Some(&plan.status) {
        let patch = json!({"status": plan.status});
        match d_api
            .patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    ctx.backoff.success(&key);
    Ok(match plan.requeue_after {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::replicaset::fixtures::{labels, template};
    use k8s_openapi::api::apps::v1::{DeploymentSpec, ReplicaSetStatus};

    pub fn deployment(name: &str, replicas: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("{name}-uid")),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(labels(&[("app", "web")])),
                    ..Default::default()
                },
                template: template("nginx:1"),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// An old ReplicaSet: `spec` replicas, `pods` status replicas, `revision`.
    pub fn rs_with(name: &str, uid: &str, spec: i32, pods: i32, revision: i64) -> ReplicaSet {
        let mut rs = crate::replicaset::fixtures::rs(name, uid, spec);
        rs.status = Some(ReplicaSetStatus {
            replicas: pods,
            available_replicas: Some(pods),
            ..Default::default()
        });
        if revision > 0 {
            rs.metadata.annotations = Some(
                [(revision::REVISION.to_string(), revision.to_string())]
                    .into_iter()
                    .collect(),
            );
        }
        rs
    }

    pub fn rs_with_status(name: &str, spec: i32, pods: i32, available: i32) -> ReplicaSet {
        let mut rs = crate::replicaset::fixtures::rs(name, "u", spec);
        rs.status = Some(ReplicaSetStatus {
            replicas: pods,
            ready_replicas: Some(available),
            available_replicas: Some(available),
            ..Default::default()
        });
        rs
    }

    /// The ReplicaSet the controller would create for `d`, owned by it, at `spec`
    /// replicas with `available` of them available.
    pub fn owned_rs(d: &Deployment, spec: i32, available: i32, rev: i64) -> Arc<ReplicaSet> {
        let h = hash::pod_template_hash(&d.spec.as_ref().unwrap().template, None);
        let ann = [(revision::REVISION.to_string(), rev.to_string())]
            .into_iter()
            .collect();
        let mut rs = new_replicaset(d, &h, spec, ann);
        rs.metadata.uid = Some(format!("rs-{h}"));
        rs.status = Some(ReplicaSetStatus {
            replicas: spec.max(available),
            ready_replicas: Some(available),
            available_replicas: Some(available),
            ..Default::default()
        });
        Arc::new(rs)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::replicaset::fixtures::template;
    use k8s_openapi::api::apps::v1::DeploymentStrategy;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::SignedDuration;

    fn with_image(d: &Deployment, image: &str) -> Deployment {
        let mut d = d.clone();
        d.spec.as_mut().unwrap().template = template(image);
        d
    }

    #[test]
    fn first_rollout_creates_full_size_replicaset() {
        let d = deployment("web", 3);
        let p = plan(&d, &[], Timestamp::now());
        let rs = p.create.expect("creates a replicaset");
        let h = hash::pod_template_hash(&d.spec.as_ref().unwrap().template, None);
        assert_eq!(rs.name_any(), format!("web-{h}"));
        assert_eq!(rs.spec.as_ref().unwrap().replicas, Some(3));
        assert_eq!(rs.labels()[hash::LABEL], h);
        assert_eq!(
            rs.spec
                .as_ref()
                .unwrap()
                .selector
                .match_labels
                .as_ref()
                .unwrap()[hash::LABEL],
            h
        );
        assert_eq!(rs.annotations()[revision::REVISION], "1");
        assert_eq!(p.revision.as_deref(), Some("1"));
        assert_eq!(util::controller_ref(&rs.metadata).unwrap().uid, "web-uid");
        assert!(p
            .events
            .iter()
            .any(|(_, r, m)| r == "ScalingReplicaSet" && m.contains("from 0 to 3")));
        let prog = p
            .status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Progressing")
            .unwrap();
        assert_eq!(prog.reason.as_deref(), Some(status::NEW_RS_CREATED));
    }

    #[test]
    fn template_change_starts_a_rolling_update_within_surge() {
        let v1 = deployment("web", 4);
        let old = owned_rs(&v1, 4, 4, 1);
        let v2 = with_image(&v1, "nginx:2");
        let p = plan(&v2, std::slice::from_ref(&old), Timestamp::now());
        let new = p.create.expect("new replicaset for the new template");
        // default maxSurge 25% of 4 = 1
        assert_eq!(new.spec.as_ref().unwrap().replicas, Some(1));
        assert_eq!(new.annotations()[revision::REVISION], "2");
        assert!(
            p.updates.is_empty(),
            "old replicaset is not scaled in the same pass: {:?}",
            p.updates
        );
    }

    #[test]
    fn rolling_update_scales_old_down_when_new_is_available() {
        let v1 = deployment("web", 4);
        let old = owned_rs(&v1, 4, 4, 1);
        let v2 = with_image(&v1, "nginx:2");
        let new = owned_rs(&v2, 1, 1, 2);
        let p = plan(&v2, &[old.clone(), new.clone()], Timestamp::now());
        assert!(p.create.is_none());
        // 5 pods, floor 3 (4 - 1): two old pods may go.
        let u = p
            .updates
            .iter()
            .find(|u| u.name == old.name_any())
            .expect("old scaled");
        assert_eq!(u.replicas, Some(2));
    }

    #[test]
    fn recreate_scales_old_to_zero_before_creating() {
        let mut v1 = deployment("web", 3);
        v1.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        let old = owned_rs(&v1, 3, 3, 1);
        let v2 = with_image(&v1, "nginx:2");
        let p = plan(&v2, std::slice::from_ref(&old), Timestamp::now());
        let new = p.create.expect("new replicaset is created (at zero)");
        assert_eq!(new.spec.as_ref().unwrap().replicas, Some(0));
        let new = Arc::new({
            let mut n = new;
            n.metadata.uid = Some("n".into());
            n
        });
        let p = plan(&v2, &[old.clone(), new.clone()], Timestamp::now());
        assert_eq!(
            p.updates
                .iter()
                .find(|u| u.name == old.name_any())
                .unwrap()
                .replicas,
            Some(0)
        );
        assert!(p
            .updates
            .iter()
            .all(|u| u.name != new.name_any() || u.replicas.is_none()));
        // Old scaled and drained: the new one comes up.
        let drained = owned_rs(&v1, 0, 0, 1);
        let p = plan(&v2, &[drained, new.clone()], Timestamp::now());
        assert_eq!(
            p.updates
                .iter()
                .find(|u| u.name == new.name_any())
                .unwrap()
                .replicas,
            Some(3)
        );
    }

    #[test]
    fn undo_gives_the_old_replicaset_the_next_revision() {
        let v1 = deployment("web", 2);
        let v2 = with_image(&v1, "nginx:2");
        let rs1 = owned_rs(&v1, 0, 0, 1);
        let rs2 = owned_rs(&v2, 2, 2, 2);
        // kubectl rollout undo put v1's template back.
        let p = plan(&v1, &[rs1.clone(), rs2], Timestamp::now());
        assert!(p.create.is_none(), "the old replicaset is reused");
        let u = p
            .updates
            .iter()
            .find(|u| u.name == rs1.name_any())
            .expect("rs1 updated");
        let ann = u.annotations.as_ref().unwrap();
        assert_eq!(ann[revision::REVISION], "3");
        assert_eq!(ann[revision::REVISION_HISTORY], "1");
        assert_eq!(p.revision.as_deref(), Some("3"));
        assert!(u.replicas.is_some(), "and scaled up");
    }

    #[test]
    fn min_ready_seconds_follows_the_deployment() {
        let mut d = deployment("web", 1);
        let rs = owned_rs(&d, 1, 1, 1);
        d.spec.as_mut().unwrap().min_ready_seconds = Some(7);
        let p = plan(&d, std::slice::from_ref(&rs), Timestamp::now());
        assert_eq!(
            p.updates
                .iter()
                .find(|u| u.name == rs.name_any())
                .unwrap()
                .min_ready_seconds,
            Some(7)
        );
    }

    #[test]
    fn paused_deployment_does_not_roll() {
        let v1 = deployment("web", 2);
        let rs1 = owned_rs(&v1, 2, 2, 1);
        let mut v2 = with_image(&v1, "nginx:2");
        v2.spec.as_mut().unwrap().paused = Some(true);
        let p = plan(&v2, &[rs1], Timestamp::now());
        assert!(p.create.is_none());
        assert!(p.updates.iter().all(|u| u.replicas.is_none()));
    }

    #[test]
    fn resize_mid_rollout_scales_proportionally_and_paused_resize_applies() {
        let v1 = deployment("web", 10);
        let v2 = with_image(&v1, "nginx:2");
        let mut old = (*owned_rs(&v1, 8, 8, 1)).clone();
        let mut new = (*owned_rs(&v2, 5, 0, 2)).clone();
        for rs in [&mut old, &mut new] {
            let a = rs.metadata.annotations.get_or_insert_with(Default::default);
            a.insert(revision::DESIRED_REPLICAS.into(), "10".into());
            a.insert(revision::MAX_REPLICAS.into(), "13".into());
        }
        let mut v2_big = v2.clone();
        v2_big.spec.as_mut().unwrap().replicas = Some(20);
        let p = plan(
            &v2_big,
            &[Arc::new(old.clone()), Arc::new(new.clone())],
            Timestamp::now(),
        );
        let sizes: Vec<i32> = p.updates.iter().filter_map(|u| u.replicas).collect();
        assert_eq!(
            sizes.iter().sum::<i32>(),
            25,
            "20 + 25% surge: {:?}",
            p.updates
        );
        assert!(p
            .updates
            .iter()
            .all(|u| u.annotations.as_ref().unwrap()[revision::DESIRED_REPLICAS] == "20"));

        // Paused and resized with one active replicaset: it takes the new size.
        let mut paused = deployment("web", 3);
        paused.spec.as_mut().unwrap().paused = Some(true);
        let rs = owned_rs(&deployment("web", 2), 2, 2, 1);
        let p = plan(&paused, std::slice::from_ref(&rs), Timestamp::now());
        assert_eq!(
            p.updates
                .iter()
                .find(|u| u.name == rs.name_any())
                .unwrap()
                .replicas,
            Some(3)
        );
    }

    #[test]
    fn adopts_orphans_and_ignores_other_owners() {
        let d = deployment("web", 1);
        let mut orphan = (*owned_rs(&d, 1, 1, 1)).clone();
        orphan.metadata.owner_references = None;
        let mut foreign = (*owned_rs(&with_image(&d, "x"), 1, 1, 1)).clone();
        foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "someone-else".into();
        let p = plan(
            &d,
            &[Arc::new(orphan.clone()), Arc::new(foreign)],
            Timestamp::now(),
        );
        assert_eq!(p.adopt, vec![orphan.name_any()]);
        assert!(p.create.is_none(), "the adopted replicaset is the new one");
    }

    #[test]
    fn history_beyond_limit_is_deleted() {
        let mut d = deployment("web", 1);
        d.spec.as_mut().unwrap().revision_history_limit = Some(0);
        let old = owned_rs(&with_image(&d, "old"), 0, 0, 1);
        let cur = owned_rs(&d, 1, 1, 2);
        let p = plan(&d, &[old.clone(), cur], Timestamp::now());
        assert_eq!(p.delete, vec![old.name_any()]);
    }

    #[test]
    fn name_clash_bumps_collision_count() {
        let d = deployment("web", 1);
        let mut clash = (*owned_rs(&with_image(&d, "other"), 1, 1, 1)).clone();
        let h = hash::pod_template_hash(&d.spec.as_ref().unwrap().template, None);
        clash.metadata.name = Some(format!("web-{h}"));
        clash.metadata.owner_references = None;
        clash.metadata.labels = Some(crate::replicaset::fixtures::labels(&[("app", "other")]));
        let p = plan(&d, &[Arc::new(clash)], Timestamp::now());
        assert!(p.create.is_none());
        assert_eq!(p.status.collision_count, Some(1));
    }

    #[test]
    fn deadline_exceeded_when_stuck() {
        let now = Timestamp::now();
        let mut v1 = deployment("web", 2);
        v1.spec.as_mut().unwrap().progress_deadline_seconds = Some(10);
        let old = owned_rs(&v1, 2, 2, 1);
        let v2 = with_image(&v1, "broken");
        let mut v2 = v2;
        let new = owned_rs(&v2, 1, 0, 2);
        let mut st = DeploymentStatus {
            replicas: Some(3),
            updated_replicas: Some(1),
            available_replicas: Some(2),
            ready_replicas: Some(2),
            ..Default::default()
        };
        st.conditions = Some(vec![k8s_openapi::api::apps::v1::DeploymentCondition {
            type_: "Progressing".into(),
            status: "True".into(),
            reason: Some(status::RS_UPDATED.into()),
            message: Some("x".into()),
            last_update_time: Some(Time(now - SignedDuration::from_secs(11))),
            last_transition_time: Some(Time(now - SignedDuration::from_secs(11))),
        }]);
        v2.status = Some(st);
        let p = plan(&v2, &[old, new], now);
        let c = p
            .status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Progressing")
            .unwrap();
        assert_eq!(c.reason.as_deref(), Some(status::DEADLINE_EXCEEDED));
    }
}
