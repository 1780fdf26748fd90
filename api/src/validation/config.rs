//! ConfigMap and Secret validation: keys usable as file names, the 1 MiB size limit,
//! `immutable` objects whose data may not change, and the keys each Secret type needs.

use base64::Engine;
use serde_json::{Map, Value};

use super::{invalid_each, names, str_field, IMMUTABLE, MAX_DATA_SIZE};
use crate::status::Cause;

const IMMUTABLE_SET: &str = "field is immutable when `immutable` is set";

/// The keys each built-in Secret type must carry in `data` (any one of the list).
fn required_keys(secret_type: &str) -> &'static [&'static [&'static str]] {
    match secret_type {
        "kubernetes.io/tls" => &[&["tls.crt"], &["tls.key"]],
        "kubernetes.io/dockercfg" => &[&[".dockercfg"]],
        "kubernetes.io/dockerconfigjson" => &[&[".dockerconfigjson"]],
        "kubernetes.io/basic-auth" => &[&["username", "password"]],
        "kubernetes.io/ssh-auth" => &[&["ssh-privatekey"]],
        _ => &[],
    }
}

fn object<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

/// Checks the keys of one data map, returning the bytes its values hold.
fn check_keys(
    map: &Map<String, Value>,
    path: &str,
    base64_values: bool,
    errs: &mut Vec<Cause>,
) -> usize {
    let mut size = 0;
    for (k, v) in map {
        let kpath = format!("{path}[{k}]");
        invalid_each(errs, &kpath, &Value::from(k.as_str()), names::config_key(k));
        let Some(s) = v.as_str() else {
            errs.push(Cause::invalid(kpath, v, "must be a string"));
            continue;
        };
        if base64_values {
            match base64::engine::general_purpose::STANDARD.decode(s) {
                Ok(bytes) => size += bytes.len(),
                Err(e) => errs.push(Cause::invalid(
                    kpath,
                    &Value::from("<redacted>"),
                    &format!("must be base64-encoded: {e}"),
                )),
            }
        } else {
            size += s.len();
        }
    }
    size
}

pub(super) fn validate_configmap(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let mut size = 0;
    let binary = object(obj, "binaryData");
    if let Some(data) = object(obj, "data") {
        size += check_keys(data, "data", false, errs);
        for k in data.keys() {
            if binary.is_some_and(|b| b.contains_key(k)) {
                errs.push(Cause::invalid(
                    format!("data[{k}]"),
                    &Value::from(k.as_str()),
                    "duplicate of key present in binaryData",
                ));
            }
        }
    }
    if let Some(b) = binary {
        size += check_keys(b, "binaryData", true, errs);
    }
    if size > MAX_DATA_SIZE {
        errs.push(Cause::too_long("", MAX_DATA_SIZE));
    }
    if let Some(old) = old {
        immutable_data(obj, old, &["data", "binaryData"], errs);
    }
}

pub(super) fn validate_secret(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let mut size = 0;
    if let Some(data) = object(obj, "data") {
        size += check_keys(data, "data", true, errs);
    }
    // stringData is merged into data by defaulting; checked here too in case it was not.
    if let Some(sd) = object(obj, "stringData") {
        size += check_keys(sd, "stringData", false, errs);
    }
    if size > MAX_DATA_SIZE {
        errs.push(Cause::too_long("data", MAX_DATA_SIZE));
    }
    let secret_type = str_field(obj, "type").unwrap_or("Opaque");
    let has = |k: &str| {
        object(obj, "data").is_some_and(|d| d.contains_key(k))
            || object(obj, "stringData").is_some_and(|d| d.contains_key(k))
    };
    for alternatives in required_keys(secret_type) {
        if !alternatives.iter().any(|k| has(k)) {
            for k in *alternatives {
                errs.push(Cause::required(format!("data[{k}]")));
            }
        }
    }
    if secret_type == "kubernetes.io/service-account-token" {
        let named = obj
            .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if !named {
            errs.push(Cause::required(
                "metadata.annotations[kubernetes.io/service-account.name]",
            ));
        }
    }
    if let Some(old) = old {
        let old_type = str_field(old, "type").unwrap_or("Opaque");
        if old_type != secret_type {
            errs.push(Cause::invalid("type", &Value::from(secret_type), IMMUTABLE));
        }
        immutable_data(obj, old, &["data"], errs);
    }
}

