//! Rule computation: the proxy model plus this node's facts become the complete set of
//! iptables chains the proxy owns, in the layout kube-proxy's iptables mode uses
//! (<https://kubernetes.io/docs/reference/networking/virtual-ips/#proxy-mode-iptables>).
//!
//! Pure: no I/O. Rules are kept as rule specs without the `-A CHAIN` prefix so that the
//! diff can reuse the same text for `-A`, `-I` and `-D`.
//!
//! nat table:
//! - `KUBE-SERVICES` (from PREROUTING and OUTPUT): one rule per cluster IP / external IP
//!   and port jumping to the service chain; last, the jump to `KUBE-NODEPORTS`.
//! - `KUBE-SVC-<hash>`: picks one endpoint with `statistic` probabilities (and `recent`
//!   for ClientIP affinity); marks off-cluster sources for masquerade.
//! - `KUBE-SEP-<hash>`: DNAT to one endpoint; marks hairpin traffic for masquerade.
//! - `KUBE-EXT-<hash>`: node port / external IP traffic; masquerades (policy Cluster) or
//!   goes to `KUBE-SVL-<hash>`, the node-local endpoints (policy Local).
//! - `KUBE-NODEPORTS`, `KUBE-MARK-MASQ`, `KUBE-POSTROUTING` (from POSTROUTING).
//!
//! filter table: `KUBE-SERVICES` and `KUBE-EXTERNAL-SERVICES` REJECT traffic to service
//! ports without endpoints so clients fail fast instead of hanging; `KUBE-FORWARD`
//! accepts marked and established service traffic when FORWARD's policy is DROP.
//! Both tables carry a `KUBE-PROXY-CANARY` chain whose loss reveals a flush.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use data_encoding::BASE32;
use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

use crate::model::{Endpoint, ProxyModel, ServicePortInfo, ServicePortName};

/// Packet mark bit meaning "masquerade this on the way out" (kube-proxy's default).
pub const MASQ_MARK: &str = "0x4000";

pub const KUBE_SERVICES: &str = "KUBE-SERVICES";
pub const KUBE_NODEPORTS: &str = "KUBE-NODEPORTS";
pub const KUBE_MARK_MASQ: &str = "KUBE-MARK-MASQ";
pub const KUBE_POSTROUTING: &str = "KUBE-POSTROUTING";
pub const KUBE_EXTERNAL_SERVICES: &str = "KUBE-EXTERNAL-SERVICES";
pub const KUBE_FORWARD: &str = "KUBE-FORWARD";
pub const CANARY: &str = "KUBE-PROXY-CANARY";

/// Prefixes of the per-service chains; any chain with one of them belongs to the proxy.
const OWNED_PREFIXES: [&str; 4] = ["KUBE-SVC-", "KUBE-SEP-", "KUBE-EXT-", "KUBE-SVL-"];
const OWNED_FIXED: [&str; 7] = [
    KUBE_SERVICES,
    KUBE_NODEPORTS,
    KUBE_MARK_MASQ,
    KUBE_POSTROUTING,
    KUBE_EXTERNAL_SERVICES,
    KUBE_FORWARD,
    CANARY,
];

/// Whether a chain name is one the proxy creates (and may therefore delete).
pub fn is_owned_chain(name: &str) -> bool {
    OWNED_FIXED.contains(&name) || OWNED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// An iptables table the proxy writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Nat,
    Filter,
}

impl Table {
    pub const ALL: [Table; 2] = [Table::Nat, Table::Filter];

    pub fn name(self) -> &'static str {
        match self {
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }
}

/// One chain's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    /// Rule specs in order.
    pub rules: Vec<String>,
    /// Rules that must stay after `rules` (the node-port jump at the end of
    /// KUBE-SERVICES).
    pub tail: Vec<String>,
    /// The order of `rules` does not matter (each matches a distinct destination), so
    /// the diff may edit single rules instead of rewriting the chain.
    pub order_free: bool,
}

impl Chain {
    fn ordered(rules: Vec<String>) -> Chain {
        Chain {
            rules,
            tail: Vec::new(),
            order_free: false,
        }
    }

    /// All rules in the order they must appear.
    pub fn all_rules(&self) -> impl Iterator<Item = &String> {
        self.rules.iter().chain(self.tail.iter())
    }
}

/// Every chain the proxy owns, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    pub nat: BTreeMap<String, Chain>,
    pub filter: BTreeMap<String, Chain>,
}

