//! Patches: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and Kubernetes
//! strategic merge patch.
//!
//! The API server picks the kind of patch from the request's Content-Type and calls
//! [`apply`]; the result is then validated and stored like an update. Server-side
//! apply (`application/apply-patch+yaml`) is not a patch of this kind: it needs the
//! object's managed fields and goes through [`managed::apply`].
//!
//! # Layout
//! - [`schema`]: per-type patch metadata (merge keys, set and atomic lists).
//! - [`strategic`]: the strategic merge algorithm and its directives.
//! - [`fieldset`]: field paths, field sets and their `FieldsV1` encoding.
//! - [`managed`]: `metadata.managedFields` bookkeeping and server-side apply.

pub mod fieldset;
pub mod managed;
pub mod schema;
pub mod strategic;

use serde_json::Value;

use crate::resource::ResourceInfo;

/// The patch types the API server accepts, by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    StrategicMerge,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Applies a patch to `original`, returning the patched object or a message saying why
/// the patch cannot be applied.
pub fn apply(
    res: &ResourceInfo,
    ty: PatchType,
    original: &Value,
    patch: &Value,
) -> Result<Value, String> {
    match ty {
        PatchType::Merge => {
            // RFC 7386: null deletes, objects merge recursively, anything else
            // (lists included) replaces.
            let mut out = original.clone();
            json_patch::merge(&mut out, patch);
            Ok(out)
        }
        PatchType::StrategicMerge => {
            strategic::apply(original, patch, schema::root(res.kind)).map_err(|e| e.to_string())
        }
        PatchType::Json => {
            let p: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| format!("the JSON patch is not a list of RFC 6902 operations: {e}"))?;
            let mut out = original.clone();
            json_patch::patch(&mut out, &p).map_err(|e| format!("the JSON patch failed: {e}"))?;
            Ok(out)
        }
        PatchType::Apply => Err(
            "server-side apply needs the managed fields of the object; use managed::apply".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::lookup;
    use serde_json::json;

    fn cm() -> &'static ResourceInfo {
        lookup("", "v1", "configmaps").unwrap()
    }

    #[test]
    fn content_types_pick_the_patch_type() {
        let cases = [
            ("application/json-patch+json", Some(PatchType::Json)),
            (
                "application/merge-patch+json; charset=utf-8",
                Some(PatchType::Merge),
            ),
            (
                "application/strategic-merge-patch+json",
                Some(PatchType::StrategicMerge),
            ),
            ("application/apply-patch+yaml", Some(PatchType::Apply)),
            ("application/json", None),
        ];
        for (ct, want) in cases {
            assert_eq!(PatchType::from_content_type(ct), want, "{ct}");
        }
    }

    #[test]
    fn json_patch_applies_operations_in_order() {
        let original = json!({"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v", "old": "x"}});
        let patch = json!([
            {"op": "test", "path": "/data/k", "value": "v"},
            {"op": "add", "path": "/data/new", "value": "n"},
            {"op": "remove", "path": "/data/old"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "2"},
            {"op": "copy", "from": "/data/k", "path": "/data/copied"},
            {"op": "move", "from": "/data/new", "path": "/data/moved"},
            {"op": "add", "path": "/metadata/finalizers", "value": []},
            {"op": "add", "path": "/metadata/finalizers/-", "value": "f"}
        ]);
        let out = apply(cm(), PatchType::Json, &original, &patch).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"name": "c", "labels": {"a": "2"}, "finalizers": ["f"]},
                   "data": {"k": "v", "copied": "v", "moved": "n"}})
        );
    }

    #[test]
    fn json_patch_failures_are_reported_and_change_nothing() {
        let original = json!({"data": {"k": "v"}});
        let failed_test = json!([{"op": "replace", "path": "/data/k", "value": "w"},
                                 {"op": "test", "path": "/data/k", "value": "nope"}]);
        let err = apply(cm(), PatchType::Json, &original, &failed_test).unwrap_err();
        assert!(err.contains("value did not match"), "{err}");
        let missing = json!([{"op": "remove", "path": "/data/absent"}]);
        assert!(apply(cm(), PatchType::Json, &original, &missing).is_err());
        let not_ops = json!({"op": "add"});
        let err = apply(cm(), PatchType::Json, &original, &not_ops).unwrap_err();
        assert!(err.contains("RFC 6902"), "{err}");
        let unknown_op = json!([{"op": "frobnicate", "path": "/data"}]);
        assert!(apply(cm(), PatchType::Json, &original, &unknown_op).is_err());
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // The examples of RFC 7386 section 3, plus the nested case.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (original, patch, want) in cases {
            assert_eq!(
                apply(cm(), PatchType::Merge, &original, &patch).unwrap(),
                want,
                "{original} + {patch}"
            );
        }
    }

    #[test]
    fn merge_patch_replaces_lists_even_where_strategic_would_merge() {
        let pods = lookup("", "v1", "pods").unwrap();
        let original = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let patch = json!({"spec": {"containers": [{"name": "a", "image": "z"}]}});
        let merged = apply(pods, PatchType::Merge, &original, &patch).unwrap();
        assert_eq!(
            merged["spec"]["containers"],
            json!([{"name": "a", "image": "z"}])
        );
        let strategic = apply(pods, PatchType::StrategicMerge, &original, &patch).unwrap();
        assert_eq!(
            strategic["spec"]["containers"],
            json!([{"name": "a", "image": "z"}, {"name": "b", "image": "y"}])
        );
    }

    #[test]
    fn server_side_apply_is_not_a_plain_patch() {
        let err = apply(cm(), PatchType::Apply, &json!({}), &json!({})).unwrap_err();
        assert!(err.contains("managed::apply"), "{err}");
    }
}
