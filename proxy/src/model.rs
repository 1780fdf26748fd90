//! The proxy's own view of Services and EndpointSlices: one [`ServicePortInfo`] per
//! (service, port) with the endpoints that back it, built from the k8s-openapi objects.
//!
//! Everything here is pure. Only what the iptables rules need survives the translation:
//! the IPv4 cluster IP, external IPs, node port, affinity, traffic policy and the
//! endpoints with their conditions. Headless and ExternalName services are dropped
//! because the proxy has nothing to program for them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label an EndpointSlice carries to name the Service it belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Default ClientIP affinity timeout (3 hours), as in the Kubernetes API defaults.
pub const DEFAULT_AFFINITY_TIMEOUT_SECONDS: u32 = 10800;

/// Transport protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Parses the API spelling; the API defaults a missing protocol to TCP.
    pub fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The lower-case name iptables uses for `-p` and `-m`.
    pub fn iptables_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// Identifies one port of one service: `namespace/name:port` plus the protocol, the
/// key kube-proxy hashes into chain names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    /// The port's `name` field, empty for a single unnamed port.
    pub port: String,
    pub protocol: Protocol,
}

impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
    }
}

/// One backend address for a service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node_name: Option<String>,
}

impl Endpoint {
    /// `ip:port`, the form used in DNAT targets and chain-name hashes.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

/// Everything the rules need to know about one service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortInfo {
    pub name: ServicePortName,
    pub cluster_ip: Option<Ipv4Addr>,
    pub port: u16,
    pub node_port: Option<u16>,
    pub external_ips: Vec<Ipv4Addr>,
    /// `Some(timeout)` when sessionAffinity is ClientIP.
    pub affinity_timeout: Option<u32>,
    /// externalTrafficPolicy: Local (only node-local endpoints for external traffic).
    pub external_local: bool,
    /// All endpoints found in the service's slices for this port, sorted, one per address.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePortInfo {
    /// The endpoints traffic may go to: the ready ones, or, when none is ready, the
    /// ones still serving while terminating (so connections drain instead of failing
    /// during a rollout), as kube-proxy does.
    pub fn usable_endpoints(&self) -> Vec<&Endpoint> {
        let ready: Vec<&Endpoint> = self.endpoints.iter().filter(|e| e.ready).collect();
        if !ready.is_empty() {
            return ready;
        }
        self.endpoints
            .iter()
            .filter(|e| e.serving && e.terminating)
            .collect()
    }

    /// The usable endpoints that run on `node` (for externalTrafficPolicy Local).
    pub fn local_endpoints(&self, node: &str) -> Vec<&Endpoint> {
        let on_node = |e: &&Endpoint| e.node_name.as_deref() == Some(node);
        let ready: Vec<&Endpoint> = self
            .endpoints
            .iter()
            .filter(|e| e.ready)
            .filter(on_node)
            .collect();
        if !ready.is_empty() {
            return ready;
        }
        self.endpoints
            .iter()
            .filter(|e| e.serving && e.terminating)
            .filter(on_node)
            .collect()
    }

    /// Whether this port is reachable from outside the cluster network at all.
    pub fn has_external(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty()
    }
}

/// The whole proxy input: every service port, keyed and sorted by name so that rule
/// output is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyModel {
    pub ports: BTreeMap<ServicePortName, ServicePortInfo>,
}

impl ProxyModel {
    /// The service ports that differ between `self` and `next`, as (before, after);
    /// `None` on one side means added or removed.
    pub fn changes<'a>(
        &'a self,
        next: &'a ProxyModel,
    ) -> Vec<(Option<&'a ServicePortInfo>, Option<&'a ServicePortInfo>)> {
        let mut out = Vec::new();
        for (name, before) in &self.ports {
            match next.ports.get(name) {
                Some(after) if after == before => {}
                after => out.push((Some(before), after)),
            }
        }
        for (name, after) in &next.ports {
            if !self.ports.contains_key(name) {
                out.push((None, Some(after)));
            }
        }
        out
    }
}

