//! The verbs on objects: get, list, create, update (PUT), patch, delete and
//! deletecollection, generic over every resource in the registry.

use std::sync::Arc;

use base64::Engine;
use http::{Method, Response};
use serde_json::{json, Value};
use skiff_api::patch::managed;
use skiff_api::patch::PatchType;
use skiff_api::{convert, fields, meta, selector, ApiError, Cause, ResourceInfo};

use super::{subresources, watch, Api, Req};
use crate::request::{self, IncludeObject, Output};
use crate::response::{self, Body};
use crate::router::ResourcePath;
use crate::store::{self, Precondition, StoreError};
use crate::strategy;

/// How many times a read-modify-write retries when another writer got in first.
const RETRIES: usize = 8;

pub async fn dispatch(
    api: &Arc<Api>,
    rp: ResourcePath,
    req: Req,
) -> Result<Response<Body>, ApiError> {
    let res = rp.res;
    if res.namespaced() && rp.name.is_some() && rp.namespace.is_none() {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    if let Some(sub) = &rp.sub {
        if !res.has_subresource(sub) {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!(
                    "the server could not find the requested resource ({}/{sub})",
                    res.plural
                ),
            ));
        }
        return subresources::dispatch(api, &rp, sub, req).await;
    }
    let watching = rp.legacy_watch || req.query.flag("watch");
    match (&req.method, &rp.name) {
        (&Method::GET, None) if watching => watch::serve(api, &rp, &req),
        (&Method::GET, Some(_)) if watching => watch::serve(api, &rp, &req),
        (&Method::GET, None) => list(api, &rp, &req),
        (&Method::GET, Some(name)) => get(api, &rp, name, &req),
        (&Method::POST, None) => create(api, &rp, &req).await,
        (&Method::PUT, Some(name)) => update(api, &rp, name, None, &req).await,
        (&Method::PATCH, Some(name)) => patch(api, &rp, name, None, &req).await,
        (&Method::DELETE, Some(name)) => delete(api, &rp, name, &req).await,
        (&Method::DELETE, None) => delete_collection(api, &rp, &req).await,
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow the method {m} on {}",
            res.qualified_plural()
        ))),
    }
}

/// The store key of an object; resources served from another resource's storage
/// (events.k8s.io Events) use that resource's keys.
pub fn key_of(res: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
    let res = convert::storage_resource(res);
    store::key(
        res.storage_group(),
        res.plural,
        if res.namespaced() { namespace } else { None },
        name,
    )
}

pub fn prefix_of(res: &ResourceInfo, namespace: Option<&str>) -> String {
    let res = convert::storage_resource(res);
    store::prefix(
        res.storage_group(),
        res.plural,
        if res.namespaced() { namespace } else { None },
    )
}

/// Maps store failures onto Status errors about the named object.
pub fn store_error(res: &ResourceInfo, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists => ApiError::already_exists(res, name),
        StoreError::NotFound => ApiError::not_found(res, name),
        StoreError::Conflict { .. } => ApiError::stale(res, name),
        StoreError::Expired {
            requested,
            compacted,
        } => ApiError::expired(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        other => {
            tracing::error!(error = %other, "store failure");
            ApiError::service_unavailable(format!("the store cannot take writes: {other}"))
        }
    }
}

/// The object at `key` as `res` serves it (converted from its stored shape).
pub fn load(api: &Api, res: &ResourceInfo, key: &str) -> Option<Arc<Value>> {
    api.store
        .get(key)
        .map(|v| convert::from_storage_arc(res, v))
}

