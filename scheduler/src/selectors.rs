//! Label and node selector matching as the scheduler needs it: pod label selectors
//! (`matchLabels` + `matchExpressions` with In/NotIn/Exists/DoesNotExist) for pod
//! anti-affinity and spreading, and node selector terms (In/NotIn/Exists/DoesNotExist/Gt/Lt
//! over labels, `metadata.name` over fields) for node affinity.
//!
//! Semantics follow <https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/>:
//! terms of a node selector are ORed, requirements inside a term are ANDed, and a term with
//! no requirements matches nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Does a `metav1.LabelSelector` select these labels? An empty selector selects everything
/// (that is what the API says for pod (anti-)affinity terms with an empty selector).
pub fn label_selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(ml) = &sel.match_labels {
        if ml.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return false;
        }
    }
    for req in sel.match_expressions.iter().flatten() {
        let have = labels.get(&req.key);
        let values = req.values.as_deref().unwrap_or_default();
        let ok = match req.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => !have.is_some_and(|v| values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            // An operator we do not know selects nothing rather than everything: safer for
            // anti-affinity to over-match than to ignore a rule.
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// One node selector requirement against a value (a label value or a field value).
fn requirement_matches(req: &NodeSelectorRequirement, have: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => have.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !have.is_some_and(|v| values.iter().any(|x| x == v)),
        "Exists" => have.is_some(),
        "DoesNotExist" => have.is_none(),
        // Gt/Lt compare integers; a label that is not an integer, or a requirement without
        // exactly one integer value, does not match (as upstream).
        "Gt" | "Lt" => {
            let (Some(have), [want]) = (have, values) else {
                return false;
            };
            let (Ok(have), Ok(want)) = (have.parse::<i64>(), want.parse::<i64>()) else {
                return false;
            };
            if req.operator == "Gt" {
                have > want
            } else {
                have < want
            }
        }
        _ => false,
    }
}

/// One node selector term: every expression over labels and every field requirement
/// (only `metadata.name` exists for nodes) must hold; an empty term matches nothing.
pub fn node_selector_term_matches(
    term: &NodeSelectorTerm,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let have = (r.key == "metadata.name").then_some(node_name);
            requirement_matches(r, have)
        })
}

/// Terms are ORed.
pub fn node_selector_terms_match(
    terms: &[NodeSelectorTerm],
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    terms
        .iter()
        .any(|t| node_selector_term_matches(t, node_name, labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn nreq(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn node_requirements() {
        let l = labels(&[("zone", "a"), ("cores", "8")]);
        let cases = [
            (nreq("zone", "In", &["a", "b"]), true),
            (nreq("zone", "In", &["b"]), false),
            (nreq("zone", "NotIn", &["b"]), true),
            (nreq("zone", "NotIn", &["a"]), false),
            (nreq("missing", "NotIn", &["a"]), true),
            (nreq("zone", "Exists", &[]), true),
            (nreq("missing", "Exists", &[]), false),
            (nreq("missing", "DoesNotExist", &[]), true),
            (nreq("zone", "DoesNotExist", &[]), false),
            (nreq("cores", "Gt", &["4"]), true),
            (nreq("cores", "Gt", &["8"]), false),
            (nreq("cores", "Lt", &["9"]), true),
            (nreq("cores", "Lt", &["8"]), false),
            (nreq("zone", "Gt", &["1"]), false), // not an integer
            (nreq("cores", "Gt", &["1", "2"]), false), // needs exactly one value
            (nreq("zone", "Bogus", &["a"]), false),
        ];
        for (req, want) in cases {
            let term = NodeSelectorTerm {
                match_expressions: Some(vec![req.clone()]),
                match_fields: None,
            };
            assert_eq!(node_selector_term_matches(&term, "n1", &l), want, "{req:?}");
        }
    }

    #[test]
    fn node_terms_and_fields() {
        let l = labels(&[("zone", "a")]);
        let empty = NodeSelectorTerm::default();
        assert!(
            !node_selector_term_matches(&empty, "n1", &l),
            "empty term matches nothing"
        );
        let by_name = NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![nreq("metadata.name", "In", &["n1"])]),
        };
        assert!(node_selector_term_matches(&by_name, "n1", &l));
        assert!(!node_selector_term_matches(&by_name, "n2", &l));
        let and_term = NodeSelectorTerm {
            match_expressions: Some(vec![
                nreq("zone", "In", &["a"]),
                nreq("disk", "Exists", &[]),
            ]),
            match_fields: None,
        };
        assert!(
            !node_selector_term_matches(&and_term, "n1", &l),
            "requirements are ANDed"
        );
        let terms = [and_term, by_name];
        assert!(
            node_selector_terms_match(&terms, "n1", &l),
            "terms are ORed"
        );
        assert!(!node_selector_terms_match(&terms, "n2", &l));
    }

    #[test]
    fn label_selectors() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let expr = |key: &str, op: &str, values: &[&str]| LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: Some(values.iter().map(|s| s.to_string()).collect()),
            }]),
        };
        let cases = [
            (LabelSelector::default(), true),
            (
                LabelSelector {
                    match_labels: Some(labels(&[("app", "web")])),
                    match_expressions: None,
                },
                true,
            ),
            (
                LabelSelector {
                    match_labels: Some(labels(&[("app", "db")])),
                    match_expressions: None,
                },
                false,
            ),
            (expr("app", "In", &["web", "api"]), true),
            (expr("app", "NotIn", &["web"]), false),
            (expr("zone", "NotIn", &["x"]), true),
            (expr("tier", "Exists", &[]), true),
            (expr("tier", "DoesNotExist", &[]), false),
            (expr("tier", "Gt", &["1"]), false),
        ];
        for (sel, want) in cases {
            assert_eq!(label_selector_matches(&sel, &l), want, "{sel:?}");
        }
    }
}