/// Builds the model from the objects in the informer caches.
pub fn build_model<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> ProxyModel {
    // Group slices by (namespace, service) once so each service looks up only its own.
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        // Only IPv4 slices: the backend programs the IPv4 tables.
        if slice.address_type != "IPv4" {
            continue;
        }
        let ns = slice.metadata.namespace.clone().unwrap_or_default();
        let Some(svc) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        by_service.entry((ns, svc.clone())).or_default().push(slice);
    }

    let mut model = ProxyModel::default();
    for svc in services {
        let namespace = svc.metadata.namespace.clone().unwrap_or_default();
        let Some(name) = svc.metadata.name.clone() else {
            continue;
        };
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let cluster_ip = match spec.cluster_ip.as_deref() {
            None | Some("") | Some("None") => None,
            Some(ip) => match ip.parse::<Ipv4Addr>() {
                Ok(ip) => Some(ip),
                // An IPv6-only service has nothing for the IPv4 tables.
                Err(_) => continue,
            },
        };
        if cluster_ip.is_none() {
            // Headless: clients resolve endpoints through DNS, no virtual IP to program.
            continue;
        }
        let external_ips: Vec<Ipv4Addr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|s| s.parse().ok())
            .collect();
        let affinity_timeout = if spec.session_affinity.as_deref() == Some("ClientIP") {
            let t = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_SECONDS);
            Some(t)
        } else {
            None
        };
        let node_ports_allowed = matches!(
            spec.type_.as_deref(),
            Some("NodePort") | Some("LoadBalancer")
        );
        let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
        let slices = by_service
            .get(&(namespace.clone(), name.clone()))
            .map(Vec::as_slice)
            .unwrap_or(&[]);

        for sp in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(sp.protocol.as_deref()) else {
                continue;
            };
            let Ok(port) = u16::try_from(sp.port) else {
                continue;
            };
            let port_name = sp.name.clone().unwrap_or_default();
            let spn = ServicePortName {
                namespace: namespace.clone(),
                name: name.clone(),
                port: port_name.clone(),
                protocol,
            };
            let node_port = if node_ports_allowed {
                sp.node_port
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0)
            } else {
                None
            };
            let endpoints = endpoints_for_port(slices, &port_name, protocol);
            model.ports.insert(
                spn.clone(),
                ServicePortInfo {
                    name: spn,
                    cluster_ip,
                    port,
                    node_port,
                    external_ips: external_ips.clone(),
                    affinity_timeout,
                    external_local,
                    endpoints,
                },
            );
        }
    }
    model
}