fn rv_of(obj: &Value) -> u64 {
    meta::resource_version(obj)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// One object in the representation the client asked for.
pub fn render_one(res: &ResourceInfo, obj: &Value, req: &Req) -> Result<Value, ApiError> {
    Ok(match request::output(req.header("accept")) {
        Output::Json => obj.clone(),
        Output::PartialMetadata => response::partial_metadata(obj),
        Output::Table => response::table(
            res,
            &[obj],
            IncludeObject::from_query(&req.query)?,
            meta::resource_version(obj).map(str::to_string),
            None,
            true,
        ),
    })
}

fn get(api: &Api, rp: &ResourcePath, name: &str, req: &Req) -> Result<Response<Body>, ApiError> {
    let obj = load(api, rp.res, &key_of(rp.res, rp.namespace.as_deref(), name))
        .ok_or_else(|| ApiError::not_found(rp.res, name))?;
    Ok(response::json(200, &render_one(rp.res, &obj, req)?))
}

/// Label and field selectors of a list or watch request.
pub struct Filter {
    pub labels: selector::LabelSelector,
    pub fields: fields::FieldSelector,
}

impl Filter {
    pub fn from_query(res: &ResourceInfo, q: &request::Query) -> Result<Filter, ApiError> {
        let labels = selector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = fields::parse(res, q.get("fieldSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        Ok(Filter { labels, fields })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        (self.labels.is_empty() || self.labels.matches(&meta::label_map(obj)))
            && (self.fields.is_empty() || self.fields.matches(obj))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    /// The last key returned.
    k: String,
    /// The revision of the first page.
    rv: u64,
}

fn list(api: &Api, rp: &ResourcePath, req: &Req) -> Result<Response<Body>, ApiError> {
    let res = rp.res;
    let filter = Filter::from_query(res, &req.query)?;
    let prefix = prefix_of(res, rp.namespace.as_deref());
    let limit = req
        .query
        .u64("limit")?
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    // Every page of a paginated list reports the first page's revision, as upstream
    // does: a client that watches from it after the last page then replays whatever
    // changed while it paged, instead of missing writes behind its cursor.
    let (start_after, first_rv) = match req.query.get("continue") {
        None => (None, None),
        Some(tok) => {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(tok)
                .ok()
                .and_then(|b| serde_json::from_slice::<ContinueToken>(&b).ok())
                .filter(|t| t.k.starts_with(&prefix))
                .ok_or_else(|| {
                    ApiError::bad_request("invalid continue token; start the list again without it")
                })?;
            if raw.rv < api.store.compacted_revision() {
                return Err(ApiError::expired(
                    "the provided continue parameter is too old to display a consistent list result; start a new list without it",
                ));
            }
            (Some(raw.k), Some(raw.rv))
        }
    };
    let (all, current_rev, _) = api.store.list(&prefix, start_after.as_deref(), None);
    let all = all
        .into_iter()
        .map(|(k, v)| (k, convert::from_storage_arc(res, v)));
    let rev = first_rv.unwrap_or(current_rev);
    let mut items: Vec<(String, Arc<Value>)> = Vec::new();
    let mut more = false;
    let mut remaining = 0usize;
    for (k, v) in all {
        if !filter.matches(&v) {
            continue;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            more = true;
            remaining += 1;
            continue;
        }
        items.push((k, v));
    }
    let cont = if more {
        let last = items.last().map(|(k, _)| k.clone()).unwrap_or_default();
        let tok = serde_json::to_vec(&ContinueToken { k: last, rv: rev }).expect("serialise");
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tok))
    } else {
        None
    };
    let objs: Vec<&Value> = items.iter().map(|(_, v)| v.as_ref()).collect();
    let body = match request::output(req.header("accept")) {
        Output::Table => response::table(
            res,
            &objs,
            IncludeObject::from_query(&req.query)?,
            Some(rev.to_string()),
            cont,
            true,
        ),
        out => {
            let mut m = json!({"resourceVersion": rev.to_string()});
            if let Some(c) = cont {
                m["continue"] = json!(c);
                m["remainingItemCount"] = json!(remaining);
            }
            let (kind, api_version, items): (String, String, Vec<Value>) =
                if out == Output::PartialMetadata {
                    (
                        "PartialObjectMetadataList".into(),
                        "meta.k8s.io/v1".into(),
                        objs.iter().map(|o| response::partial_metadata(o)).collect(),
                    )
                } else {
                    (
                        format!("{}List", res.kind),
                        res.api_version(),
                        objs.iter().map(|o| (*o).clone()).collect(),
                    )
                };
            json!({"kind": kind, "apiVersion": api_version, "metadata": m, "items": items})
        }
    };
    Ok(response::json(200, &body))
}

/// Checks and fills `kind`/`apiVersion` of a body against the URL's resource.
pub fn check_type(res: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    if let Some(k) = obj.get("kind").and_then(Value::as_str) {
        if k != res.kind {
            return Err(ApiError::bad_request(format!(
                "the kind {k:?} in the body does not match the resource {} ({} expected)",
                res.qualified_plural(),
                res.kind
            )));
        }
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
        if av != res.api_version() {
            return Err(ApiError::bad_request(format!(
                "the apiVersion {av:?} in the body does not match the request ({} expected)",
                res.api_version()
            )));
        }
    }
    obj["kind"] = json!(res.kind);
    obj["apiVersion"] = json!(res.api_version());
    Ok(())
}

/// Checks the namespace of a body against the URL's and fills it in.
fn check_namespace(rp: &ResourcePath, obj: &mut Value) -> Result<(), ApiError> {
    if rp.res.namespaced() {
        let ns = rp.namespace.clone().ok_or_else(|| {
            ApiError::bad_request(format!(
                "{} must be created in a namespace",
                rp.res.qualified_plural()
            ))
        })?;
        match meta::namespace(obj) {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({n}) does not match the namespace sent on the request ({ns})"
                )))
            }
            _ => meta::set(obj, "namespace", json!(ns)),
        }
    } else {
        meta::remove(obj, "namespace");
    }
    Ok(())
}

