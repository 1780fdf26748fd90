//! Server-side field validation (`?fieldValidation=Strict|Warn|Ignore`): finding the
//! unknown and duplicate fields of a write's body.
//!
//! Upstream finds both while decoding into Go structs. skiff keeps objects as JSON, so
//! it does the same in two steps: [`decode_json`] / [`decode_yaml`] build the value and
//! note every key that appears twice in one map (the last one wins, as in Go), then
//! [`prune_unknown`] walks the value along the kind's OpenAPI schema
//! (`definitions.json`) and removes every field the schema does not name. Unknown
//! fields are removed in every mode, so they are never stored; the mode only decides
//! whether the client hears about them as a 400, as `Warning` headers, or not at all.
//!
//! Paths are written as upstream writes them: `spec.template.spec.containers[0].imagee`.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::{definition_name, definitions};

/// What the server does with unknown and duplicate fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Drop them silently.
    Ignore,
    /// Drop them and send one `Warning` header per problem (the default upstream).
    Warn,
    /// Refuse the request with 400.
    Strict,
}

impl Mode {
    /// The mode of the `fieldValidation` query parameter; absent means `Warn`, as on an
    /// upstream API server. The error names the accepted values.
    pub fn parse(v: Option<&str>) -> Result<Mode, String> {
        match v {
            None | Some("") | Some("Warn") => Ok(Mode::Warn),
            Some("Ignore") => Ok(Mode::Ignore),
            Some("Strict") => Ok(Mode::Strict),
            Some(other) => Err(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            )),
        }
    }
}

/// The problems found in one body, each already worded as upstream words it
/// (`unknown field "spec.x"`, `duplicate field "spec.y"`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl Problems {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn unknown(&mut self, path: &str) {
        self.0.push(format!("unknown field {path:?}"));
    }

    fn duplicate(&mut self, path: &str) {
        self.0.push(format!("duplicate field {path:?}"));
    }

    pub fn extend(&mut self, other: Problems) {
        self.0.extend(other.0);
    }

    /// The message of the 400 a Strict request gets, e.g. `Deployment in version "v1"
    /// cannot be handled as a Deployment: strict decoding error: unknown field "spec.x"`.
    pub fn strict_message(&self, kind: &str, version: &str) -> String {
        format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
            self.0.join(", ")
        )
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Builds a JSON value while recording duplicate keys with their paths.
struct Tracking<'a> {
    path: String,
    dups: &'a mut Problems,
}

impl<'de> DeserializeSeed<'de> for Tracking<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Tracking<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // NaN and infinities (possible in YAML) have no JSON form.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let path = format!("{}[{}]", self.path, out.len());
            match seq.next_element_seed(Tracking {
                path,
                dups: &mut *self.dups,
            })? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = child(&self.path, &key);
            let v = map.next_value_seed(Tracking {
                path: path.clone(),
                dups: &mut *self.dups,
            })?;
            if out.insert(key, v).is_some() {
                self.dups.duplicate(&path);
            }
        }
        Ok(Value::Object(out))
    }
}

