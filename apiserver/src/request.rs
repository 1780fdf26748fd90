//! Reading a request: query parameters, the Accept header's output form, and bodies
//! (size-limited, JSON, YAML or protobuf) decoded into objects, with server-side field
//! validation (`fieldValidation`) for writes.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use skiff_api::openapi::strict::{self, Mode, Problems};
use skiff_api::{ApiError, ResourceInfo};

use crate::handlers::Req;
use crate::response::Body;

/// Bodies larger than this get 413, as upstream's 3 MiB request limit.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Query parameters; a repeated key keeps its last value.
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// `true`/`1` (and a bare key) are true, as Go's strconv.ParseBool and kubectl use.
    pub fn flag(&self, k: &str) -> bool {
        matches!(
            self.0.get(k).map(String::as_str),
            Some("true" | "1" | "True" | "TRUE" | "")
        )
    }

    pub fn u64(&self, k: &str) -> Result<Option<u64>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value {v:?} for query parameter {k}"))
            }),
        }
    }

    pub fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}

/// What rows of a Table carry, per `includeObject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn from_query(q: &Query) -> Result<IncludeObject, ApiError> {
        match q.get("includeObject") {
            None | Some("Metadata") => Ok(IncludeObject::Metadata),
            Some("None") => Ok(IncludeObject::None),
            Some("Object") => Ok(IncludeObject::Object),
            Some(other) => Err(ApiError::bad_request(format!(
                "includeObject must be None, Metadata or Object, not {other:?}"
            ))),
        }
    }
}

/// The representation a client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Table,
    /// `as=PartialObjectMetadata[List]`: metadata only.
    PartialMetadata,
}

/// Picks the first media range of `Accept` skiff can serve.
pub fn output(accept: Option<&str>) -> Output {
    let Some(accept) = accept else {
        return Output::Json;
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: HashMap<&str, &str> = parts.filter_map(|p| p.split_once('=')).collect();
        if media != "application/json" && media != "*/*" && media != "application/*" {
            continue;
        }
        match (params.get("as"), params.get("g"), params.get("v")) {
            (Some(&"Table"), Some(&"meta.k8s.io"), Some(&"v1")) => return Output::Table,
            (Some(&"Table"), _, _) => continue,
            (
                Some(&("PartialObjectMetadata" | "PartialObjectMetadataList")),
                Some(&"meta.k8s.io"),
                Some(&"v1"),
            ) => return Output::PartialMetadata,
            (Some(_), _, _) => continue,
            (None, _, _) => return Output::Json,
        }
    }
    Output::Json
}

/// Reads a whole body, refusing anything over [`MAX_BODY`] with 413.
pub async fn read_body<B>(body: B) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::too_large(
                    "the request body is larger than the 3 MiB limit",
                ))
            } else {
                Err(ApiError::bad_request(format!(
                    "reading the request body failed: {e}"
                )))
            }
        }
    }
}

/// Decodes an object body per Content-Type (JSON by default, YAML accepted).
pub fn decode(bytes: &[u8], content_type: Option<&str>) -> Result<Value, ApiError> {
    decode_tracking(bytes, content_type).map(|(v, _)| v)
}

/// [`decode`], also returning the keys that appear twice in one map (protobuf cannot
/// repeat a field, so it never has any).
fn decode_tracking(
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<(Value, Problems), ApiError> {
    let media = content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        // serde_json stops at 128 levels of nesting, so deep bodies are errors too.
        "application/json" | "" | "*/*" => strict::decode_json(bytes)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}"))),
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| ApiError::bad_request("the YAML body is not UTF-8"))?;
            // serde_yaml bounds recursion depth and alias expansion, so a "billion
            // laughs" document is an error, not an outage.
            strict::decode_yaml(text)
                .map_err(|e| ApiError::bad_request(format!("the body is not valid YAML: {e}")))
        }
        "application/vnd.kubernetes.protobuf" => skiff_api::protobuf::decode(bytes)
            .map(|v| (v, Problems::default()))
            .map_err(ApiError::bad_request),
        other => Err(ApiError::unsupported_media_type(format!(
            "the body content type {other:?} is not supported; use application/json or application/yaml"
        ))),
    }
}

