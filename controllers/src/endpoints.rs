//! The Endpoints controller: for every Service with a selector, an Endpoints object of
//! the same name listing the matching pods' addresses, ready ones under `addresses` and
//! the others under `notReadyAddresses`, grouped into subsets by their (resolved) ports.
//!
//! Reads Services, Pods and Endpoints (informer caches); writes Endpoints. Services
//! without a selector are left alone: their Endpoints belong to the user (the
//! `kubernetes` Service's to the API server). The Endpoints carry an ownerReference to
//! their Service so that the garbage collector removes them with it.
//!
//! The pod rules here (which pods count, how a named `targetPort` resolves per pod) are
//! shared with the EndpointSlice controller.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::util::{self, Backoff};
use crate::ControllerError;

/// The label marking Endpoints and slices of headless Services.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The selector of a Service, if it has a non-empty one.
pub fn service_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

pub fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// The pods of `svc`'s namespace its selector picks that have an IP and are not finished.
/// Terminating pods are included; each controller decides what to do with them.
pub fn selected_pods<'a>(svc: &Service, pods: &'a [Arc<Pod>]) -> Vec<&'a Pod> {
    let Some(sel) = service_selector(svc) else {
        return Vec::new();
    };
    let ns = svc.metadata.namespace.as_deref();
    pods.iter()
        .map(|p| p.as_ref())
        .filter(|p| p.metadata.namespace.as_deref() == ns)
        .filter(|p| util::map_selector_matches(sel, &util::labels_of(&p.metadata)))
        .filter(|p| pod_ip(p).is_some())
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            phase != Some("Succeeded") && phase != Some("Failed")
        })
        .collect()
}

pub fn pod_ip(p: &Pod) -> Option<&str> {
    p.status
        .as_ref()?
        .pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
}

/// The port a Service port reaches on this pod: a number as is, a name looked up among
/// the pod's container ports (so two pods may use different numbers for one name).
/// `None` when the pod has no port of that name.
pub fn resolve_target_port(sp: &ServicePort, pod: &Pod) -> Option<i32> {
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => match name.parse::<i32>() {
            Ok(n) => Some(n),
            Err(_) => pod
                .spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|cp| cp.name.as_deref() == Some(name.as_str()))
                .map(|cp| cp.container_port),
        },
    }
}

/// The endpoint ports of one pod for `svc`, in Service port order; ports whose named
/// target the pod lacks are left out.
pub fn pod_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            resolve_target_port(sp, pod).map(|port| EndpointPort {
                name: sp.name.clone(),
                port,
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// `hostname` of a pod's endpoint: set when the pod asked for one under this Service's
/// name as subdomain (what headless DNS records use).
pub fn pod_hostname(svc: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let host = spec.hostname.as_ref()?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref()).then(|| host.clone())
}

pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Labels for objects derived from `svc`: its own labels plus the headless marker.
pub fn derived_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut l = util::labels_of(&svc.metadata);
    if is_headless(svc) {
        l.insert(HEADLESS_LABEL.into(), String::new());
    }
    l
}

pub fn service_owner_ref(svc: &Service) -> OwnerReference {
    util::owner_ref("v1", "Service", &svc.metadata)
}

/// The subsets of `svc`'s Endpoints, or `None` when the Service has no selector (not
/// ours to manage). Deterministic: subsets ordered by ports, addresses by IP.
pub fn desired_subsets(svc: &Service, pods: &[Arc<Pod>]) -> Option<Vec<EndpointSubset>> {
    service_selector(svc)?;
    let publish = publish_not_ready(svc);
    let has_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|p| !p.is_empty());
    // key: the port list rendered as JSON, so equal port sets group together.
    let mut groups: BTreeMap<String, EndpointSubset> = BTreeMap::new();
    for pod in selected_pods(svc, pods) {
        if pod.metadata.deletion_timestamp.is_some() && !publish {
            continue;
        }
        let ports = pod_ports(svc, pod);
        if has_ports && ports.is_empty() {
            continue;
        }
        let addr = EndpointAddress {
            ip: pod_ip(pod).unwrap_or_default().to_string(),
            hostname: pod_hostname(svc, pod),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_ref(pod)),
        };
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let subset = groups.entry(key).or_insert_with(|| EndpointSubset {
            ports: if ports.is_empty() {
                None
            } else {
                Some(ports.clone())
            },
            ..Default::default()
        });
        let list = if publish || util::pod_is_ready(pod) {
            &mut subset.addresses
        } else {
            &mut subset.not_ready_addresses
        };
        list.get_or_insert_with(Vec::new).push(addr);
    }
    let mut out: Vec<EndpointSubset> = groups.into_values().collect();
    for s in out.iter_mut() {
        for list in [&mut s.addresses, &mut s.not_ready_addresses]
            .into_iter()
            .flatten()
        {
            list.sort_by(|a, b| {
                (&a.ip, &a.target_ref.as_ref().and_then(|r| r.name.clone()))
                    .cmp(&(&b.ip, &b.target_ref.as_ref().and_then(|r| r.name.clone())))
            });
        }
    }
    Some(out)
}

