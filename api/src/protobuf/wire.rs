//! The protobuf wire format, read against the generated message table into JSON.
//!
//! Kubernetes' own JSON form is the contract: field names come from the JSON tags, the
//! well-known apimachinery messages (Time, IntOrString, Quantity, ...) are rendered the
//! way their Go `MarshalJSON` renders them, and values that Go's gogo-protobuf writes
//! for non-pointer fields but the JSON form omits (empty strings, zero times, zero
//! numbers and `false` outside the fields where they are a real choice) are dropped.

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// The type of one field, as the generator read it from the prost types.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ty {
    Str,
    I32,
    I64,
    Bool,
    /// No served message has one today; the generator emits it for `double` fields.
    #[allow(dead_code)]
    F64,
    Bytes,
    /// An embedded message: index into `schema::MESSAGES`.
    Msg(u16),
    MapStr,
    MapBytes,
    MapMsg(u16),
}

/// One field of a message.
#[derive(Debug)]
pub(super) struct Field {
    pub tag: u32,
    pub json: &'static str,
    pub ty: Ty,
    pub repeated: bool,
    /// A Go struct embedded with `json:",inline"`: its keys merge into the parent.
    pub inline: bool,
}

/// One message: its protobuf full name (without the `k8s.io.` prefix) and fields.
#[derive(Debug)]
pub(super) struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
}

/// A raw field value as it sits on the wire.
#[derive(Debug, Clone, Copy)]
enum Raw<'a> {
    Varint(u64),
    Fixed64(u64),
    /// Skipped: no Kubernetes message has 32-bit fixed fields.
    Fixed32,
    Bytes(&'a [u8]),
}

/// Reads `(field number, value)` pairs off a message body.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some((&b, rest)) = self.buf.split_first() else {
                return Err("truncated varint".into());
            };
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.buf.len() {
            return Err(format!("field length {n} runs past the end of the message"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn next(&mut self) -> Result<Option<(u32, Raw<'a>)>, String> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| "field number out of range".to_string())?;
        if tag == 0 {
            return Err("field number 0 is not valid".into());
        }
        let raw = match key & 7 {
            0 => Raw::Varint(self.varint()?),
            1 => Raw::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "length out of range")?;
                Raw::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Raw::Fixed32
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        Ok(Some((tag, raw)))
    }
}

/// Splits a message body into `(field number, value)` pairs.
fn fields(buf: &[u8]) -> Result<Vec<(u32, Raw<'_>)>, String> {
    let mut r = Reader { buf };
    let mut out = Vec::new();
    while let Some(f) = r.next()? {
        out.push(f);
    }
    Ok(out)
}

/// What a `runtime.Unknown` envelope says about the object inside it.
pub(super) struct Envelope<'a> {
    pub api_version: String,
    pub kind: String,
    /// The object's own protobuf encoding.
    pub raw: &'a [u8],
    /// Empty, or a compression the client applied to `raw`.
    pub content_encoding: String,
}

/// Reads `runtime.Unknown { typeMeta = 1 { apiVersion = 1, kind = 2 }, raw = 2,
/// contentEncoding = 3, contentType = 4 }`.
pub(super) fn envelope(buf: &[u8]) -> Result<Envelope<'_>, String> {
    let fs = fields(buf)?;
    let type_meta = fields(bytes(&fs, 1))?;
    Ok(Envelope {
        api_version: utf8(bytes(&type_meta, 1))?,
        kind: utf8(bytes(&type_meta, 2))?,
        raw: bytes(&fs, 2),
        content_encoding: utf8(bytes(&fs, 3))?,
    })
}

/// Decodes one message of type `messages[idx]` into its JSON form.
pub(super) fn decode_message(messages: &[Message], idx: u16, buf: &[u8]) -> Result<Value, String> {
    let msg = messages
        .get(usize::from(idx))
        .ok_or_else(|| format!("message index {idx} is not in the schema"))?;
    if let Some(v) = special(msg.name, buf)? {
        return Ok(v);
    }
    let mut obj = Map::new();
    for (tag, raw) in fields(buf)? {
        // Unknown field numbers come from newer clients; like Go, skip them.
        let Some(field) = msg.fields.iter().find(|f| f.tag == tag) else {
            continue;
        };
        let what = || format!("{}.{}", msg.name, field.json);
        match field.ty {
            Ty::MapStr | Ty::MapBytes | Ty::MapMsg(_) => {
                let Raw::Bytes(entry) = raw else {
                    return Err(format!("{}: map entry is not length-delimited", what()));
                };
                let (k, v) =
                    map_entry(messages, field.ty, entry).map_err(|e| format!("{}: {e}", what()))?;
                let map = obj
                    .entry(field.json)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = map {
                    m.insert(k, v);
                }
            }
            _ if field.repeated => {
                let vals = repeated_values(messages, field.ty, raw)
                    .map_err(|e| format!("{}: {e}", what()))?;
                let list = obj
                    .entry(field.json)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(a) = list {
                    a.extend(vals);
                }
            }
            ty => {
                let v = scalar(messages, ty, raw).map_err(|e| format!("{}: {e}", what()))?;
                if field.inline {
                    if let Value::Object(inner) = v {
                        obj.extend(inner);
                    }
                } else if let Value::Object(existing) =
                    obj.get_mut(field.json).unwrap_or(&mut Value::Null)
                {
                    // A message field seen twice on the wire merges, as protobuf requires.
                    if let Value::Object(more) = v {
                        existing.extend(more);
                    }
                } else {
                    obj.insert(field.json.to_string(), v);
                }
            }
        }
    }
    // What gogo writes for non-pointer fields but JSON's `omitempty` leaves out.
    obj.retain(|k, v| {
        let zero = msg
            .fields
            .iter()
            .find(|f| f.json == k)
            .is_some_and(|f| !f.repeated && unset_zero(msg, f, v));
        !matches!(v, Value::Null) && v.as_str() != Some("") && !zero
    });
    Ok(Value::Object(obj))
}

