//! The I/O shell every command shares: one [`Ctx`] per invocation holding the API client,
//! the namespace to use and the (lazily loaded) discovery cache, plus raw HTTP helpers
//! that turn `metav1.Status` replies and transport failures into one-line errors worded
//! like kubectl's.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::discovery::Discovery;

/// `path` with the field manager of an imperative command (`skiff-rollout`,
/// `skiff-label`, ...), as kubectl names its own (`kubectl-rollout`): writes by these
/// commands then show up under their own name in managedFields and in apply conflicts,
/// not under `skiff`, the name server-side apply uses.
pub fn with_manager(path: &str, command: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}fieldManager=skiff-{command}")
}

/// An error reply from the API server, printed the way kubectl prints it.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    pub code: u16,
    pub reason: String,
    pub message: String,
    /// `(field, message)` for `Invalid` replies.
    pub causes: Vec<(String, String)>,
    /// What to do, from what the client knows and the server does not (where the
    /// refused token came from, which namespace was searched).
    pub hint: Option<String>,
}

impl ApiFailure {
    /// Builds the failure from a reply body, falling back to the HTTP status line when the
    /// body is not a `Status` (a proxy or a non-Kubernetes server answered).
    pub fn from_reply(code: StatusCode, body: &[u8]) -> ApiFailure {
        let status: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let reason = status["reason"]
            .as_str()
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| {
                code.canonical_reason()
                    .unwrap_or("Unknown")
                    .replace(' ', "")
            });
        let message = status["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(body).trim().to_string();
                if text.is_empty() {
                    format!("the server responded with HTTP {code}")
                } else {
                    text
                }
            });
        let causes = status
            .pointer("/details/causes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|c| {
                        (
                            c["field"].as_str().unwrap_or_default().to_string(),
                            c["message"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        ApiFailure {
            code: code.as_u16(),
            reason,
            message,
            causes,
            hint: None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code == 404
    }
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            401 => write!(
                f,
                "You must be logged in to the server (Unauthorized): the server refused {}; \
                 it is wrong or expired: get a fresh kubeconfig (skiff server writes admin.kubeconfig) or pass --token",
                self.hint.as_deref().unwrap_or("the token")
            ),
            404 => {
                write!(f, "Error from server (NotFound): {}", self.message)?;
                if let Some(h) = &self.hint {
                    write!(f, "; {h}")?;
                }
                Ok(())
            }
            422 => {
                write!(f, "Error from server (Invalid): {}", self.message)?;
                // Name every field at fault, even when the message summarises.
                for (field, why) in &self.causes {
                    if !field.is_empty() && !self.message.contains(field.as_str()) {
                        write!(f, "; {field}: {why}")?;
                    }
                }
                write!(f, "; fix the field and send the object again")
            }
            403 => write!(f, "Error from server (Forbidden): {}", self.message),
            409 if self.reason == "Conflict" => write!(
                f,
                "Error from server (Conflict): {}; re-run the command to apply on the latest version",
                self.message
            ),
            415 => write!(
                f,
                "Error from server (UnsupportedMediaType): {}: this server does not support the request's content type",
                self.message
            ),
            503 => write!(f, "Error from server (ServiceUnavailable): {}", self.message),
            _ => write!(f, "Error from server ({}): {}", self.reason, self.message),
        }
    }
}

impl std::error::Error for ApiFailure {}

/// Why the server could not be reached, naming the address tried.
#[derive(Debug)]
pub struct Unreachable {
    pub server: String,
    pub detail: String,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A certificate problem is no question of host or port: say what to change.
        if self.detail.to_lowercase().contains("certificate") {
            return write!(
                f,
                "the server {} presented a certificate that is not trusted ({}); put the cluster's CA in the kubeconfig (certificate-authority-data) or pass --insecure-skip-tls-verify",
                self.server, self.detail
            );
        }
        write!(
            f,
            "the connection to the server {} failed ({}) - is the server running and did you specify the right host or port?",
            self.server, self.detail
        )
    }
}

impl std::error::Error for Unreachable {}

/// The per-invocation context: client, target namespace, discovery cache.
pub struct Ctx {
    pub client: kube::Client,
    /// The server URL tried, for error messages.
    pub server: String,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    /// Whether `-n` was given (apply refuses objects from another namespace then).
    pub explicit_namespace: bool,
    pub all_namespaces: bool,
    /// Where the credential came from (`connect` fills it), named when it is refused.
    pub credential: String,
    discovery: OnceCell<Discovery>,
}

/// The `Accept` header that asks for server-side Tables, with plain JSON as fallback.
pub const ACCEPT_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

impl Ctx {
    pub fn new(
        client: kube::Client,
        server: String,
        namespace: String,
        explicit: bool,
        all: bool,
    ) -> Ctx {
        Ctx {
            client,
            server,
            namespace,
            explicit_namespace: explicit,
            all_namespaces: all,
            credential: "the token".into(),
            discovery: OnceCell::new(),
        }
    }

    /// Discovery, fetched once per invocation.
    pub async fn discovery(&self) -> anyhow::Result<&Discovery> {
        self.discovery
            .get_or_try_init(|| Discovery::load(self))
            .await
    }

