//! Registry credentials from a pod's `imagePullSecrets`: Secrets of type
//! `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`, `{"auths": {...}}`) and
//! `kubernetes.io/dockercfg` (`.dockercfg`, the same map without `auths`), matched
//! against the registry host of the image as upstream's credential keyring does, and
//! handed to CRI `PullImage` as `AuthConfig`.
//!
//! Matching: a key is a registry host (with an optional port, an optional `*` glob per
//! domain label, an optional scheme and path); it matches an image whose host matches
//! and whose repository path starts with the key's path. Docker Hub's many spellings
//! (`docker.io`, `index.docker.io`, `https://index.docker.io/v1/`,
//! `registry-1.docker.io`) are one registry. Every match is returned, the most specific
//! first (longest path, then an exact host before a glob), and the pull tries them in
//! turn, as the kubelet does. Pure; the Secrets come in from [`crate::volumes::fetch`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Secret};

use crate::cri::{api, normalize_image};

pub const TYPE_DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
pub const TYPE_DOCKERCFG: &str = "kubernetes.io/dockercfg";

/// One credential entry of a docker config.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct Entry {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// base64 of `user:password`; containerd decodes it when no username is given.
    #[serde(default)]
    pub auth: String,
    #[serde(default, rename = "identitytoken")]
    pub identity_token: String,
    #[serde(default, rename = "registrytoken")]
    pub registry_token: String,
}

/// Names of the pod's pull secrets.
pub fn secret_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|r| Some(r.name.clone()).filter(|n| !n.is_empty()))
        .collect()
}

/// The entries of one Secret by registry key; anything but the two docker types (or a
/// body that does not parse) has none.
pub fn entries(secret: &Secret) -> BTreeMap<String, Entry> {
    let data = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|s| s.clone().into_bytes())
            })
    };
    let parsed = match secret.type_.as_deref() {
        Some(TYPE_DOCKER_CONFIG_JSON) => data(".dockerconfigjson").and_then(|b| {
            #[derive(serde::Deserialize)]
            struct Config {
                #[serde(default)]
                auths: BTreeMap<String, Entry>,
            }
            serde_json::from_slice::<Config>(&b).ok().map(|c| c.auths)
        }),
        Some(TYPE_DOCKERCFG) => data(".dockercfg").and_then(|b| serde_json::from_slice(&b).ok()),
        _ => None,
    };
    parsed.unwrap_or_default()
}

fn canonical_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        _ => host,
    }
}

/// A key's host and path: scheme dropped, Docker Hub's `/v1/` API path dropped.
fn parse_key(key: &str) -> (String, String) {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = canonical_host(host);
    let mut path = path.trim_end_matches('/').to_string();
    if host == "docker.io" && (path == "v1" || path == "v2") {
        path.clear();
    }
    (host, path)
}

/// An image's registry host and repository path (`docker.io`, `library/busybox`).
pub fn image_registry(image: &str) -> (String, String) {
    let full = normalize_image(image);
    let (host, rest) = full.split_once('/').unwrap_or(("docker.io", &full));
    let repo = rest.split_once('@').map(|(r, _)| r).unwrap_or(rest);
    // The tag follows the last ':' of the last path element.
    let repo = match repo.rsplit_once('/') {
        Some((dir, last)) => format!("{dir}/{}", last.split(':').next().unwrap_or(last)),
        None => repo.split(':').next().unwrap_or(repo).to_string(),
    };
    (canonical_host(host), repo)
}

/// `*` in a domain label matches any run of characters within that label.
fn label_matches(pattern: &str, label: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == label,
        Some((head, tail)) => {
            label.len() >= head.len() + tail.len()
                && label.starts_with(head)
                && label_matches_rest(tail, &label[head.len()..])
        }
    }
}

fn label_matches_rest(pattern: &str, label: &str) -> bool {
    if !pattern.contains('*') {
        return label.ends_with(pattern);
    }
    (0..=label.len()).any(|i| label.is_char_boundary(i) && label_matches(pattern, &label[i..]))
}