/// The `fieldValidation` of a write; a value other than Ignore, Warn or Strict is 400.
pub fn field_validation(q: &Query) -> Result<Mode, ApiError> {
    Mode::parse(q.get("fieldValidation")).map_err(ApiError::bad_request)
}

/// What the mode makes of a body's problems: Strict refuses the request, Warn returns
/// the warnings to send, Ignore nothing.
fn judge(res: &ResourceInfo, mode: Mode, problems: Problems) -> Result<Vec<String>, ApiError> {
    match mode {
        _ if problems.is_empty() => Ok(Vec::new()),
        Mode::Strict => Err(ApiError::bad_request(
            problems.strict_message(res.kind, res.version),
        )),
        Mode::Warn => Ok(problems.0),
        Mode::Ignore => Ok(Vec::new()),
    }
}

/// Decodes the body of a create or update (PUT) of `res` with server-side field
/// validation: unknown fields are removed whatever the mode; with Strict, unknown or
/// duplicate fields are a 400; with Warn (the default) they come back as warnings for
/// [`with_warnings`].
pub fn decode_write(res: &ResourceInfo, req: &Req) -> Result<(Value, Vec<String>), ApiError> {
    let mode = field_validation(&req.query)?;
    let (mut obj, mut problems) = decode_tracking(&req.body, req.header("content-type"))?;
    if !obj.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    for field in ["apiVersion", "kind"] {
        if obj
            .get(field)
            .is_some_and(|v| !v.is_string() && !v.is_null())
        {
            return Err(ApiError::bad_request(format!(
                "{kind} in version {version:?} cannot be handled as a {kind}: {field} must be a string",
                kind = res.kind,
                version = res.version
            )));
        }
    }
    // A body of another kind is refused later by the kind check, with a clearer message
    // than a list of fields that kind does not have.
    let matches = |field: &str, want: &str| {
        obj.get(field)
            .and_then(Value::as_str)
            .is_none_or(|v| v == want)
    };
    if matches("kind", res.kind) && matches("apiVersion", &res.api_version()) {
        problems.extend(strict::prune_unknown(
            res.group,
            res.version,
            res.kind,
            &mut obj,
        ));
        wrong_types(
            res,
            strict::type_errors(res.group, res.version, res.kind, &obj),
        )?;
    }
    Ok((obj, judge(res, mode, problems)?))
}

/// Field validation of a PATCH, once the patch is applied: unknown fields the patch
/// brought into `new` are removed (and reported per the mode), and so are keys repeated
/// in a JSON merge, strategic merge or apply body. Fields that were already unknown in
/// `old` (stored before the server checked fields) are removed without blame.
pub fn check_patched(
    res: &ResourceInfo,
    req: &Req,
    old: &Value,
    new: &mut Value,
) -> Result<Vec<String>, ApiError> {
    let mode = field_validation(&req.query)?;
    let ct = req.header("content-type").unwrap_or("");
    let mut problems = if ct.starts_with("application/apply-patch+yaml") {
        std::str::from_utf8(&req.body)
            .ok()
            .and_then(|t| strict::decode_yaml(t).ok())
            .map(|(_, d)| d)
            .unwrap_or_default()
    } else if ct.starts_with("application/merge-patch+json")
        || ct.starts_with("application/strategic-merge-patch+json")
    {
        strict::decode_json(&req.body)
            .map(|(_, d)| d)
            .unwrap_or_default()
    } else {
        Problems::default()
    };
    let before = strict::prune_unknown(res.group, res.version, res.kind, &mut old.clone());
    let found = strict::prune_unknown(res.group, res.version, res.kind, new);
    problems.extend(Problems(
        found
            .0
            .into_iter()
            .filter(|p| !before.0.contains(p))
            .collect(),
    ));
    let was_wrong = strict::type_errors(res.group, res.version, res.kind, old);
    wrong_types(
        res,
        strict::type_errors(res.group, res.version, res.kind, new)
            .into_iter()
            .filter(|e| !was_wrong.contains(e))
            .collect(),
    )?;
    judge(res, mode, problems)
}

/// Values of the wrong JSON type are a 400 in every mode, as upstream cannot decode them.
fn wrong_types(res: &ResourceInfo, errors: Vec<String>) -> Result<(), ApiError> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "{kind} in version {version:?} cannot be handled as a {kind}: {}",
        errors.join(", "),
        kind = res.kind,
        version = res.version
    )))
}

