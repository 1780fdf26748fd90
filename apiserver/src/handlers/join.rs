//! Joining nodes: `GET /cacerts` hands out the CA so an agent can check it against the
//! hash in its join token (the token pins the server, kubeadm-style), and
//! `POST /skiff/v1/join` trades the join secret for a credential of the node's own
//! and a podCIDR. With that credential the agent then asks
//! `POST /skiff/v1/kubelet-serving-cert` for its kubelet's serving certificate, signed
//! by the cluster CA (upstream's kubelet serving-certificate bootstrap, without the CSR
//! object): the API server verifies it when it dials the kubelet for logs and exec.

use http::Response;
use serde_json::{json, Value};
use skiff_api::ApiError;

use super::{Api, Req};
use crate::request;
use crate::response::{self, Body};

/// The first /24 of `cluster` not in `taken`.
pub fn next_pod_cidr(cluster: ipnet::Ipv4Net, taken: &[String]) -> Option<String> {
    let subnets = cluster.subnets(24).ok()?;
    // Skip .0.0/24: it reads like a network address in examples and labs.
    subnets
        .skip(1)
        .map(|n| n.to_string())
        .find(|c| !taken.contains(c))
}

pub async fn join(api: &Api, authz: Option<&str>, r: &Req) -> Result<Response<Body>, ApiError> {
    if r.method != http::Method::POST {
        return Err(ApiError::method_not_allowed("join with POST"));
    }
    if !api.auth.read().expect("auth lock").is_join_secret(authz) {
        return Err(ApiError::unauthorized());
    }
    let body = request::decode_object(&r.body, r.header("content-type"))?;
    let name = body
        .get("nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let bad = |why: &str| ApiError::bad_request(format!("nodeName {name:?} {why}"));
    if name.is_empty() || name.len() > 253 {
        return Err(bad("must be 1 to 253 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        || name.starts_with(['-', '.'])
        || name.ends_with(['-', '.'])
    {
        return Err(bad("must be a lowercase DNS name (a-z, 0-9, '-', '.')"));
    }
    let mut auth = api.auth.write().expect("auth lock");
    if auth.node(&name).is_some() {
        return Err(ApiError::new(
            409,
            "AlreadyExists",
            format!(
                "node \"{name}\" has already joined; if this machine was reinstalled, remove the old node first (kubectl delete node {name}) and join again, or pick another --node-name"
            ),
        ));
    }
    let mut taken = auth.pod_cidrs();
    let (nodes, _, _) = api.store.list("/registry/core/nodes/", None, None);
    taken.extend(nodes.iter().filter_map(|(_, n)| {
        n.pointer("/spec/podCIDR")
            .and_then(Value::as_str)
            .map(str::to_string)
    }));
    let cidr = next_pod_cidr(api.cluster_cidr, &taken).ok_or_else(|| {
        ApiError::service_unavailable(format!("no podCIDR left in {}", api.cluster_cidr))
    })?;
    let cred = auth.issue_node(&name, &cidr).map_err(|e| {
        ApiError::service_unavailable(format!("cannot store the node credential: {e}"))
    })?;
    tracing::info!(node = %name, pod_cidr = %cidr, "node joined");
    Ok(response::json(
        201,
        &json!({"nodeName": name, "token": cred.token, "podCIDR": cred.pod_cidr}),
    ))
}

/// `POST /skiff/v1/kubelet-serving-cert` with `{"publicKey": PEM, "names": [..]}`
/// (admins add `"nodeName"`): a certificate for the caller's own node, whatever name
/// the body claims, so one node can never obtain another node's certificate.
pub fn kubelet_serving_cert(
    api: &Api,
    user: &crate::auth::User,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    if r.method != http::Method::POST {
        return Err(ApiError::method_not_allowed(
            "ask for a kubelet serving certificate with POST",
        ));
    }
    let body = request::decode_object(&r.body, r.header("content-type"))?;
    let asked = body.get("nodeName").and_then(Value::as_str);
    let node = match (user.node_name(), asked) {
        (Some(me), Some(other)) if other != me => {
            return Err(ApiError::forbidden(format!(
                "node \"{me}\" may only ask for its own serving certificate, not for nodeName {other:?}"
            )))
        }
        (Some(me), _) => me.to_string(),
        (None, Some(n)) if user.is_admin() && !n.is_empty() => n.to_string(),
        (None, _) if user.is_admin() => {
            return Err(ApiError::bad_request(
                "nodeName is required when an administrator asks for a kubelet certificate",
            ))
        }
        (None, _) => {
            return Err(ApiError::forbidden(format!(
                "user \"{}\" is not a node; only nodes get kubelet serving certificates",
                user.name
            )))
        }
    };
    let public_key = body
        .get("publicKey")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("publicKey is required (a PEM public key)"))?;
    let names: Vec<String> = match body.get("names") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad_request("names must be a list of strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::bad_request("names must be a list of strings")),
    };
    let cert = api
        .ca_signer
        .sign_kubelet_serving(&node, public_key, &names)
        .map_err(|e| match e {
            crate::tls::SignError::BadPublicKey(_) => {
                ApiError::bad_request(format!("publicKey: {e}"))
            }
            crate::tls::SignError::ForeignName(..) => ApiError::bad_request(format!("names: {e}")),
            crate::tls::SignError::Sign(_) => ApiError::internal(e.to_string()),
        })?;
    tracing::info!(%node, ?names, "issued a kubelet serving certificate");
    Ok(response::json(
        201,
        &json!({"nodeName": node, "certificate": cert, "ca": api.ca_signer.ca_pem()}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cidrs_are_handed_out_in_order_skipping_taken_ones() {
        let c: ipnet::Ipv4Net = "10.244.0.0/16".parse().unwrap();
        assert_eq!(next_pod_cidr(c, &[]).unwrap(), "10.244.1.0/24");
        assert_eq!(
            next_pod_cidr(c, &["10.244.1.0/24".into()]).unwrap(),
            "10.244.2.0/24"
        );
        let tiny: ipnet::Ipv4Net = "10.0.0.0/24".parse().unwrap();
        assert!(next_pod_cidr(tiny, &[]).is_none());
    }
}