/// Go writes every non-pointer field, so a zero or `false` on the wire usually means
/// "not set" (its JSON form omits it). These fields are pointers whose zero or `false`
/// is a real choice (`replicas: 0`, `runAsUser: 0`, `enableServiceLinks: false`) and
/// must survive; every other zero and `false` is dropped, as JSON would.
const KEEP_ZERO: &[&str] = &[
    // `replicas` is a pointer in specs but a plain counter in statuses.
    "DeploymentSpec.replicas",
    "ReplicaSetSpec.replicas",
    "StatefulSetSpec.replicas",
    "ReplicationControllerSpec.replicas",
    "ScaleSpec.replicas",
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
    "terminationGracePeriodSeconds",
    "gracePeriodSeconds",
    "deletionGracePeriodSeconds",
    "activeDeadlineSeconds",
    "runAsUser",
    "runAsGroup",
    "fsGroup",
    "defaultMode",
    "mode",
    "priority",
    "leaseDurationSeconds",
    "leaseTransitions",
    "expirationSeconds",
    "port",
    "containerPort",
    "weight",
    "exitCode",
    "restartCount",
];
const KEEP_FALSE: &[&str] = &[
    "enableServiceLinks",
    "hostUsers",
    "ready",
    "serving",
    "terminating",
    "sendInitialEvents",
    "stdout",
    "stderr",
    "allocateLoadBalancerNodePorts",
    "automountServiceAccountToken",
    "allowPrivilegeEscalation",
    "orphanDependents",
    "started",
];

/// Whether a decoded scalar is the zero value Go writes for an unset non-pointer field.
/// Entries of [`KEEP_ZERO`] name a field alone or as `Message.field`.
fn unset_zero(msg: &Message, field: &Field, v: &Value) -> bool {
    let listed = |list: &[&str]| {
        let short = msg.name.rsplit('.').next().unwrap_or(msg.name);
        list.iter().any(|e| match e.split_once('.') {
            Some((m, f)) => m == short && f == field.json,
            None => *e == field.json,
        })
    };
    match (field.ty, v) {
        (Ty::I32 | Ty::I64, v) if v.as_i64() == Some(0) => !listed(KEEP_ZERO),
        (Ty::Bool, Value::Bool(false)) => !listed(KEEP_FALSE),
        _ => false,
    }
}

/// A repeated field: packed (several numbers in one length-delimited value) or not.
fn repeated_values(messages: &[Message], ty: Ty, raw: Raw<'_>) -> Result<Vec<Value>, String> {
    match (ty, raw) {
        (Ty::I32 | Ty::I64 | Ty::Bool, Raw::Bytes(packed)) => {
            let mut r = Reader { buf: packed };
            let mut out = Vec::new();
            while !r.buf.is_empty() {
                out.push(scalar(messages, ty, Raw::Varint(r.varint()?))?);
            }
            Ok(out)
        }
        (Ty::F64, Raw::Bytes(packed)) => packed
            .chunks(8)
            .map(|c| {
                let b: [u8; 8] = c
                    .try_into()
                    .map_err(|_| "truncated packed double".to_string())?;
                scalar(messages, ty, Raw::Fixed64(u64::from_le_bytes(b)))
            })
            .collect(),
        _ => {
            // Items of a repeated field keep empty strings: `[""]` is not `[]`.
            Ok(vec![match (ty, raw) {
                (Ty::Str, Raw::Bytes(b)) => Value::String(utf8(b)?),
                _ => scalar(messages, ty, raw)?,
            }])
        }
    }
}

