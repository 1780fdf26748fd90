//! Subresources: `status` and `finalize` (scoped updates), `scale` (the Scale view of
//! Deployments and ReplicaSets, server-side apply included), `binding` (the scheduler's write), `eviction`, and the
//! streaming ones (`log`, `exec`, `attach`, `portforward`) that need a kubelet.

use std::sync::Arc;

use http::{Method, Response};
use serde_json::{json, Value};
use skiff_api::patch::{managed, PatchType};
use skiff_api::{meta, ApiError, Cause, ResourceInfo};

use super::objects::{self, commit_update, key_of, render_one, DeleteOptions};
use super::{Api, Req};
use crate::request;
use crate::response::{self, Body};
use crate::router::ResourcePath;
use crate::strategy;

pub async fn dispatch(
    api: &Arc<Api>,
    rp: &ResourcePath,
    sub: &str,
    req: Req,
) -> Result<Response<Body>, ApiError> {
    let name = rp
        .name
        .clone()
        .ok_or_else(|| ApiError::new(404, "NotFound", "a subresource needs an object name"))?;
    let res = rp.res;
    match (sub, &req.method) {
        ("status", &Method::GET) => {
            let obj = get(api, rp, &name)?;
            Ok(response::json(200, &render_one(res, &obj, &req)?))
        }
        ("status", &Method::PUT) => objects::update(api, rp, &name, Some("status"), &req).await,
        ("status", &Method::PATCH) => objects::patch(api, rp, &name, Some("status"), &req).await,
        ("finalize", &Method::PUT) => objects::update(api, rp, &name, Some("finalize"), &req).await,
        ("scale", &Method::GET) => {
            let obj = get(api, rp, &name)?;
            Ok(response::json(200, &to_scale(res, &obj)))
        }
        ("scale", &Method::PUT) | ("scale", &Method::PATCH) => scale(api, rp, &name, &req).await,
        ("binding", &Method::POST) => bind(api, rp, &name, &req).await,
        ("eviction", &Method::POST) => {
            objects::delete_one(
                api,
                res,
                rp.namespace.as_deref(),
                &name,
                &DeleteOptions::default(),
            )
            .await?;
            Ok(response::json(
                201,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ))
        }
        ("log", &Method::GET) => {
            super::kubelet_proxy::log(
                api,
                res,
                rp.namespace.as_deref().unwrap_or("default"),
                &name,
                &req,
            )
            .await
        }
        ("exec" | "attach" | "portforward", _) => {
            let mut req = req;
            let stream = super::kubelet_proxy::StreamRequest {
                method: req.method.clone(),
                headers: req.headers.clone(),
                query: req.raw_query.clone(),
                upgrade: req.upgrade.take(),
            };
            super::kubelet_proxy::stream(
                api,
                res,
                rp.namespace.as_deref().unwrap_or("default"),
                &name,
                sub,
                stream,
            )
            .await
        }
        ("proxy", _) => Err(ApiError::service_unavailable(format!(
            "proxy for {name} needs a kubelet connection, which this server does not serve yet"
        ))),
        (_, m) => Err(ApiError::method_not_allowed(format!(
            "{m} is not allowed on {}/{sub}",
            res.plural
        ))),
    }
}

fn get(api: &Api, rp: &ResourcePath, name: &str) -> Result<Arc<Value>, ApiError> {
    api.store
        .get(&key_of(rp.res, rp.namespace.as_deref(), name))
        .ok_or_else(|| ApiError::not_found(rp.res, name))
}

