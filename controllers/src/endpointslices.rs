//! The EndpointSlice controller: the `discovery.k8s.io/v1` view of a Service's pods,
//! which kube-proxy style consumers read instead of Endpoints.
//!
//! Reads Services, Pods and EndpointSlices (informer caches); writes EndpointSlices
//! labelled `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by`,
//! owned (controller reference) by their Service. Endpoints are grouped by address type
//! and resolved port set and cut into slices of at most [`MAX_PER_SLICE`]. Unlike
//! Endpoints, slices keep terminating pods, with `ready: false`, `serving` from the
//! pod's readiness and `terminating: true`.
//!
//! Slices get deterministic names (service name plus a hash of their group and index)
//! rather than upstream's random suffixes, so that a reconcile working from a stale
//! cache rewrites the same slice instead of creating a duplicate.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::deployment::hash::{fnv32a, safe_encode};
use crate::endpoints as ep;
use crate::util::{self, Backoff};
use crate::ControllerError;

pub const MAX_PER_SLICE: usize = 100;
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// Slice writes for one Service.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

fn endpoint_for(svc: &Service, pod: &Pod, publish: bool) -> Endpoint {
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let serving = publish || util::pod_is_ready(pod);
    Endpoint {
        addresses: vec![ep::pod_ip(pod).unwrap_or_default().to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(serving && !terminating),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: ep::pod_hostname(svc, pod),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(ep::pod_ref(pod)),
        ..Default::default()
    }
}

fn slice_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    ep::pod_ports(svc, pod)
        .into_iter()
        .map(|p| EndpointPort {
            name: p.name,
            port: Some(p.port),
            protocol: p.protocol,
            app_protocol: p.app_protocol,
        })
        .collect()
}

/// The slices `svc` should have (empty if it has no selector).
pub fn desired(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSlice> {
    if ep::service_selector(svc).is_none() {
        return Vec::new();
    }
    let publish = ep::publish_not_ready(svc);
    let has_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|p| !p.is_empty());
    // (address type, ports JSON) -> (ports, endpoints)
    let mut groups: BTreeMap<(String, String), (Vec<EndpointPort>, Vec<Endpoint>)> =
        BTreeMap::new();
    let mut selected = ep::selected_pods(svc, pods);
    selected.sort_by_key(|p| p.name_any());
    for pod in selected {
        let ports = slice_ports(svc, pod);
        if has_ports && ports.is_empty() {
            continue;
        }
        let ip = ep::pod_ip(pod).unwrap_or_default();
        let family = if ip.contains(':') { "IPv6" } else { "IPv4" };
        let key = (
            family.to_string(),
            serde_json::to_string(&ports).unwrap_or_default(),
        );
        let g = groups.entry(key).or_insert_with(|| (ports, Vec::new()));
        g.1.push(endpoint_for(svc, pod, publish));
    }
    let mut labels = ep::derived_labels(svc);
    labels.insert(SERVICE_NAME_LABEL.into(), svc.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let make = |family: &str, ports: Vec<EndpointPort>, endpoints: Vec<Endpoint>, tag: String| {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}-{}",
                    svc.name_any(),
                    safe_encode(&fnv32a(tag.as_bytes()).to_string())
                )),
                namespace: svc.metadata.namespace.clone(),
                labels: Some(labels.clone()),
                owner_references: Some(vec![ep::service_owner_ref(svc)]),
                ..Default::default()
            },
            address_type: family.to_string(),
            endpoints,
            ports: if ports.is_empty() { None } else { Some(ports) },
        }
    };
    let mut out = Vec::new();
    for ((family, key), (ports, endpoints)) in groups {
        for (i, chunk) in endpoints.chunks(MAX_PER_SLICE).enumerate() {
            out.push(make(
                &family,
                ports.clone(),
                chunk.to_vec(),
                format!("{family}/{key}/{i}"),
            ));
        }
    }
    if out.is_empty() {
        // Upstream keeps one empty placeholder slice per Service, so consumers can tell
        // "no endpoints" from "not processed yet".
        out.push(make("IPv4", Vec::new(), Vec::new(), "placeholder".into()));
    }
    out
}