/// Refuses writes into a namespace that does not exist or is being deleted.
pub fn check_namespace_open(
    api: &Api,
    res: &ResourceInfo,
    ns: Option<&str>,
) -> Result<(), ApiError> {
    let (true, Some(ns)) = (res.namespaced(), ns) else {
        return Ok(());
    };
    let nsres = skiff_api::resource::lookup("", "v1", "namespaces").expect("namespaces are served");
    let Some(nsobj) = api.store.get(&key_of(nsres, None, ns)) else {
        return Err(ApiError::not_found(nsres, ns));
    };
    if meta::deletion_timestamp(&nsobj).is_some() {
        let mut e = ApiError::forbidden(format!(
            "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            res.qualified_plural()
        ));
        e.causes = vec![Cause::new(
            "NamespaceTerminating",
            "metadata.namespace",
            format!("namespace {ns} is being terminated"),
        )];
        return Err(e);
    }
    Ok(())
}

async fn create(api: &Api, rp: &ResourcePath, req: &Req) -> Result<Response<Body>, ApiError> {
    let res = rp.res;
    let (mut obj, warnings) = request::decode_write(res, req)?;
    check_type(res, &mut obj)?;
    check_namespace(rp, &mut obj)?;
    check_namespace_open(api, res, rp.namespace.as_deref())?;
    let fixed_name = meta::name(&obj)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let generate = meta::generate_name(&obj).map(str::to_string);
    if fixed_name.is_none() && generate.is_none() {
        return Err(
            ApiError::invalid(res, "", vec![Cause::required("metadata.name")])
                .with_message_name_required(),
        );
    }
    let attempts = if fixed_name.is_some() { 1 } else { 5 };
    for attempt in 0..attempts {
        let mut o = obj.clone();
        let name = match &fixed_name {
            Some(n) => n.clone(),
            None => format!(
                "{}{}",
                generate.as_deref().unwrap_or(""),
                strategy::name_suffix()
            ),
        };
        meta::set(&mut o, "name", json!(name));
        strategy::prepare_create(res, &mut o, &api.alloc)?;
        if (res.group, res.kind) == ("", "Pod") {
            add_default_tolerations(&mut o, api.default_toleration_seconds);
        }
        record_write(res, None, None, &mut o, req)?;
        if req.query.dry_run() {
            release_allocations(api, res, &o);
            return Ok(request::with_warnings(response::json(201, &o), &warnings));
        }
        match api
            .store
            .create(
                &key_of(res, rp.namespace.as_deref(), &name),
                convert::to_storage(res, o.clone()),
            )
            .await
        {
            Ok(stored) => {
                let stored = convert::from_storage(res, &stored);
                tracing::info!(kind = res.kind, namespace = rp.namespace.as_deref(), name = %name, "created");
                return Ok(request::with_warnings(
                    response::json(201, &stored),
                    &warnings,
                ));
            }
            Err(StoreError::AlreadyExists) if fixed_name.is_none() && attempt + 1 < attempts => {
                release_allocations(api, res, &o);
                continue;
            }
            Err(e) => {
                release_allocations(api, res, &o);
                return Err(store_error(res, &name, e));
            }
        }
    }
    Err(ApiError::new(
        409,
        "AlreadyExists",
        "could not generate a free name; try again",
    ))
}