/// The label selector of a workload as the string form Scale's status carries.
fn selector_string(obj: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
    {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(exprs) = obj
        .pointer("/spec/selector/matchExpressions")
        .and_then(Value::as_array)
    {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or("");
            let vals: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e["operator"].as_str().unwrap_or("") {
                "In" => parts.push(format!("{key} in ({})", vals.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", vals.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.join(",")
}

/// The `autoscaling/v1` Scale view of a Deployment or ReplicaSet.
pub fn to_scale(_res: &ResourceInfo, obj: &Value) -> Value {
    let m = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"],
            "namespace": m["namespace"],
            "uid": m["uid"],
            "resourceVersion": m["resourceVersion"],
            "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector_string(obj),
        },
    })
}

async fn scale(
    api: &Api,
    rp: &ResourcePath,
    name: &str,
    req: &Req,
) -> Result<Response<Body>, ApiError> {
    let res = rp.res;
    if req.method == Method::PATCH
        && PatchType::from_content_type(req.header("content-type").unwrap_or(""))
            == Some(PatchType::Apply)
    {
        return scale_apply(api, rp, name, req).await;
    }
    let key = key_of(res, rp.namespace.as_deref(), name);
    for _ in 0..8 {
        let old = get(api, rp, name)?;
        let current = to_scale(res, &old);
        let wanted: Value = if req.method == Method::PUT {
            request::decode_object(&req.body, req.header("content-type"))?
        } else {
            let ct = req.header("content-type").unwrap_or("");
            let ty = PatchType::from_content_type(ct)
                .filter(|t| *t != PatchType::Apply)
                .ok_or_else(|| {
                    ApiError::unsupported_media_type(format!(
                        "the patch content type {ct:?} is not supported"
                    ))
                })?;
            let doc: Value = serde_json::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
            skiff_api::patch::apply(res, ty, &current, &doc).map_err(ApiError::bad_request)?
        };
        if let Some(rv) = meta::resource_version(&wanted) {
            if !rv.is_empty() && Some(rv) != meta::resource_version(&old) {
                return Err(ApiError::stale(res, name));
            }
        }
        let replicas = wanted
            .pointer("/spec/replicas")
            .cloned()
            .unwrap_or(json!(0));
        check_replicas(res, name, &replicas)?;
        let mut new = (*old).clone();
        new["spec"]["replicas"] = replicas;
        strategy::prepare_update(res, &mut new, &old, None, &api.alloc)?;
        // Upstream records scale writes against the `scale` subresource.
        objects::record_write(res, Some("scale"), Some(&old), &mut new, req)?;
        if objects::same_object(&new, &old) {
            return Ok(response::json(200, &current));
        }
        if req.query.dry_run() {
            return Ok(response::json(200, &to_scale(res, &new)));
        }
        if let Some(stored) = commit_update(api, res, &key, name, &old, new).await? {
            return Ok(response::json(200, &to_scale(res, &stored)));
        }
    }
    Err(ApiError::conflict(
        res,
        name,
        "too many concurrent writers; try again",
    ))
}

/// A Scale's `spec.replicas` must be a non-negative 32-bit count.
fn check_replicas(res: &ResourceInfo, name: &str, replicas: &Value) -> Result<(), ApiError> {
    if replicas
        .as_i64()
        .is_some_and(|r| (0..=i32::MAX as i64).contains(&r))
    {
        return Ok(());
    }
    Err(ApiError::invalid(
        res,
        name,
        vec![Cause::invalid(
            "spec.replicas",
            replicas,
            "must be greater than or equal to 0",
        )],
    ))
}

/// Server-side apply of an `autoscaling/v1` Scale. As upstream, the Scale's
/// `spec.replicas` is the workload's `spec.replicas`: the apply runs on the workload
/// with the configuration `{spec: {replicas}}`, recorded for the manager against the
/// `scale` subresource, so it conflicts with whoever else owns the replica count (an
/// apply of the whole Deployment, say) unless forced.
async fn scale_apply(
    api: &Api,
    rp: &ResourcePath,
    name: &str,
    req: &Req,
) -> Result<Response<Body>, ApiError> {
    let res = rp.res;
    let manager = super::objects::apply_manager(req)?;
    let applied = request::decode(&req.body, Some("application/yaml"))?;
    if !applied.is_object() {
        return Err(ApiError::bad_request(
            "the applied configuration must be an object",
        ));
    }
    for (field, want) in [("apiVersion", "autoscaling/v1"), ("kind", "Scale")] {
        match applied.get(field).and_then(Value::as_str) {
            Some(v) if v == want => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "the applied configuration has {field} {:?}, but the scale subresource takes {want:?}",
                    other.unwrap_or("")
                )))
            }
        }
    }
    if let Some(n) = meta::name(&applied).filter(|n| *n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    let mut config =
        json!({"apiVersion": res.api_version(), "kind": res.kind, "metadata": {"name": name}});
    if let Some(replicas) = applied.pointer("/spec/replicas") {
        check_replicas(res, name, replicas)?;
        config["spec"] = json!({"replicas": replicas});
    }
    let key = key_of(res, rp.namespace.as_deref(), name);
    for _ in 0..8 {
        let old = get(api, rp, name)?;
        if let Some(want) = meta::resource_version(&applied).filter(|v| !v.is_empty()) {
            if Some(want) != meta::resource_version(&old) {
                return Err(ApiError::stale(res, name));
            }
        }
        let now = strategy::now();
        let ask = managed::ApplyRequest {
            manager: &manager,
            subresource: Some("scale"),
            force: req.query.flag("force"),
            now: &now,
        };
        let mut new = managed::apply(res, Some(&old), &config, &ask)
            .map_err(|e| objects::managed_error(res, name, e))?;
        // Only the replica count may change through /scale; the managed fields just
        // computed are the ones to keep.
        let fields = new.pointer("/metadata/managedFields").cloned();
        let replicas = new.pointer("/spec/replicas").cloned();
        new = (*old).clone();
        match replicas {
            Some(r) => new["spec"]["replicas"] = r,
            None => {
                if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.shift_remove("replicas");
                }
            }
        }
        strategy::prepare_update(res, &mut new, &old, None, &api.alloc)?;
        match fields {
            Some(f) => meta::set(&mut new, "managedFields", f),
            None => meta::remove(&mut new, "managedFields"),
        }
        if objects::same_object(&new, &old) {
            return Ok(response::json(200, &to_scale(res, &old)));
        }
        if req.query.dry_run() {
            return Ok(response::json(200, &to_scale(res, &new)));
        }
        if let Some(stored) = commit_update(api, res, &key, name, &old, new).await? {
            return Ok(response::json(200, &to_scale(res, &stored)));
        }
    }
    Err(ApiError::conflict(
        res,
        name,
        "too many concurrent writers; try again",
    ))
}