/// What to write, if anything: `None` when the existing Endpoints already match.
pub fn plan(svc: &Service, pods: &[Arc<Pod>], existing: Option<&Endpoints>) -> Option<Endpoints> {
    let subsets = desired_subsets(svc, pods)?;
    let labels = derived_labels(svc);
    if let Some(e) = existing {
        let same_subsets = e.subsets.clone().unwrap_or_default() == subsets;
        let same_labels = util::labels_of(&e.metadata) == labels;
        if same_subsets && same_labels {
            return None;
        }
    }
    Some(Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![service_owner_ref(svc)]),
            ..Default::default()
        },
        subsets: Some(subsets),
    })
}

/// Services in `pod`'s namespace whose selector picks it. Services that selected the pod
/// before a label change are found through `also` (the output objects that mention it).
pub fn services_for_pod(
    services: &Store<Service>,
    pod: &Pod,
    also: impl Fn(&Service) -> bool,
) -> Vec<ObjectRef<Service>> {
    let ns = pod.metadata.namespace.as_deref();
    let labels = util::labels_of(&pod.metadata);
    services
        .state()
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == ns)
        .filter(|s| {
            service_selector(s).is_some_and(|sel| util::map_selector_matches(sel, &labels))
                || also(s)
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

pub struct Context {
    pub client: Client,
    pub pods: Store<Pod>,
    pub endpoints: Store<Endpoints>,
    pub backoff: Backoff,
}

/// Runs the Endpoints controller until `shutdown` fires.
pub async fn run(client: Client, shutdown: CancellationToken) -> Result<(), ControllerError> {
    let (pods, pod_writer) = reflector::store();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pod_writer)
        .touched_objects();
    let (endpoints, ep_writer) = reflector::store();
    let ep_events = watcher(
        Api::<Endpoints>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(ep_writer)
    .touched_objects();
    let ctx = Arc::new(Context {
        client: client.clone(),
        pods,
        endpoints: endpoints.clone(),
        backoff: Backoff::default(),
    });
    let controller = Controller::new(Api::<Service>::all(client), watcher::Config::default());
    let services = controller.store();
    controller
        .watches_stream(pod_events, move |pod: Pod| {
            let name = pod.name_any();
            services_for_pod(&services, &pod, |s| {
                let key = ObjectRef::<Endpoints>::new(&s.name_any())
                    .within(&s.namespace().unwrap_or_default());
                endpoints.get(&key).is_some_and(|e| mentions(&e, &name))
            })
        })
        .watches_stream(ep_events, |ep: Endpoints| {
            // Someone edited or deleted "our" Endpoints: put them back.
            Some(
                ObjectRef::<Service>::new(&ep.name_any())
                    .within(&ep.namespace().unwrap_or_default()),
            )
        })
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn mentions(ep: &Endpoints, pod_name: &str) -> bool {
    ep.subsets.iter().flatten().any(|s| {
        s.addresses
            .iter()
            .flatten()
            .chain(s.not_ready_addresses.iter().flatten())
            .any(|a| a.target_ref.as_ref().and_then(|r| r.name.as_deref()) == Some(pod_name))
    })
}

fn error_policy(svc: Arc<Service>, err: &ControllerError, ctx: Arc<Context>) -> Action {
    let key = util::key(&svc.metadata);
    let delay = ctx.backoff.failure(&key);
    tracing::warn!(service = %key, error = %err, retry_in = ?delay, "endpoints reconcile failed");
    Action::requeue(delay)
}

#[tracing::instrument(skip_all, fields(service = %util::key(&svc.metadata)))]
async fn reconcile(svc: Arc<Service>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let pods = ctx.pods.state();
    let existing = ctx
        .endpoints
        .get(&ObjectRef::new(&svc.name_any()).within(&ns));
    let Some(want) = plan(&svc, &pods, existing.as_deref()) else {
        ctx.backoff.success(&util::key(&svc.metadata));
        return Ok(Action::await_change());
    };
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    match existing {
        None => match api.create(&PostParams::default(), &want).await {
            Ok(_) => {}
            // The cache lags: patch instead.
            Err(kube::Error::Api(s)) if s.code == 409 => patch(&api, &want).await?,
            Err(e) => return Err(e.into()),
        },
        Some(_) => patch(&api, &want).await?,
    }
    ctx.backoff.success(&util::key(&svc.metadata));
    Ok(Action::await_change())
}

async fn patch(api: &Api<Endpoints>, want: &Endpoints) -> Result<(), ControllerError> {
    let body = serde_json::json!({
        "metadata": {"labels": want.metadata.labels, "ownerReferences": want.metadata.owner_references},
        "subsets": want.subsets,
    });
    api.patch(
        &want.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&body),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServiceSpec,
    };

    pub fn service(name: &str, ports: Vec<ServicePort>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("{name}-uid")),
                labels: Some(
                    [("team".to_string(), "a".to_string())]
                        .into_iter()
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(
                    [("app".to_string(), "web".to_string())]
                        .into_iter()
                        .collect(),
                ),
                ports: Some(ports),
                ..Default::default()
            }),
            status: None,
        }
    }

    pub fn port(name: &str, port: i32, target: IntOrString) -> ServicePort {
        ServicePort {
            name: Some(name.into()),
            port,
            target_port: Some(target),
            protocol: Some("TCP".into()),
            ..Default::default()
        }
    }

    /// A pod labelled app=web with `ip`, ready or not, whose container names port
    /// "http" as `http_port`.
    pub fn pod(name: &str, ip: &str, ready: bool, http_port: i32) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("{name}-uid")),
                labels: Some(
                    [("app".to_string(), "web".to_string())]
                        .into_iter()
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: http_port,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: if ip.is_empty() { None } else { Some(ip.into()) },
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
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

    fn ips(list: &Option<Vec<EndpointAddress>>) -> Vec<String> {
        list.iter().flatten().map(|a| a.ip.clone()).collect()
    }

    #[test]
    fn ready_and_not_ready_addresses_grouped_by_resolved_port() {
        let svc = service(
            "web",
            vec![port("http", 80, IntOrString::String("http".into()))],
        );
        let mut other = (*pod("other", "10.0.0.9", true, 8080)).clone();
        other.metadata.labels = Some(
            [("app".to_string(), "db".to_string())]
                .into_iter()
                .collect(),
        );
        let pods = vec![
            pod("a", "10.0.0.2", true, 8080),
            pod("b", "10.0.0.1", false, 8080),
            pod("c", "10.0.0.3", true, 9090),
            pod("no-ip", "", true, 8080),
            Arc::new(other),
        ];
        let subsets = desired_subsets(&svc, &pods).unwrap();
        assert_eq!(subsets.len(), 2, "{subsets:?}");
        let by_port = |p: i32| {
            subsets
                .iter()
                .find(|s| s.ports.as_ref().unwrap()[0].port == p)
                .unwrap()
        };
        assert_eq!(ips(&by_port(8080).addresses), vec!["10.0.0.2"]);
        assert_eq!(ips(&by_port(8080).not_ready_addresses), vec!["10.0.0.1"]);
        assert_eq!(ips(&by_port(9090).addresses), vec!["10.0.0.3"]);
        let p = &by_port(8080).ports.as_ref().unwrap()[0];
        assert_eq!(
            (p.name.as_deref(), p.protocol.as_deref()),
            (Some("http"), Some("TCP"))
        );
        let a = &by_port(8080).addresses.as_ref().unwrap()[0];
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        assert_eq!(a.target_ref.as_ref().unwrap().name.as_deref(), Some("a"));
    }

    #[test]
    fn terminating_pods_leave_and_publish_not_ready_keeps_everyone() {
        let mut svc = service("web", vec![port("p", 80, IntOrString::Int(8080))]);
        let mut dying = (*pod("dying", "10.0.0.5", true, 1)).clone();
        dying.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        let pods = vec![Arc::new(dying), pod("slow", "10.0.0.6", false, 1)];
        let s = desired_subsets(&svc, &pods).unwrap();
        assert_eq!(ips(&s[0].addresses), Vec::<String>::new());
        assert_eq!(ips(&s[0].not_ready_addresses), vec!["10.0.0.6"]);
        svc.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let s = desired_subsets(&svc, &pods).unwrap();
        assert_eq!(ips(&s[0].addresses), vec!["10.0.0.5", "10.0.0.6"]);
    }

    #[test]
    fn selectorless_services_are_not_managed() {
        let mut svc = service(
            "kubernetes",
            vec![port("https", 443, IntOrString::Int(6443))],
        );
        svc.spec.as_mut().unwrap().selector = None;
        assert!(plan(&svc, &[pod("a", "10.0.0.1", true, 1)], None).is_none());
    }

    #[test]
    fn headless_services_get_hostnames_and_the_label() {
        let mut svc = service("db", vec![]);
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        let mut p = (*pod("db-0", "10.0.0.7", true, 1)).clone();
        p.spec.as_mut().unwrap().hostname = Some("db-0".into());
        p.spec.as_mut().unwrap().subdomain = Some("db".into());
        let ep = plan(&svc, &[Arc::new(p)], None).unwrap();
        assert!(ep
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .contains_key(HEADLESS_LABEL));
        let s = &ep.subsets.as_ref().unwrap()[0];
        assert!(s.ports.is_none());
        assert_eq!(
            s.addresses.as_ref().unwrap()[0].hostname.as_deref(),
            Some("db-0")
        );
    }

    #[test]
    fn unchanged_endpoints_are_not_rewritten() {
        let svc = service("web", vec![port("p", 80, IntOrString::Int(8080))]);
        let pods = vec![pod("a", "10.0.0.1", true, 1)];
        let first = plan(&svc, &pods, None).unwrap();
        assert_eq!(
            util::controller_ref(&first.metadata).unwrap().uid,
            "web-uid"
        );
        assert_eq!(first.metadata.labels.as_ref().unwrap()["team"], "a");
        assert!(plan(&svc, &pods, Some(&first)).is_none());
        assert!(plan(&svc, &[], Some(&first)).is_some());
    }
}
