//! Filter: a pod's `hostPort`s must be free on the node, i.e. no pod placed there uses the
//! same protocol and port on an overlapping address (upstream's NodePorts plugin).

use crate::framework::FilterPlugin;
use crate::podinfo::PodInfo;
use crate::snapshot::NodeInfo;

pub const PORTS_TAKEN: &str = "node(s) didn't have free ports for the requested pod ports";

pub struct NodePorts;

impl FilterPlugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
        if pod.host_ports.is_empty() {
            return Ok(());
        }
        let clash = node
            .pods
            .iter()
            .flat_map(|p| p.host_ports.iter())
            .any(|used| pod.host_ports.iter().any(|want| want.conflicts(used)));
        if clash {
            Err(vec![PORTS_TAKEN.into()])
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::test_support::*;
    use serde_json::json;

    fn port_pod(name: &str, ports: serde_json::Value) -> PodInfo {
        pod_info(name, json!({"containers": [{"name": "c", "ports": ports}]}))
    }

    #[test]
    fn host_port_conflicts_on_node() {
        let web = port_pod("web", json!([{"containerPort": 80, "hostPort": 8080}]));
        let dns = port_pod(
            "dns",
            json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}]),
        );
        let node = with_pods(node_info("n", "4", "4Gi", "10"), vec![web, dns]);
        let cases = [
            (json!([{"containerPort": 80}]), true),
            (json!([{"containerPort": 80, "hostPort": 8080}]), false),
            (
                json!([{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]),
                true,
            ),
            (json!([{"containerPort": 80, "hostPort": 8081}]), true),
            (
                json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.2"}]),
                true,
            ),
            (
                json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP"}]),
                false,
            ),
            (
                json!([{"containerPort": 1, "hostPort": 9000}, {"containerPort": 2, "hostPort": 8080}]),
                false,
            ),
        ];
        for (ports, fits) in cases {
            let got = NodePorts.filter(&port_pod("p", ports.clone()), &node);
            assert_eq!(got.is_ok(), fits, "{ports}");
            if !fits {
                assert_eq!(got.unwrap_err(), vec![PORTS_TAKEN.to_string()]);
            }
        }
    }
}
