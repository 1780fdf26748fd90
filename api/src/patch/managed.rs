//! Server-side apply and `metadata.managedFields`, as the Kubernetes API server keeps
//! them (<https://kubernetes.io/docs/reference/using-api/server-side-apply/>).
//!
//! Every write records who set which fields. An ordinary write (create, update,
//! patch) is an `Update`: its manager takes the fields it changed, and other managers
//! lose them; it never conflicts. An apply is declarative: the applied configuration
//! is merged into the live object, the applier owns exactly the fields it sent, fields
//! it sent last time and no longer sends are removed (unless someone else owns them),
//! and changing a field another manager owns is a conflict unless forced.
//!
//! Both paths are pure functions over JSON objects; the API server calls
//! [`record_update`] after preparing every create/update/patch and [`apply`] for
//! `application/apply-patch+yaml` patches.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::fieldset::{self, Display, FieldSet, Members, Path};
use super::schema::{self, Field, Ty};
use crate::resource::ResourceInfo;

/// `metadata.managedFields[].operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `metadata.managedFields` entry, its field set decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub time: Option<String>,
    /// Empty for the main resource.
    pub subresource: String,
    pub fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, op: Operation, subresource: &str) -> bool {
        self.manager == manager && self.operation == op && self.subresource == subresource
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation.as_str()));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), fieldset::encode(&self.fields));
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
    }

    /// How conflicts name the manager: `"kubectl" using apps/v1` for an Update,
    /// `"kubectl"` for an Apply, as upstream prints them.
    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// Why a write cannot be recorded or an apply cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ManagedError {
    /// A bad `metadata.managedFields`; `field` names the entry at fault.
    #[error("{field}: {message}")]
    InvalidManagedFields { field: String, message: String },
    /// The applied configuration itself is unusable (HTTP 400).
    #[error("{0}")]
    BadApply(String),
    /// Fields another manager owns would change (HTTP 409).
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
}

/// One field an apply would take from another manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager, described as upstream does (`"x" using apps/v1`).
    pub manager: String,
    /// The field, as upstream prints paths (`.spec.replicas`).
    pub field: String,
}

/// The Status message of a failed apply, worded as upstream words it.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.manager, c.field
        );
    }
    let managers: BTreeSet<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with {m}:"));
        for c in conflicts.iter().filter(|c| c.manager == m) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// The field manager of a write that names none: the User-Agent up to its first `/`
/// (`kubectl/v1.33.0 (linux/amd64) ...` -> `kubectl`), without control characters, at
/// most 128 characters, as upstream derives it.
pub fn manager_from_user_agent(user_agent: &str) -> String {
    let prefix = user_agent.split('/').next().unwrap_or("");
    prefix
        .chars()
        .filter(|c| !c.is_control())
        .take(128)
        .collect()
}

/// Reads `metadata.managedFields` of `obj`.
pub fn read_entries(obj: &Value) -> Result<Vec<Entry>, ManagedError> {
    let Some(list) = obj.pointer("/metadata/managedFields") else {
        return Ok(Vec::new());
    };
    let list = match list {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        _ => {
            return Err(ManagedError::InvalidManagedFields {
                field: "metadata.managedFields".into(),
                message: "must be a list".into(),
            })
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        let field = |f: &str| format!("metadata.managedFields[{i}].{f}");
        let bad = |f: &str, message: String| ManagedError::InvalidManagedFields {
            field: field(f),
            message,
        };
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let operation = match e.get("operation").and_then(Value::as_str) {
            Some("Apply") => Operation::Apply,
            Some("Update") => Operation::Update,
            other => {
                return Err(bad(
                    "operation",
                    format!(
                        "Unsupported value: {}: supported values: \"Apply\", \"Update\"",
                        other.map(|o| format!("{o:?}")).unwrap_or("\"\"".into())
                    ),
                ))
            }
        };
        match e.get("fieldsType").and_then(Value::as_str) {
            Some("FieldsV1") => {}
            other => {
                return Err(bad(
                    "fieldsType",
                    format!(
                        "Unsupported value: {}: supported values: \"FieldsV1\"",
                        other.map(|o| format!("{o:?}")).unwrap_or("\"\"".into())
                    ),
                ))
            }
        }
        let fields = match e.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(v) => fieldset::decode(v).map_err(|err| bad("fieldsV1", err.to_string()))?,
        };
        out.push(Entry {
            manager: s("manager"),
            operation,
            api_version: s("apiVersion"),
            time: e.get("time").and_then(Value::as_str).map(str::to_string),
            subresource: s("subresource"),
            fields,
        });
    }
    Ok(out)
}

