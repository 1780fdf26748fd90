//! Stale UDP conntrack entries: UDP has no connection end, so a client that keeps
//! sending to a service keeps hitting a conntrack entry that DNATs to a backend which
//! is gone (or, after a period with no endpoints, an entry that was never DNATed).
//! kube-proxy deletes such entries with the `conntrack` tool; so does this module.
//!
//! [`stale_flows`] is pure (previous model vs next model); [`ConntrackTool`] runs
//! `conntrack -D` behind the [`Conntrack`] trait.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::model::{Endpoint, Protocol, ProxyModel, ServicePortInfo};

/// A set of conntrack entries to delete.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum StaleFlow {
    /// UDP flows to a service IP (cluster or external) that were DNATed to `endpoint`.
    ServiceToEndpoint {
        service_ip: Ipv4Addr,
        endpoint: Ipv4Addr,
    },
    /// UDP flows to a node port that were DNATed to `endpoint`.
    NodePortToEndpoint { node_port: u16, endpoint: Ipv4Addr },
    /// Every UDP flow to a service IP and port (it just got its first endpoint; older
    /// entries were created while it had none and would never be DNATed).
    ServicePort { service_ip: Ipv4Addr, port: u16 },
    /// Every UDP flow to a node port that just got its first endpoint.
    NodePort { node_port: u16 },
}

impl StaleFlow {
    /// Arguments for `conntrack -D`.
    pub fn args(&self) -> Vec<String> {
        let s = |x: &dyn ToString| x.to_string();
        match self {
            StaleFlow::ServiceToEndpoint {
                service_ip,
                endpoint,
            } => {
                vec![
                    s(&"-D"),
                    s(&"-p"),
                    s(&"udp"),
                    s(&"--orig-dst"),
                    s(service_ip),
                    s(&"--dst-nat"),
                    s(endpoint),
                ]
            }
            StaleFlow::NodePortToEndpoint {
                node_port,
                endpoint,
            } => {
                vec![
                    s(&"-D"),
                    s(&"-p"),
                    s(&"udp"),
                    s(&"--dport"),
                    s(node_port),
                    s(&"--dst-nat"),
                    s(endpoint),
                ]
            }
            StaleFlow::ServicePort { service_ip, port } => {
                vec![
                    s(&"-D"),
                    s(&"-p"),
                    s(&"udp"),
                    s(&"--orig-dst"),
                    s(service_ip),
                    s(&"--dport"),
                    s(port),
                ]
            }
            StaleFlow::NodePort { node_port } => {
                vec![s(&"-D"), s(&"-p"), s(&"udp"), s(&"--dport"), s(node_port)]
            }
        }
    }
}

fn usable_ips(sp: Option<&ServicePortInfo>) -> BTreeSet<Ipv4Addr> {
    sp.map(|sp| {
        sp.usable_endpoints()
            .into_iter()
            .map(|e: &Endpoint| e.ip)
            .collect()
    })
    .unwrap_or_default()
}

/// The conntrack entries made stale by going from `prev` to `next`.
pub fn stale_flows(prev: &ProxyModel, next: &ProxyModel) -> BTreeSet<StaleFlow> {
    let mut out = BTreeSet::new();
    let names = prev
        .ports
        .keys()
        .chain(next.ports.keys())
        .filter(|n| n.protocol == Protocol::Udp);
    for name in names {
        let (before, after) = (prev.ports.get(name), next.ports.get(name));
        if before == after {
            continue;
        }
        let (old_ips, new_ips) = (usable_ips(before), usable_ips(after));
        if let Some(b) = before {
            for gone in old_ips.difference(&new_ips) {
                for ip in b.cluster_ip.iter().chain(&b.external_ips) {
                    out.insert(StaleFlow::ServiceToEndpoint {
                        service_ip: *ip,
                        endpoint: *gone,
                    });
                }
                if let Some(np) = b.node_port {
                    out.insert(StaleFlow::NodePortToEndpoint {
                        node_port: np,
                        endpoint: *gone,
                    });
                }
            }
        }
        if let Some(a) = after {
            if old_ips.is_empty() && !new_ips.is_empty() {
                for ip in a.cluster_ip.iter().chain(&a.external_ips) {
                    out.insert(StaleFlow::ServicePort {
                        service_ip: *ip,
                        port: a.port,
                    });
                }
                if let Some(np) = a.node_port {
                    out.insert(StaleFlow::NodePort { node_port: np });
                }
            }
        }
    }
    out
}

/// A failed conntrack call.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    #[error("cannot run {command}: {source} (install the conntrack package)")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

/// Deletes conntrack entries.
pub trait Conntrack: Send + 'static {
    fn delete(&self, flow: &StaleFlow) -> Result<(), ConntrackError>;
}

/// The `conntrack` command-line tool, optionally behind a command prefix.
#[derive(Debug, Clone, Default)]
pub struct ConntrackTool {
    prefix: Vec<String>,
}