/// The DefaultTolerationSeconds admission step, with the configured duration on the
/// tolerations it adds (and only on those).
fn add_default_tolerations(pod: &mut Value, seconds: i64) {
    let before = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or(0);
    skiff_api::defaults::default_tolerations(pod);
    if let Some(tols) = pod
        .pointer_mut("/spec/tolerations")
        .and_then(Value::as_array_mut)
    {
        for t in tols.iter_mut().skip(before) {
            t["tolerationSeconds"] = json!(seconds);
        }
    }
}

fn release_allocations(api: &Api, res: &ResourceInfo, obj: &Value) {
    if (res.group, res.kind) == ("", "Service") {
        api.alloc.release_service(obj);
    }
}

/// Whether an object marked for deletion may now leave the store.
fn finalized(res: &ResourceInfo, obj: &Value) -> bool {
    if meta::deletion_timestamp(obj).is_none() || !meta::finalizers(obj).is_empty() {
        return false;
    }
    match (res.group, res.kind) {
        ("", "Namespace") => obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty()),
        ("", "Pod") => {
            obj.pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                == 0
                || obj
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
        }
        _ => true,
    }
}

/// Stores `new` over `old` (at `old`'s revision), or removes the object when the update
/// completed its finalization. `None` means another writer changed it first.
pub async fn commit_update(
    api: &Api,
    res: &ResourceInfo,
    key: &str,
    name: &str,
    old: &Value,
    new: Value,
) -> Result<Option<Arc<Value>>, ApiError> {
    let rev = rv_of(old);
    let result = if finalized(res, &new) {
        let r = api
            .store
            .delete(key, Precondition::Revision(rev))
            .await
            .map(|v| convert::from_storage_arc(res, v));
        if let Ok(gone) = &r {
            release_allocations(api, res, gone);
            tracing::info!(kind = res.kind, name, "finalized and removed");
        }
        r
    } else {
        api.store
            .update(
                key,
                convert::to_storage(res, new),
                Precondition::Revision(rev),
            )
            .await
            .map(|v| convert::from_storage_arc(res, v))
    };
    match result {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::Conflict { .. }) => Ok(None),
        Err(e) => Err(store_error(res, name, e)),
    }
}

/// Equal apart from resourceVersion: such an update is a no-op and writes nothing.
pub fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        meta::remove(&mut v, "resourceVersion");
        v
    };
    strip(a) == strip(b)
}

/// The end of every read-modify-write (PUT and PATCH): an update that changes nothing
/// writes nothing (same resourceVersion), a dry run writes nothing, anything else is
/// committed at `old`'s revision. `Ok(None)`: another writer got in first.
async fn write_back(
    api: &Api,
    res: &ResourceInfo,
    key: &str,
    name: &str,
    old: &Value,
    mut new: Value,
    req: &Req,
) -> Result<Option<Response<Body>>, ApiError> {
    meta::set(&mut new, "resourceVersion", json!(rv_of(old).to_string()));
    if same_object(&new, old) {
        return Ok(Some(response::json(200, &render_one(res, old, req)?)));
    }
    if req.query.dry_run() {
        return Ok(Some(response::json(200, &new)));
    }
    match commit_update(api, res, key, name, old, new).await? {
        Some(stored) => Ok(Some(response::json(200, &render_one(res, &stored, req)?))),
        None => Ok(None),
    }
}

