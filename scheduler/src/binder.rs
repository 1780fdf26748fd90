//! The scheduler's writes to the API: the binding (`POST pods/NAME/binding`), and when no
//! node fits, the pod condition `PodScheduled=False reason=Unschedulable` plus a
//! `FailedScheduling` Warning event — what `kubectl describe pod` shows.
//!
//! [`ApiWriter`] is the seam: [`KubeWriter`] talks to the API server, tests can record.
//! [`classify_bind_error`] is the pure rule for what a failed binding means.

use std::future::Future;

use k8s_openapi::api::core::v1::{Binding, Event, EventSource, ObjectReference, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};

/// The reason upstream writes on the PodScheduled condition when no node fits.
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";
pub const REASON_FAILED_SCHEDULING: &str = "FailedScheduling";

/// What happened to a binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindOutcome {
    /// The pod is on the node.
    Bound,
    /// Someone else bound it first (another scheduler, a user): leave it.
    AlreadyBound { node: String },
    /// The pod was deleted (or replaced by a new one with the same name): drop it.
    PodGone,
    /// A transient failure (API down, timeout): try the pod again after backoff.
    Retry { error: String },
}

/// What a failed POST binding tells, before looking at the pod again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindFailure {
    /// 409: the pod already has a node (or changed under us); read it to know which.
    Conflict,
    /// 404: the pod is gone.
    NotFound,
    /// Anything else.
    Transient,
}

pub fn classify_bind_error(e: &kube::Error) -> BindFailure {
    match e {
        kube::Error::Api(s) if s.code == 409 => BindFailure::Conflict,
        kube::Error::Api(s) if s.code == 404 => BindFailure::NotFound,
        _ => BindFailure::Transient,
    }
}

/// After a 409, the pod as read again decides: bound elsewhere, gone, or retry.
pub fn outcome_after_conflict(expected_uid: &str, current: Option<&Pod>) -> BindOutcome {
    match current {
        None => BindOutcome::PodGone,
        Some(p) if p.metadata.uid.as_deref() != Some(expected_uid) => BindOutcome::PodGone,
        Some(p) => match p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
        {
            Some(node) => BindOutcome::AlreadyBound { node },
            None => BindOutcome::Retry {
                error: "binding conflicted but the pod is still unbound".into(),
            },
        },
    }
}

/// The pod's conditions with PodScheduled set to False/Unschedulable/`message`, or `None`
/// when it already says exactly that (so repeated failures do not rewrite the pod).
pub fn unschedulable_conditions(
    pod: &Pod,
    message: &str,
    now: Timestamp,
) -> Option<Vec<PodCondition>> {
    let mut conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let existing = conditions.iter_mut().find(|c| c.type_ == "PodScheduled");
    let wanted = |c: &PodCondition| {
        c.status == "False"
            && c.reason.as_deref() == Some(REASON_UNSCHEDULABLE)
            && c.message.as_deref() == Some(message)
    };
    match existing {
        Some(c) if wanted(c) => return None,
        Some(c) => {
            if c.status != "False" {
                c.last_transition_time = Some(Time(now));
            }
            c.status = "False".into();
            c.reason = Some(REASON_UNSCHEDULABLE.into());
            c.message = Some(message.into());
        }
        None => conditions.push(PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some(REASON_UNSCHEDULABLE.into()),
            message: Some(message.into()),
            last_transition_time: Some(Time(now)),
            ..Default::default()
        }),
    }
    Some(conditions)
}

/// The FailedScheduling event for a pod.
pub fn failed_scheduling_event(
    pod: &Pod,
    message: &str,
    component: &str,
    instance: &str,
    now: Timestamp,
) -> Event {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            // Upstream's recorder names events `<object>.<unique hex>`.
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(ns),
            name: Some(name),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some(REASON_FAILED_SCHEDULING.into()),
        message: Some(message.into()),
        type_: Some("Warning".into()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        source: Some(EventSource {
            component: Some(component.into()),
            host: None,
        }),
        reporting_component: Some(component.into()),
        reporting_instance: Some(instance.into()),
        action: Some("Scheduling".into()),
        ..Default::default()
    }
}

