//! Strategic merge patch, as the Kubernetes API server applies it.
//!
//! A strategic merge patch is a JSON merge patch that knows about lists: where the
//! [`schema`](super::schema) gives a list a merge key, patch elements merge into the
//! original element with the same key (new ones are added) instead of replacing the
//! list. kubectl's client-side `apply` sends these, computed three-way from the
//! last applied configuration, the new file and the live object.
//!
//! Rules, as upstream (`apimachinery/pkg/util/strategicpatch`):
//! - a `null` value deletes the key; maps merge key by key; scalars and lists without
//!   metadata are replaced; a change of JSON type replaces the value;
//! - `$patch: replace` in a map replaces the map with the rest of the patch;
//!   `$patch: delete` in a map leaves an empty map (`{}`); `$patch: merge` is the
//!   default behaviour;
//! - in a keyed list, `{"<key>": v, "$patch": "delete"}` removes the element with that
//!   key and an element `{"$patch": "replace"}` makes the other patch elements the
//!   whole list;
//! - `$retainKeys: [..]` drops every key of the original map not listed (how a
//!   Deployment's strategy or a volume's source switches kind);
//! - `$deleteFromPrimitiveList/<field>: [..]` removes scalars from a merged scalar
//!   list (finalizers);
//! - `$setElementOrder/<field>: [..]` gives the order of the merged list: listed
//!   elements come in that order, elements only the server knows keep their place
//!   relative to their old neighbours.
//!
//! Without `$setElementOrder`, the patch list itself gives the order, woven in the
//! same way: elements the patch names come in patch order, and an element only the
//! server has stays ahead of a named element only if it stood ahead of it before.
//! So, as upstream (and as kubectl's documentation shows), a new container patched
//! into `[a, b]` with `[{name: c}]` lands first: `[c, a, b]`. kubectl's `apply`
//! always sends `$setElementOrder`, so the order it asks for is the order stored.
//!
//! A merging list left empty (its last element deleted, or every finalizer removed)
//! is dropped, as upstream's typed `omitempty` lists are.
//!
//! Two deliberate differences from upstream, both more forgiving: `$patch: merge` is
//! accepted in maps and list elements (upstream refuses it), and a value new to the
//! object is merged into an empty one, so directives and nulls inside it never reach
//! the stored object (upstream copies such a value verbatim).

use serde_json::{Map, Value};

use super::schema::{self, Field, Ty};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// Why a strategic merge patch cannot be applied. `path` is the dotted field path in
/// the patch (`spec.template.spec.containers`), or empty for the root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("a strategic merge patch must be a JSON object, not {0}")]
    NotAnObject(String),
    #[error(
        "unknown $patch directive {value} at {path:?}: use \"replace\", \"merge\" or \"delete\""
    )]
    BadDirective { value: String, path: String },
    #[error("element {element} of list {path:?} has no value for its merge key {key:?}")]
    MissingMergeKey {
        key: String,
        path: String,
        element: String,
    },
    #[error("list {path:?} merges objects by {key:?}, but the patch has the element {element}")]
    ElementNotAnObject {
        key: String,
        path: String,
        element: String,
    },
    #[error("$retainKeys at {path:?} must be a list of field names")]
    BadRetainKeys { path: String },
    #[error("{directive}{field} at {path:?} must be a list")]
    NotAList {
        directive: &'static str,
        field: String,
        path: String,
    },
    #[error("the elements of list {path:?} are not in the order its $setElementOrder/{field} gives; list every patched element there, in the same order")]
    OrderMismatch { field: String, path: String },
}