pub async fn update(
    api: &Api,
    rp: &ResourcePath,
    name: &str,
    sub: Option<&str>,
    req: &Req,
) -> Result<Response<Body>, ApiError> {
    let res = rp.res;
    let (mut body, warnings) = request::decode_write(res, req)?;
    check_type(res, &mut body)?;
    if let Some(n) = meta::name(&body) {
        if n != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
    }
    check_namespace(rp, &mut body)?;
    let wanted_rv: Option<u64> = match meta::resource_version(&body) {
        None | Some("") => None,
        Some(s) => Some(s.parse().map_err(|_| {
            ApiError::invalid(
                res,
                name,
                vec![Cause::invalid(
                    "metadata.resourceVersion",
                    &json!(s),
                    "must be a number",
                )],
            )
        })?),
    };
    let key = key_of(res, rp.namespace.as_deref(), name);
    for _ in 0..RETRIES {
        let old = load(api, res, &key).ok_or_else(|| ApiError::not_found(res, name))?;
        if let Some(want) = wanted_rv {
            if want != rv_of(&old) {
                return Err(ApiError::stale(res, name));
            }
        }
        let mut new = body.clone();
        if sub == Some("finalize") {
            let mut n = (*old).clone();
            n["spec"]["finalizers"] = body
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            new = n;
        } else {
            strategy::prepare_update(res, &mut new, &old, sub, &api.alloc)?;
            record_write(res, sub, Some(&old), &mut new, req)?;
        }
        match write_back(api, res, &key, name, &old, new, req).await? {
            Some(resp) => return Ok(request::with_warnings(resp, &warnings)),
            None if wanted_rv.is_some() => return Err(ApiError::stale(res, name)),
            None => continue,
        }
    }
    Err(ApiError::conflict(
        res,
        name,
        "too many concurrent writers; try again",
    ))
}

/// Applies a patch request to the current object; shared with subresources, which pass
/// a `view` that maps the object to what the patch addresses (e.g. Scale) and back.
pub async fn patch(
    api: &Api,
    rp: &ResourcePath,
    name: &str,
    sub: Option<&str>,
    req: &Req,
) -> Result<Response<Body>, ApiError> {
    let res = rp.res;
    let ct = req.header("content-type").unwrap_or("");
    let ty = PatchType::from_content_type(ct).ok_or_else(|| {
        ApiError::unsupported_media_type(format!(
            "the patch content type {ct:?} is not supported; use application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json or application/apply-patch+yaml"
        ))
    })?;
    if ty == PatchType::Apply {
        return server_side_apply(api, rp, name, sub, req).await;
    }
    let patch_doc: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
    let key = key_of(res, rp.namespace.as_deref(), name);
    for _ in 0..RETRIES {
        let old = load(api, res, &key).ok_or_else(|| ApiError::not_found(res, name))?;
        let mut new = skiff_api::patch::apply(res, ty, &old, &patch_doc).map_err(|msg| {
            ApiError::invalid(res, name, vec![Cause::new("FieldValueInvalid", "", msg)])
        })?;
        if !new.is_object() {
            return Err(ApiError::bad_request("the patch result is not an object"));
        }
        // A patch may carry a resourceVersion precondition.
        let wanted = meta::resource_version(&new).map(str::to_string);
        let pinned = wanted
            .as_deref()
            .is_some_and(|w| w != rv_of(&old).to_string());
        if pinned {
            return Err(ApiError::stale(res, name));
        }
        if meta::name(&new) != Some(name) {
            return Err(ApiError::bad_request(format!(
                "the patch would change the object's name from {name}"
            )));
        }
        check_type(res, &mut new)?;
        let warnings = request::check_patched(res, req, &old, &mut new)?;
        strategy::prepare_update(res, &mut new, &old, sub, &api.alloc)?;
        record_write(res, sub, Some(&old), &mut new, req)?;
        if let Some(resp) = write_back(api, res, &key, name, &old, new, req).await? {
            return Ok(request::with_warnings(resp, &warnings));
        }
    }
    Err(ApiError::conflict(
        res,
        name,
        "too many concurrent writers; try again",
    ))
}