fn same_content(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    a.address_type == b.address_type
        && a.endpoints == b.endpoints
        && a.ports == b.ports
        && a.metadata.labels == b.metadata.labels
}

/// Compares what `svc` should have with the slices it has (`existing`: the slices in
/// its namespace labelled with its name and managed by us).
pub fn plan(svc: &Service, pods: &[Arc<Pod>], existing: &[Arc<EndpointSlice>]) -> Plan {
    let want = desired(svc, pods);
    let mut out = Plan::default();
    for w in &want {
        match existing.iter().find(|e| e.metadata.name == w.metadata.name) {
            None => out.create.push(w.clone()),
            Some(e) if !same_content(e, w) => out.update.push(w.clone()),
            Some(_) => {}
        }
    }
    for e in existing {
        if !want.iter().any(|w| w.metadata.name == e.metadata.name) {
            out.delete.push(e.name_any());
        }
    }
    out
}

fn managed_slices(slices: &Store<EndpointSlice>, ns: &str, svc: &str) -> Vec<Arc<EndpointSlice>> {
    slices
        .state()
        .into_iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
        .filter(|s| {
            let l = s.labels();
            l.get(SERVICE_NAME_LABEL).map(String::as_str) == Some(svc)
                && l.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        })
        .collect()
}

pub struct Context {
    pub client: Client,
    pub pods: Store<Pod>,
    pub slices: Store<EndpointSlice>,
    pub backoff: Backoff,
}

/// Runs the EndpointSlice controller until `shutdown` fires.
pub async fn run(client: Client, shutdown: CancellationToken) -> Result<(), ControllerError> {
    let (pods, pod_writer) = reflector::store();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pod_writer)
        .touched_objects();
    let (slices, slice_writer) = reflector::store();
    let slice_events = watcher(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")),
    )
    .default_backoff()
    .reflect(slice_writer)
    .touched_objects();
    let ctx = Arc::new(Context {
        client: client.clone(),
        pods,
        slices: slices.clone(),
        backoff: Backoff::default(),
    });
    let controller = Controller::new(Api::<Service>::all(client), watcher::Config::default());
    let services = controller.store();
    controller
        .watches_stream(pod_events, move |pod: Pod| {
            let name = pod.name_any();
            let ns = pod.namespace().unwrap_or_default();
            ep::services_for_pod(&services, &pod, |s| {
                managed_slices(&slices, &ns, &s.name_any())
                    .iter()
                    .any(|sl| {
                        sl.endpoints.iter().any(|e| {
                            e.target_ref.as_ref().and_then(|r| r.name.as_deref())
                                == Some(name.as_str())
                        })
                    })
            })
        })
        .watches_stream(slice_events, |s: EndpointSlice| {
            s.labels().get(SERVICE_NAME_LABEL).map(|svc| {
                ObjectRef::<Service>::new(svc).within(&s.namespace().unwrap_or_default())
            })
        })
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy(svc: Arc<Service>, err: &ControllerError, ctx: Arc<Context>) -> Action {
    let key = util::key(&svc.metadata);
    let delay = ctx.backoff.failure(&key);
    tracing::warn!(service = %key, error = %err, retry_in = ?delay, "endpointslice reconcile failed");
    Action::requeue(delay)
}

#[tracing::instrument(skip_all, fields(service = %util::key(&svc.metadata)))]
async fn reconcile(svc: Arc<Service>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let existing = managed_slices(&ctx.slices, &ns, &svc.name_any());
    let plan = plan(&svc, &ctx.pods.state(), &existing);
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    for s in &plan.create {
        match api.create(&PostParams::default(), s).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => write(&api, s).await?,
            Err(e) => return Err(e.into()),
        }
    }
    for s in &plan.update {
        write(&api, s).await?;
    }
    for name in &plan.delete {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.backoff.success(&util::key(&svc.metadata));
    Ok(Action::await_change())
}

