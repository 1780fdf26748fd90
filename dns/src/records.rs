//! The cluster's DNS records, computed from Services and EndpointSlices (pure).
//!
//! This follows the Kubernetes DNS specification for services
//! (<https://github.com/kubernetes/dns/blob/master/docs/specification.md>):
//! - a ClusterIP service `web` in `shop` gets `web.shop.svc.<domain>` A/AAAA records
//!   for its cluster IPs, and `_<port>._<proto>.web.shop.svc.<domain>` SRV records for
//!   each named port, pointing at the service name;
//! - a headless service (`clusterIP: None`) gets one A/AAAA record per ready endpoint
//!   address (all endpoints with `publishNotReadyAddresses`), SRV records per named port
//!   and endpoint, and a name per endpoint: `<hostname>.web.shop.svc.<domain>` when the
//!   endpoint slice carries a hostname (pods with `hostname` + `subdomain`), else the
//!   dashed address `10-1-2-3.web.shop.svc.<domain>`, as CoreDNS names them;
//! - an ExternalName service gets a CNAME to its external name;
//! - every cluster IP and named endpoint address gets a PTR record.
//!
//! The result is an immutable [`RecordTable`]; the watch layer builds a new one on each
//! change and swaps it in whole, so a query never sees half an update.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One record's data. Names are lower-case, fully qualified, without the final dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rdata {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Ptr(String),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
}

impl Rdata {
    fn from_ip(ip: IpAddr) -> Rdata {
        match ip {
            IpAddr::V4(v4) => Rdata::A(v4),
            IpAddr::V6(v6) => Rdata::Aaaa(v6),
        }
    }
}

/// What the table says about one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The name has these records (of any type; the server picks by query type).
    Found(&'a [Rdata]),
    /// The name exists in the cluster zone (it is a parent of a name with records, such
    /// as `shop.svc.cluster.local`) but has no records itself: NOERROR with no answers.
    Empty,
    /// The name is inside the cluster zone and does not exist: NXDOMAIN.
    NxDomain,
    /// The name is outside the zones this table answers for: forward it.
    Outside,
}

/// Every record of the cluster zone and the PTR records of service addresses.
#[derive(Debug, Clone, Default)]
pub struct RecordTable {
    /// The cluster domain, lower-case, no final dot (`cluster.local`).
    pub domain: String,
    /// Whether the table was built from complete caches; until then cluster names
    /// cannot be denied (the server answers SERVFAIL so clients retry).
    pub ready: bool,
    /// The SOA serial; the watch layer bumps it on each rebuild so secondaries and
    /// caches can tell versions apart.
    pub serial: u32,
    records: HashMap<String, Vec<Rdata>>,
    /// Names inside the zone without records that still exist (empty non-terminals).
    parents: HashSet<String>,
}

/// Lower-cases a query name and strips the final dot, the form table keys use.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The reverse-lookup name of an address: `4.3.2.1.in-addr.arpa` or the nibble form
/// under `ip6.arpa`.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            out.push_str("ip6.arpa");
            out
        }
    }
}

/// The label CoreDNS gives an endpoint without hostname: its address with dashes.
fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

impl RecordTable {
    /// An empty, not yet ready table for `domain`.
    pub fn empty(domain: &str) -> RecordTable {
        RecordTable {
            domain: normalize(domain),
            ..Default::default()
        }
    }

    /// Computes every record from the informer caches' contents.
    pub fn build<'a>(
        domain: &str,
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> RecordTable {
        let mut b = Builder {
            domain: normalize(domain),
            records: BTreeMap::new(),
        };
        let mut by_service: HashMap<(String, String), Vec<&EndpointSlice>> = HashMap::new();
        for slice in slices {
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
        for svc in services {
            let name = svc.metadata.name.clone().unwrap_or_default();
            let ns = svc.metadata.namespace.clone().unwrap_or_default();
            if name.is_empty() || ns.is_empty() {
                continue;
            }
            let slices = by_service
                .get(&(ns.clone(), name.clone()))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            b.add_service(svc, &name, &ns, slices);
        }
        b.finish(true)
    }

    /// What the table holds for `name` (any case, with or without the final dot).
    pub fn lookup(&self, name: &str) -> Lookup<'_> {
        let name = normalize(name);
        if let Some(rs) = self.records.get(&name) {
            return Lookup::Found(rs);
        }
        if name == self.domain || self.parents.contains(&name) {
            return Lookup::Empty;
        }
        if self.in_zone(&name) {
            return Lookup::NxDomain;
        }
        Lookup::Outside
    }