/// POST pods/NAME/binding: sets spec.nodeName once, and the PodScheduled condition.
async fn bind(
    api: &Api,
    rp: &ResourcePath,
    name: &str,
    req: &Req,
) -> Result<Response<Body>, ApiError> {
    let res = rp.res;
    let b = request::decode_object(&req.body, req.header("content-type"))?;
    let node = b
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            res,
            name,
            vec![Cause::required("target.name")],
        ));
    }
    let key = key_of(res, rp.namespace.as_deref(), name);
    for _ in 0..8 {
        let old = get(api, rp, name)?;
        if meta::deletion_timestamp(&old).is_some() {
            return Err(ApiError::conflict(
                res,
                name,
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        let current = old
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !current.is_empty() {
            return Err(ApiError::conflict(
                res,
                name,
                &format!("pod {name} is already assigned to node \"{current}\""),
            ));
        }
        if let Some(uid) = b.pointer("/metadata/uid").and_then(Value::as_str) {
            if Some(uid) != meta::uid(&old) {
                return Err(ApiError::conflict(
                    res,
                    name,
                    "the pod's UID does not match the binding",
                ));
            }
        }
        let mut new = (*old).clone();
        new["spec"]["nodeName"] = json!(node);
        let mut conds: Vec<Value> = new
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        conds.retain(|c| c["type"] != "PodScheduled");
        conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": strategy::now()}));
        new["status"]["conditions"] = Value::Array(conds);
        if req.query.dry_run() {
            break;
        }
        if commit_update(api, res, &key, name, &old, new)
            .await?
            .is_some()
        {
            tracing::info!(pod = name, node = %node, "bound");
            break;
        }
    }
    Ok(response::json(
        201,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}