async fn write(api: &Api<EndpointSlice>, s: &EndpointSlice) -> Result<(), ControllerError> {
    let body = serde_json::json!({
        "metadata": {"labels": s.metadata.labels, "ownerReferences": s.metadata.owner_references},
        "addressType": s.address_type,
        "endpoints": s.endpoints,
        "ports": s.ports,
    });
    api.patch(&s.name_any(), &PatchParams::default(), &Patch::Merge(&body))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::fixtures::{pod, port, service};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    #[test]
    fn slices_hold_at_most_100_endpoints_and_carry_the_labels() {
        let svc = service(
            "web",
            vec![port("http", 80, IntOrString::String("http".into()))],
        );
        let pods: Vec<Arc<Pod>> = (0..250)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                    true,
                    8080,
                )
            })
            .collect();
        let slices = desired(&svc, &pods);
        assert_eq!(
            slices.iter().map(|s| s.endpoints.len()).collect::<Vec<_>>(),
            vec![100, 100, 50]
        );
        for s in &slices {
            let l = s.metadata.labels.as_ref().unwrap();
            assert_eq!(l[SERVICE_NAME_LABEL], "web");
            assert_eq!(l[MANAGED_BY_LABEL], MANAGED_BY);
            assert_eq!(s.address_type, "IPv4");
            assert_eq!(s.ports.as_ref().unwrap()[0].port, Some(8080));
            assert_eq!(util::controller_ref(&s.metadata).unwrap().kind, "Service");
        }
        let mut names: Vec<_> = slices.iter().map(|s| s.name_any()).collect();
        names.dedup();
        assert_eq!(names.len(), 3, "distinct names");
    }

    #[test]
    fn conditions_for_ready_unready_and_terminating() {
        let svc = service("web", vec![port("p", 80, IntOrString::Int(8080))]);
        let mut dying = (*pod("c-dying", "10.0.0.3", true, 1)).clone();
        dying.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        let pods = vec![
            pod("a-ready", "10.0.0.1", true, 1),
            pod("b-slow", "10.0.0.2", false, 1),
            Arc::new(dying),
        ];
        let s = &desired(&svc, &pods)[0];
        let c: Vec<(bool, bool, bool)> = s
            .endpoints
            .iter()
            .map(|e| {
                let c = e.conditions.as_ref().unwrap();
                (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
            })
            .collect();
        assert_eq!(
            c,
            vec![
                (true, true, false),
                (false, false, false),
                (false, true, true)
            ]
        );
        assert_eq!(s.endpoints[0].node_name.as_deref(), Some("n1"));
        assert_eq!(
            s.endpoints[0].target_ref.as_ref().unwrap().name.as_deref(),
            Some("a-ready")
        );
    }

    #[test]
    fn named_ports_split_slices_and_plan_is_idempotent() {
        let svc = service(
            "web",
            vec![port("http", 80, IntOrString::String("http".into()))],
        );
        let pods = vec![
            pod("a", "10.0.0.1", true, 8080),
            pod("b", "10.0.0.2", true, 9090),
        ];
        let want = desired(&svc, &pods);
        assert_eq!(want.len(), 2);
        let p = plan(&svc, &pods, &[]);
        assert_eq!(p.create.len(), 2);
        let existing: Vec<Arc<EndpointSlice>> = want.into_iter().map(Arc::new).collect();
        assert!(plan(&svc, &pods, &existing).is_empty());
        // b leaves: its slice goes, a's stays untouched.
        let p = plan(&svc, &pods[..1], &existing);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 0, 1));
    }

    #[test]
    fn empty_service_has_one_placeholder_slice() {
        let svc = service("web", vec![port("p", 80, IntOrString::Int(80))]);
        let s = desired(&svc, &[]);
        assert_eq!(s.len(), 1);
        assert!(s[0].endpoints.is_empty());
    }
}
