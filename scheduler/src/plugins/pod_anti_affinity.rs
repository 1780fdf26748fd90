//! Filter: required pod anti-affinity with `topologyKey: kubernetes.io/hostname`, checked
//! both ways like upstream's InterPodAffinity: the pod must not land next to pods its
//! own terms select, and no pod already on the node may have a term selecting it.
//!
//! Only the hostname topology is enforced: terms over other keys (zones) need a
//! cluster-wide pre-pass that skiff does not do yet, and are ignored.

use crate::framework::FilterPlugin;
use crate::podinfo::{AntiAffinityTerm, PodInfo, HOSTNAME_LABEL};
use crate::snapshot::NodeInfo;

pub const POD_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

pub struct PodAntiAffinity;

fn per_node(t: &AntiAffinityTerm) -> bool {
    t.term.topology_key == HOSTNAME_LABEL
}

impl FilterPlugin for PodAntiAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
        if pod.anti_affinity.iter().any(per_node) {
            let clash = node
                .pods
                .iter()
                .filter(|other| other.uid != pod.uid)
                .any(|other| {
                    pod.anti_affinity
                        .iter()
                        .filter(|t| per_node(t))
                        .any(|t| t.selects(other))
                });
            if clash {
                return Err(vec![POD_ANTI_AFFINITY.into()]);
            }
        }
        if node.pods_with_anti_affinity > 0 {
            let clash = node
                .pods
                .iter()
                .filter(|other| other.uid != pod.uid)
                .any(|other| {
                    other
                        .anti_affinity
                        .iter()
                        .filter(|t| per_node(t))
                        .any(|t| t.selects(pod))
                });
            if clash {
                return Err(vec![EXISTING_ANTI_AFFINITY.into()]);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::test_support::*;
    use serde_json::json;

    fn anti(app: &str, topology: &str, namespaces: Option<Vec<&str>>) -> serde_json::Value {
        let mut term =
            json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": topology});
        if let Some(ns) = namespaces {
            term["namespaces"] = json!(ns);
        }
        json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}})
    }

    fn pod(name: &str, app: &str, affinity: Option<serde_json::Value>) -> PodInfo {
        let mut spec = json!({"containers": [{"name": "c"}]});
        if let Some(a) = affinity {
            spec["affinity"] = a;
        }
        pod_info_labels(name, json!({"app": app}), spec)
    }

    #[test]
    fn anti_affinity_both_directions() {
        let plain_web = pod("web-1", "web", None);
        let guarded_db = pod("db-1", "db", Some(anti("web", HOSTNAME_LABEL, None)));
        let mut other_ns = pod("web-x", "web", None);
        other_ns.namespace = "other".into();

        struct Case {
            what: &'static str,
            on_node: Vec<PodInfo>,
            pod: PodInfo,
            want: Result<(), &'static str>,
        }
        let cases = vec![
            Case {
                what: "empty node",
                on_node: vec![],
                pod: pod("web-2", "web", Some(anti("web", HOSTNAME_LABEL, None))),
                want: Ok(()),
            },
            Case {
                what: "own term selects a pod there",
                on_node: vec![plain_web.clone()],
                pod: pod("web-2", "web", Some(anti("web", HOSTNAME_LABEL, None))),
                want: Err(POD_ANTI_AFFINITY),
            },
            Case {
                what: "own term, pod in another namespace",
                on_node: vec![other_ns.clone()],
                pod: pod("web-2", "web", Some(anti("web", HOSTNAME_LABEL, None))),
                want: Ok(()),
            },
            Case {
                what: "own term naming that namespace",
                on_node: vec![other_ns],
                pod: pod(
                    "web-2",
                    "web",
                    Some(anti("web", HOSTNAME_LABEL, Some(vec!["other"]))),
                ),
                want: Err(POD_ANTI_AFFINITY),
            },
            Case {
                what: "existing pod's term selects the new pod",
                on_node: vec![guarded_db.clone()],
                pod: plain_web.clone(),
                want: Err(EXISTING_ANTI_AFFINITY),
            },
            Case {
                what: "existing pod's term does not select",
                on_node: vec![guarded_db],
                pod: pod("api", "api", None),
                want: Ok(()),
            },
            Case {
                what: "zone topology is not enforced",
                on_node: vec![plain_web],
                pod: pod(
                    "web-2",
                    "web",
                    Some(anti("web", "topology.kubernetes.io/zone", None)),
                ),
                want: Ok(()),
            },
        ];
        for c in cases {
            let node = with_pods(node_info("n", "4", "4Gi", "10"), c.on_node);
            let got = PodAntiAffinity.filter(&c.pod, &node);
            assert_eq!(got, c.want.map_err(|r| vec![r.to_string()]), "{}", c.what);
        }
    }
}
