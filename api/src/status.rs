//! Kubernetes `Status` errors.
//!
//! Every failure the API server reports is an [`ApiError`]: an HTTP code, a
//! machine-readable reason (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...), a
//! human message worded like the upstream API server's, and details naming the object
//! and, for validation errors, each field at fault. [`ApiError::to_status`] renders the
//! `metav1.Status` JSON that kubectl and the client libraries parse.

use serde_json::{json, Value};

use crate::resource::ResourceInfo;

/// One field at fault: becomes an entry of `details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`,
    /// `FieldValueDuplicate`, `FieldValueTooLong`, `FieldValueForbidden`, ...
    pub reason: String,
    /// What is wrong, e.g. `Required value` or `Invalid value: "Web": a lowercase RFC
    /// 1123 subdomain must consist of ...`.
    pub message: String,
    /// The JSON path of the field, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
}

impl Cause {
    pub fn new(reason: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            reason: reason.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn required(field: impl Into<String>) -> Self {
        Cause::new("FieldValueRequired", field, "Required value")
    }

    /// `Invalid value: <value>: <detail>`, as Kubernetes prints it.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        let shown = match value {
            Value::String(s) => format!("\"{s}\""),
            other => other.to_string(),
        };
        Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {shown}: {detail}"),
        )
    }

    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let shown = match value {
            Value::String(s) => format!("\"{s}\""),
            other => other.to_string(),
        };
        let list = supported
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        Cause::new(
            "FieldValueNotSupported",
            field,
            format!("Unsupported value: {shown}: supported values: {list}"),
        )
    }

    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Cause::new("FieldValueForbidden", field, format!("Forbidden: {detail}"))
    }

    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        let shown = match value {
            Value::String(s) => format!("\"{s}\""),
            other => other.to_string(),
        };
        Cause::new(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {shown}"),
        )
    }

    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Cause::new(
            "FieldValueTooLong",
            field,
            format!("Too long: must have at most {max} bytes"),
        )
    }

    /// The form Kubernetes uses inside an `Invalid` message: `spec.replicas: Invalid value: -1: ...`.
    pub fn display(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// An API failure, rendered as a `metav1.Status`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    /// `details.name`
    pub name: Option<String>,
    /// `details.group`
    pub group: Option<String>,
    /// `details.kind` (a plural for NotFound/AlreadyExists/Conflict, a kind for Invalid,
    /// as upstream does)
    pub kind: Option<String>,
    pub causes: Vec<Cause>,
    /// `details.retryAfterSeconds`
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            name: None,
            group: None,
            kind: None,
            causes: Vec::new(),
            retry_after: None,
        }
    }

    fn about(mut self, res: &ResourceInfo, name: &str, kind: &str) -> Self {
        self.name = Some(name.to_string());
        if !res.group.is_empty() {
            self.group = Some(res.group.to_string());
        }
        self.kind = Some(kind.to_string());
        self
    }

    /// `pods "web" not found`
    pub fn not_found(res: &ResourceInfo, name: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", res.qualified_plural(), name),
        )
        .about(res, name, res.plural)
    }

    /// `deployments.apps "web" already exists`
    pub fn already_exists(res: &ResourceInfo, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", res.qualified_plural(), name),
        )
        .about(res, name, res.plural)
    }

    /// The optimistic-concurrency failure kubectl tells users to retry.
    pub fn conflict(res: &ResourceInfo, name: &str, why: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                res.qualified_plural(),
                name,
                why
            ),
        )
        .about(res, name, res.plural)
    }

    /// The stale-resourceVersion conflict, worded as upstream words it.
    pub fn stale(res: &ResourceInfo, name: &str) -> Self {
        ApiError::conflict(
            res,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: ...`
    pub fn invalid(res: &ResourceInfo, name: &str, causes: Vec<Cause>) -> Self {
        let parts: Vec<String> = causes.iter().map(Cause::display).collect();
        let joined = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!(
                "{} \"{}\" is invalid: {}",
                res.qualified_kind(),
                name,
                joined
            ),
        )
        .about(res, name, res.kind);
        e.causes = causes;
        e
    }

    /// A 422 for one field without a known object name (allocation failures).
    pub fn invalid_field(field: &str, value: &str, detail: &str) -> Self {
        let cause = Cause::invalid(field, &Value::String(value.to_string()), detail);
        let mut e = ApiError::new(422, "Invalid", cause.display());
        e.causes = vec![cause];
        e
    }

    /// Upstream's wording when neither name nor generateName is given.
    pub fn with_message_name_required(mut self) -> Self {
        self.message = format!(
            "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
            self.kind.clone().unwrap_or_default()
        );
        if let Some(c) = self.causes.first_mut() {
            c.message = "Required value: name or generateName is required".into();
        }
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    pub fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(403, "Forbidden", message)
    }

    /// A watch or list from a resourceVersion the event log no longer holds.
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(413, "RequestEntityTooLarge", message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        ApiError::new(415, "UnsupportedMediaType", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        ApiError::new(406, "NotAcceptable", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(500, "InternalError", message)
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        ApiError::new(503, "ServiceUnavailable", message)
    }

    /// The `metav1.Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = serde_json::Map::new();
        if let Some(n) = &self.name {
            details.insert("name".into(), json!(n));
        }
        if let Some(g) = &self.group {
            details.insert("group".into(), json!(g));
        }
        if let Some(k) = &self.kind {
            details.insert("kind".into(), json!(k));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(r) = self.retry_after {
            details.insert("retryAfterSeconds".into(), json!(r));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// The `Success` Status returned by some deletes.
pub fn success_status(res: &ResourceInfo, name: &str, uid: &str) -> Value {
    let mut details = json!({"name": name, "kind": res.plural, "uid": uid});
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::lookup;

    #[test]
    fn not_found_reads_like_upstream() {
        let d = lookup("apps", "v1", "deployments").unwrap();
        let s = ApiError::not_found(d, "web").to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(s["details"]["kind"], "deployments");
        assert_eq!(s["details"]["group"], "apps");
    }

    #[test]
    fn invalid_names_every_field() {
        let p = lookup("", "v1", "pods").unwrap();
        let e = ApiError::invalid(
            p,
            "x",
            vec![
                Cause::required("spec.containers"),
                Cause::invalid("metadata.name", &json!("X"), "bad"),
            ],
        );
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["kind"], "Pod");
        assert!(s["details"].get("group").is_none());
        assert_eq!(s["details"]["causes"][0]["field"], "spec.containers");
        assert_eq!(
            s["message"],
            "Pod \"x\" is invalid: [spec.containers: Required value, metadata.name: Invalid value: \"X\": bad]"
        );
    }
}