impl RuleSet {
    pub fn table(&self, t: Table) -> &BTreeMap<String, Chain> {
        match t {
            Table::Nat => &self.nat,
            Table::Filter => &self.filter,
        }
    }

    fn table_mut(&mut self, t: Table) -> &mut BTreeMap<String, Chain> {
        match t {
            Table::Nat => &mut self.nat,
            Table::Filter => &mut self.filter,
        }
    }

    /// Adds a service port's chains and shared rules.
    pub fn add_fragment(&mut self, frag: &Fragment) {
        for (name, chain) in &frag.chains {
            self.nat.insert(name.clone(), chain.clone());
        }
        for (t, chain, rule) in &frag.shared {
            self.table_mut(*t)
                .entry(chain.to_string())
                .or_default()
                .rules
                .push(rule.clone());
        }
    }

    /// Removes what `add_fragment` added for the same fragment.
    pub fn remove_fragment(&mut self, frag: &Fragment) {
        for (name, _) in &frag.chains {
            self.nat.remove(name);
        }
        for (t, chain, rule) in &frag.shared {
            if let Some(c) = self.table_mut(*t).get_mut(*chain) {
                if let Some(pos) = c.rules.iter().position(|r| r == rule) {
                    c.rules.remove(pos);
                }
            }
        }
    }

    /// Total number of rules, for logs and benchmarks.
    pub fn rule_count(&self) -> usize {
        Table::ALL
            .iter()
            .flat_map(|t| self.table(*t).values())
            .map(|c| c.rules.len() + c.tail.len())
            .sum()
    }
}

/// What the rules need to know about the node they run on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// The Node object's name, to find node-local endpoints.
    pub name: String,
    /// Addresses node ports answer on; empty means every local address
    /// (`-m addrtype --dst-type LOCAL`, loopback excluded).
    pub node_port_addresses: Vec<Ipv4Addr>,
    /// The pod network; traffic to a cluster IP from outside it is masqueraded so
    /// replies come back through this node. Unknown: no such masquerade.
    pub cluster_cidr: Option<Ipv4Net>,
}

/// A jump from a built-in chain into the proxy's chains. These live in chains the proxy
/// does not own, so they are inserted once and checked, never rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinJump {
    pub table: Table,
    pub chain: &'static str,
    pub target: &'static str,
    pub rule: String,
}

/// The jumps that hook the proxy's chains into the built-in ones.
pub fn builtin_jumps() -> Vec<BuiltinJump> {
    let j = |table, chain, target, rule: &str| BuiltinJump {
        table,
        chain,
        target,
        rule: rule.to_string(),
    };
    vec![
        j(Table::Nat, "PREROUTING", KUBE_SERVICES, "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"),
        j(Table::Nat, "OUTPUT", KUBE_SERVICES, "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"),
        j(Table::Nat, "POSTROUTING", KUBE_POSTROUTING, "-m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"),
        j(
            Table::Filter,
            "INPUT",
            KUBE_EXTERNAL_SERVICES,
            "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
        ),
        j(Table::Filter, "FORWARD", KUBE_SERVICES, "-m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"),
        j(
            Table::Filter,
            "FORWARD",
            KUBE_EXTERNAL_SERVICES,
            "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
        ),
        j(Table::Filter, "FORWARD", KUBE_FORWARD, "-m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD"),
        j(Table::Filter, "OUTPUT", KUBE_SERVICES, "-m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"),
    ]
}

/// First 16 characters of base32(sha256(input)), kube-proxy's chain-name hash.
fn hash16(input: &str) -> String {
    let digest = Sha256::digest(input.as_bytes());
    BASE32.encode(&digest)[..16].to_string()
}

fn port_hash(spn: &ServicePortName) -> String {
    hash16(&format!("{spn}{}", spn.protocol.iptables_name()))
}

/// `KUBE-SVC-<hash>` for a service port.
pub fn service_chain(spn: &ServicePortName) -> String {
    format!("KUBE-SVC-{}", port_hash(spn))
}

/// `KUBE-EXT-<hash>` for a service port's external traffic.
pub fn external_chain(spn: &ServicePortName) -> String {
    format!("KUBE-EXT-{}", port_hash(spn))
}

/// `KUBE-SVL-<hash>`: node-local endpoints of a service port.
pub fn local_chain(spn: &ServicePortName) -> String {
    format!("KUBE-SVL-{}", port_hash(spn))
}