/// At most this many `Warning` headers on one response; the rest are summed up in one.
const MAX_WARNINGS: usize = 50;

/// Adds one `Warning: 299 - "<text>"` header per warning (RFC 7234 form, as upstream
/// sends them and kubectl prints them).
pub fn with_warnings(mut resp: http::Response<Body>, warnings: &[String]) -> http::Response<Body> {
    let mut texts: Vec<String> = warnings.iter().take(MAX_WARNINGS).cloned().collect();
    if warnings.len() > MAX_WARNINGS {
        texts.push(format!(
            "{} more warnings not shown",
            warnings.len() - MAX_WARNINGS
        ));
    }
    for w in texts {
        let escaped: String = w
            .chars()
            .flat_map(|c| match c {
                '"' | '\\' => vec!['\\', c],
                c if c == ' ' || c.is_ascii_graphic() => vec![c],
                _ => vec!['?'],
            })
            .collect();
        if let Ok(v) = http::HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            resp.headers_mut().append(http::header::WARNING, v);
        }
    }
    resp
}

/// Decodes a body that must be a JSON object (a Kubernetes object or options).
pub fn decode_object(bytes: &[u8], content_type: Option<&str>) -> Result<Value, ApiError> {
    let v = decode(bytes, content_type)?;
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_table_like_kubectl_asks() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(output(Some(kubectl)), Output::Table);
        assert_eq!(
            output(Some(
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            )),
            Output::Json
        );
        assert_eq!(output(Some("application/json")), Output::Json);
        assert_eq!(output(None), Output::Json);
        assert_eq!(
            output(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
            )),
            Output::PartialMetadata
        );
        assert_eq!(
            output(Some(
                "application/vnd.kubernetes.protobuf, application/json"
            )),
            Output::Json
        );
    }

    #[test]
    fn bodies_decode_or_say_why_not() {
        assert!(decode_object(b"{\"a\":1}", None).is_ok());
        assert!(decode_object(b"a: 1\n", Some("application/yaml")).is_ok());
        assert_eq!(decode_object(b"[1]", None).unwrap_err().code, 400);
        assert_eq!(decode_object(b"{", None).unwrap_err().code, 400);
        assert_eq!(
            decode_object(b"x", Some("application/vnd.kubernetes.protobuf"))
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            decode_object(b"x", Some("text/plain")).unwrap_err().code,
            415
        );
        let deep = "[".repeat(10_000);
        assert_eq!(decode(deep.as_bytes(), None).unwrap_err().code, 400);
        let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
        assert_eq!(
            decode(bomb.as_bytes(), Some("application/yaml"))
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn warnings_become_quoted_299_headers() {
        let one = [r#"unknown field "spec.x""#.to_string()];
        let odd = ["a\\b ü\n".to_string()];
        let cases: &[(&[String], &[&str])] = &[
            (&one, &[r#"299 - "unknown field \"spec.x\"""#]),
            (&odd, &[r#"299 - "a\\b ??""#]),
            (&[], &[]),
        ];
        for (warnings, want) in cases {
            let r = with_warnings(crate::response::text(200, ""), warnings);
            let got: Vec<&str> = r
                .headers()
                .get_all("warning")
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(got, *want);
        }
        let many: Vec<String> = (0..60).map(|i| format!("w{i}")).collect();
        let r = with_warnings(crate::response::text(200, ""), &many);
        let got: Vec<_> = r.headers().get_all("warning").iter().collect();
        assert_eq!(got.len(), MAX_WARNINGS + 1);
        assert_eq!(got[MAX_WARNINGS], r#"299 - "10 more warnings not shown""#);
    }

    #[test]
    fn query_flags_follow_go_parsebool() {
        let q = Query::parse(Some("watch=true&a=1&b=false&limit=5&dryRun=All"));
        assert!(q.flag("watch") && q.flag("a") && !q.flag("b") && !q.flag("c"));
        assert_eq!(q.u64("limit").unwrap(), Some(5));
        assert!(q.dry_run());
        assert_eq!(
            Query::parse(Some("limit=x")).u64("limit").unwrap_err().code,
            400
        );
    }
}