/// The field manager of a write: the `fieldManager` parameter, else the User-Agent's
/// product name (managedFields bookkeeping, see `skiff_api::patch::managed`).
pub fn field_manager(req: &Req) -> String {
    match req.query.get("fieldManager") {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => managed::manager_from_user_agent(req.header("user-agent").unwrap_or("")),
    }
}

/// Records an ordinary write (create, update, patch) of `new` over `old` through
/// `sub` in `new`'s managedFields, for the request's field manager.
pub fn record_write(
    res: &ResourceInfo,
    sub: Option<&str>,
    old: Option<&Value>,
    new: &mut Value,
    req: &Req,
) -> Result<(), ApiError> {
    let name = meta::name(new).unwrap_or("").to_string();
    managed::record_update(res, sub, old, new, &field_manager(req), &strategy::now())
        .map_err(|e| managed_error(res, &name, e))
}

/// A managedFields or apply failure as the Status upstream sends.
pub fn managed_error(res: &ResourceInfo, name: &str, e: managed::ManagedError) -> ApiError {
    match e {
        managed::ManagedError::InvalidManagedFields { field, message } => ApiError::invalid(
            res,
            name,
            vec![Cause::new("FieldValueInvalid", field, message)],
        ),
        managed::ManagedError::BadApply(msg) => ApiError::bad_request(msg),
        managed::ManagedError::Conflicts(conflicts) => {
            let mut err = ApiError::new(409, "Conflict", managed::conflict_message(&conflicts));
            err.causes = conflicts
                .into_iter()
                .map(|c| {
                    Cause::new(
                        "FieldManagerConflict",
                        c.field,
                        format!("conflict with {}", c.manager),
                    )
                })
                .collect();
            err
        }
    }
}

/// Server-side apply (`PATCH` with `application/apply-patch+yaml`): merges the applied
/// configuration into the object, or creates it when absent, with conflict detection
/// on managed fields (`skiff_api::patch::managed::apply`).
/// The field manager of a server-side apply: required, unlike on other writes, where
/// the User-Agent stands in for it.
pub(crate) fn apply_manager(req: &Req) -> Result<String, ApiError> {
    match req.query.get("fieldManager") {
        Some(m) if !m.is_empty() => Ok(m.to_string()),
        _ => Err(ApiError::bad_request(
            "PATCH with an apply content type requires the fieldManager parameter",
        )),
    }
}