/// `KUBE-SEP-<hash>` for one endpoint of a service port.
pub fn endpoint_chain(spn: &ServicePortName, ep: &Endpoint) -> String {
    format!(
        "KUBE-SEP-{}",
        hash16(&format!(
            "{spn}{}{}",
            spn.protocol.iptables_name(),
            ep.addr()
        ))
    )
}

/// Computes every chain the proxy owns for this model on this node.
pub fn compute(model: &ProxyModel, node: &NodeInfo) -> RuleSet {
    let mut set = RuleSet::default();

    for (t, chain) in [
        (Table::Nat, KUBE_SERVICES),
        (Table::Nat, KUBE_NODEPORTS),
        (Table::Filter, KUBE_SERVICES),
        (Table::Filter, KUBE_EXTERNAL_SERVICES),
    ] {
        set.table_mut(t).insert(
            chain.to_string(),
            Chain {
                order_free: true,
                ..Default::default()
            },
        );
    }
    set.nat.insert(
        KUBE_MARK_MASQ.into(),
        Chain::ordered(vec![format!("-j MARK --or-mark {MASQ_MARK}")]),
    );
    set.nat.insert(
        KUBE_POSTROUTING.into(),
        Chain::ordered(vec![
            format!("-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN"),
            // Clear the bit so a packet that is re-routed is not masqueraded twice.
            format!("-j MARK --xor-mark {MASQ_MARK}"),
            "-m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE"
                .into(),
        ]),
    );
    set.filter.insert(
        KUBE_FORWARD.into(),
        Chain::ordered(vec![
            format!("-m comment --comment \"kubernetes forwarding rules\" -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT"),
            "-m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
                .into(),
        ]),
    );
    for t in Table::ALL {
        set.table_mut(t).insert(
            CANARY.into(),
            Chain::ordered(vec![
                "-m comment --comment \"skiff-proxy canary\" -j RETURN".into(),
            ]),
        );
    }

    let nodeports_tail: Vec<String> = if node.node_port_addresses.is_empty() {
        // Loopback is excluded: DNAT of 127/8 to a pod needs route_localnet, which a
        // lab node should not need to turn on.
        vec!["-m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS".into()]
    } else {
        node.node_port_addresses
            .iter()
            .map(|a| format!("-d {a}/32 -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -j KUBE-NODEPORTS"))
            .collect()
    };
    set.nat.get_mut(KUBE_SERVICES).expect("inserted above").tail = nodeports_tail;

    for sp in model.ports.values() {
        set.add_fragment(&port_fragment(sp, node));
    }
    set
}

/// What one service port adds to the rule set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fragment {
    /// nat chains only this service port uses (KUBE-SVC/SEP/EXT/SVL-*), in order of creation.
    pub chains: Vec<(String, Chain)>,
    /// Its rules in the shared order-free chains: (table, chain, rule).
    pub shared: Vec<(Table, &'static str, String)>,
}

impl Fragment {
    fn own(&mut self, name: String, chain: Chain) {
        self.chains.push((name, chain));
    }

    fn push(&mut self, table: Table, chain: &'static str, rule: String) {
        self.shared.push((table, chain, rule));
    }
}

/// The rules one service port contributes: its own chains and its entries in the
/// shared order-free chains. `compute` is the sum of all fragments; the syncer uses
/// fragments directly to turn one changed service into a small restore.
pub fn port_fragment(sp: &ServicePortInfo, node: &NodeInfo) -> Fragment {
    let mut frag = Fragment::default();
    port_rules(&mut frag, sp, node);
    frag
}