/// Writes `entries` as `metadata.managedFields` (removing the field when empty).
pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        m.shift_remove("managedFields");
    } else {
        m.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::to_json).collect()),
        );
    }
}

/// Metadata the server sets: never owned by anyone (upstream strips the same).
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
];

/// The part of `obj` a write through `sub` may own: no type fields or server metadata;
/// only `status` through `/status`; no `status` through the main resource of a kind
/// with a status subresource (the server keeps it there).
fn ownable(res: &ResourceInfo, sub: Option<&str>, obj: &Value) -> Value {
    let Value::Object(m) = obj else {
        return json!({});
    };
    let mut m = m.clone();
    m.shift_remove("apiVersion");
    m.shift_remove("kind");
    if sub == Some("status") {
        m.retain(|k, _| k == "status");
    } else if res.has_status {
        m.shift_remove("status");
    }
    if let Some(Value::Object(meta)) = m.get_mut("metadata") {
        for k in SERVER_METADATA {
            meta.shift_remove(*k);
        }
        if meta.is_empty() {
            m.shift_remove("metadata");
        }
    }
    Value::Object(m)
}

fn owned_members(res: &ResourceInfo, sub: Option<&str>, obj: &Value) -> Members {
    fieldset::members(&ownable(res, sub, obj), schema::root(res.kind))
}

/// Every path of `obj` anyone could own, whatever the subresource.
fn all_members(res: &ResourceInfo, obj: &Value) -> Members {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.shift_remove("apiVersion");
        m.shift_remove("kind");
    }
    if let Some(Value::Object(meta)) = v.get_mut("metadata") {
        for k in SERVER_METADATA {
            meta.shift_remove(*k);
        }
    }
    fieldset::members(&v, schema::root(res.kind))
}

/// Whether the client asked to strip managedFields: upstream's `[{}]` (a list whose
/// entries are all empty). An empty list `[]` keeps them, as upstream does, so that a
/// client unaware of the field cannot drop it by accident.
fn asks_reset(v: &Value) -> bool {
    matches!(v, Value::Array(a) if !a.is_empty() && a.iter().all(|e| e.as_object().is_some_and(Map::is_empty)))
}

/// Sets the fields of `entry` to `fields`, moving its time to `now` only when the write
/// changed something of the entry's (`wrote`) or its set moved, so that a repeated
/// write changes nothing.
fn set_fields(entry: &mut Entry, fields: FieldSet, wrote: bool, api_version: &str, now: &str) {
    if wrote || entry.fields != fields || entry.api_version != api_version || entry.time.is_none() {
        entry.time = Some(now.to_string());
    }
    entry.fields = fields;
    entry.api_version = api_version.to_string();
}