/// Parses JSON like `serde_json::from_slice` (same depth limit, last duplicate wins)
/// and reports every duplicate key.
pub fn decode_json(bytes: &[u8]) -> Result<(Value, Problems), serde_json::Error> {
    let mut dups = Problems::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Tracking {
        path: String::new(),
        dups: &mut dups,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((v, dups))
}

/// Why a YAML body was refused.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error(transparent)]
    Syntax(#[from] serde_yaml::Error),
    #[error("flow collections are nested more than {MAX_FLOW_DEPTH} deep")]
    TooDeep,
}

/// serde_yaml refuses more than 128 levels of nesting, but only after libyaml has read
/// the whole document, and libyaml's scanner re-checks every open flow level at every
/// token: `[[[[...` a hundred thousand deep costs it hours. [`flow_depth`] rejects such
/// a document first, at the depth serde_yaml would refuse anyway.
const MAX_FLOW_DEPTH: usize = 128;

/// Parses one YAML document like `serde_yaml::from_str` (which bounds nesting depth and
/// alias expansion) and reports every duplicate key.
pub fn decode_yaml(text: &str) -> Result<(Value, Problems), YamlError> {
    if flow_depth(text, MAX_FLOW_DEPTH) > MAX_FLOW_DEPTH {
        return Err(YamlError::TooDeep);
    }
    let mut dups = Problems::default();
    let v = Tracking {
        path: String::new(),
        dups: &mut dups,
    }
    .deserialize(serde_yaml::Deserializer::from_str(text))?;
    Ok((v, dups))
}

/// The deepest nesting of YAML flow collections (`[...]`, `{...}`) in `text`, counting
/// stops just past `limit`. A small tokenizer, not a parser: it follows the YAML rules
/// for where a quoted scalar, a plain scalar, a comment or a block scalar (`|`, `>`)
/// starts, so brackets inside them are not counted. Where it is unsure it counts a
/// bracket rather than skip it: an overcount can only refuse a document that nests
/// (nearly) as deep as serde_yaml refuses anyway, an undercount would let a slow one in.
pub fn flow_depth(text: &str, limit: usize) -> usize {
    let b = text.as_bytes();
    let n = b.len();
    let mut i = 0;
    let mut depth = 0usize;
    let mut max = 0usize;
    // Block context: at the start of a token (line start, after `- `, `? `, `: `, or
    // after an anchor or tag), or inside a plain scalar until `: ` or ` #`.
    let mut at_token = true;
    let mut line_start = 0usize;
    // The column of the first token on the line (after `- ` / `? ` prefixes): a block
    // scalar's content is indented more than it.
    let mut key_col: Option<usize> = None;
    let ws = |c: u8| c == b' ' || c == b'\t' || c == b'\r' || c == b'\n';
    let skip_quoted = |mut i: usize, q: u8| -> usize {
        // Returns the index just past the closing quote (or the end).
        i += 1;
        while i < n {
            match b[i] {
                b'\\' if q == b'"' => i += 2,
                c if c == q => {
                    if q == b'\'' && i + 1 < n && b[i + 1] == b'\'' {
                        i += 2;
                    } else {
                        return i + 1;
                    }
                }
                _ => i += 1,
            }
        }
        n
    };
    while i < n {
        let c = b[i];
        if depth > 0 {
            // Flow context: tokens are separated by indicators and whitespace.
            match c {
                b'[' | b'{' => {
                    depth += 1;
                    max = max.max(depth);
                    if max > limit {
                        return max;
                    }
                    i += 1;
                }
                b']' | b'}' => {
                    depth -= 1;
                    i += 1;
                    if depth == 0 {
                        at_token = false;
                    }
                }
                b',' | b':' | b'?' => i += 1,
                c if ws(c) => i += 1,
                b'#' if i == 0 || ws(b[i - 1]) => {
                    while i < n && b[i] != b'\n' {
                        i += 1;
                    }
                }
                b'"' | b'\'' => i = skip_quoted(i, c),
                _ => {
                    // A plain scalar, anchor, alias or tag: up to a flow indicator, or
                    // `: ` / ` #`.
                    while i < n {
                        let d = b[i];
                        if matches!(d, b',' | b'[' | b']' | b'{' | b'}')
                            || (d == b':'
                                && (i + 1 == n
                                    || ws(b[i + 1])
                                    || matches!(b[i + 1], b',' | b']' | b'}')))
                            || (d == b'#' && ws(b[i - 1]))
                        {
                            break;
                        }
                        i += 1;
                    }
                }
            }
            continue;
        }
        match c {
            b'\n' => {
                i += 1;
                line_start = i;
                at_token = true;
                key_col = None;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'#' if i == 0 || ws(b[i - 1]) => {
                while i < n && b[i] != b'\n' {
                    i += 1;
                }
            }
            _ if !at_token => {
                // Inside a plain scalar: only `: ` brings back a token.
                if c == b':' && (i + 1 == n || ws(b[i + 1])) {
                    at_token = true;
                }
                i += 1;
            }
            b'[' | b'{' => {
                depth = 1;
                max = max.max(1);
                i += 1;
            }
            b'-' | b'?' | b':' if i + 1 == n || ws(b[i + 1]) => i += 1,
            b'"' | b'\'' => {
                key_col.get_or_insert(i - line_start);
                i = skip_quoted(i, c);
                at_token = false;
            }
            b'&' | b'!' => {
                while i < n && !ws(b[i]) {
                    i += 1;
                }
            }
            b'|' | b'>' => {
                // A block scalar: its content is the following lines indented more
                // than the owning key, at the indentation of the first of them.
                let owner = key_col.unwrap_or(i - line_start);
                while i < n && b[i] != b'\n' {
                    i += 1;
                }
                let mut content: Option<usize> = None;
                while i < n {
                    let start = i + 1;
                    let mut j = start;
                    while j < n && b[j] == b' ' {
                        j += 1;
                    }
                    let blank = j >= n || b[j] == b'\n' || b[j] == b'\r';
                    let indent = j - start;
                    let inside = blank
                        || match content {
                            None => indent > owner,
                            Some(c) => indent >= c,
                        };
                    if !inside {
                        break;
                    }
                    if !blank && content.is_none() {
                        content = Some(indent);
                    }
                    i = start;
                    while i < n && b[i] != b'\n' {
                        i += 1;
                    }
                    if i >= n {
                        break;
                    }
                }
            }
            _ => {
                key_col.get_or_insert(i - line_start);
                at_token = false;
                i += 1;
            }
        }
    }
    max
}

/// Follows `$ref`s to the schema they name.
fn resolve(schema: &Value) -> Option<&'static Value> {
    let name = schema
        .get("$ref")?
        .as_str()?
        .strip_prefix("#/definitions/")?;
    definitions().get(name)
}

/// Removes from `obj` every field the schema of `group/version/kind` does not name and
/// returns them. A kind without a schema is left alone (nothing can be called unknown).
pub fn prune_unknown(group: &str, version: &str, kind: &str, obj: &mut Value) -> Problems {
    let mut out = Problems::default();
    if let Some(schema) = definitions().get(&definition_name(group, version, kind)) {
        walk(schema, obj, "", &mut out);
    }
    out
}

/// Whether the schema of `group/version/kind` is known, i.e. whether
/// [`prune_unknown`] can find anything.
pub fn has_schema(group: &str, version: &str, kind: &str) -> bool {
    definitions().contains_key(&definition_name(group, version, kind))
}

/// The values whose JSON type is not the one the schema of `group/version/kind` gives,
/// as `"spec.replicas": expected integer, got string`. Upstream fails to decode such a
/// body whatever `fieldValidation` says, so these are always a 400. `null` fits
/// anything (Go decodes it as the zero value); fields the schema does not know are not
/// judged (see [`prune_unknown`]).
pub fn type_errors(group: &str, version: &str, kind: &str, obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(schema) = definitions().get(&definition_name(group, version, kind)) {
        check_types(schema, obj, "", &mut out);
    }
    out
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check_types(schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    let schema = resolve(schema).unwrap_or(schema);
    if v.is_null() {
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let fits = match (schema.get("type").and_then(Value::as_str), v) {
        _ if int_or_string => v.is_string() || v.is_number(),
        (None, _) => true,
        (Some("object"), Value::Object(_)) | (Some("array"), Value::Array(_)) => true,
        (Some("string"), Value::String(_)) | (Some("boolean"), Value::Bool(_)) => true,
        (Some("number"), Value::Number(_)) => true,
        (Some("integer"), Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        (Some(_), _) => false,
    };
    if !fits {
        let want = if int_or_string {
            "integer or string"
        } else {
            schema.get("type").and_then(Value::as_str).unwrap_or("?")
        };
        let name = if path.is_empty() { "the body" } else { path };
        out.push(format!("{name:?}: expected {want}, got {}", json_type(v)));
        return;
    }
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = schema.get("properties") {
                for (k, val) in m {
                    if let Some(p) = props.get(k) {
                        check_types(p, val, &child(path, k), out);
                    }
                }
            } else if let Some(inner @ Value::Object(_)) = schema.get("additionalProperties") {
                for (k, val) in m {
                    check_types(inner, val, &format!("{path}[{k}]"), out);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for (i, val) in a.iter().enumerate() {
                    check_types(items, val, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn walk(schema: &Value, v: &mut Value, path: &str, out: &mut Problems) {
    let schema = resolve(schema).unwrap_or(schema);
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = schema.get("properties") {
                let unknown: Vec<String> = m
                    .keys()
                    .filter(|k| !props.contains_key(k.as_str()))
                    .cloned()
                    .collect();
                for k in unknown {
                    m.shift_remove(&k);
                    out.unknown(&child(path, &k));
                }
                for (k, val) in m.iter_mut() {
                    walk(&props[k.as_str()], val, &child(path, k), out);
                }
            } else if let Some(inner @ Value::Object(_)) = schema.get("additionalProperties") {
                for (k, val) in m.iter_mut() {
                    walk(inner, val, &format!("{path}[{k}]"), out);
                }
            }
            // Anything else (FieldsV1, int-or-string, a wrong type) is not ours to judge.
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for (i, val) in a.iter_mut().enumerate() {
                    walk(items, val, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mode_defaults_to_warn_and_names_the_choices() {
        let cases: &[(Option<&str>, Result<Mode, ()>)] = &[
            (None, Ok(Mode::Warn)),
            (Some("Warn"), Ok(Mode::Warn)),
            (Some("Strict"), Ok(Mode::Strict)),
            (Some("Ignore"), Ok(Mode::Ignore)),
            (Some("strict"), Err(())),
        ];
        for (q, want) in cases {
            assert_eq!(Mode::parse(*q).map_err(|_| ()), *want, "{q:?}");
        }
        assert!(Mode::parse(Some("x")).unwrap_err().contains("\"Strict\""));
    }

    #[test]
    fn duplicates_are_reported_with_their_paths_and_the_last_wins() {
        let (v, d) = decode_json(
            br#"{"spec":{"replicas":1,"replicas":2,"template":{"spec":{"containers":[{"name":"a","image":"x","image":"y"}]}}}}"#,
        )
        .unwrap();
        assert_eq!(v["spec"]["replicas"], 2);
        assert_eq!(
            d.0,
            vec![
                r#"duplicate field "spec.replicas""#,
                r#"duplicate field "spec.template.spec.containers[0].image""#
            ]
        );
        let (v, d) = decode_yaml("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap();
        assert_eq!(v, json!({"a": 1, "b": {"c": 2}}));
        assert_eq!(d.0, vec![r#"duplicate field "b.c""#]);
        let (_, d) = decode_json(br#"{"a":[1,2],"b":{"c":null}}"#).unwrap();
        assert!(d.is_empty());
    }

    #[test]
    fn flow_depth_counts_only_real_flow_collections() {
        let cases: &[(&str, usize)] = &[
            ("a: 1\n", 0),
            ("a: [1, [2, {b: [3]}]]\n", 4),
            ("a: x[1]y\nb: '[[[['\nc: \"[[\\\"[[\"\n", 0),
            ("a: [\"]]]\", ['[[']]\n", 2),
            ("# [[[[\na: 1 # [[[\n", 0),
            ("a: |\n  [[[[\n  [[[\nb: [1]\n", 1),
            ("- name: |\n    [[[\n  image: [[x]]\n", 2),
            ("k: >-\n\n   [[\n   }}\nz: {a: [b]}\n", 2),
            ("- [a, b]\n- - [c]\n", 1),
            ("a: &x [[1]]\nb: !!seq [[[2]]]\n", 3),
            ("[[[[[[", 6),
        ];
        for (text, want) in cases {
            assert_eq!(flow_depth(text, 1000), *want, "{text:?}");
        }
        // A quote inside a plain flow scalar does not hide what follows.
        assert_eq!(flow_depth("a: [it's, [[x]]]\n", 1000), 3);
        assert_eq!(flow_depth(&"[".repeat(100_000), 128), 129);
    }

    #[test]
    fn decoding_keeps_the_parsers_limits() {
        assert!(decode_json(b"{} x").is_err());
        assert!(decode_json("[".repeat(5000).as_bytes()).is_err());
        assert!(decode_yaml(&"- ".repeat(5000)).is_err());
        assert!(matches!(
            decode_yaml(&format!("a: {}", "[".repeat(200_000))),
            Err(YamlError::TooDeep)
        ));
        assert!(decode_yaml("a: 1\n---\nb: 2\n").is_err());
        let (v, _) = decode_json(br#"{"n":1.5,"m":-3,"s":"x","t":true}"#).unwrap();
        assert_eq!(v, json!({"n":1.5,"m":-3,"s":"x","t":true}));
    }

    #[test]
    fn unknown_fields_are_found_at_every_depth_and_removed() {
        let mut d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"any": "thing"}, "nmae": "x"},
            "spec": {
                "replicaz": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                    {"name": "a", "image": "x"},
                    {"name": "b", "image": "y", "imagee": "z",
                     "resources": {"limits": {"cpu": "1"}},
                     "ports": [{"containerPort": 80, "prot": "TCP"}]}
                ]}}
            },
            "status": {"replicas": 1}
        });
        let p = prune_unknown("apps", "v1", "Deployment", &mut d);
        assert_eq!(
            p.0,
            vec![
                r#"unknown field "metadata.nmae""#,
                r#"unknown field "spec.replicaz""#,
                r#"unknown field "spec.template.spec.containers[1].imagee""#,
                r#"unknown field "spec.template.spec.containers[1].ports[0].prot""#,
            ]
        );
        assert!(d["spec"].get("replicaz").is_none());
        assert!(d["metadata"].get("nmae").is_none());
        assert_eq!(d["metadata"]["labels"]["any"], "thing");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][1]["resources"]["limits"]["cpu"],
            "1"
        );
        assert_eq!(
            p.strict_message("Deployment", "v1"),
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"metadata.nmae\", unknown field \"spec.replicaz\", unknown field \"spec.template.spec.containers[1].imagee\", unknown field \"spec.template.spec.containers[1].ports[0].prot\""
        );
    }

    #[test]
    fn every_served_kind_has_a_schema_to_check_against() {
        for r in crate::resource::RESOURCES {
            assert!(has_schema(r.group, r.version, r.kind), "{}", r.kind);
        }
    }

    #[test]
    fn values_of_the_wrong_type_are_named() {
        let d = json!({"kind": "Deployment", "metadata": {"name": "x", "labels": {"a": 1}},
            "spec": {"replicas": "two", "paused": null, "minReadySeconds": 5.0,
                "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "template": {"spec": {"containers": {"name": "c"}}}}});
        assert_eq!(
            type_errors("apps", "v1", "Deployment", &d),
            vec![
                r#""metadata.labels[a]": expected string, got number"#,
                r#""spec.replicas": expected integer, got string"#,
                r#""spec.template.spec.containers": expected array, got object"#,
            ]
        );
        let cm = json!({"kind": "ConfigMap", "data": [1], "binaryData": {"b": "AAA="}});
        assert_eq!(
            type_errors("", "v1", "ConfigMap", &cm),
            vec![r#""data": expected object, got array"#]
        );
        assert_eq!(
            type_errors("", "v1", "ConfigMap", &json!([1])),
            vec![r#""the body": expected object, got array"#]
        );
        let svc = json!({"spec": {"ports": [{"port": 80.5, "targetPort": true}]}});
        assert_eq!(type_errors("", "v1", "Service", &svc).len(), 2);
        assert!(type_errors(
            "",
            "v1",
            "Pod",
            &json!({"metadata": {"creationTimestamp": null}})
        )
        .is_empty());
    }

    #[test]
    fn free_form_and_wrongly_typed_values_are_not_unknown() {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c",
            "managedFields": [{"manager": "m", "fieldsV1": {"f:data": {"f:x": {}}}}]},
            "data": {"x": "y"}});
        let before = cm.clone();
        assert!(prune_unknown("", "v1", "ConfigMap", &mut cm).is_empty());
        assert_eq!(cm, before);
        let mut pod = json!({"spec": "not an object", "metadata": {"labels": 3}});
        assert!(prune_unknown("", "v1", "Pod", &mut pod).is_empty());
        let mut svc = json!({"spec": {"ports": [{"port": 80, "targetPort": "http"}]}});
        assert!(prune_unknown("", "v1", "Service", &mut svc).is_empty());
        assert!(prune_unknown("x.io", "v1", "Thing", &mut json!({"a": 1})).is_empty());
        assert!(has_schema("apps", "v1", "Deployment") && !has_schema("x.io", "v1", "Thing"));
    }
}