fn port_rules(set: &mut Fragment, sp: &ServicePortInfo, node: &NodeInfo) {
    let spn = &sp.name;
    let proto = spn.protocol.iptables_name();
    let port = sp.port;
    let svc_chain = service_chain(spn);
    let ext_chain = external_chain(spn);
    let endpoints = sp.usable_endpoints();

    if endpoints.is_empty() {
        // Reject instead of letting the SYN hang: the client sees "connection refused".
        let reject = "-j REJECT --reject-with icmp-port-unreachable";
        if let Some(ip) = sp.cluster_ip {
            set.push(
                Table::Filter,
                KUBE_SERVICES,
                format!("-d {ip}/32 -p {proto} -m comment --comment \"{spn} has no endpoints\" -m {proto} --dport {port} {reject}"),
            );
        }
        for ip in &sp.external_ips {
            set.push(
                Table::Filter,
                KUBE_EXTERNAL_SERVICES,
                format!("-d {ip}/32 -p {proto} -m comment --comment \"{spn} has no endpoints\" -m {proto} --dport {port} {reject}"),
            );
        }
        if let Some(np) = sp.node_port {
            set.push(
                Table::Filter,
                KUBE_EXTERNAL_SERVICES,
                format!("-p {proto} -m comment --comment \"{spn} has no endpoints\" -m addrtype --dst-type LOCAL -m {proto} --dport {np} {reject}"),
            );
        }
        return;
    }

    // KUBE-SERVICES entries.
    if let Some(ip) = sp.cluster_ip {
        set.push(
            Table::Nat,
            KUBE_SERVICES,
            format!("-d {ip}/32 -p {proto} -m comment --comment \"{spn} cluster IP\" -m {proto} --dport {port} -j {svc_chain}"),
        );
    }
    for ip in &sp.external_ips {
        set.push(
            Table::Nat,
            KUBE_SERVICES,
            format!("-d {ip}/32 -p {proto} -m comment --comment \"{spn} external IP\" -m {proto} --dport {port} -j {ext_chain}"),
        );
    }
    if let Some(np) = sp.node_port {
        set.push(
            Table::Nat,
            KUBE_NODEPORTS,
            format!(
                "-p {proto} -m comment --comment \"{spn}\" -m {proto} --dport {np} -j {ext_chain}"
            ),
        );
    }

    // KUBE-SVC: masquerade what does not come from a pod, then pick an endpoint.
    let mut svc_rules = Vec::new();
    if let (Some(cidr), Some(ip)) = (node.cluster_cidr, sp.cluster_ip) {
        svc_rules.push(format!(
            "! -s {cidr} -d {ip}/32 -p {proto} -m comment --comment \"{spn} cluster IP\" -m {proto} --dport {port} -j {KUBE_MARK_MASQ}"
        ));
    }
    svc_rules.extend(balance_rules(sp, &endpoints));
    set.own(svc_chain.clone(), Chain::ordered(svc_rules));

    // KUBE-SEP per endpoint (also the local ones: they are a subset of the usable ones).
    for ep in &endpoints {
        let sep = endpoint_chain(spn, ep);
        let affinity = if sp.affinity_timeout.is_some() {
            format!(" -m recent --name {sep} --mask 255.255.255.255 --rsource --set")
        } else {
            String::new()
        };
        set.own(
            sep,
            Chain::ordered(vec![
                // Hairpin: a pod reaching itself through the service must be masqueraded
                // or it would answer itself directly and the client would drop the reply.
                format!("-s {}/32 -m comment --comment \"{spn}\" -j {KUBE_MARK_MASQ}", ep.ip),
                format!("-p {proto} -m comment --comment \"{spn}\"{affinity} -m {proto} -j DNAT --to-destination {}", ep.addr()),
            ]),
        );
    }

    if !sp.has_external() {
        return;
    }
    let mut ext_rules = Vec::new();
    if !sp.external_local {
        // Cluster policy: the endpoint may be on another node; masquerade so the reply
        // returns through this node and is un-NATed here.
        ext_rules.push(format!("-m comment --comment \"masquerade traffic for {spn} external destinations\" -j {KUBE_MARK_MASQ}"));
        ext_rules.push(format!("-j {svc_chain}"));
    } else {
        let local = sp.local_endpoints(&node.name);
        if let Some(cidr) = node.cluster_cidr {
            // Pods are inside the cluster: they may use any endpoint.
            ext_rules.push(format!("-s {cidr} -m comment --comment \"pod traffic for {spn} external destinations\" -j {svc_chain}"));
        }
        // The node itself is treated as inside the cluster as well.
        ext_rules.push(format!(
            "-m comment --comment \"masquerade LOCAL traffic for {spn} external destinations\" -m addrtype --src-type LOCAL -j {KUBE_MARK_MASQ}"
        ));
        ext_rules.push(format!(
            "-m comment --comment \"route LOCAL traffic for {spn} external destinations\" -m addrtype --src-type LOCAL -j {svc_chain}"
        ));
        if local.is_empty() {
            // Nothing local: external traffic is dropped in the filter table, as the
            // policy says, rather than silently sent elsewhere.
            if let Some(np) = sp.node_port {
                set.push(
                    Table::Filter,
                    KUBE_EXTERNAL_SERVICES,
                    format!("-p {proto} -m comment --comment \"{spn} has no local endpoints\" -m addrtype --dst-type LOCAL -m {proto} --dport {np} -j DROP"),
                );
            }
            for ip in &sp.external_ips {
                set.push(
                    Table::Filter,
                    KUBE_EXTERNAL_SERVICES,
                    format!("-d {ip}/32 -p {proto} -m comment --comment \"{spn} has no local endpoints\" -m {proto} --dport {port} -j DROP"),
                );
            }
        } else {
            let svl = local_chain(spn);
            ext_rules.push(format!("-j {svl}"));
            set.own(svl, Chain::ordered(balance_rules(sp, &local)));
        }
    }
    set.own(ext_chain, Chain::ordered(ext_rules));
}