    /// Sends a request and returns the reply once its status is known (body unread).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<http::Response<Body>> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::ACCEPT, accept);
        let body = match body {
            Some((content_type, bytes)) => {
                req = req.header(http::header::CONTENT_TYPE, content_type);
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let req = req.body(body)?;
        let resp = self
            .client
            .send(req)
            .await
            .map_err(|e| self.transport_error(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let code = resp.status();
        let bytes = resp.into_body().collect_bytes().await.unwrap_or_default();
        Err(self.failure(code, &bytes).into())
    }

    /// The server's refusal plus what only the client knows: where a refused credential
    /// came from, which namespace a missing object was looked for in.
    pub fn failure(&self, code: StatusCode, body: &[u8]) -> ApiFailure {
        let mut f = ApiFailure::from_reply(code, body);
        f.hint = match code.as_u16() {
            401 => Some(self.credential.clone()),
            404 if f.message.ends_with("not found") => Some(format!(
                "looked in namespace \"{}\"; check the name, or pick the namespace with -n",
                self.namespace
            )),
            _ => None,
        };
        f
    }

    /// One request, whole reply body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<Bytes> {
        let resp = self.send(method, path, accept, body).await?;
        resp.into_body()
            .collect_bytes()
            .await
            .map_err(|e| self.transport_error(e))
    }

    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let bytes = self
            .call(Method::GET, path, "application/json", None)
            .await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    pub async fn get_table(&self, path: &str) -> anyhow::Result<Value> {
        let bytes = self.call(Method::GET, path, ACCEPT_TABLE, None).await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// A request with a JSON body (POST, PUT, PATCH, DELETE) returning the JSON reply.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: &Value,
    ) -> anyhow::Result<Value> {
        let bytes = self
            .call(
                method,
                path,
                "application/json",
                Some((content_type, serde_json::to_vec(body)?)),
            )
            .await?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub fn transport_error(&self, e: kube::Error) -> anyhow::Error {
        // Walk to the innermost cause: that is where "Connection refused" or the TLS
        // complaint lives.
        let mut detail = e.to_string();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(s) = source {
            detail = s.to_string();
            source = s.source();
        }
        Unreachable {
            server: self.server.clone(),
            detail,
        }
        .into()
    }
}

/// Streams newline-delimited chunks (watch events, followed logs) from a reply body.
pub struct LineStream {
    body: Body,
    buf: Vec<u8>,
    done: bool,
}

impl LineStream {
    pub fn new(body: Body) -> LineStream {
        LineStream {
            body,
            buf: Vec::new(),
            done: false,
        }
    }

    /// The next complete line (without the newline); the final unterminated piece at
    /// the end of the stream; `None` when the stream is over.
    pub async fn next_line(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                return Ok(Some(line));
            }
            if self.done {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    return Err(anyhow::anyhow!("reading the server's stream failed: {e}"))
                }
                None => self.done = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_says_what_to_check() {
        let u = |detail: &str| {
            Unreachable {
                server: "https://10.0.0.1:6443".into(),
                detail: detail.into(),
            }
            .to_string()
        };
        let refused = u("Connection refused (os error 111)");
        assert!(
            refused.contains("https://10.0.0.1:6443") && refused.contains("is the server running"),
            "{refused}"
        );
        let tls = u("invalid peer certificate: UnknownIssuer");
        assert!(
            tls.contains("https://10.0.0.1:6443")
                && tls.contains("not trusted")
                && tls.contains("--insecure-skip-tls-verify"),
            "{tls}"
        );
    }

    #[test]
    fn imperative_writes_name_their_command() {
        assert_eq!(
            with_manager("/api/v1/namespaces/d/pods/p", "label"),
            "/api/v1/namespaces/d/pods/p?fieldManager=skiff-label"
        );
        assert_eq!(
            with_manager("/x?dryRun=All", "edit"),
            "/x?dryRun=All&fieldManager=skiff-edit"
        );
    }

    #[test]
    fn failures_name_fields_and_what_to_do() {
        let body = br#"{"kind":"Status","status":"Failure","reason":"Invalid","code":422,
            "message":"Deployment.apps \"web\" is invalid",
            "details":{"causes":[{"field":"spec.replicas","message":"must be greater than or equal to 0"}]}}"#;
        let f = ApiFailure::from_reply(StatusCode::UNPROCESSABLE_ENTITY, body);
        assert_eq!(
            f.to_string(),
            "Error from server (Invalid): Deployment.apps \"web\" is invalid; spec.replicas: must be greater than or equal to 0; fix the field and send the object again"
        );
        let mut f = ApiFailure::from_reply(StatusCode::UNAUTHORIZED, b"{}");
        f.hint = Some("the token from the --token flag".into());
        assert!(
            f.to_string()
                .contains("refused the token from the --token flag"),
            "{f}"
        );
        let f = ApiFailure::from_reply(
            StatusCode::CONFLICT,
            br#"{"reason":"Conflict","message":"the object has been modified"}"#,
        );
        assert!(f.to_string().contains("re-run the command"), "{f}");
        // Not a Status: the HTTP line stands in.
        let f = ApiFailure::from_reply(StatusCode::BAD_GATEWAY, b"");
        assert_eq!(
            f.to_string(),
            "Error from server (BadGateway): the server responded with HTTP 502 Bad Gateway"
        );
    }
}