fn map_entry(messages: &[Message], ty: Ty, entry: &[u8]) -> Result<(String, Value), String> {
    let mut key = String::new();
    let mut val = match ty {
        Ty::MapMsg(i) => decode_message(messages, i, &[])?,
        _ => Value::String(String::new()),
    };
    for (tag, raw) in fields(entry)? {
        match (tag, raw) {
            (1, Raw::Bytes(b)) => key = utf8(b)?,
            (2, Raw::Bytes(b)) => {
                val = match ty {
                    Ty::MapStr => Value::String(utf8(b)?),
                    Ty::MapBytes => {
                        Value::String(base64::engine::general_purpose::STANDARD.encode(b))
                    }
                    Ty::MapMsg(i) => decode_message(messages, i, b)?,
                    _ => return Err("not a map".into()),
                }
            }
            _ => return Err(format!("unexpected field {tag} in a map entry")),
        }
    }
    Ok((key, val))
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "string is not valid UTF-8".to_string())
}

fn scalar(messages: &[Message], ty: Ty, raw: Raw<'_>) -> Result<Value, String> {
    Ok(match (ty, raw) {
        (Ty::Str, Raw::Bytes(b)) => Value::String(utf8(b)?),
        (Ty::Bytes, Raw::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        // int32 is sign-extended to 64 bits on the wire.
        (Ty::I32, Raw::Varint(v)) => Value::from(v as i64 as i32),
        (Ty::I64, Raw::Varint(v)) => Value::from(v as i64),
        (Ty::Bool, Raw::Varint(v)) => Value::Bool(v != 0),
        (Ty::F64, Raw::Fixed64(v)) => serde_json::Number::from_f64(f64::from_bits(v))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        (Ty::Msg(i), Raw::Bytes(b)) => decode_message(messages, i, b)?,
        (ty, raw) => {
            return Err(format!(
                "wire value {raw:?} does not fit a field of type {ty:?}"
            ))
        }
    })
}

fn int(fs: &[(u32, Raw<'_>)], tag: u32) -> i64 {
    fs.iter()
        .rev()
        .find_map(|(t, r)| match (t, r) {
            (t, Raw::Varint(v)) if *t == tag => Some(*v as i64),
            _ => None,
        })
        .unwrap_or(0)
}

fn bytes<'a>(fs: &[(u32, Raw<'a>)], tag: u32) -> &'a [u8] {
    fs.iter()
        .rev()
        .find_map(|(t, r)| match (t, r) {
            (t, Raw::Bytes(b)) if *t == tag => Some(*b),
            _ => None,
        })
        .unwrap_or(&[])
}

/// The apimachinery messages whose JSON form is not an object of their fields.
fn special(name: &str, buf: &[u8]) -> Result<Option<Value>, String> {
    let short = name.rsplit('.').next().unwrap_or(name);
    let v = match short {
        "Time" | "MicroTime" => {
            let fs = fields(buf)?;
            let (secs, nanos) = (int(&fs, 1), int(&fs, 2));
            if secs == 0 && nanos == 0 {
                // Go's zero time marshals as JSON null: the field is absent.
                Value::Null
            } else {
                let t = DateTime::<Utc>::from_timestamp(secs, nanos as u32)
                    .ok_or_else(|| format!("time {secs}s out of range"))?;
                let fmt = if short == "Time" {
                    SecondsFormat::Secs
                } else {
                    SecondsFormat::Micros
                };
                Value::String(t.to_rfc3339_opts(fmt, true))
            }
        }
        "Duration" => Value::String(go_duration(int(&fields(buf)?, 1))),
        "IntOrString" => {
            let fs = fields(buf)?;
            if int(&fs, 1) == 1 {
                Value::String(utf8(bytes(&fs, 3))?)
            } else {
                Value::from(int(&fs, 2) as i32)
            }
        }
        "Quantity" => Value::String(utf8(bytes(&fields(buf)?, 1))?),
        "RawExtension" | "FieldsV1" => {
            let raw = bytes(&fields(buf)?, 1);
            if raw.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(raw)
                    .map_err(|e| format!("{short} does not hold JSON: {e}"))?
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(v))
}

/// Formats nanoseconds the way Go's `time.Duration.String` does (`1h2m3.5s`).
pub(super) fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        let (unit, div) = if n < 1_000 {
            ("ns", 1)
        } else if n < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", frac(n, div));
    }
    let (h, rem) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
    let (m, rem) = (rem / 60_000_000_000, rem % 60_000_000_000);
    let s = frac(rem, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{sign}{s}s"),
        (0, m) => format!("{sign}{m}m{s}s"),
        (h, m) => format!("{sign}{h}h{m}m{s}s"),
    }
}

/// `n / div` with the fraction's trailing zeros removed.
fn frac(n: u64, div: u64) -> String {
    let (whole, part) = (n / div, n % div);
    if part == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{part:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}
