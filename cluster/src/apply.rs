//! Creating objects from YAML or JSON documents through the API, resolving each
//! document's `apiVersion`/`kind` to its URL from skiff's resource registry.

use serde_json::Value;
use skiff_api::resource;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("document {index} is not valid YAML: {reason}")]
    Parse { index: usize, reason: String },
    #[error("document {index} ({api_version} {kind}) is not a kind this server serves")]
    UnknownKind {
        index: usize,
        api_version: String,
        kind: String,
    },
    #[error("document {index} has no metadata.name")]
    NoName { index: usize },
    #[error("creating {kind} {name}: {source}")]
    Api {
        kind: String,
        name: String,
        source: kube::Error,
    },
}

/// Parses every document first (so a bad file changes nothing), then creates each
/// object; objects that already exist are left as they are. Returns one line per object
/// (`deployment.apps/web created`).
pub async fn create_all(client: &kube::Client, text: &str) -> Result<Vec<String>, ApplyError> {
    let mut docs: Vec<Value> = Vec::new();
    for (index, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v: Value = serde::Deserialize::deserialize(de).map_err(|e| ApplyError::Parse {
            index,
            reason: e.to_string(),
        })?;
        if v.is_null() {
            continue;
        }
        docs.push(v);
    }
    let mut planned = Vec::new();
    for (index, doc) in docs.into_iter().enumerate() {
        let api_version = doc["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = doc["kind"].as_str().unwrap_or("").to_string();
        let (g, v) = resource::split_api_version(&api_version);
        let res = resource::lookup_kind(g, v, &kind).ok_or_else(|| ApplyError::UnknownKind {
            index,
            api_version: api_version.clone(),
            kind: kind.clone(),
        })?;
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or(ApplyError::NoName { index })?
            .to_string();
        let ns = doc
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        let base = if res.group.is_empty() {
            format!("/api/{}", res.version)
        } else {
            format!("/apis/{}/{}", res.group, res.version)
        };
        let path = if res.namespaced() {
            format!("{base}/namespaces/{ns}/{}", res.plural)
        } else {
            format!("{base}/{}", res.plural)
        };
        planned.push((res, name, path, doc));
    }
    let mut lines = Vec::new();
    for (res, name, path, doc) in planned {
        let body = serde_json::to_vec(&doc).expect("json values serialise");
        let req = http::Request::post(&path)
            .header("content-type", "application/json")
            .body(body)
            .expect("request");
        let what = format!(
            "{}/{}",
            if res.group.is_empty() {
                res.singular.to_string()
            } else {
                format!("{}.{}", res.singular, res.group)
            },
            name
        );
        match client.request::<Value>(req).await {
            Ok(_) => lines.push(format!("{what} created")),
            Err(kube::Error::Api(s)) if s.code == 409 => lines.push(format!("{what} unchanged")),
            Err(source) => {
                return Err(ApplyError::Api {
                    kind: res.kind.to_string(),
                    name,
                    source,
                })
            }
        }
    }
    Ok(lines)
}