    /// Whether `name` (normalized) is the cluster domain or below it.
    pub fn in_zone(&self, name: &str) -> bool {
        name == self.domain || name.ends_with(&format!(".{}", self.domain))
    }

    /// How many names have records (for logs and benchmarks).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

struct Builder {
    domain: String,
    records: BTreeMap<String, BTreeSet<Rdata>>,
}

impl Builder {
    fn add(&mut self, name: String, data: Rdata) {
        self.records.entry(name).or_default().insert(data);
    }

    fn add_service(&mut self, svc: &Service, name: &str, ns: &str, slices: &[&EndpointSlice]) {
        let Some(spec) = svc.spec.as_ref() else {
            return;
        };
        let fqdn = format!("{name}.{ns}.svc.{}", self.domain);
        if spec.type_.as_deref() == Some("ExternalName") {
            if let Some(target) = spec.external_name.as_deref().filter(|t| !t.is_empty()) {
                self.add(fqdn, Rdata::Cname(normalize(target)));
            }
            return;
        }
        let mut ips: Vec<String> = spec.cluster_ips.clone().unwrap_or_default();
        if ips.is_empty() {
            ips.extend(spec.cluster_ip.clone());
        }
        let headless = ips.iter().any(|ip| ip == "None");
        if !headless {
            let ips: Vec<IpAddr> = ips.iter().filter_map(|ip| ip.parse().ok()).collect();
            if ips.is_empty() {
                return; // not allocated yet
            }
            for ip in ips {
                self.add(fqdn.clone(), Rdata::from_ip(ip));
                self.add(reverse_name(ip), Rdata::Ptr(fqdn.clone()));
            }
            for p in spec.ports.iter().flatten() {
                let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) else {
                    continue;
                };
                let Ok(port) = u16::try_from(p.port) else {
                    continue;
                };
                let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                let srv = format!("_{}._{proto}.{fqdn}", port_name.to_ascii_lowercase());
                self.add(
                    srv,
                    Rdata::Srv {
                        priority: 0,
                        weight: 100,
                        port,
                        target: fqdn.clone(),
                    },
                );
            }
            return;
        }
        let include_not_ready = spec.publish_not_ready_addresses == Some(true);
        for slice in slices {
            for ep in &slice.endpoints {
                // An endpoint without conditions counts as ready (API convention).
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready && !include_not_ready {
                    continue;
                }
                let addrs: Vec<IpAddr> =
                    ep.addresses.iter().filter_map(|a| a.parse().ok()).collect();
                let Some(first) = addrs.first().copied() else {
                    continue;
                };
                let host = ep
                    .hostname
                    .as_deref()
                    .filter(|h| !h.is_empty())
                    .map(str::to_ascii_lowercase)
                    .unwrap_or_else(|| dashed(first));
                let host_fqdn = format!("{host}.{fqdn}");
                for ip in &addrs {
                    self.add(fqdn.clone(), Rdata::from_ip(*ip));
                    self.add(host_fqdn.clone(), Rdata::from_ip(*ip));
                    self.add(reverse_name(*ip), Rdata::Ptr(host_fqdn.clone()));
                }
                for p in slice.ports.iter().flatten() {
                    let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) else {
                        continue;
                    };
                    let Some(port) = p.port.and_then(|p| u16::try_from(p).ok()) else {
                        continue;
                    };
                    let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                    let srv = format!("_{}._{proto}.{fqdn}", port_name.to_ascii_lowercase());
                    self.add(
                        srv,
                        Rdata::Srv {
                            priority: 0,
                            weight: 100,
                            port,
                            target: host_fqdn.clone(),
                        },
                    );
                }
            }
        }
    }

    fn finish(self, ready: bool) -> RecordTable {
        let mut parents = HashSet::new();
        let suffix = format!(".{}", self.domain);
        for name in self.records.keys() {
            // Only zone names have parents worth answering for; reverse names do not.
            let Some(mut rest) = name.strip_suffix(&suffix) else {
                continue;
            };
            while let Some((_, parent)) = rest.split_once('.') {
                parents.insert(format!("{parent}{suffix}"));
                rest = parent;
            }
        }
        let records = self
            .records
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect();
        RecordTable {
            domain: self.domain,
            ready,
            serial: 0,
            records,
            parents,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }
    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).unwrap()
    }

    fn cluster() -> RecordTable {
        let services = [
            svc(
                json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 81}]}}),
            ),
            svc(
                json!({"metadata": {"name": "db", "namespace": "shop"}, "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}),
            ),
            svc(
                json!({"metadata": {"name": "ext", "namespace": "shop"}, "spec": {"type": "ExternalName", "externalName": "Example.COM."}}),
            ),
            svc(
                json!({"metadata": {"name": "dual", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.30", "clusterIPs": ["10.96.0.30", "fd00::30"], "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}}),
            ),
            svc(
                json!({"metadata": {"name": "pending", "namespace": "default"}, "spec": {"ports": [{"port": 1}]}}),
            ),
            svc(
                json!({"metadata": {"name": "loose", "namespace": "shop"}, "spec": {"clusterIP": "None", "publishNotReadyAddresses": true}}),
            ),
        ];
        let slices = [
            slice(
                json!({"metadata": {"name": "db-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": "db"}}, "addressType": "IPv4",
                "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
                "endpoints": [
                    {"addresses": ["10.244.1.5"], "hostname": "db-0", "conditions": {"ready": true}},
                    {"addresses": ["10.244.2.6"], "conditions": {"ready": true}},
                    {"addresses": ["10.244.2.7"], "conditions": {"ready": false}},
                    {"addresses": ["10.244.2.8"]}
                ]}),
            ),
            // a slice of the same name in another namespace must not leak in
            slice(
                json!({"metadata": {"name": "db-x", "namespace": "other", "labels": {"kubernetes.io/service-name": "db"}}, "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.244.9.9"]}]}),
            ),
            slice(
                json!({"metadata": {"name": "loose-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "loose"}}, "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.244.3.3"], "conditions": {"ready": false}}]}),
            ),
            slice(
                json!({"metadata": {"name": "orphan", "namespace": "shop"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.244.4.4"]}]}),
            ),
        ];
        RecordTable::build("Cluster.Local.", services.iter(), slices.iter())
    }

    #[derive(Debug, PartialEq)]
    enum Want {
        F(Vec<Rdata>),
        Empty,
        Nx,
        Out,
    }
    fn want_of(l: Lookup<'_>) -> Want {
        match l {
            Lookup::Found(rs) => Want::F(rs.to_vec()),
            Lookup::Empty => Want::Empty,
            Lookup::NxDomain => Want::Nx,
            Lookup::Outside => Want::Out,
        }
    }

    fn a(s: &str) -> Rdata {
        match s.parse::<IpAddr>().unwrap() {
            IpAddr::V4(v) => Rdata::A(v),
            IpAddr::V6(v) => Rdata::Aaaa(v),
        }
    }
    fn srv(port: u16, target: &str) -> Rdata {
        Rdata::Srv {
            priority: 0,
            weight: 100,
            port,
            target: target.into(),
        }
    }

    #[test]
    fn names_resolve_as_the_kubernetes_dns_spec_says() {
        let t = cluster();
        use Want::*;
        let cases: Vec<(&str, Want)> = vec![
            ("web.shop.svc.cluster.local", F(vec![a("10.96.0.20")])),
            ("WEB.Shop.svc.cluster.local.", F(vec![a("10.96.0.20")])),
            (
                "_http._tcp.web.shop.svc.cluster.local",
                F(vec![srv(80, "web.shop.svc.cluster.local")]),
            ),
            // unnamed ports get no SRV record
            ("_81._tcp.web.shop.svc.cluster.local", Nx),
            (
                "20.0.96.10.in-addr.arpa",
                F(vec![Rdata::Ptr("web.shop.svc.cluster.local".into())]),
            ),
            // headless: ready endpoints (and those without conditions) only
            (
                "db.shop.svc.cluster.local",
                F(vec![a("10.244.1.5"), a("10.244.2.6"), a("10.244.2.8")]),
            ),
            ("db-0.db.shop.svc.cluster.local", F(vec![a("10.244.1.5")])),
            (
                "10-244-2-6.db.shop.svc.cluster.local",
                F(vec![a("10.244.2.6")]),
            ),
            ("10-244-2-7.db.shop.svc.cluster.local", Nx),
            (
                "5.1.244.10.in-addr.arpa",
                F(vec![Rdata::Ptr("db-0.db.shop.svc.cluster.local".into())]),
            ),
            ("db.other.svc.cluster.local", Nx),
            (
                "ext.shop.svc.cluster.local",
                F(vec![Rdata::Cname("example.com".into())]),
            ),
            (
                "dual.default.svc.cluster.local",
                F(vec![a("10.96.0.30"), a("fd00::30")]),
            ),
            (
                "_dns._udp.dual.default.svc.cluster.local",
                F(vec![srv(53, "dual.default.svc.cluster.local")]),
            ),
            ("pending.default.svc.cluster.local", Nx),
            ("loose.shop.svc.cluster.local", F(vec![a("10.244.3.3")])),
            // existing parents answer NOERROR with no data, not NXDOMAIN
            ("shop.svc.cluster.local", Empty),
            ("svc.cluster.local", Empty),
            ("cluster.local", Empty),
            ("_tcp.web.shop.svc.cluster.local", Empty),
            ("nope.svc.cluster.local", Nx),
            ("web.shop.shop.svc.cluster.local", Nx),
            ("example.com", Out),
            ("9.9.9.9.in-addr.arpa", Out),
            ("notcluster.local", Out),
        ];
        for (name, want) in cases {
            assert_eq!(want_of(t.lookup(name)), want, "lookup of {name}");
        }
        assert!(t.ready);
    }

    #[test]
    fn srv_records_of_headless_services_name_each_endpoint() {
        let t = cluster();
        let Lookup::Found(rs) = t.lookup("_pg._tcp.db.shop.svc.cluster.local") else {
            panic!("no srv")
        };
        let targets: Vec<_> = rs
            .iter()
            .map(|r| match r {
                Rdata::Srv {
                    target, port: 5432, ..
                } => target.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            targets,
            [
                "10-244-2-6.db.shop.svc.cluster.local",
                "10-244-2-8.db.shop.svc.cluster.local",
                "db-0.db.shop.svc.cluster.local"
            ]
        );
    }

    #[test]
    fn reverse_names_follow_in_addr_and_ip6_arpa() {
        let cases = [
            ("10.96.0.1", "1.0.96.10.in-addr.arpa"),
            (
                "fd00::1",
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
            ),
        ];
        for (ip, want) in cases {
            assert_eq!(reverse_name(ip.parse().unwrap()), want);
        }
    }

    #[test]
    fn a_custom_domain_replaces_cluster_local() {
        let s = svc(
            json!({"metadata": {"name": "web", "namespace": "a"}, "spec": {"clusterIP": "10.0.0.1"}}),
        );
        let t = RecordTable::build("lab.internal", [&s], []);
        assert_eq!(
            t.lookup("web.a.svc.lab.internal"),
            Lookup::Found(&[a("10.0.0.1")])
        );
        assert_eq!(t.lookup("web.a.svc.cluster.local"), Lookup::Outside);
        assert!(!RecordTable::empty("x").ready);
    }
}