/// Affinity checks first (a known client goes back to its endpoint), then a random
/// choice: rule i of n matches with probability 1/(n-i), which spreads uniformly.
fn balance_rules(sp: &ServicePortInfo, endpoints: &[&Endpoint]) -> Vec<String> {
    let spn = &sp.name;
    let mut rules = Vec::new();
    if let Some(timeout) = sp.affinity_timeout {
        for ep in endpoints {
            let sep = endpoint_chain(spn, ep);
            rules.push(format!(
                "-m comment --comment \"{spn} -> {}\" -m recent --name {sep} --mask 255.255.255.255 --rsource --rcheck --seconds {timeout} --reap -j {sep}",
                ep.addr()
            ));
        }
    }
    let n = endpoints.len();
    for (i, ep) in endpoints.iter().enumerate() {
        let sep = endpoint_chain(spn, ep);
        let remaining = n - i;
        let statistic = if remaining > 1 {
            format!(
                " -m statistic --mode random --probability {:.10}",
                1.0 / remaining as f64
            )
        } else {
            String::new()
        };
        rules.push(format!(
            "-m comment --comment \"{spn} -> {}\"{statistic} -j {sep}",
            ep.addr()
        ));
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::*;
    use crate::model::{build_model, Protocol};

    fn node() -> NodeInfo {
        NodeInfo {
            name: "n1".into(),
            node_port_addresses: vec![],
            cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
        }
    }

    fn spn(ns: &str, name: &str, port: &str, protocol: Protocol) -> ServicePortName {
        ServicePortName {
            namespace: ns.into(),
            name: name.into(),
            port: port.into(),
            protocol,
        }
    }

    /// Renders the chains a test cares about as `-A CHAIN rule` lines, the form a
    /// reader compares with `iptables-save`.
    fn render(set: &RuleSet, table: Table, chains: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for name in chains {
            let chain = set
                .table(table)
                .get(*name)
                .unwrap_or_else(|| panic!("chain {name} missing"));
            out.extend(chain.all_rules().map(|r| format!("-A {name} {r}")));
        }
        out
    }

    #[test]
    fn chain_names_are_stable_hashes() {
        let a = spn("default", "web", "http", Protocol::Tcp);
        let svc = service_chain(&a);
        assert!(
            svc.starts_with("KUBE-SVC-") && svc.len() == "KUBE-SVC-".len() + 16,
            "{svc}"
        );
        assert!(svc["KUBE-SVC-".len()..]
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
        // Same input, same name; protocol and port name are part of the identity.
        assert_eq!(svc, service_chain(&a));
        assert_ne!(
            svc,
            service_chain(&spn("default", "web", "http", Protocol::Udp))
        );
        assert_ne!(
            svc,
            service_chain(&spn("default", "web", "https", Protocol::Tcp))
        );
        assert_eq!(&external_chain(&a)[9..], &svc[9..]);
        // Chain names must fit iptables' 28-character limit.
        assert!(svc.len() <= 28);
        // Golden value: sha256("default/web:httptcp") in base32, first 16 characters.
        assert_eq!(
            svc,
            format!(
                "KUBE-SVC-{}",
                &BASE32.encode(&Sha256::digest(b"default/web:httptcp"))[..16]
            )
        );
    }

    #[test]
    fn golden_cluster_ip_with_three_endpoints() {
        let svc = service("default", "web", "10.96.0.10", &[("http", 80, "TCP")]);
        let sl = slice(
            "default",
            "web-1",
            "web",
            &[("http", 8080, "TCP")],
            &[
                ("10.244.1.2", true, true, false, "n1"),
                ("10.244.2.2", true, true, false, "n2"),
                ("10.244.3.2", true, true, false, "n3"),
            ],
        );
        let set = compute(&build_model([&svc], [&sl]), &node());
        let p = spn("default", "web", "http", Protocol::Tcp);
        let svc_c = service_chain(&p);
        let seps: Vec<String> = ["10.244.1.2", "10.244.2.2", "10.244.3.2"]
            .iter()
            .map(|ip| {
                endpoint_chain(
                    &p,
                    &Endpoint {
                        ip: ip.parse().unwrap(),
                        port: 8080,
                        ready: true,
                        serving: true,
                        terminating: false,
                        node_name: None,
                    },
                )
            })
            .collect();
        let got = render(&set, Table::Nat, &[KUBE_SERVICES, &svc_c, &seps[0]]);
        let want = vec![
            format!("-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment \"default/web:http cluster IP\" -m tcp --dport 80 -j {svc_c}"),
            "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS".to_string(),
            format!("-A {svc_c} ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment \"default/web:http cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ"),
            format!("-A {svc_c} -m comment --comment \"default/web:http -> 10.244.1.2:8080\" -m statistic --mode random --probability 0.3333333333 -j {}", seps[0]),
            format!("-A {svc_c} -m comment --comment \"default/web:http -> 10.244.2.2:8080\" -m statistic --mode random --probability 0.5000000000 -j {}", seps[1]),
            format!("-A {svc_c} -m comment --comment \"default/web:http -> 10.244.3.2:8080\" -j {}", seps[2]),
            format!("-A {} -s 10.244.1.2/32 -m comment --comment \"default/web:http\" -j KUBE-MARK-MASQ", seps[0]),
            format!("-A {} -p tcp -m comment --comment \"default/web:http\" -m tcp -j DNAT --to-destination 10.244.1.2:8080", seps[0]),
        ];
        assert_eq!(got, want);
        // No reject rule for a service with endpoints; no external chain for ClusterIP.
        assert!(set.filter[KUBE_SERVICES].rules.is_empty());
        assert!(!set.nat.contains_key(&external_chain(&p)));
        assert!(set.nat[KUBE_NODEPORTS].rules.is_empty());
    }

    #[test]
    fn golden_no_endpoints_rejects_cluster_ip_and_node_port() {
        let svc = with_node_ports(
            service("default", "web", "10.96.0.10", &[("", 80, "TCP")]),
            &[30080],
        );
        let set = compute(&build_model([&svc], []), &node());
        assert_eq!(
            render(&set, Table::Filter, &[KUBE_SERVICES, KUBE_EXTERNAL_SERVICES]),
            vec![
                "-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment \"default/web: has no endpoints\" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable",
                "-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment \"default/web: has no endpoints\" -m addrtype --dst-type LOCAL -m tcp --dport 30080 -j REJECT --reject-with icmp-port-unreachable",
            ]
        );
        // Nothing in nat for it: only the fixed chains.
        assert!(set.nat[KUBE_SERVICES].rules.is_empty());
        assert!(set
            .nat
            .keys()
            .all(|c| !c.starts_with("KUBE-SVC-") && !c.starts_with("KUBE-SEP-")));
    }

    #[test]
    fn golden_node_port_cluster_policy_masquerades() {
        let svc = with_node_ports(
            service("default", "web", "10.96.0.10", &[("", 80, "TCP")]),
            &[30080],
        );
        let sl = slice(
            "default",
            "web-1",
            "web",
            &[("", 8080, "TCP")],
            &[("10.244.1.2", true, true, false, "n2")],
        );
        let set = compute(&build_model([&svc], [&sl]), &node());
        let p = spn("default", "web", "", Protocol::Tcp);
        let (svc_c, ext_c) = (service_chain(&p), external_chain(&p));
        assert_eq!(
            render(&set, Table::Nat, &[KUBE_NODEPORTS, &ext_c]),
            vec![
                format!("-A KUBE-NODEPORTS -p tcp -m comment --comment \"default/web:\" -m tcp --dport 30080 -j {ext_c}"),
                format!("-A {ext_c} -m comment --comment \"masquerade traffic for default/web: external destinations\" -j KUBE-MARK-MASQ"),
                format!("-A {ext_c} -j {svc_c}"),
            ]
        );
    }

    #[test]
    fn golden_node_port_local_policy() {
        let mut svc = with_node_ports(
            service("default", "web", "10.96.0.10", &[("", 80, "TCP")]),
            &[30080],
        );
        svc.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
        let sl = slice(
            "default",
            "web-1",
            "web",
            &[("", 8080, "TCP")],
            &[
                ("10.244.1.2", true, true, false, "n1"),
                ("10.244.2.2", true, true, false, "n2"),
            ],
        );
        let model = build_model([&svc], [&sl]);
        let p = spn("default", "web", "", Protocol::Tcp);
        let (svc_c, ext_c, svl_c) = (service_chain(&p), external_chain(&p), local_chain(&p));
        let local_sep = endpoint_chain(&p, &model.ports[&p].endpoints[0]);

        let set = compute(&model, &node());
        assert_eq!(
            render(&set, Table::Nat, &[&ext_c, &svl_c]),
            vec![
                format!("-A {ext_c} -s 10.244.0.0/16 -m comment --comment \"pod traffic for default/web: external destinations\" -j {svc_c}"),
                format!("-A {ext_c} -m comment --comment \"masquerade LOCAL traffic for default/web: external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ"),
                format!("-A {ext_c} -m comment --comment \"route LOCAL traffic for default/web: external destinations\" -m addrtype --src-type LOCAL -j {svc_c}"),
                format!("-A {ext_c} -j {svl_c}"),
                format!("-A {svl_c} -m comment --comment \"default/web: -> 10.244.1.2:8080\" -j {local_sep}"),
            ]
        );
        assert!(set.filter[KUBE_EXTERNAL_SERVICES].rules.is_empty());

        // On a node without local endpoints, external traffic is dropped, not forwarded.
        let other = NodeInfo {
            name: "n3".into(),
            ..node()
        };
        let set = compute(&model, &other);
        assert!(!set.nat.contains_key(&svl_c));
        assert_eq!(
            render(&set, Table::Filter, &[KUBE_EXTERNAL_SERVICES]),
            vec!["-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment \"default/web: has no local endpoints\" -m addrtype --dst-type LOCAL -m tcp --dport 30080 -j DROP"]
        );
    }

    #[test]
    fn golden_client_ip_affinity() {
        let svc = with_affinity(
            service("default", "web", "10.96.0.10", &[("", 80, "TCP")]),
            600,
        );
        let sl = slice(
            "default",
            "web-1",
            "web",
            &[("", 8080, "TCP")],
            &[
                ("10.244.1.2", true, true, false, "n1"),
                ("10.244.2.2", true, true, false, "n2"),
            ],
        );
        let model = build_model([&svc], [&sl]);
        let p = spn("default", "web", "", Protocol::Tcp);
        let seps: Vec<String> = model.ports[&p]
            .endpoints
            .iter()
            .map(|e| endpoint_chain(&p, e))
            .collect();
        let set = compute(
            &model,
            &NodeInfo {
                cluster_cidr: None,
                ..node()
            },
        );
        let svc_c = service_chain(&p);
        assert_eq!(
            render(&set, Table::Nat, &[&svc_c, &seps[1]]),
            vec![
                format!("-A {svc_c} -m comment --comment \"default/web: -> 10.244.1.2:8080\" -m recent --name {0} --mask 255.255.255.255 --rsource --rcheck --seconds 600 --reap -j {0}", seps[0]),
                format!("-A {svc_c} -m comment --comment \"default/web: -> 10.244.2.2:8080\" -m recent --name {0} --mask 255.255.255.255 --rsource --rcheck --seconds 600 --reap -j {0}", seps[1]),
                format!("-A {svc_c} -m comment --comment \"default/web: -> 10.244.1.2:8080\" -m statistic --mode random --probability 0.5000000000 -j {}", seps[0]),
                format!("-A {svc_c} -m comment --comment \"default/web: -> 10.244.2.2:8080\" -j {}", seps[1]),
                format!("-A {} -s 10.244.2.2/32 -m comment --comment \"default/web:\" -j KUBE-MARK-MASQ", seps[1]),
                format!("-A {0} -p tcp -m comment --comment \"default/web:\" -m recent --name {0} --mask 255.255.255.255 --rsource --set -m tcp -j DNAT --to-destination 10.244.2.2:8080", seps[1]),
            ]
        );
    }

    #[test]
    fn golden_udp_external_ip_and_explicit_node_addresses() {
        let mut svc = service("kube-system", "dns", "10.96.0.53", &[("dns", 53, "UDP")]);
        svc.spec.as_mut().unwrap().external_ips = Some(vec!["192.168.50.10".into()]);
        let sl = slice(
            "kube-system",
            "dns-1",
            "dns",
            &[("dns", 5353, "UDP")],
            &[("10.244.1.9", true, true, false, "n1")],
        );
        let n = NodeInfo {
            node_port_addresses: vec!["192.168.50.2".parse().unwrap()],
            cluster_cidr: None,
            ..node()
        };
        let set = compute(&build_model([&svc], [&sl]), &n);
        let p = spn("kube-system", "dns", "dns", Protocol::Udp);
        let (svc_c, ext_c) = (service_chain(&p), external_chain(&p));
        assert_eq!(
            render(&set, Table::Nat, &[KUBE_SERVICES, &ext_c]),
            vec![
                format!("-A KUBE-SERVICES -d 10.96.0.53/32 -p udp -m comment --comment \"kube-system/dns:dns cluster IP\" -m udp --dport 53 -j {svc_c}"),
                format!("-A KUBE-SERVICES -d 192.168.50.10/32 -p udp -m comment --comment \"kube-system/dns:dns external IP\" -m udp --dport 53 -j {ext_c}"),
                "-A KUBE-SERVICES -d 192.168.50.2/32 -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -j KUBE-NODEPORTS".to_string(),
                format!("-A {ext_c} -m comment --comment \"masquerade traffic for kube-system/dns:dns external destinations\" -j KUBE-MARK-MASQ"),
                format!("-A {ext_c} -j {svc_c}"),
            ]
        );
    }

    #[test]
    fn every_jump_target_is_a_defined_chain() {
        let mut local =
            with_node_ports(service("a", "l", "10.96.0.3", &[("", 80, "TCP")]), &[30081]);
        local.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
        let svcs = [
            with_affinity(
                with_node_ports(
                    service(
                        "a",
                        "w",
                        "10.96.0.2",
                        &[("http", 80, "TCP"), ("q", 53, "UDP")],
                    ),
                    &[30080, 30053],
                ),
                30,
            ),
            local,
            service("a", "empty", "10.96.0.4", &[("", 80, "TCP")]),
        ];
        let slices = [
            slice(
                "a",
                "w1",
                "w",
                &[("http", 8080, "TCP"), ("q", 53, "UDP")],
                &[
                    ("10.244.1.2", true, true, false, "n1"),
                    ("10.244.2.2", false, true, true, "n2"),
                ],
            ),
            slice(
                "a",
                "l1",
                "l",
                &[("", 8080, "TCP")],
                &[("10.244.2.3", true, true, false, "n2")],
            ),
        ];
        let set = compute(&build_model(&svcs, &slices), &node());
        let builtin = [
            "ACCEPT",
            "DROP",
            "RETURN",
            "REJECT",
            "MARK",
            "DNAT",
            "MASQUERADE",
        ];
        for t in Table::ALL {
            for (name, chain) in set.table(t) {
                assert!(is_owned_chain(name), "{name} not recognised as owned");
                for rule in chain.all_rules() {
                    let tokens: Vec<&str> = rule.split_whitespace().collect();
                    let at = tokens
                        .iter()
                        .rposition(|t| *t == "-j")
                        .expect("every rule has a target");
                    let target = tokens[at + 1];
                    assert!(
                        builtin.contains(&target) || set.table(t).contains_key(target),
                        "{name}: {rule} jumps to undefined {target}"
                    );
                }
            }
        }
        for j in builtin_jumps() {
            assert!(set.table(j.table).contains_key(j.target));
            assert!(j.rule.ends_with(&format!("-j {}", j.target)));
        }
    }

    #[test]
    fn owned_chains() {
        for (name, owned) in [
            ("KUBE-SERVICES", true),
            ("KUBE-SVC-ABCDEFGHIJKLMNOP", true),
            ("KUBE-SEP-ABCDEFGHIJKLMNOP", true),
            ("KUBE-PROXY-CANARY", true),
            ("KUBE-FIREWALL", false),
            ("KUBE-KUBELET-CANARY", false),
            ("DOCKER", false),
            ("PREROUTING", false),
        ] {
            assert_eq!(is_owned_chain(name), owned, "{name}");
        }
    }
}
