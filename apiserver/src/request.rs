//! Reading a request: query parameters, the Accept header's output form, and bodies
//! (size-limited, JSON or YAML) decoded into objects.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use skiff_api::ApiError;

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
    let media = content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    let v: Value = match media {
        "application/json" | "" | "*/*" => serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| ApiError::bad_request("the YAML body is not UTF-8"))?;
            // serde_yaml bounds recursion depth and alias expansion, so a "billion
            // laughs" document is an error, not an outage.
            serde_yaml::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("the body is not valid YAML: {e}")))?
        }
        "application/vnd.kubernetes.protobuf" => skiff_api::protobuf::decode(bytes).map_err(ApiError::bad_request)?,
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "the body content type {other:?} is not supported; use application/json or application/yaml"
            )))
        }
    };
    Ok(v)
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
