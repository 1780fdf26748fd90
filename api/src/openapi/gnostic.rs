//! Encodes the Swagger 2.0 JSON document as gnostic's `openapi.v2.Document` protobuf,
//! the form kubectl downloads from `/openapi/v2` for client-side validation.
//!
//! Only what kubectl reads is encoded: paths with their operations (operationId,
//! consumes, produces, parameters, vendor extensions) and every definition (`$ref`,
//! type, format, description, required, properties, items, additionalProperties,
//! vendor extensions).
//! Vendor extension values travel as YAML text; JSON is valid YAML, so they are written
//! as JSON. Field numbers are those of gnostic's `openapiv2/OpenAPIv2.proto`.

use serde_json::Value;

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// A length-delimited field (strings, bytes, embedded messages).
fn bytes(buf: &mut Vec<u8>, tag: u32, b: &[u8]) {
    varint(buf, u64::from(tag) << 3 | 2);
    varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

fn boolean(buf: &mut Vec<u8>, tag: u32, v: bool) {
    varint(buf, u64::from(tag) << 3);
    varint(buf, u64::from(v));
}

fn string_field(buf: &mut Vec<u8>, tag: u32, v: &Value, key: &str) {
    if let Some(s) = v.get(key).and_then(Value::as_str) {
        bytes(buf, tag, s.as_bytes());
    }
}

fn strings_field(buf: &mut Vec<u8>, tag: u32, v: &Value, key: &str) {
    for s in v
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        bytes(buf, tag, s.as_bytes());
    }
}

/// `NamedAny { name = 1; Any value = 2 { yaml = 2 } }` for every `x-` key of `v`.
fn vendor_extensions(buf: &mut Vec<u8>, tag: u32, v: &Value) {
    let Some(m) = v.as_object() else { return };
    for (k, x) in m.iter().filter(|(k, _)| k.starts_with("x-")) {
        let mut any = Vec::new();
        bytes(&mut any, 2, x.to_string().as_bytes());
        let mut named = Vec::new();
        bytes(&mut named, 1, k.as_bytes());
        bytes(&mut named, 2, &any);
        bytes(buf, tag, &named);
    }
}

/// `openapi.v2.Schema`.
fn schema(v: &Value) -> Vec<u8> {
    let mut b = Vec::new();
    string_field(&mut b, 1, v, "$ref");
    string_field(&mut b, 2, v, "format");
    string_field(&mut b, 4, v, "description");
    strings_field(&mut b, 19, v, "required");
    match v.get("additionalProperties") {
        Some(Value::Bool(x)) => {
            let mut item = Vec::new();
            boolean(&mut item, 2, *x);
            bytes(&mut b, 21, &item);
        }
        Some(s @ Value::Object(_)) => {
            let mut item = Vec::new();
            bytes(&mut item, 1, &schema(s));
            bytes(&mut b, 21, &item);
        }
        _ => {}
    }
    if let Some(t) = v.get("type").and_then(Value::as_str) {
        let mut item = Vec::new();
        bytes(&mut item, 1, t.as_bytes());
        bytes(&mut b, 22, &item);
    }
    if let Some(items) = v.get("items").filter(|i| i.is_object()) {
        let mut item = Vec::new();
        bytes(&mut item, 1, &schema(items));
        bytes(&mut b, 23, &item);
    }
    if let Some(props) = v.get("properties").and_then(Value::as_object) {
        let mut p = Vec::new();
        for (name, s) in props {
            bytes(&mut p, 1, &named(name, &schema(s)));
        }
        bytes(&mut b, 25, &p);
    }
    vendor_extensions(&mut b, 31, v);
    b
}

/// The `Named*` pair every gnostic map entry is: `name = 1`, `value = 2`.
fn named(name: &str, value: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    bytes(&mut b, 1, name.as_bytes());
    bytes(&mut b, 2, value);
    b
}

/// `openapi.v2.ParametersItem` for one parameter object.
fn parameter(p: &Value) -> Vec<u8> {
    let mut param = Vec::new();
    if p.get("in").and_then(Value::as_str) == Some("body") {
        let mut body = Vec::new();
        string_field(&mut body, 2, p, "name");
        string_field(&mut body, 3, p, "in");
        boolean(
            &mut body,
            4,
            p.get("required").and_then(Value::as_bool).unwrap_or(false),
        );
        if let Some(s) = p.get("schema") {
            bytes(&mut body, 5, &schema(s));
        }
        bytes(&mut param, 1, &body);
    } else {
        let mut query = Vec::new();
        boolean(
            &mut query,
            1,
            p.get("required").and_then(Value::as_bool).unwrap_or(false),
        );
        string_field(&mut query, 2, p, "in");
        string_field(&mut query, 4, p, "name");
        string_field(&mut query, 6, p, "type");
        if p.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
            boolean(&mut query, 20, true);
        }
        let mut non_body = Vec::new();
        bytes(&mut non_body, 3, &query);
        bytes(&mut param, 2, &non_body);
    }
    let mut item = Vec::new();
    bytes(&mut item, 1, &param);
    item
}

/// `openapi.v2.Operation`.
fn operation(op: &Value) -> Vec<u8> {
    let mut b = Vec::new();
    string_field(&mut b, 5, op, "operationId");
    strings_field(&mut b, 6, op, "produces");
    strings_field(&mut b, 7, op, "consumes");
    for p in op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        bytes(&mut b, 8, &parameter(p));
    }
    if let Some(responses) = op.get("responses").and_then(Value::as_object) {
        let mut rs = Vec::new();
        for (code, r) in responses {
            let mut resp = Vec::new();
            string_field(&mut resp, 1, r, "description");
            if let Some(s) = r.get("schema") {
                let mut item = Vec::new();
                bytes(&mut item, 1, &schema(s));
                bytes(&mut resp, 2, &item);
            }
            let mut value = Vec::new();
            bytes(&mut value, 1, &resp);
            bytes(&mut rs, 1, &named(code, &value));
        }
        bytes(&mut b, 9, &rs);
    }
    vendor_extensions(&mut b, 13, op);
    b
}

/// Encodes a Swagger 2.0 JSON document as `openapi.v2.Document`.
pub(super) fn document(doc: &Value) -> Vec<u8> {
    let mut b = Vec::new();
    string_field(&mut b, 1, doc, "swagger");
    if let Some(info) = doc.get("info") {
        let mut i = Vec::new();
        string_field(&mut i, 1, info, "title");
        string_field(&mut i, 2, info, "version");
        bytes(&mut b, 2, &i);
    }
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        let mut ps = Vec::new();
        for (path, item) in paths {
            let mut pi = Vec::new();
            for (method, tag) in [
                ("get", 2),
                ("put", 3),
                ("post", 4),
                ("delete", 5),
                ("patch", 8),
            ] {
                if let Some(op) = item.get(method) {
                    bytes(&mut pi, tag, &operation(op));
                }
            }
            bytes(&mut ps, 2, &named(path, &pi));
        }
        bytes(&mut b, 8, &ps);
    }
    if let Some(defs) = doc.get("definitions").and_then(Value::as_object) {
        let mut ds = Vec::new();
        for (name, s) in defs {
            bytes(&mut ds, 1, &named(name, &schema(s)));
        }
        bytes(&mut b, 9, &ds);
    }
    b
}