impl ConntrackTool {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_prefix(prefix: Vec<String>) -> Self {
        ConntrackTool { prefix }
    }
}

impl Conntrack for ConntrackTool {
    fn delete(&self, flow: &StaleFlow) -> Result<(), ConntrackError> {
        let mut parts: Vec<String> = self.prefix.clone();
        parts.push("conntrack".into());
        parts.extend(flow.args());
        let command = parts.join(" ");
        let out = Command::new(&parts[0])
            .args(&parts[1..])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| ConntrackError::Spawn {
                command: command.clone(),
                source,
            })?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Exit status 1 with "0 flow entries" just means there was nothing to delete.
        if out.status.success() || stderr.contains("0 flow entries") {
            return Ok(());
        }
        Err(ConntrackError::Failed {
            command,
            status: out.status.to_string(),
            stderr: stderr.trim().to_string(),
        })
    }
}

/// Records deletions instead of running anything (unit tests).
#[derive(Debug, Clone, Default)]
pub struct RecordingConntrack {
    pub deleted: std::sync::Arc<std::sync::Mutex<Vec<StaleFlow>>>,
}

impl Conntrack for RecordingConntrack {
    fn delete(&self, flow: &StaleFlow) -> Result<(), ConntrackError> {
        self.deleted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(flow.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::build_model;
    use crate::model::testutil::*;

    fn model(proto: &str, eps: &[&str]) -> ProxyModel {
        let mut svc = with_node_ports(
            service("d", "dns", "10.96.0.53", &[("dns", 53, proto)]),
            &[30053],
        );
        svc.spec.as_mut().unwrap().external_ips = Some(vec!["192.168.9.9".into()]);
        let list: Vec<(&str, bool, bool, bool, &str)> = eps
            .iter()
            .map(|ip| (*ip, true, true, false, "n1"))
            .collect();
        let sl = slice("d", "dns-a", "dns", &[("dns", 5353, proto)], &list);
        build_model([&svc], [&sl])
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn stale_flow_cases() {
        use StaleFlow::*;
        let cases: Vec<(&str, ProxyModel, ProxyModel, Vec<StaleFlow>)> = vec![
            (
                "unchanged",
                model("UDP", &["10.244.0.5"]),
                model("UDP", &["10.244.0.5"]),
                vec![],
            ),
            (
                "endpoint added",
                model("UDP", &["10.244.0.5"]),
                model("UDP", &["10.244.0.5", "10.244.0.6"]),
                vec![],
            ),
            (
                "endpoint removed",
                model("UDP", &["10.244.0.5", "10.244.0.6"]),
                model("UDP", &["10.244.0.6"]),
                vec![
                    ServiceToEndpoint {
                        service_ip: ip("10.96.0.53"),
                        endpoint: ip("10.244.0.5"),
                    },
                    ServiceToEndpoint {
                        service_ip: ip("192.168.9.9"),
                        endpoint: ip("10.244.0.5"),
                    },
                    NodePortToEndpoint {
                        node_port: 30053,
                        endpoint: ip("10.244.0.5"),
                    },
                ],
            ),
            (
                "first endpoint",
                model("UDP", &[]),
                model("UDP", &["10.244.0.5"]),
                vec![
                    ServicePort {
                        service_ip: ip("10.96.0.53"),
                        port: 53,
                    },
                    ServicePort {
                        service_ip: ip("192.168.9.9"),
                        port: 53,
                    },
                    NodePort { node_port: 30053 },
                ],
            ),
            (
                "service deleted",
                model("UDP", &["10.244.0.5"]),
                ProxyModel::default(),
                vec![
                    ServiceToEndpoint {
                        service_ip: ip("10.96.0.53"),
                        endpoint: ip("10.244.0.5"),
                    },
                    ServiceToEndpoint {
                        service_ip: ip("192.168.9.9"),
                        endpoint: ip("10.244.0.5"),
                    },
                    NodePortToEndpoint {
                        node_port: 30053,
                        endpoint: ip("10.244.0.5"),
                    },
                ],
            ),
            (
                "tcp is left alone",
                model("TCP", &["10.244.0.5", "10.244.0.6"]),
                model("TCP", &[]),
                vec![],
            ),
        ];
        for (name, prev, next, want) in cases {
            let mut want = want;
            want.sort();
            assert_eq!(
                stale_flows(&prev, &next).into_iter().collect::<Vec<_>>(),
                want,
                "case {name}"
            );
        }
    }

    #[test]
    fn conntrack_arguments() {
        let f = StaleFlow::ServiceToEndpoint {
            service_ip: ip("10.96.0.53"),
            endpoint: ip("10.244.0.5"),
        };
        assert_eq!(
            f.args().join(" "),
            "-D -p udp --orig-dst 10.96.0.53 --dst-nat 10.244.0.5"
        );
        assert_eq!(
            StaleFlow::NodePort { node_port: 30053 }.args().join(" "),
            "-D -p udp --dport 30053"
        );
    }
}