async fn server_side_apply(
    api: &Api,
    rp: &ResourcePath,
    name: &str,
    sub: Option<&str>,
    req: &Req,
) -> Result<Response<Body>, ApiError> {
    let res = rp.res;
    let manager = apply_manager(req)?;
    if manager.chars().count() > 128 {
        return Err(ApiError::bad_request(
            "fieldManager must not be longer than 128 characters",
        ));
    }
    let mut doc = request::decode(&req.body, Some("application/yaml"))?;
    if !doc.is_object() {
        return Err(ApiError::bad_request(
            "the applied configuration must be an object",
        ));
    }
    match meta::name(&doc) {
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
        _ => meta::set(&mut doc, "name", json!(name)),
    }
    check_namespace(rp, &mut doc)?;
    // Unknown and duplicate fields of the configuration, per fieldValidation.
    let warnings = request::check_patched(res, req, &json!({}), &mut doc)?;
    let force = req.query.flag("force");
    let key = key_of(res, rp.namespace.as_deref(), name);
    for _ in 0..RETRIES {
        let now = strategy::now();
        let ask = managed::ApplyRequest {
            manager: &manager,
            subresource: sub,
            force,
            now: &now,
        };
        let Some(old) = load(api, res, &key) else {
            if sub.is_some() {
                return Err(ApiError::not_found(res, name));
            }
            check_namespace_open(api, res, rp.namespace.as_deref())?;
            let mut obj =
                managed::apply(res, None, &doc, &ask).map_err(|e| managed_error(res, name, e))?;
            check_type(res, &mut obj)?;
            strategy::prepare_create(res, &mut obj, &api.alloc)?;
            if (res.group, res.kind) == ("", "Pod") {
                add_default_tolerations(&mut obj, api.default_toleration_seconds);
            }
            if req.query.dry_run() {
                release_allocations(api, res, &obj);
                return Ok(request::with_warnings(response::json(201, &obj), &warnings));
            }
            match api
                .store
                .create(&key, convert::to_storage(res, obj.clone()))
                .await
            {
                Ok(stored) => {
                    let stored = convert::from_storage(res, &stored);
                    tracing::info!(kind = res.kind, name, "created by apply");
                    let resp = response::json(201, &render_one(res, &stored, req)?);
                    return Ok(request::with_warnings(resp, &warnings));
                }
                Err(StoreError::AlreadyExists) => {
                    release_allocations(api, res, &obj);
                    continue;
                }
                Err(e) => {
                    release_allocations(api, res, &obj);
                    return Err(store_error(res, name, e));
                }
            }
        };
        let mut new =
            managed::apply(res, Some(&old), &doc, &ask).map_err(|e| managed_error(res, name, e))?;
        // A resourceVersion in the configuration is a precondition.
        if let Some(want) = meta::resource_version(&doc) {
            if !want.is_empty() && want != rv_of(&old).to_string() {
                return Err(ApiError::stale(res, name));
            }
        }
        check_type(res, &mut new)?;
        // The status rules of prepare_update rebuild the object from `old` for /status;
        // the managed fields computed here are the ones to keep.
        let fields = new.pointer("/metadata/managedFields").cloned();
        strategy::prepare_update(res, &mut new, &old, sub, &api.alloc)?;
        match fields {
            Some(f) => meta::set(&mut new, "managedFields", f),
            None => meta::remove(&mut new, "managedFields"),
        }
        if let Some(resp) = write_back(api, res, &key, name, &old, new, req).await? {
            return Ok(request::with_warnings(resp, &warnings));
        }
    }
    Err(ApiError::conflict(
        res,
        name,
        "too many concurrent writers; try again",
    ))
}

/// DeleteOptions from the body and the query.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    pub propagation: Option<String>,
    pub grace: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    pub fn from_request(req: &Req) -> Result<DeleteOptions, ApiError> {
        let mut o = DeleteOptions {
            dry_run: req.query.dry_run(),
            ..Default::default()
        };
        if !req.body.is_empty() {
            let b = request::decode_object(&req.body, req.header("content-type"))?;
            o.propagation = b
                .get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string);
            if b.get("orphanDependents").and_then(Value::as_bool) == Some(true)
                && o.propagation.is_none()
            {
                o.propagation = Some("Orphan".into());
            }
            o.grace = b.get("gracePeriodSeconds").and_then(Value::as_i64);
            o.uid = b
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string);
            o.resource_version = b
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            if b.get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v == "All"))
            {
                o.dry_run = true;
            }
        }
        if let Some(p) = req.query.get("propagationPolicy") {
            o.propagation = Some(p.to_string());
        }
        if let Some(g) = req.query.get("gracePeriodSeconds") {
            o.grace = Some(
                g.parse()
                    .map_err(|_| ApiError::bad_request("gracePeriodSeconds must be a number"))?,
            );
        }
        if let Some(p) = &o.propagation {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy {p:?} is not one of Orphan, Background, Foreground"
                )));
            }
        }
        Ok(o)
    }
}

async fn delete(
    api: &Api,
    rp: &ResourcePath,
    name: &str,
    req: &Req,
) -> Result<Response<Body>, ApiError> {
    let opts = DeleteOptions::from_request(req)?;
    let obj = delete_one(api, rp.res, rp.namespace.as_deref(), name, &opts).await?;
    Ok(response::json(200, &obj))
}

