//! The small, validated set of Ingress annotations skiff-ingress understands.
//!
//! Annotations are free-form user input, so each one is parsed into a typed value and
//! checked here; nothing from them is ever interpolated into a config file or a
//! header name (there is no config file: the route table is built in memory). An
//! invalid value is reported and ignored, so one bad annotation never takes the other
//! routes of the Ingress down.
//!
//! Names are read under two prefixes: `ingress.skiff.dev/` and, so that manifests
//! written for ingress-nginx work unchanged, `nginx.ingress.kubernetes.io/`. When both
//! are set the skiff one wins.

use std::collections::BTreeMap;

/// The skiff-native annotation prefix.
pub const SKIFF_PREFIX: &str = "ingress.skiff.dev/";
/// The ingress-nginx prefix, accepted for compatibility.
pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// Longest accepted rewrite target; real ones are short paths.
const MAX_REWRITE_LEN: usize = 256;

/// How the proxy talks to the backend pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendProtocol {
    /// Plain HTTP/1.1 (the default).
    #[default]
    Http,
    /// TLS to the pod; the pod's certificate is not verified, as with ingress-nginx's
    /// default, because pod certificates are usually self-signed.
    Https,
}

/// The parsed, valid annotations of one Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Annotations {
    /// `rewrite-target`: the matched path prefix is replaced by this path.
    pub rewrite_target: Option<String>,
    /// `ssl-redirect`: redirect plain HTTP to HTTPS. `None` means "the default", which
    /// is to redirect only hosts listed in `spec.tls`.
    pub ssl_redirect: Option<bool>,
    /// `backend-protocol`.
    pub backend_protocol: BackendProtocol,
}

/// One rejected annotation: which one and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {name}: {reason}")]
pub struct AnnotationError {
    /// The full annotation key as the user wrote it.
    pub name: String,
    /// Why the value was refused and what is accepted instead.
    pub reason: String,
}

/// Reads the supported annotations; invalid ones are returned as errors and left at
/// their default.
pub fn parse(
    annotations: Option<&BTreeMap<String, String>>,
) -> (Annotations, Vec<AnnotationError>) {
    let mut out = Annotations::default();
    let mut errors = Vec::new();
    let Some(map) = annotations else {
        return (out, errors);
    };
    if let Some((name, value)) = lookup(map, "rewrite-target") {
        match parse_rewrite_target(value) {
            Ok(v) => out.rewrite_target = Some(v),
            Err(reason) => errors.push(AnnotationError { name, reason }),
        }
    }
    if let Some((name, value)) = lookup(map, "ssl-redirect") {
        match value.trim() {
            "true" => out.ssl_redirect = Some(true),
            "false" => out.ssl_redirect = Some(false),
            _ => errors.push(AnnotationError {
                name,
                reason: "must be \"true\" or \"false\"".into(),
            }),
        }
    }
    if let Some((name, value)) = lookup(map, "backend-protocol") {
        match value.trim().to_ascii_uppercase().as_str() {
            "HTTP" => out.backend_protocol = BackendProtocol::Http,
            "HTTPS" => out.backend_protocol = BackendProtocol::Https,
            _ => errors.push(AnnotationError {
                name,
                reason: "unsupported protocol; use HTTP or HTTPS".into(),
            }),
        }
    }
    (out, errors)
}

fn lookup<'a>(map: &'a BTreeMap<String, String>, short: &str) -> Option<(String, &'a str)> {
    [SKIFF_PREFIX, NGINX_PREFIX].iter().find_map(|prefix| {
        let key = format!("{prefix}{short}");
        map.get(&key).map(|v| (key, v.as_str()))
    })
}

/// A rewrite target is a plain absolute path: regex captures (`$1`) as in
/// ingress-nginx are refused rather than half-supported, and only URL-safe path
/// characters are allowed so the value can be placed in a request line verbatim.
fn parse_rewrite_target(value: &str) -> Result<String, String> {
    let value = value.trim();
    if !value.starts_with('/') {
        return Err("must be an absolute path starting with '/'".into());
    }
    if value.len() > MAX_REWRITE_LEN {
        return Err(format!("longer than {MAX_REWRITE_LEN} characters"));
    }
    if value.contains('$') {
        return Err("regex captures such as $1 are not supported; give a plain path prefix".into());
    }
    let safe = |c: char| c.is_ascii_alphanumeric() || "/-._~%".contains(c);
    if let Some(bad) = value.chars().find(|c| !safe(*c)) {
        return Err(format!(
            "character {bad:?} is not allowed; use letters, digits and / - . _ ~ %"
        ));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_valid_values_under_both_prefixes() {
        let cases: &[(&[(&str, &str)], Annotations)] = &[
            (&[], Annotations::default()),
            (
                &[("nginx.ingress.kubernetes.io/rewrite-target", "/")],
                Annotations {
                    rewrite_target: Some("/".into()),
                    ..Default::default()
                },
            ),
            (
                &[("ingress.skiff.dev/ssl-redirect", "false")],
                Annotations {
                    ssl_redirect: Some(false),
                    ..Default::default()
                },
            ),
            (
                &[("nginx.ingress.kubernetes.io/backend-protocol", "https")],
                Annotations {
                    backend_protocol: BackendProtocol::Https,
                    ..Default::default()
                },
            ),
            // skiff prefix wins over the nginx one
            (
                &[
                    ("ingress.skiff.dev/rewrite-target", "/a"),
                    ("nginx.ingress.kubernetes.io/rewrite-target", "/b"),
                ],
                Annotations {
                    rewrite_target: Some("/a".into()),
                    ..Default::default()
                },
            ),
            // unrelated annotations are ignored
            (&[("example.com/whatever", "x")], Annotations::default()),
        ];
        for (pairs, want) in cases {
            let (got, errors) = parse(Some(&map(pairs)));
            assert!(errors.is_empty(), "{pairs:?}: {errors:?}");
            assert_eq!(&got, want, "{pairs:?}");
        }
    }

    #[test]
    fn rejects_invalid_values_and_keeps_defaults() {
        let cases: &[(&str, &str, &str)] = &[
            ("rewrite-target", "/$1", "captures"),
            ("rewrite-target", "relative", "absolute"),
            ("rewrite-target", "/a b", "not allowed"),
            ("rewrite-target", "/a\r\nX-Evil: 1", "not allowed"),
            ("rewrite-target", "/a;proxy_pass http://x", "not allowed"),
            ("ssl-redirect", "yes", "true"),
            ("backend-protocol", "GRPC", "unsupported"),
        ];
        for (short, value, reason) in cases {
            let key = format!("{NGINX_PREFIX}{short}");
            let (got, errors) = parse(Some(&map(&[(&key, value)])));
            assert_eq!(got, Annotations::default(), "{short}={value}");
            assert_eq!(errors.len(), 1, "{short}={value}");
            assert_eq!(errors[0].name, key);
            assert!(
                errors[0].reason.contains(reason),
                "{short}={value}: {}",
                errors[0].reason
            );
        }
    }
}
