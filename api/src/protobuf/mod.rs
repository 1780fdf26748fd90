//! Decoding Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).
//!
//! kubectl 1.32+ sends typed objects (`kubectl create deployment`, `expose`, `cordon`, ...)
//! only as protobuf, so the server must read them. A body is the 4 magic bytes `k8s\0`
//! followed by a `runtime.Unknown` message: `typeMeta` (apiVersion, kind), `raw` (the
//! object's own protobuf encoding), `contentEncoding`, `contentType`. The object is turned
//! into exactly the JSON the client would have sent, so the rest of the server only ever
//! sees JSON.
//!
//! # Layout
//! - `wire`: the protobuf wire reader and the JSON rendering rules.
//! - `schema`: generated table of every message's field numbers, JSON names and types
//!   (`gen_schema.py` builds it from the `k8s-pb` and `k8s-openapi` crates).

#[rustfmt::skip]
mod schema;
mod wire;

use serde_json::Value;

/// The prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Decodes a protobuf body into the JSON object it represents (with `apiVersion` and
/// `kind`). The error says what is wrong with the body; the server answers 400 with it.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    let body = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| {
        "protobuf body does not start with the k8s\\0 magic bytes; send a Kubernetes protobuf envelope or application/json".to_string()
    })?;
    let env = wire::envelope(body).map_err(|e| format!("malformed protobuf envelope: {e}"))?;
    let (api_version, kind) = (env.api_version.as_str(), env.kind.as_str());
    if kind.is_empty() {
        return Err("protobuf envelope has no kind in typeMeta".into());
    }
    if !env.content_encoding.is_empty() {
        return Err(format!(
            "protobuf content encoding {:?} is not supported; send the object uncompressed",
            env.content_encoding
        ));
    }
    let name = message_name(api_version, kind).ok_or_else(|| {
        format!(
            "protobuf bodies of {kind} ({api_version}) are not supported; send application/json"
        )
    })?;
    let idx = message_index(&name)?;
    let mut obj = wire::decode_message(schema::MESSAGES, idx, env.raw)
        .map_err(|e| format!("malformed protobuf {kind}: {e}"))?;
    // Kinds naming a scalar-like message (`Time`, `Quantity`) are not objects.
    let Value::Object(fields) = &mut obj else {
        return Err(format!("{kind} ({api_version}) is not an object kind"));
    };
    let mut out = serde_json::Map::new();
    out.insert("apiVersion".into(), Value::from(api_version));
    out.insert("kind".into(), Value::from(kind));
    out.append(fields);
    Ok(Value::Object(out))
}

fn message_index(name: &str) -> Result<u16, String> {
    schema::MESSAGES
        .iter()
        .position(|m| m.name == name)
        .and_then(|i| u16::try_from(i).ok())
        .ok_or_else(|| format!("protobuf message {name} is not known to this server"))
}

/// The protobuf message of `kind` in `apiVersion`, e.g. `apps/v1` Deployment ->
/// `api.apps.v1.Deployment`. Group names map to the Go package the message lives in.
fn message_name(api_version: &str, kind: &str) -> Option<String> {
    // Options kinds travel under the group of the call but are all meta/v1 messages.
    if kind == "DeleteOptions" {
        return Some("apimachinery.pkg.apis.meta.v1.DeleteOptions".into());
    }
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let package = match group {
        "" => "core",
        "meta.k8s.io" => return Some(format!("apimachinery.pkg.apis.meta.{version}.{kind}")),
        g => g.strip_suffix(".k8s.io").unwrap_or(g),
    };
    let name = format!("api.{package}.{version}.{kind}");
    schema::MESSAGES
        .iter()
        .any(|m| m.name == name)
        .then_some(name)
}

#[cfg(test)]
mod tests;
