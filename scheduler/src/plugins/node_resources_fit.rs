//! Filter: the pod's requests must fit into what is left of the node's allocatable
//! resources after the requests of every pod placed there, including pods this scheduler
//! assumed but has not seen bound yet (upstream's NodeResourcesFit).

use crate::framework::FilterPlugin;
use crate::podinfo::PodInfo;
use crate::snapshot::NodeInfo;

pub const TOO_MANY_PODS: &str = "Too many pods";

pub struct NodeResourcesFit;

/// Every resource the pod lacks on this node, in upstream's wording.
pub fn insufficient(pod: &PodInfo, node: &NodeInfo) -> Vec<String> {
    let mut out = Vec::new();
    let (req, used, alloc) = (&pod.requests, &node.requested, &node.allocatable);
    if used.pods + 1 > alloc.pods {
        out.push(TOO_MANY_PODS.to_string());
    }
    // A resource the pod does not request never blocks it, even on an overcommitted node.
    if req.milli_cpu > 0 && used.milli_cpu + req.milli_cpu > alloc.milli_cpu {
        out.push("Insufficient cpu".into());
    }
    if req.memory > 0 && used.memory + req.memory > alloc.memory {
        out.push("Insufficient memory".into());
    }
    for (name, &want) in &req.other {
        if want <= 0 {
            continue;
        }
        let have = alloc.other.get(name).copied().unwrap_or(0);
        let taken = used.other.get(name).copied().unwrap_or(0);
        if taken + want > have {
            out.push(format!("Insufficient {name}"));
        }
    }
    out
}

impl FilterPlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<String>> {
        let reasons = insufficient(pod, node);
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::test_support::*;
    use serde_json::json;

    #[test]
    fn requests_against_what_is_left() {
        let gpu_node = {
            let n: k8s_openapi::api::core::v1::Node = serde_json::from_value(json!({
                "metadata": {"name": "g"},
                "status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "10", "example.com/gpu": "1"}}
            }))
            .unwrap();
            NodeInfo::from_node(&n)
        };
        let gpu_pod = |name: &str, n: &str| {
            pod_info(
                name,
                json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/gpu": n}}}]}),
            )
        };
        struct Case {
            what: &'static str,
            node: NodeInfo,
            pod: PodInfo,
            want: Vec<&'static str>,
        }
        let cases = vec![
            Case {
                what: "empty node",
                node: node_info("n", "2", "2Gi", "10"),
                pod: sized_pod("p", "2", "2Gi"),
                want: vec![],
            },
            Case {
                what: "cpu exhausted by bound pods",
                node: with_pods(
                    node_info("n", "2", "2Gi", "10"),
                    vec![sized_pod("a", "1500m", "0")],
                ),
                pod: sized_pod("p", "600m", "1Gi"),
                want: vec!["Insufficient cpu"],
            },
            Case {
                what: "both short",
                node: with_pods(
                    node_info("n", "2", "2Gi", "10"),
                    vec![sized_pod("a", "1500m", "1536Mi")],
                ),
                pod: sized_pod("p", "600m", "1Gi"),
                want: vec!["Insufficient cpu", "Insufficient memory"],
            },
            Case {
                what: "pod count",
                node: with_pods(
                    node_info("n", "8", "8Gi", "1"),
                    vec![sized_pod("a", "0", "0")],
                ),
                pod: sized_pod("p", "0", "0"),
                want: vec![TOO_MANY_PODS],
            },
            Case {
                what: "zero request fits an overcommitted node",
                node: with_pods(
                    node_info("n", "1", "1Gi", "10"),
                    vec![sized_pod("a", "2", "2Gi")],
                ),
                pod: pod_info("p", json!({"containers": [{"name": "c"}]})),
                want: vec![],
            },
            Case {
                what: "extended resource present",
                node: gpu_node.clone(),
                pod: gpu_pod("p", "1"),
                want: vec![],
            },
            Case {
                what: "extended resource short",
                node: gpu_node,
                pod: gpu_pod("p", "2"),
                want: vec!["Insufficient example.com/gpu"],
            },
            Case {
                what: "extended resource missing",
                node: node_info("n", "2", "2Gi", "10"),
                pod: gpu_pod("p", "1"),
                want: vec!["Insufficient example.com/gpu"],
            },
        ];
        for c in cases {
            let got = NodeResourcesFit.filter(&c.pod, &c.node);
            let want: Result<(), Vec<String>> = if c.want.is_empty() {
                Ok(())
            } else {
                Err(c.want.iter().map(|s| s.to_string()).collect())
            };
            assert_eq!(got, want, "{}", c.what);
        }
    }
}
