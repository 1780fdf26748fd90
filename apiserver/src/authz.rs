//! Authorization: admins may do anything; a node's credential may only touch what a
//! kubelet, a proxy and an ingress controller on that node need (upstream's Node
//! authorizer and NodeRestriction admission, in small).
//!
//! A node may read the cluster's objects (it watches pods, services, endpoint slices,
//! ingresses, secrets for TLS...), but write only its own Node and Lease, the status of
//! pods bound to it, deletions of pods bound to it, and Events.

use serde_json::Value;
use skiff_api::ApiError;

use crate::auth::User;
use crate::router::ResourcePath;

/// What a request wants to do, for the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Read,
    Create,
    Update,
    Delete,
}

/// Decides a request. `target` is the stored object the request addresses, when the
/// decision depends on it (a pod's node).
pub fn authorize(
    user: &User,
    verb: Verb,
    rp: &ResourcePath,
    target: Option<&Value>,
) -> Result<(), ApiError> {
    if user.is_admin() {
        return Ok(());
    }
    let Some(node) = user.node_name() else {
        return Err(forbidden(user, verb, rp));
    };
    let res = rp.res;
    let name = rp.name.as_deref();
    let sub = rp.sub.as_deref();
    let bound_here = || {
        target
            .and_then(|p| p.pointer("/spec/nodeName"))
            .and_then(Value::as_str)
            == Some(node)
    };
    let allowed = match (res.group, res.plural, verb) {
        // Streaming subresources of other pods are not a node's business.
        (_, _, Verb::Read) => !matches!(sub, Some("exec" | "attach" | "portforward" | "proxy")),
        ("", "nodes", Verb::Create) => true, // the body's name is checked by the handler
        ("", "nodes", Verb::Update) => name == Some(node),
        ("coordination.k8s.io", "leases", Verb::Create | Verb::Update) => {
            rp.namespace.as_deref() == Some("kube-node-lease")
                && (name.is_none() || name == Some(node))
        }
        ("", "pods", Verb::Update) => sub == Some("status") && bound_here(),
        // The ingress controller in every agent publishes the nodes' addresses.
        ("networking.k8s.io", "ingresses", Verb::Update) => sub == Some("status"),
        ("", "pods", Verb::Delete) => name.is_some() && bound_here(),
        ("", "events", Verb::Create | Verb::Update)
        | ("events.k8s.io", "events", Verb::Create | Verb::Update) => true,
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(forbidden(user, verb, rp))
    }
}

fn forbidden(user: &User, verb: Verb, rp: &ResourcePath) -> ApiError {
    let verb = match verb {
        Verb::Read => "get",
        Verb::Create => "create",
        Verb::Update => "update",
        Verb::Delete => "delete",
    };
    let what = match &rp.sub {
        Some(s) => format!("{}/{s}", rp.res.plural),
        None => rp.res.plural.to_string(),
    };
    let scope = match &rp.namespace {
        Some(ns) => format!(" in the namespace \"{ns}\""),
        None => String::new(),
    };
    let group = if rp.res.group.is_empty() {
        "\"\"".to_string()
    } else {
        format!("\"{}\"", rp.res.group)
    };
    ApiError::forbidden(format!(
        "{what} is forbidden: User \"{}\" cannot {verb} resource \"{what}\" in API group {group}{scope}",
        user.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skiff_api::resource::lookup;

    fn rp(
        group: &str,
        plural: &str,
        ns: Option<&str>,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> ResourcePath {
        ResourcePath {
            res: lookup(group, "v1", plural).unwrap(),
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            sub: sub.map(str::to_string),
            legacy_watch: false,
        }
    }

    fn node(n: &str) -> User {
        User {
            name: format!("system:node:{n}"),
            groups: vec!["system:nodes".into()],
        }
    }

    #[test]
    fn node_credentials_reach_only_their_own_objects() {
        let n1 = node("n1");
        let here = json!({"spec": {"nodeName": "n1"}});
        let there = json!({"spec": {"nodeName": "n2"}});
        let cases: Vec<(Verb, ResourcePath, Option<&Value>, bool)> = vec![
            (Verb::Read, rp("", "pods", None, None, None), None, true),
            (
                Verb::Read,
                rp("", "secrets", Some("a"), Some("tls"), None),
                None,
                true,
            ),
            (
                Verb::Read,
                rp("", "pods", Some("a"), Some("p"), Some("exec")),
                None,
                false,
            ),
            (
                Verb::Update,
                rp("", "nodes", None, Some("n1"), Some("status")),
                None,
                true,
            ),
            (
                Verb::Update,
                rp("", "nodes", None, Some("n2"), Some("status")),
                None,
                false,
            ),
            (
                Verb::Update,
                rp(
                    "coordination.k8s.io",
                    "leases",
                    Some("kube-node-lease"),
                    Some("n1"),
                    None,
                ),
                None,
                true,
            ),
            (
                Verb::Update,
                rp(
                    "coordination.k8s.io",
                    "leases",
                    Some("kube-node-lease"),
                    Some("n2"),
                    None,
                ),
                None,
                false,
            ),
            (
                Verb::Update,
                rp(
                    "coordination.k8s.io",
                    "leases",
                    Some("kube-system"),
                    Some("n1"),
                    None,
                ),
                None,
                false,
            ),
            (
                Verb::Update,
                rp("", "pods", Some("a"), Some("p"), Some("status")),
                Some(&here),
                true,
            ),
            (
                Verb::Update,
                rp("", "pods", Some("a"), Some("p"), Some("status")),
                Some(&there),
                false,
            ),
            (
                Verb::Update,
                rp("", "pods", Some("a"), Some("p"), None),
                Some(&here),
                false,
            ),
            (
                Verb::Delete,
                rp("", "pods", Some("a"), Some("p"), None),
                Some(&here),
                true,
            ),
            (
                Verb::Delete,
                rp("", "pods", Some("a"), Some("p"), None),
                Some(&there),
                false,
            ),
            (
                Verb::Create,
                rp("", "pods", Some("a"), None, None),
                None,
                false,
            ),
            (
                Verb::Create,
                rp("", "secrets", Some("a"), None, None),
                None,
                false,
            ),
            (
                Verb::Delete,
                rp("apps", "deployments", Some("a"), Some("d"), None),
                None,
                false,
            ),
            (
                Verb::Create,
                rp("", "events", Some("a"), None, None),
                None,
                true,
            ),
        ];
        for (verb, r, target, want) in cases {
            let got = authorize(&n1, verb, &r, target).is_ok();
            assert_eq!(
                got, want,
                "{verb:?} {:?}/{:?}/{:?}",
                r.res.plural, r.name, r.sub
            );
        }
        let admin = User {
            name: "a".into(),
            groups: vec!["system:masters".into()],
        };
        assert!(authorize(
            &admin,
            Verb::Delete,
            &rp("apps", "deployments", Some("a"), Some("d"), None),
            None
        )
        .is_ok());
        let nobody = User {
            name: "x".into(),
            groups: vec![],
        };
        let e =
            authorize(&nobody, Verb::Read, &rp("", "pods", None, None, None), None).unwrap_err();
        assert_eq!(e.code, 403);
    }
}