/// Once `immutable: true` is stored, neither the flag nor the data may change.
fn immutable_data(new: &Value, old: &Value, fields: &[&str], errs: &mut Vec<Cause>) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(Cause::forbidden("immutable", IMMUTABLE_SET));
    }
    let empty = Value::Object(Map::new());
    let norm = |v: Option<&Value>| match v {
        None | Some(Value::Null) => empty.clone(),
        Some(v) => v.clone(),
    };
    for f in fields {
        if norm(new.get(*f)) != norm(old.get(*f)) {
            errs.push(Cause::forbidden(*f, IMMUTABLE_SET));
        }
    }
    // stringData would change data once merged.
    if new
        .get("stringData")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        errs.push(Cause::forbidden("data", IMMUTABLE_SET));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::MAX_DATA_SIZE;
    use serde_json::{json, Value};

    fn cm(extra: Value) -> Value {
        let mut v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }

    fn secret(extra: Value) -> Value {
        let mut v = cm(extra);
        v["kind"] = json!("Secret");
        v
    }

    #[test]
    fn configmap_rules() {
        let big = "x".repeat(MAX_DATA_SIZE + 1);
        let cases: Vec<Case> = vec![
            (
                "ok",
                cm(
                    json!({"data": {"app.conf": "x", "KEY_1": "y", "a-b": ""}, "binaryData": {"bin": "AAE="}}),
                ),
                vec![],
            ),
            (
                "bad key",
                cm(json!({"data": {"a/b": "x"}})),
                vec![("data[a/b]", "FieldValueInvalid")],
            ),
            (
                "dot key",
                cm(json!({"data": {"..": "x"}})),
                vec![("data[..]", "FieldValueInvalid")],
            ),
            (
                "long key",
                cm(json!({"data": {"k".repeat(254): "x"}})),
                vec![(
                    &*Box::leak(format!("data[{}]", "k".repeat(254)).into_boxed_str()),
                    "FieldValueInvalid",
                )],
            ),
            (
                "dup with binary",
                cm(json!({"data": {"a": "x"}, "binaryData": {"a": "AA=="}})),
                vec![("data[a]", "FieldValueInvalid")],
            ),
            (
                "bad base64",
                cm(json!({"binaryData": {"a": "!!"}})),
                vec![("binaryData[a]", "FieldValueInvalid")],
            ),
            (
                "too big",
                cm(json!({"data": {"a": big}})),
                vec![("", "FieldValueTooLong")],
            ),
        ];
        for (case, obj, want) in cases {
            expect(&run("", "configmaps", &obj, None), &want, case);
        }
    }

    #[test]
    fn immutable_configmaps_keep_their_data() {
        let old = cm(json!({"data": {"a": "1"}, "immutable": true}));
        let cases: Vec<Case> = vec![
            (
                "same",
                cm(json!({"data": {"a": "1"}, "immutable": true})),
                vec![],
            ),
            (
                "label change only",
                {
                    let mut v = cm(json!({"data": {"a": "1"}, "immutable": true}));
                    v["metadata"]["labels"] = json!({"x": "y"});
                    v
                },
                vec![],
            ),
            (
                "data change",
                cm(json!({"data": {"a": "2"}, "immutable": true})),
                vec![("data", "FieldValueForbidden")],
            ),
            (
                "unset immutable",
                cm(json!({"data": {"a": "1"}})),
                vec![("immutable", "FieldValueForbidden")],
            ),
        ];
        for (case, obj, want) in cases {
            expect(&run("", "configmaps", &obj, Some(&old)), &want, case);
        }
        let mutable = cm(json!({"data": {"a": "1"}}));
        assert!(run(
            "",
            "configmaps",
            &cm(json!({"data": {"a": "2"}})),
            Some(&mutable)
        )
        .is_empty());
    }

    #[test]
    fn secret_rules() {
        let cases: Vec<Case> = vec![
            (
                "opaque",
                secret(json!({"data": {"password": "aHVudGVyMg=="}})),
                vec![],
            ),
            (
                "stringData",
                secret(json!({"stringData": {"password": "hunter2"}})),
                vec![],
            ),
            (
                "bad key",
                secret(json!({"data": {"a b": "eA=="}})),
                vec![("data[a b]", "FieldValueInvalid")],
            ),
            (
                "bad base64",
                secret(json!({"data": {"a": "not base64!"}})),
                vec![("data[a]", "FieldValueInvalid")],
            ),
            (
                "tls ok",
                secret(
                    json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA==", "tls.key": "eA=="}}),
                ),
                vec![],
            ),
            (
                "tls missing key",
                secret(json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}})),
                vec![("data[tls.key]", "FieldValueRequired")],
            ),
            (
                "tls missing both",
                secret(json!({"type": "kubernetes.io/tls"})),
                vec![
                    ("data[tls.crt]", "FieldValueRequired"),
                    ("data[tls.key]", "FieldValueRequired"),
                ],
            ),
            (
                "basic auth either",
                secret(
                    json!({"type": "kubernetes.io/basic-auth", "stringData": {"password": "x"}}),
                ),
                vec![],
            ),
            (
                "dockerconfigjson",
                secret(json!({"type": "kubernetes.io/dockerconfigjson"})),
                vec![("data[.dockerconfigjson]", "FieldValueRequired")],
            ),
            (
                "sa token",
                secret(json!({"type": "kubernetes.io/service-account-token"})),
                vec![(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "FieldValueRequired",
                )],
            ),
            (
                "too big",
                secret(json!({"stringData": {"a": "x".repeat(MAX_DATA_SIZE + 1)}})),
                vec![("data", "FieldValueTooLong")],
            ),
        ];
        for (case, obj, want) in cases {
            expect(&run("", "secrets", &obj, None), &want, case);
        }
    }

    #[test]
    fn secret_updates() {
        let old = secret(json!({"type": "Opaque", "data": {"a": "eA=="}, "immutable": true}));
        let cases: Vec<Case> = vec![
            (
                "same",
                secret(json!({"type": "Opaque", "data": {"a": "eA=="}, "immutable": true})),
                vec![],
            ),
            (
                "type change",
                secret(
                    json!({"type": "kubernetes.io/basic-auth", "data": {"a": "eA==", "username": "eA=="}, "immutable": true}),
                ),
                vec![
                    ("type", "FieldValueInvalid"),
                    ("data", "FieldValueForbidden"),
                ],
            ),
            (
                "data change",
                secret(json!({"type": "Opaque", "data": {"a": "eQ=="}, "immutable": true})),
                vec![("data", "FieldValueForbidden")],
            ),
        ];
        for (case, obj, want) in cases {
            expect(&run("", "secrets", &obj, Some(&old)), &want, case);
        }
        let untyped_old = secret(json!({"data": {"a": "eA=="}}));
        let typed_new = secret(json!({"type": "Opaque", "data": {"a": "eQ=="}}));
        assert!(
            run("", "secrets", &typed_new, Some(&untyped_old)).is_empty(),
            "absent type is Opaque"
        );
    }
}