/// Applies `patch` to `original`, whose root type is `root`.
pub fn apply(original: &Value, patch: &Value, root: Ty) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject(kind_of(patch).to_string()));
    };
    let original = match original {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    merge_map(original, patch, root, "").map(Value::Object)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// The type to merge a nested map with: its struct type, or `Unknown`.
fn struct_ty(meta: Option<Field>) -> Ty {
    match meta {
        Some(Field::Struct(t)) => t,
        _ => Ty::Unknown,
    }
}

fn merge_key(meta: Option<Field>) -> Option<&'static str> {
    match meta {
        Some(Field::MergeList { key, .. }) => Some(key),
        _ => None,
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Ty,
    path: &str,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(d) = patch.get(PATCH) {
        match d.as_str() {
            Some("replace") => {
                // Merging the rest into nothing drops nulls and directives, which
                // must not end up in the stored object.
                let mut rest = patch.clone();
                rest.shift_remove(PATCH);
                return merge_map(Map::new(), &rest, ty, path);
            }
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => {
                return Err(PatchError::BadDirective {
                    value: d.to_string(),
                    path: path.to_string(),
                })
            }
        }
    }

    if let Some(keys) = patch.get(RETAIN_KEYS) {
        let keep: Vec<&str> = keys
            .as_array()
            .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
            .ok_or_else(|| PatchError::BadRetainKeys {
                path: path.to_string(),
            })?;
        original.retain(|k, _| keep.contains(&k.as_str()));
    }

    // Ordering directives, checked against the patch lists before anything merges;
    // the lists as they were are kept to place the elements only the server has.
    let mut orders: Vec<(&str, &[Value], Vec<Value>)> = Vec::new();
    for (k, v) in patch {
        let Some(field) = k.strip_prefix(SET_ORDER) else {
            continue;
        };
        let order = v.as_array().ok_or_else(|| PatchError::NotAList {
            directive: SET_ORDER,
            field: field.to_string(),
            path: path.to_string(),
        })?;
        let key = merge_key(schema::field(ty, field));
        if let Some(key) = key {
            for e in order {
                if e.get(key).is_none_or(Value::is_null) {
                    return Err(PatchError::MissingMergeKey {
                        key: key.to_string(),
                        path: join(path, k),
                        element: e.to_string(),
                    });
                }
            }
        }
        if let Some(Value::Array(list)) = patch.get(field) {
            check_order(list, order, key, field, path)?;
        }
        let before = match original.get(field) {
            Some(Value::Array(l)) => l.clone(),
            _ => Vec::new(),
        };
        orders.push((field, order, before));
    }

    for (k, v) in patch {
        if k == PATCH || k == RETAIN_KEYS || k.starts_with(SET_ORDER) {
            continue;
        }
        if let Some(field) = k.strip_prefix(DELETE_PRIMITIVE) {
            let doomed = v.as_array().ok_or_else(|| PatchError::NotAList {
                directive: DELETE_PRIMITIVE,
                field: field.to_string(),
                path: path.to_string(),
            })?;
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|x| !doomed.contains(x));
                if list.is_empty() {
                    original.shift_remove(field);
                }
            }
            continue;
        }
        if v.is_null() {
            original.shift_remove(k);
            continue;
        }
        let sub = join(path, k);
        let meta = schema::field(ty, k);
        let slot = original.entry(k.clone()).or_insert(Value::Null);
        let merged = match (std::mem::take(slot), v) {
            (Value::Object(o), Value::Object(p)) => {
                Value::Object(merge_map(o, p, struct_ty(meta), &sub)?)
            }
            (Value::Null, Value::Object(p)) => {
                Value::Object(merge_map(Map::new(), p, struct_ty(meta), &sub)?)
            }
            (Value::Array(o), Value::Array(p)) => Value::Array(merge_list(o, p, meta, &sub)?),
            (Value::Null, Value::Array(p)) => Value::Array(merge_list(Vec::new(), p, meta, &sub)?),
            // Scalars, and a value changing its JSON type: the patch wins.
            (_, p) => p.clone(),
        };
        if emptied_merge_list(&merged, meta) {
            original.shift_remove(k);
        } else {
            *slot = merged;
        }
    }

    for (field, order, before) in orders {
        let key = merge_key(schema::field(ty, field));
        if let Some(Value::Array(list)) = original.get_mut(field) {
            let merged = std::mem::take(list);
            *list = reorder(merged, order, &before, key);
        }
    }
    Ok(original)
}

/// Whether `merged` is a merging list (keyed or a set) left with no element, e.g. after
/// `$patch: delete` removed its last one. Upstream decodes the result into typed
/// structs whose lists are `omitempty`, so such a field disappears from the stored
/// object instead of staying as `[]`.
fn emptied_merge_list(merged: &Value, meta: Option<Field>) -> bool {
    matches!(merged, Value::Array(a) if a.is_empty())
        && matches!(meta, Some(Field::MergeList { .. } | Field::PrimitiveSet))
}

fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    meta: Option<Field>,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    match meta {
        Some(Field::MergeList { key, elem }) => merge_keyed(original, patch, key, elem, path),
        Some(Field::PrimitiveSet) => {
            let mut out: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for v in original.iter().chain(patch.iter()) {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(reorder(out, patch, &original, None))
        }
        // Atomic: the patch list is the new list.
        _ => Ok(patch.to_vec()),
    }
}

fn merge_keyed(
    original: Vec<Value>,
    patch: &[Value],
    key: &str,
    elem: Ty,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let mut out = original;
    let mut replace = false;
    let mut elements: Vec<&Map<String, Value>> = Vec::new();
    let key_of = |m: &Map<String, Value>| -> Result<Value, PatchError> {
        m.get(key)
            .filter(|v| !v.is_null())
            .cloned()
            .ok_or_else(|| PatchError::MissingMergeKey {
                key: key.to_string(),
                path: path.to_string(),
                element: Value::Object(m.clone()).to_string(),
            })
    };
    for e in patch {
        let Value::Object(m) = e else {
            return Err(PatchError::ElementNotAnObject {
                key: key.to_string(),
                path: path.to_string(),
                element: e.to_string(),
            });
        };
        match m.get(PATCH) {
            None => elements.push(m),
            Some(d) => match d.as_str() {
                Some("delete") => {
                    let k = key_of(m)?;
                    out.retain(|o| o.get(key) != Some(&k));
                }
                Some("replace") => replace = true,
                Some("merge") => elements.push(m),
                _ => {
                    return Err(PatchError::BadDirective {
                        value: d.to_string(),
                        path: path.to_string(),
                    })
                }
            },
        }
    }
    if replace {
        out.clear();
    }
    // The list as it stands after deletions: the reference for where elements the
    // patch does not mention go.
    let server_order = out.clone();
    let mut order = Vec::with_capacity(elements.len());
    for m in elements {
        let k = key_of(m)?;
        match out.iter_mut().find(|o| o.get(key) == Some(&k)) {
            Some(Value::Object(o)) => {
                let merged = merge_map(std::mem::take(o), m, elem, path)?;
                *o = merged;
            }
            _ => out.push(Value::Object(merge_map(Map::new(), m, elem, path)?)),
        }
        let mut id = Map::new();
        id.insert(key.to_string(), k);
        order.push(Value::Object(id));
    }
    Ok(reorder(out, &order, &server_order, Some(key)))
}

/// What identifies an element for ordering: its merge key value, or the scalar itself.
fn identity<'a>(v: &'a Value, key: Option<&str>) -> Option<&'a Value> {
    match key {
        Some(k) => v.get(k),
        None => Some(v),
    }
}

fn position(list: &[Value], v: &Value, key: Option<&str>) -> Option<usize> {
    let id = identity(v, key)?;
    list.iter().position(|o| identity(o, key) == Some(id))
}

/// The patch list must be a subsequence of `$setElementOrder` (deletions aside).
fn check_order(
    list: &[Value],
    order: &[Value],
    key: Option<&str>,
    field: &str,
    path: &str,
) -> Result<(), PatchError> {
    let wanted: Vec<&Value> = list.iter().filter(|e| e.get(PATCH).is_none()).collect();
    if wanted.is_empty() || order.is_empty() {
        return Ok(());
    }
    let mut at = 0;
    for o in order {
        if at < wanted.len()
            && identity(wanted[at], key).is_some()
            && identity(wanted[at], key) == identity(o, key)
        {
            at += 1;
        }
    }
    if at < wanted.len() {
        return Err(PatchError::OrderMismatch {
            field: field.to_string(),
            path: join(path, field),
        });
    }
    Ok(())
}

/// Orders a merged list: elements named in `order` take that order; the others (known
/// only to the server) are woven back in next to the neighbours they had in `before`.
fn reorder(merged: Vec<Value>, order: &[Value], before: &[Value], key: Option<&str>) -> Vec<Value> {
    let (mut named, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| position(order, v, key).is_some());
    named.sort_by_key(|v| position(order, v, key));
    // Elements missing from `before` sort last (None < Some, so map to usize::MAX).
    server_only.sort_by_key(|v| position(before, v, key).unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(named.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = named.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                // A server-only element goes first only when both were in the old
                // list and it stood before the named one.
                matches!((position(before, l, key), position(before, r, key)), (Some(li), Some(ri)) if li < ri)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

#[cfg(test)]
mod tests;