/// Whether a key's host (maybe with globs and a port) matches an image host.
fn host_matches(pattern: &str, host: &str) -> bool {
    let split = |h: &str| -> (String, String) {
        match h.rsplit_once(':') {
            Some((name, port)) => (name.to_string(), port.to_string()),
            None => (h.to_string(), String::new()),
        }
    };
    let ((pname, pport), (hname, hport)) = (split(pattern), split(host));
    if pport != hport {
        return false;
    }
    let (pl, hl): (Vec<&str>, Vec<&str>) = (pname.split('.').collect(), hname.split('.').collect());
    pl.len() == hl.len() && pl.iter().zip(&hl).all(|(p, h)| label_matches(p, h))
}

/// Whether `key` (a docker config key) applies to `image`; `Some(specificity)` when it
/// does, for ordering.
pub fn key_matches(key: &str, image: &str) -> Option<(usize, bool)> {
    let (khost, kpath) = parse_key(key);
    let (ihost, ipath) = image_registry(image);
    if !host_matches(&khost, &ihost) {
        return None;
    }
    let path_ok = kpath.is_empty() || ipath == kpath || ipath.starts_with(&format!("{kpath}/"));
    path_ok.then_some((kpath.len(), !khost.contains('*')))
}

/// The credentials to try for `image`, best first, from the pod's pull `secrets` (in
/// the order the pod lists them).
pub fn credentials_for(image: &str, secrets: &[&Secret]) -> Vec<api::AuthConfig> {
    let mut found: Vec<((usize, bool), usize, api::AuthConfig)> = Vec::new();
    for s in secrets {
        for (key, e) in entries(s) {
            if let Some(rank) = key_matches(&key, image) {
                let order = found.len();
                found.push((
                    rank,
                    order,
                    api::AuthConfig {
                        username: e.username,
                        password: e.password,
                        auth: e.auth,
                        // Left empty as upstream does: containerd sends credentials
                        // only to the host named here (parsed as a URL), which would
                        // keep them from a registry mirror.
                        server_address: String::new(),
                        identity_token: e.identity_token,
                        registry_token: e.registry_token,
                    },
                ));
            }
        }
    }
    // Most specific first; equal ones keep the pod's order.
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out: Vec<api::AuthConfig> = Vec::new();
    for (_, _, a) in found {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(type_: &str, key: &str, body: serde_json::Value) -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": "s"},
            "type": type_,
            "stringData": {key: body.to_string()},
        }))
        .unwrap()
    }

    #[test]
    fn images_split_into_registry_and_repository() {
        let cases = [
            ("busybox", ("docker.io", "library/busybox")),
            ("me/app:v2", ("docker.io", "me/app")),
            (
                "reg.example.com:5000/team/app:1",
                ("reg.example.com:5000", "team/app"),
            ),
            ("reg.example.com/app@sha256:abc", ("reg.example.com", "app")),
            ("index.docker.io/me/app", ("docker.io", "me/app")),
        ];
        for (image, (host, repo)) in cases {
            assert_eq!(image_registry(image), (host.into(), repo.into()), "{image}");
        }
    }

    #[test]
    fn keys_match_hosts_ports_globs_and_paths() {
        // (key, image, matches)
        let cases = [
            ("reg.example.com", "reg.example.com/app:1", true),
            ("https://reg.example.com", "reg.example.com/app:1", true),
            ("reg.example.com", "other.example.com/app:1", false),
            ("reg.example.com", "reg.example.com:5000/app", false),
            ("reg.example.com:5000", "reg.example.com:5000/app", true),
            ("reg.example.com:5000", "reg.example.com/app", false),
            ("*.example.com", "reg.example.com/app", true),
            ("*.example.com", "a.b.example.com/app", false),
            ("*.example.com", "example.com/app", false),
            ("r*.example.com", "reg.example.com/app", true),
            ("r*.example.com", "xreg.example.com/app", false),
            ("reg.example.com/team", "reg.example.com/team/app", true),
            ("reg.example.com/team", "reg.example.com/teamx/app", false),
            (
                "reg.example.com/team/app",
                "reg.example.com/team/app:v1",
                true,
            ),
            ("https://index.docker.io/v1/", "busybox", true),
            ("docker.io", "me/app", true),
            ("index.docker.io", "docker.io/me/app", true),
            ("registry-1.docker.io", "busybox:1.36", true),
            ("docker.io/me", "me/app", true),
            ("docker.io/me", "busybox", false),
            ("REG.example.com", "reg.example.com/app", true),
        ];
        for (key, image, want) in cases {
            assert_eq!(key_matches(key, image).is_some(), want, "{key} {image}");
        }
    }

    #[test]
    fn both_secret_types_are_read() {
        let json_secret = secret(
            TYPE_DOCKER_CONFIG_JSON,
            ".dockerconfigjson",
            json!({"auths": {"reg.example.com": {"username": "u", "password": "p"}}}),
        );
        let cfg_secret = secret(
            TYPE_DOCKERCFG,
            ".dockercfg",
            json!({"reg.example.com": {"auth": "dTpw", "email": "x@y"}}),
        );
        let opaque = secret(
            "Opaque",
            ".dockerconfigjson",
            json!({"auths": {"reg.example.com": {"username": "u"}}}),
        );
        let broken: Secret = serde_json::from_value(json!({"metadata": {"name": "b"}, "type": TYPE_DOCKER_CONFIG_JSON, "stringData": {".dockerconfigjson": "{not json"}})).unwrap();
        assert_eq!(entries(&json_secret)["reg.example.com"].username, "u");
        assert_eq!(entries(&cfg_secret)["reg.example.com"].auth, "dTpw");
        assert!(entries(&opaque).is_empty());
        assert!(entries(&broken).is_empty());
        // data (base64 on the wire) works as stringData does.
        let from_data: Secret = serde_json::from_value(json!({"metadata": {"name": "d"}, "type": TYPE_DOCKER_CONFIG_JSON,
            "data": {".dockerconfigjson": "eyJhdXRocyI6eyJyZWcuZXhhbXBsZS5jb20iOnsidXNlcm5hbWUiOiJ1In19fQ=="}})).unwrap();
        assert_eq!(entries(&from_data)["reg.example.com"].username, "u");
    }

    #[test]
    fn credentials_come_most_specific_first() {
        let a = secret(
            TYPE_DOCKER_CONFIG_JSON,
            ".dockerconfigjson",
            json!({"auths": {
                "*.example.com": {"username": "glob", "password": "g"},
                "reg.example.com": {"username": "host", "password": "h"},
                "reg.example.com/team": {"username": "team", "password": "t"},
                "other.io": {"username": "other", "password": "o"},
            }}),
        );
        let b = secret(
            TYPE_DOCKERCFG,
            ".dockercfg",
            json!({"https://reg.example.com": {"username": "host2", "password": "h2"}}),
        );
        let users = |image: &str| -> Vec<String> {
            credentials_for(image, &[&a, &b])
                .into_iter()
                .map(|c| c.username)
                .collect()
        };
        assert_eq!(
            users("reg.example.com/team/app:1"),
            ["team", "host", "host2", "glob"]
        );
        assert_eq!(users("reg.example.com/solo"), ["host", "host2", "glob"]);
        assert_eq!(users("busybox"), Vec::<String>::new());
        let c = &credentials_for("other.io/x", &[&a])[0];
        assert_eq!((c.password.as_str(), c.server_address.as_str()), ("o", ""));
    }

    #[test]
    fn pod_secret_names_skip_empty_ones() {
        let p: Pod = serde_json::from_value(json!({"spec": {"containers": [], "imagePullSecrets": [{"name": "a"}, {"name": ""}, {"name": "b"}]}})).unwrap();
        assert_eq!(secret_names(&p), ["a", "b"]);
    }
}
