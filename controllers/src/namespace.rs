//! The Namespace controller: empties a namespace that is being deleted, then finalizes
//! it.
//!
//! Deleting a namespace makes the API server set `deletionTimestamp` and phase
//! `Terminating` while the `kubernetes` entry of `spec.finalizers` keeps the object.
//! This controller deletes every namespaced object in it (every namespaced resource of
//! the registry in `skiff-api`), waits until they are all gone (pods may take their
//! grace period), records what remains in the `NamespaceContentRemaining` condition,
//! and finally removes `kubernetes` from `spec.finalizers` through the `finalize`
//! subresource, after which the API server removes the namespace.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::controller::Action;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, ResourceExt};
use skiff_api::resource::{ResourceInfo, RESOURCES};
use tokio_util::sync::CancellationToken;

use crate::util::{self, Backoff};
use crate::ControllerError;

/// The finalizer in `spec.finalizers` that this controller owns.
pub const FINALIZER: &str = "kubernetes";

/// What one pass over a terminating namespace found and decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Not being deleted: nothing to do.
    Idle,
    /// Objects remain: delete the live ones (`(resource index, name)`), look again.
    Delete {
        live: Vec<(usize, String)>,
        remaining: usize,
    },
    /// Empty: remove our finalizer.
    Finalize,
    /// Empty and our finalizer already gone: the API server removes it.
    Done,
}

/// Decides the step from what a listing of every namespaced resource found:
/// `(resource index, name, terminating)` per object.
pub fn plan(ns: &Namespace, found: &[(usize, String, bool)]) -> Step {
    if ns.metadata.deletion_timestamp.is_none() {
        return Step::Idle;
    }
    if !found.is_empty() {
        let live = found
            .iter()
            .filter(|(_, _, dying)| !dying)
            .map(|(i, n, _)| (*i, n.clone()))
            .collect();
        return Step::Delete {
            live,
            remaining: found.len(),
        };
    }
    let has_finalizer = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    if has_finalizer {
        Step::Finalize
    } else {
        Step::Done
    }
}

/// The namespaced resources whose objects a namespace deletion removes.
pub fn namespaced_resources() -> Vec<&'static ResourceInfo> {
    RESOURCES.iter().filter(|r| r.namespaced()).collect()
}

fn api_resource(r: &ResourceInfo) -> ApiResource {
    ApiResource {
        group: r.group.to_string(),
        version: r.version.to_string(),
        api_version: r.api_version(),
        kind: r.kind.to_string(),
        plural: r.plural.to_string(),
    }
}

pub struct Context {
    pub client: Client,
    pub backoff: Backoff,
}

/// Runs the Namespace controller until `shutdown` fires.
pub async fn run(client: Client, shutdown: CancellationToken) -> Result<(), ControllerError> {
    let ctx = Arc::new(Context {
        client: client.clone(),
        backoff: Backoff::default(),
    });
    Controller::new(Api::<Namespace>::all(client), watcher::Config::default())
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy(ns: Arc<Namespace>, err: &ControllerError, ctx: Arc<Context>) -> Action {
    let key = ns.name_any();
    let delay = ctx.backoff.failure(&key);
    tracing::warn!(namespace = %key, error = %err, retry_in = ?delay, "namespace reconcile failed");
    Action::requeue(delay)
}

#[tracing::instrument(skip_all, fields(namespace = %ns.name_any()))]
async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let resources = namespaced_resources();
    let mut found = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &name, &api_resource(r));
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l,
            // A resource this server does not serve has nothing in the namespace.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => continue,
            Err(e) => return Err(e.into()),
        };
        for o in list.items {
            found.push((i, o.name_any(), o.metadata.deletion_timestamp.is_some()));
        }
    }
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    match plan(&ns, &found) {
        Step::Idle | Step::Done => {}
        Step::Delete { live, remaining } => {
            for (i, obj) in &live {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(ctx.client.clone(), &name, &api_resource(resources[*i]));
                match api.delete(obj, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let cond = NamespaceCondition {
                type_: "NamespaceContentRemaining".into(),
                status: "True".into(),
                reason: Some("SomeResourcesRemain".into()),
                message: Some(format!("Some resources are remaining: {remaining} objects")),
                last_transition_time: Some(Time(Timestamp::now())),
            };
            let have = ns.status.as_ref().and_then(|s| s.conditions.as_ref());
            if have.is_none_or(|c| {
                !c.iter()
                    .any(|x| x.type_ == cond.type_ && x.message == cond.message)
            }) {
                let patch =
                    serde_json::json!({"status": {"phase": "Terminating", "conditions": [cond]}});
                if let Err(e) = ns_api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::debug!(error = %e, "could not record remaining content");
                }
            }
            tracing::info!(remaining, deleting = live.len(), "namespace not empty yet");
            // Deletions finish asynchronously (pods have a grace period, owners wait
            // for dependents); the namespace object does not change meanwhile, so look
            // again on a timer.
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        Step::Finalize => {
            let mut body = (*ns).clone();
            if let Some(spec) = body.spec.as_mut() {
                spec.finalizers = Some(
                    spec.finalizers
                        .take()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|f| f != FINALIZER)
                        .collect(),
                );
            }
            match ns_api
                .replace_subresource("finalize", &name, &PostParams::default(), &body)
                .await
            {
                Ok(_) => tracing::info!("namespace emptied and finalized"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    ctx.backoff.success(&util::key(&ns.metadata));
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ns(deleting: bool, finalizer: bool) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("lab".into()),
                deletion_timestamp: deleting.then(|| Time(Timestamp::now())),
                ..Default::default()
            },
            spec: Some(NamespaceSpec {
                finalizers: finalizer.then(|| vec![FINALIZER.to_string()]),
            }),
            status: None,
        }
    }

    #[test]
    fn steps_through_deletion() {
        let found = vec![(0, "a".to_string(), false), (1, "b".to_string(), true)];
        let cases = vec![
            ("live namespace", ns(false, true), found.clone(), Step::Idle),
            (
                "content remains: delete the live objects",
                ns(true, true),
                found.clone(),
                Step::Delete {
                    live: vec![(0, "a".into())],
                    remaining: 2,
                },
            ),
            ("empty: finalize", ns(true, true), vec![], Step::Finalize),
            ("finalized", ns(true, false), vec![], Step::Done),
        ];
        for (name, n, f, want) in cases {
            assert_eq!(plan(&n, &f), want, "{name}");
        }
    }

    #[test]
    fn every_namespaced_kind_is_swept_and_no_cluster_kind() {
        let kinds: Vec<&str> = namespaced_resources().iter().map(|r| r.kind).collect();
        for k in [
            "Pod",
            "Service",
            "Deployment",
            "ReplicaSet",
            "Endpoints",
            "EndpointSlice",
            "ConfigMap",
            "Secret",
            "Lease",
        ] {
            assert!(kinds.contains(&k), "{k} missing");
        }
        assert!(!kinds.contains(&"Node") && !kinds.contains(&"Namespace"));
    }
}