/// Drops from every entry the paths `obj` no longer has, and the entries left empty.
fn prune(entries: &mut Vec<Entry>, present: &Members, keep: Option<usize>) {
    for (i, e) in entries.iter_mut().enumerate() {
        if Some(i) != keep {
            e.fields.retain(|p| present.contains_key(p));
        }
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// Records an ordinary write (create when `old` is `None`, update or patch) by
/// `manager` through `sub` into `new.metadata.managedFields`. `new` is the object as
/// it will be stored. managedFields the client sent replace the stored ones (that is
/// how kubectl moves client-side apply ownership to server-side apply); `[{}]`
/// removes them all.
pub fn record_update(
    res: &ResourceInfo,
    sub: Option<&str>,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    now: &str,
) -> Result<(), ManagedError> {
    let sent = new.pointer("/metadata/managedFields").cloned();
    let stored = old.and_then(|o| o.pointer("/metadata/managedFields"));
    if sent.as_ref().is_some_and(asks_reset) {
        write_entries(new, &[]);
        return Ok(());
    }
    let mut entries = match &sent {
        Some(Value::Array(a)) if !a.is_empty() && sent.as_ref() != stored => read_entries(new)?,
        // A stored list that no longer reads (written by an older server) starts over.
        _ => old
            .map(read_entries)
            .and_then(Result::ok)
            .unwrap_or_default(),
    };
    let subresource = sub.unwrap_or("");
    let before = old.map(|o| owned_members(res, sub, o)).unwrap_or_default();
    let after = owned_members(res, sub, new);
    let changed: FieldSet = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(*v))
        .map(|(p, _)| p.clone())
        .collect();
    for e in entries.iter_mut() {
        if !e.is(manager, Operation::Update, subresource) {
            e.fields.retain(|p| !changed.contains(p));
        }
    }
    let api_version = res.api_version();
    match entries
        .iter_mut()
        .find(|e| e.is(manager, Operation::Update, subresource))
    {
        Some(e) => {
            let wrote = !changed.is_empty();
            let fields: FieldSet = e
                .fields
                .iter()
                .filter(|p| after.contains_key(*p))
                .cloned()
                .chain(changed)
                .collect();
            set_fields(e, fields, wrote, &api_version, now);
        }
        None if !changed.is_empty() => entries.push(Entry {
            manager: manager.to_string(),
            operation: Operation::Update,
            api_version: api_version.clone(),
            time: Some(now.to_string()),
            subresource: subresource.to_string(),
            fields: changed,
        }),
        None => {}
    }
    prune(&mut entries, &all_members(res, new), None);
    write_entries(new, &entries);
    Ok(())
}

/// What an apply request asks.
pub struct ApplyRequest<'a> {
    pub manager: &'a str,
    /// `/status` or the main resource (`None`).
    pub subresource: Option<&'a str>,
    /// `force=true`: take conflicting fields instead of failing.
    pub force: bool,
    /// The timestamp to record.
    pub now: &'a str,
}

/// Applies the configuration `applied` to `live` (`None`: the object does not exist
/// yet) and returns the object to store, managedFields included. The caller then
/// prepares it like any create or update (defaults, validation, status rules).
pub fn apply(
    res: &ResourceInfo,
    live: Option<&Value>,
    applied: &Value,
    req: &ApplyRequest<'_>,
) -> Result<Value, ManagedError> {
    let Value::Object(_) = applied else {
        return Err(ManagedError::BadApply(
            "the applied configuration must be an object".into(),
        ));
    };
    let api_version = res.api_version();
    for (field, want) in [("apiVersion", api_version.as_str()), ("kind", res.kind)] {
        match applied.get(field).and_then(Value::as_str) {
            Some(v) if v == want => {}
            Some(v) => {
                return Err(ManagedError::BadApply(format!(
                    "the applied configuration has {field} {v:?}, but the request is for {want:?}"
                )))
            }
            None => {
                return Err(ManagedError::BadApply(format!(
                    "{field} must be set in the applied configuration"
                )))
            }
        }
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ManagedError::BadApply(
            "metadata.managedFields must be nil in an applied configuration".into(),
        ));
    }
    let sub = req.subresource;
    let subresource = sub.unwrap_or("");
    let root = schema::root(res.kind);
    let live_obj = live.cloned().unwrap_or_else(|| json!({}));
    // Entries that no longer read are dropped rather than blocking every apply.
    let mut entries = live
        .map(read_entries)
        .and_then(Result::ok)
        .unwrap_or_default();
    let me = entries
        .iter()
        .position(|e| e.is(req.manager, Operation::Apply, subresource));
    let previous: FieldSet = me.map(|i| entries[i].fields.clone()).unwrap_or_default();
    let wanted_members = owned_members(res, sub, applied);
    let wanted: FieldSet = wanted_members.keys().cloned().collect();

    let mut merged = merge(live_obj.clone(), applied, root);

    // Fields this manager applied before and dropped now go, unless someone else owns
    // them (or something under them).
    let others: FieldSet = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != me)
        .flat_map(|(_, e)| e.fields.iter().cloned())
        .collect();
    let under = |set: &FieldSet, p: &Path| set.iter().any(|q| q.starts_with(p));
    // Shallowest first: an element goes whole before its key field could go alone
    // (which would leave an element that no key names).
    let mut dropped: Vec<&Path> = previous.difference(&wanted).collect();
    dropped.sort_by_key(|p| p.len());
    for p in dropped {
        if !under(&others, p) && !under(&wanted, p) {
            fieldset::remove(&mut merged, p);
        }
    }

    // What the apply changes, and who else owns it.
    let before = owned_members(res, sub, &live_obj);
    let after = owned_members(res, sub, &merged);
    let changed: FieldSet = wanted
        .iter()
        .filter(|p| before.get(*p) != after.get(*p))
        .cloned()
        .collect();
    let mut conflicts = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if Some(i) == me {
            continue;
        }
        for p in e.fields.intersection(&changed) {
            conflicts.push(Conflict {
                manager: e.describe(),
                field: Display(p).to_string(),
            });
        }
    }
    if !conflicts.is_empty() {
        if !req.force {
            return Err(ManagedError::Conflicts(conflicts));
        }
        for (i, e) in entries.iter_mut().enumerate() {
            if Some(i) != me {
                e.fields.retain(|p| !changed.contains(p));
            }
        }
    }

    let me = match me {
        Some(i) => {
            let wrote = !changed.is_empty();
            set_fields(&mut entries[i], wanted, wrote, &api_version, req.now);
            i
        }
        None => {
            entries.push(Entry {
                manager: req.manager.to_string(),
                operation: Operation::Apply,
                api_version: api_version.clone(),
                time: Some(req.now.to_string()),
                subresource: subresource.to_string(),
                fields: wanted,
            });
            entries.len() - 1
        }
    };
    prune(&mut entries, &all_members(res, &merged), Some(me));
    if merged.get("metadata").is_none() {
        merged["metadata"] = json!({});
    }
    write_entries(&mut merged, &entries);
    Ok(merged)
}