/// The Normal `Scheduled` event upstream records once a pod is bound ("Successfully
/// assigned ns/name to node"), shown first by `kubectl describe pod`.
pub fn scheduled_event(
    pod: &Pod,
    node: &str,
    component: &str,
    instance: &str,
    now: Timestamp,
) -> Event {
    let mut e = failed_scheduling_event(pod, "", component, instance, now);
    let ns = e.involved_object.namespace.clone().unwrap_or_default();
    let name = e.involved_object.name.clone().unwrap_or_default();
    e.reason = Some("Scheduled".into());
    e.type_ = Some("Normal".into());
    e.message = Some(format!("Successfully assigned {ns}/{name} to {node}"));
    e.action = Some("Binding".into());
    e
}

/// A write that failed (the scheduler logs it and carries on).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("updating the PodScheduled condition of pod {pod} failed: {source}")]
    Condition {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("recording the FailedScheduling event for pod {pod} failed: {source}")]
    Event {
        pod: String,
        #[source]
        source: kube::Error,
    },
}

/// The scheduler's writes, as a seam for tests.
pub trait ApiWriter: Send + Sync + 'static {
    /// Binds the pod (namespace, name, uid) to `node`.
    fn bind(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        node: &str,
    ) -> impl Future<Output = BindOutcome> + Send;
    /// Marks the pod unschedulable with `message` and records an event.
    fn report_unschedulable(
        &self,
        pod: &Pod,
        message: &str,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
}

/// [`ApiWriter`] over a kube client.
#[derive(Clone)]
pub struct KubeWriter {
    client: kube::Client,
    /// `source.component` of events: the scheduler name.
    component: String,
    /// `reportingInstance`: this process's identity.
    instance: String,
}

impl KubeWriter {
    pub fn new(client: kube::Client, component: String, instance: String) -> Self {
        KubeWriter {
            client,
            component,
            instance,
        }
    }
}