/// Deletes one object per Kubernetes' rules: preconditions, graceful pod deletion,
/// finalizers (including the ones propagationPolicy adds) and namespace termination.
/// Returns the object as the response shows it (gone, or marked for deletion).
pub async fn delete_one(
    api: &Api,
    res: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Value, ApiError> {
    let key = key_of(res, ns, name);
    for _ in 0..RETRIES {
        let old = load(api, res, &key).ok_or_else(|| ApiError::not_found(res, name))?;
        if let Some(uid) = &opts.uid {
            let have = meta::uid(&old).unwrap_or("");
            if uid != have {
                return Err(ApiError::conflict(
                    res,
                    name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"),
                ));
            }
        }
        if let Some(rv) = &opts.resource_version {
            let have = meta::resource_version(&old).unwrap_or("");
            if rv != have {
                return Err(ApiError::conflict(
                    res,
                    name,
                    &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"),
                ));
            }
        }
        let mut new = (*old).clone();
        match opts.propagation.as_deref() {
            Some("Orphan") => strategy::add_finalizer(&mut new, "orphan"),
            Some("Foreground") => strategy::add_finalizer(&mut new, "foregroundDeletion"),
            _ => {}
        }
        let already = meta::deletion_timestamp(&old).is_some();
        let is_pod = (res.group, res.kind) == ("", "Pod");
        let mut graceful = false;
        if is_pod {
            let bound = !old
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty();
            let done = matches!(
                old.pointer("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            );
            let default_grace = old
                .pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30);
            let grace = opts.grace.unwrap_or(default_grace).max(0);
            if bound && !done && grace > 0 {
                graceful = true;
                let current = old
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64);
                // A second delete may only shorten the grace period.
                if current.is_none_or(|c| grace < c) {
                    let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
                    meta::set(
                        &mut new,
                        "deletionTimestamp",
                        json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                    );
                    meta::set(&mut new, "deletionGracePeriodSeconds", json!(grace));
                }
            } else {
                meta::set(&mut new, "deletionGracePeriodSeconds", json!(0));
            }
        }
        let ns_terminating = (res.group, res.kind) == ("", "Namespace")
            && new
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
        let keep = graceful || ns_terminating || !meta::finalizers(&new).is_empty();
        if keep {
            if meta::deletion_timestamp(&new).is_none() {
                meta::set(&mut new, "deletionTimestamp", json!(strategy::now()));
                if !is_pod {
                    meta::set(&mut new, "deletionGracePeriodSeconds", json!(0));
                }
            }
            if ns_terminating {
                new["status"]["phase"] = json!("Terminating");
            }
            if opts.dry_run || (already && same_object(&new, &old)) {
                return Ok(new);
            }
            match commit_update(api, res, &key, name, &old, new).await? {
                Some(v) => return Ok((*v).clone()),
                None => continue,
            }
        }
        if opts.dry_run {
            return Ok((*old).clone());
        }
        match api
            .store
            .delete(&key, Precondition::Revision(rv_of(&old)))
            .await
            .map(|v| convert::from_storage_arc(res, v))
        {
            Ok(gone) => {
                release_allocations(api, res, &gone);
                if (res.group, res.kind) == ("", "Node") {
                    // A deleted node must join again (after a reinstall, say).
                    if let Err(e) = api.auth.write().expect("auth lock").revoke_node(name) {
                        tracing::warn!(node = name, error = %e, "could not revoke the node's credential");
                    }
                }
                tracing::info!(kind = res.kind, namespace = ns, name, "deleted");
                return Ok((*gone).clone());
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(store_error(res, name, e)),
        }
    }
    Err(ApiError::conflict(
        res,
        name,
        "too many concurrent writers; try again",
    ))
}

async fn delete_collection(
    api: &Api,
    rp: &ResourcePath,
    req: &Req,
) -> Result<Response<Body>, ApiError> {
    let res = rp.res;
    let filter = Filter::from_query(res, &req.query)?;
    let opts = DeleteOptions::from_request(req)?;
    let (all, _, _) = api
        .store
        .list(&prefix_of(res, rp.namespace.as_deref()), None, None);
    let mut deleted = Vec::new();
    for (_, obj) in all.into_iter().filter(|(_, o)| filter.matches(o)) {
        let name = meta::name(&obj).unwrap_or("").to_string();
        let ns = meta::namespace(&obj).map(str::to_string);
        match delete_one(api, res, ns.as_deref(), &name, &opts).await {
            Ok(v) => deleted.push(v),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(response::json(
        200,
        &json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(), "metadata": {}, "items": deleted}),
    ))
}