fn struct_ty(meta: Option<Field>) -> Ty {
    match meta {
        Some(Field::Struct(t)) => t,
        _ => Ty::Unknown,
    }
}

/// Merges an applied configuration into `live`: maps key by key, keyed lists element
/// by element, scalar sets as sets, everything else replaced. Nulls in the applied
/// configuration set nothing. Applied elements come in the applied order, elements
/// only the live object has follow in theirs.
pub fn merge(live: Value, applied: &Value, ty: Ty) -> Value {
    merge_value(live, applied, Some(Field::Struct(ty)))
}

fn merge_value(live: Value, applied: &Value, meta: Option<Field>) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => Value::Object(merge_map(l, a, struct_ty(meta))),
        (_, Value::Object(a)) => Value::Object(merge_map(Map::new(), a, struct_ty(meta))),
        (live, Value::Array(a)) => {
            let l = match live {
                Value::Array(l) => l,
                _ => Vec::new(),
            };
            match meta {
                Some(Field::MergeList { key, elem }) => Value::Array(merge_keyed(l, a, key, elem)),
                Some(Field::PrimitiveSet) => {
                    let mut out: Vec<Value> = Vec::new();
                    for v in a.iter().chain(l.iter()) {
                        if !out.contains(v) {
                            out.push(v.clone());
                        }
                    }
                    Value::Array(out)
                }
                _ => applied.clone(),
            }
        }
        (_, a) => a.clone(),
    }
}

fn merge_map(
    mut live: Map<String, Value>,
    applied: &Map<String, Value>,
    ty: Ty,
) -> Map<String, Value> {
    for (k, v) in applied {
        if v.is_null() {
            continue;
        }
        let slot = live.entry(k.clone()).or_insert(Value::Null);
        let merged = merge_value(std::mem::take(slot), v, schema::field(ty, k));
        *slot = merged;
    }
    live
}

fn merge_keyed(live: Vec<Value>, applied: &[Value], key: &str, elem: Ty) -> Vec<Value> {
    let keyed = |e: &Value| e.get(key).filter(|v| !v.is_null()).cloned();
    if applied.iter().any(|e| !e.is_object() || keyed(e).is_none()) {
        // Without keys the elements cannot be matched: the list is replaced.
        return applied.to_vec();
    }
    let mut live: Vec<Option<Value>> = live.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(live.len() + applied.len());
    for a in applied {
        let k = keyed(a);
        let found = live
            .iter_mut()
            .find(|l| l.as_ref().is_some_and(|l| keyed(l) == k))
            .and_then(Option::take);
        let base = match found {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let Value::Object(am) = a else { continue };
        out.push(Value::Object(merge_map(base, am, elem)));
    }
    out.extend(live.into_iter().flatten());
    out
}

#[cfg(test)]
mod tests;