/// Collects the endpoints of one service port from the service's slices. A slice port
/// belongs to a service port when name and protocol match (the endpoints controller
/// resolves named target ports per pod, so the number may differ between slices).
fn endpoints_for_port(
    slices: &[&EndpointSlice],
    port_name: &str,
    protocol: Protocol,
) -> Vec<Endpoint> {
    let mut found: BTreeMap<(Ipv4Addr, u16), Endpoint> = BTreeMap::new();
    for slice in slices {
        let Some(target) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name
                && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
        }) else {
            continue;
        };
        let Some(port) = target.port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for ep in &slice.endpoints {
            let cond = ep.conditions.as_ref();
            // API semantics: a nil `ready` means ready; nil `serving` follows `ready`;
            // nil `terminating` means not terminating.
            let ready = cond.and_then(|c| c.ready).unwrap_or(true);
            let serving = cond.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
            // A slice endpoint may list several addresses but they are the same backend;
            // kube-proxy uses only the first.
            let Some(ip) = ep
                .addresses
                .first()
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let new = Endpoint {
                ip,
                port,
                ready,
                serving,
                terminating,
                node_name: ep.node_name.clone(),
            };
            // The same address may sit in two slices while the controller moves it;
            // keep the ready copy.
            found
                .entry((ip, port))
                .and_modify(|old| {
                    if new.ready && !old.ready {
                        *old = new.clone();
                    }
                })
                .or_insert(new);
        }
    }
    found.into_values().collect()
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Builders for Service and EndpointSlice objects used by the unit tests.
    use super::*;
    use k8s_openapi::api::core::v1::{
        ClientIPConfig, ServicePort, ServiceSpec, SessionAffinityConfig,
    };
    use k8s_openapi::api::discovery::v1::{
        Endpoint as SliceEndpoint, EndpointConditions, EndpointPort,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub fn service(ns: &str, name: &str, ip: &str, ports: &[(&str, i32, &str)]) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                type_: Some("ClusterIP".into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p, proto)| ServicePort {
                            name: if n.is_empty() {
                                None
                            } else {
                                Some(n.to_string())
                            },
                            port: *p,
                            protocol: Some(proto.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn with_node_ports(mut svc: Service, node_ports: &[i32]) -> Service {
        let spec = svc.spec.as_mut().unwrap();
        spec.type_ = Some("NodePort".into());
        for (p, np) in spec.ports.as_mut().unwrap().iter_mut().zip(node_ports) {
            p.node_port = Some(*np);
        }
        svc
    }

    pub fn with_affinity(mut svc: Service, timeout: i32) -> Service {
        let spec = svc.spec.as_mut().unwrap();
        spec.session_affinity = Some("ClientIP".into());
        spec.session_affinity_config = Some(SessionAffinityConfig {
            client_ip: Some(ClientIPConfig {
                timeout_seconds: Some(timeout),
            }),
        });
        svc
    }

    /// `eps`: (ip, ready, serving, terminating, node)
    pub fn slice(
        ns: &str,
        name: &str,
        svc: &str,
        ports: &[(&str, i32, &str)],
        eps: &[(&str, bool, bool, bool, &str)],
    ) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), svc.to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p, proto)| EndpointPort {
                        name: Some(n.to_string()),
                        port: Some(*p),
                        protocol: Some(proto.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            endpoints: eps
                .iter()
                .map(|(ip, ready, serving, term, node)| SliceEndpoint {
                    addresses: vec![ip.to_string()],
                    conditions: Some(EndpointConditions {
                        ready: Some(*ready),
                        serving: Some(*serving),
                        terminating: Some(*term),
                    }),
                    node_name: Some(node.to_string()),
                    ..Default::default()
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    fn ips(eps: &[&Endpoint]) -> Vec<String> {
        eps.iter().map(|e| e.addr()).collect()
    }

    #[test]
    fn endpoint_selection_prefers_ready_then_serving_terminating() {
        // (name, endpoints (ip, ready, serving, terminating), expected usable)
        type Case<'a> = (
            &'a str,
            Vec<(&'a str, bool, bool, bool, &'a str)>,
            Vec<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "all ready",
                vec![
                    ("10.0.0.1", true, true, false, "n1"),
                    ("10.0.0.2", true, true, false, "n2"),
                ],
                vec!["10.0.0.1:8080", "10.0.0.2:8080"],
            ),
            (
                "one not ready",
                vec![
                    ("10.0.0.1", true, true, false, "n1"),
                    ("10.0.0.2", false, false, false, "n2"),
                ],
                vec!["10.0.0.1:8080"],
            ),
            (
                "ready wins over terminating",
                vec![
                    ("10.0.0.1", false, true, true, "n1"),
                    ("10.0.0.2", true, true, false, "n2"),
                ],
                vec!["10.0.0.2:8080"],
            ),
            (
                "only serving terminating",
                vec![
                    ("10.0.0.1", false, true, true, "n1"),
                    ("10.0.0.2", false, false, true, "n2"),
                ],
                vec!["10.0.0.1:8080"],
            ),
            (
                "nothing usable",
                vec![("10.0.0.1", false, false, false, "n1")],
                vec![],
            ),
            ("no endpoints", vec![], vec![]),
        ];
        for (name, eps, want) in cases {
            let svc = service("default", "web", "10.96.0.10", &[("http", 80, "TCP")]);
            let sl = slice("default", "web-abc", "web", &[("http", 8080, "TCP")], &eps);
            let model = build_model([&svc], [&sl]);
            let sp = model.ports.values().next().expect(name);
            assert_eq!(ips(&sp.usable_endpoints()), want, "case {name}");
        }
    }

    #[test]
    fn named_ports_and_several_ports_map_to_their_slice_ports() {
        let svc = service(
            "shop",
            "api",
            "10.96.1.1",
            &[
                ("http", 80, "TCP"),
                ("dns", 53, "UDP"),
                ("metrics", 9090, "TCP"),
            ],
        );
        // Two slices: the named target port resolves to different numbers per slice.
        let a = slice(
            "shop",
            "api-a",
            "api",
            &[("http", 8080, "TCP"), ("dns", 5353, "UDP")],
            &[("10.1.0.1", true, true, false, "n1")],
        );
        let b = slice(
            "shop",
            "api-b",
            "api",
            &[("http", 8081, "TCP"), ("dns", 5353, "UDP")],
            &[("10.1.0.2", true, true, false, "n2")],
        );
        let other = slice(
            "shop",
            "other-a",
            "other",
            &[("http", 1, "TCP")],
            &[("10.9.9.9", true, true, false, "n1")],
        );
        let model = build_model([&svc], [&a, &b, &other]);
        assert_eq!(model.ports.len(), 3);
        let by_port: BTreeMap<String, Vec<String>> = model
            .ports
            .values()
            .map(|p| {
                (
                    p.name.to_string(),
                    p.endpoints.iter().map(Endpoint::addr).collect(),
                )
            })
            .collect();
        assert_eq!(
            by_port["shop/api:http"],
            vec!["10.1.0.1:8080", "10.1.0.2:8081"]
        );
        assert_eq!(
            by_port["shop/api:dns"],
            vec!["10.1.0.1:5353", "10.1.0.2:5353"]
        );
        // The slices do not publish "metrics": no endpoints, not someone else's.
        assert!(by_port["shop/api:metrics"].is_empty());
        let dns = model.ports.values().find(|p| p.name.port == "dns").unwrap();
        assert_eq!(dns.name.protocol, Protocol::Udp);
    }

    #[test]
    fn headless_external_name_and_ipv6_services_are_skipped() {
        let headless = service("d", "h", "None", &[("", 80, "TCP")]);
        let v6 = service("d", "v6", "fd00::1", &[("", 80, "TCP")]);
        let mut ext = service("d", "ext", "", &[("", 80, "TCP")]);
        ext.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        let ok = service("d", "ok", "10.96.0.1", &[("", 80, "TCP")]);
        let model = build_model([&headless, &v6, &ext, &ok], []);
        let names: Vec<String> = model.ports.keys().map(|k| k.to_string()).collect();
        assert_eq!(names, vec!["d/ok:"]);
    }

    #[test]
    fn affinity_node_ports_and_policy_are_read() {
        let svc = with_affinity(
            with_node_ports(service("d", "w", "10.96.0.2", &[("", 80, "TCP")]), &[30080]),
            60,
        );
        let mut local =
            with_node_ports(service("d", "l", "10.96.0.3", &[("", 80, "TCP")]), &[30081]);
        local.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
        // A node port on a ClusterIP service (left over after a type change) is ignored.
        let mut stale = service("d", "c", "10.96.0.4", &[("", 80, "TCP")]);
        stale.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(30082);
        let model = build_model([&svc, &local, &stale], []);
        let get = |n: &str| {
            model
                .ports
                .values()
                .find(|p| p.name.name == n)
                .unwrap()
                .clone()
        };
        assert_eq!(get("w").affinity_timeout, Some(60));
        assert_eq!(get("w").node_port, Some(30080));
        assert!(!get("w").external_local);
        assert!(get("l").external_local);
        assert_eq!(get("l").affinity_timeout, None);
        assert_eq!(get("c").node_port, None);
    }

    #[test]
    fn duplicate_addresses_across_slices_keep_the_ready_copy() {
        let svc = service("d", "w", "10.96.0.2", &[("", 80, "TCP")]);
        let a = slice(
            "d",
            "w-a",
            "w",
            &[("", 8080, "TCP")],
            &[("10.0.0.1", false, false, true, "n1")],
        );
        let b = slice(
            "d",
            "w-b",
            "w",
            &[("", 8080, "TCP")],
            &[("10.0.0.1", true, true, false, "n1")],
        );
        let model = build_model([&svc], [&a, &b]);
        let sp = model.ports.values().next().unwrap();
        assert_eq!(sp.endpoints.len(), 1);
        assert!(sp.endpoints[0].ready);
    }

    #[test]
    fn local_endpoints_only_on_this_node() {
        let svc = service("d", "w", "10.96.0.2", &[("", 80, "TCP")]);
        let a = slice(
            "d",
            "w-a",
            "w",
            &[("", 8080, "TCP")],
            &[
                ("10.0.0.1", true, true, false, "n1"),
                ("10.0.0.2", true, true, false, "n2"),
            ],
        );
        let model = build_model([&svc], [&a]);
        let sp = model.ports.values().next().unwrap();
        assert_eq!(ips(&sp.local_endpoints("n2")), vec!["10.0.0.2:8080"]);
        assert!(sp.local_endpoints("n3").is_empty());
    }
}
