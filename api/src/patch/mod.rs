//! Patches: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and Kubernetes strategic
//! merge patch. (stub: being written)

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
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// Applies a patch to `original`, returning the patched object or a message saying why
/// the patch cannot be applied.
pub fn apply(
    _res: &ResourceInfo,
    ty: PatchType,
    original: &Value,
    patch: &Value,
) -> Result<Value, String> {
    match ty {
        PatchType::Merge | PatchType::StrategicMerge => {
            let mut out = original.clone();
            json_patch::merge(&mut out, patch);
            Ok(out)
        }
        PatchType::Json => {
            let p: json_patch::Patch =
                serde_json::from_value(patch.clone()).map_err(|e| e.to_string())?;
            let mut out = original.clone();
            json_patch::patch(&mut out, &p).map_err(|e| e.to_string())?;
            Ok(out)
        }
        PatchType::Apply => Err("server-side apply is not supported yet".into()),
    }
}