impl ApiWriter for KubeWriter {
    async fn bind(&self, namespace: &str, name: &str, uid: &str, node: &str) -> BindOutcome {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                // The API server checks this, so a pod re-created under the same name is
                // never bound by a decision made for its predecessor.
                uid: Some(uid.into()),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.into()),
                ..Default::default()
            },
        };
        let result: Result<serde_json::Value, kube::Error> = pods
            .create_subresource("binding", name, &PostParams::default(), &binding)
            .await;
        let err = match result {
            Ok(_) => {
                // The binding stands whatever happens to its event: a failed write
                // is logged, not retried.
                let mut bound = Pod::default();
                bound.metadata.name = Some(name.into());
                bound.metadata.namespace = Some(namespace.into());
                bound.metadata.uid = Some(uid.into());
                let event = scheduled_event(
                    &bound,
                    node,
                    &self.component,
                    &self.instance,
                    Timestamp::now(),
                );
                let events: Api<Event> = Api::namespaced(self.client.clone(), namespace);
                if let Err(e) = events.create(&PostParams::default(), &event).await {
                    tracing::warn!(pod = %format!("{namespace}/{name}"), error = %e, "recording the Scheduled event failed");
                }
                return BindOutcome::Bound;
            }
            Err(e) => e,
        };
        match classify_bind_error(&err) {
            BindFailure::NotFound => BindOutcome::PodGone,
            BindFailure::Transient => BindOutcome::Retry {
                error: err.to_string(),
            },
            BindFailure::Conflict => match pods.get_opt(name).await {
                Ok(current) => outcome_after_conflict(uid, current.as_ref()),
                Err(e) => BindOutcome::Retry {
                    error: format!("binding conflicted and reading the pod failed: {e}"),
                },
            },
        }
    }

    async fn report_unschedulable(&self, pod: &Pod, message: &str) -> Result<(), WriteError> {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let key = format!("{ns}/{name}");
        let now = Timestamp::now();
        if let Some(conditions) = unschedulable_conditions(pod, message, now) {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            // A merge patch replaces the whole list; the list is the pod's own plus ours,
            // and an unbound pod has no kubelet writing conditions concurrently.
            let patch = serde_json::json!({"status": {"conditions": conditions}});
            pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|source| WriteError::Condition {
                    pod: key.clone(),
                    source,
                })?;
            let events: Api<Event> = Api::namespaced(self.client.clone(), &ns);
            let event = failed_scheduling_event(pod, message, &self.component, &self.instance, now);
            events
                .create(&PostParams::default(), &event)
                .await
                .map_err(|source| WriteError::Event { pod: key, source })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn outcomes_after_conflict() {
        let bound = pod(
            json!({"metadata": {"name": "p", "uid": "u1"}, "spec": {"containers": [], "nodeName": "n2"}}),
        );
        let unbound =
            pod(json!({"metadata": {"name": "p", "uid": "u1"}, "spec": {"containers": []}}));
        let replaced =
            pod(json!({"metadata": {"name": "p", "uid": "u2"}, "spec": {"containers": []}}));
        assert_eq!(
            outcome_after_conflict("u1", Some(&bound)),
            BindOutcome::AlreadyBound { node: "n2".into() }
        );
        assert_eq!(outcome_after_conflict("u1", None), BindOutcome::PodGone);
        assert_eq!(
            outcome_after_conflict("u1", Some(&replaced)),
            BindOutcome::PodGone
        );
        assert!(matches!(
            outcome_after_conflict("u1", Some(&unbound)),
            BindOutcome::Retry { .. }
        ));
    }

    #[test]
    fn classifies_api_errors() {
        let api = |code: u16| {
            kube::Error::Api(
                kube::core::Status {
                    code,
                    message: "x".into(),
                    reason: "y".into(),
                    ..Default::default()
                }
                .boxed(),
            )
        };
        assert_eq!(classify_bind_error(&api(409)), BindFailure::Conflict);
        assert_eq!(classify_bind_error(&api(404)), BindFailure::NotFound);
        assert_eq!(classify_bind_error(&api(500)), BindFailure::Transient);
        assert_eq!(classify_bind_error(&api(429)), BindFailure::Transient);
    }

    #[test]
    fn condition_written_once_per_message() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let fresh = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": []},
            "status": {"conditions": [{"type": "Other", "status": "True"}]}}),
        );
        let conds =
            unschedulable_conditions(&fresh, "0/1 nodes are available: 1 Insufficient cpu.", now)
                .unwrap();
        assert_eq!(conds.len(), 2, "other conditions are kept");
        let ps = conds.iter().find(|c| c.type_ == "PodScheduled").unwrap();
        assert_eq!(
            (ps.status.as_str(), ps.reason.as_deref()),
            ("False", Some("Unschedulable"))
        );
        assert_eq!(ps.last_transition_time, Some(Time(now)));

        let mut written = fresh.clone();
        written.status.as_mut().unwrap().conditions = Some(conds);
        assert_eq!(
            unschedulable_conditions(
                &written,
                "0/1 nodes are available: 1 Insufficient cpu.",
                now
            ),
            None
        );
        let later = Timestamp::from_second(1_700_000_100).unwrap();
        let changed = unschedulable_conditions(
            &written,
            "0/2 nodes are available: 2 Insufficient cpu.",
            later,
        )
        .unwrap();
        let ps = changed.iter().find(|c| c.type_ == "PodScheduled").unwrap();
        assert_eq!(
            ps.message.as_deref(),
            Some("0/2 nodes are available: 2 Insufficient cpu.")
        );
        assert_eq!(
            ps.last_transition_time,
            Some(Time(now)),
            "status did not flip, transition time stays"
        );
    }

    #[test]
    fn scheduled_event_shape() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let p = pod(
            json!({"metadata": {"name": "web", "namespace": "prod", "uid": "u1"}, "spec": {"containers": []}}),
        );
        let e = scheduled_event(&p, "node-a", "default-scheduler", "host-1", now);
        assert_eq!(
            (
                e.reason.as_deref(),
                e.type_.as_deref(),
                e.message.as_deref(),
                e.involved_object.uid.as_deref(),
                e.action.as_deref()
            ),
            (
                Some("Scheduled"),
                Some("Normal"),
                Some("Successfully assigned prod/web to node-a"),
                Some("u1"),
                Some("Binding")
            )
        );
    }

    #[test]
    fn event_shape() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let p = pod(
            json!({"metadata": {"name": "web", "namespace": "prod", "uid": "u1", "resourceVersion": "7"}, "spec": {"containers": []}}),
        );
        let e = failed_scheduling_event(
            &p,
            "no nodes available to schedule pods",
            "default-scheduler",
            "host-1",
            now,
        );
        assert!(e.metadata.name.as_deref().unwrap().starts_with("web."));
        assert_eq!(e.metadata.namespace.as_deref(), Some("prod"));
        assert_eq!(e.involved_object.kind.as_deref(), Some("Pod"));
        assert_eq!(e.involved_object.uid.as_deref(), Some("u1"));
        assert_eq!(e.reason.as_deref(), Some("FailedScheduling"));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(
            e.source.unwrap().component.as_deref(),
            Some("default-scheduler")
        );
    }
}
