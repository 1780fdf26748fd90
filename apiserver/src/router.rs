//! Turns a request path into what it addresses: a discovery document, a collection, an
//! object or an object's subresource.
//!
//! Kubernetes paths come in two shapes, core (`/api/v1/...`) and grouped
//! (`/apis/<group>/<version>/...`), each either cluster-wide (`.../<plural>[/<name>]`)
//! or namespaced (`.../namespaces/<ns>/<plural>[/<name>]`). `namespaces/<name>` is
//! itself an object path, told apart by what follows it.

use skiff_api::resource::{self, ResourceInfo};

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`
    Resources {
        group: String,
        version: String,
    },
    /// A resource path.
    Resource(ResourcePath),
    Version,
    Health(&'static str),
    /// `/cacerts`: the CA certificate (public; joining agents pin it by hash).
    CaCerts,
    /// `POST /skiff/v1/join`: a node trades the join secret for its own credential.
    Join,
    /// `POST /skiff/v1/kubelet-serving-cert`: a node's kubelet serving certificate.
    KubeletServingCert,
    OpenApi(String),
    /// Known prefix, unknown resource or version: 404 with a Status naming it.
    NotFound(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub res: &'static ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
    /// The legacy `/watch/` path form.
    pub legacy_watch: bool,
}

fn decode(seg: &str) -> String {
    percent_encoding::percent_decode_str(seg)
        .decode_utf8_lossy()
        .to_string()
}

pub fn route(path: &str) -> Route {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["version"] => Route::Version,
        ["cacerts"] => Route::CaCerts,
        ["skiff", "v1", "join"] => Route::Join,
        ["skiff", "v1", "kubelet-serving-cert"] => Route::KubeletServingCert,
        ["healthz", ..] => Route::Health("healthz"),
        ["livez", ..] => Route::Health("livez"),
        ["readyz", ..] => Route::Health("readyz"),
        ["openapi", rest @ ..] => Route::OpenApi(rest.join("/")),
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", g] => {
            if resource::group_versions().iter().any(|(gg, _)| gg == g) {
                Route::Group(g.to_string())
            } else {
                Route::NotFound(path.to_string())
            }
        }
        ["api", v, rest @ ..] => resources("", v, rest, path),
        ["apis", g, v, rest @ ..] => resources(g, v, rest, path),
        _ => Route::NotFound(path.to_string()),
    }
}

fn resources(group: &str, version: &str, rest: &[&str], path: &str) -> Route {
    if !resource::group_versions().contains(&(group, version)) {
        return Route::NotFound(path.to_string());
    }
    if rest.is_empty() {
        return Route::Resources {
            group: group.to_string(),
            version: version.to_string(),
        };
    }
    let (legacy_watch, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let found = |plural: &str| resource::lookup(group, version, plural);
    let rp = |res, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Route::Resource(ResourcePath {
            res,
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            sub: sub.map(str::to_string),
            legacy_watch,
        })
    };
    // namespaces/<ns>/<plural>... when <plural> is a namespaced resource.
    if let ["namespaces", ns, plural, tail @ ..] = rest {
        if let Some(res) = found(plural).filter(|r| r.namespaced()) {
            return match tail {
                [] => rp(res, Some(ns), None, None),
                [name] => rp(res, Some(ns), Some(name), None),
                [name, sub] => rp(res, Some(ns), Some(name), Some(sub)),
                _ => Route::NotFound(path.to_string()),
            };
        }
    }
    match rest {
        [plural, tail @ ..] => match found(plural) {
            None => Route::NotFound(path.to_string()),
            Some(res) => match tail {
                [] => rp(res, None, None, None),
                [name] => rp(res, None, Some(name), None),
                [name, sub] => rp(res, None, Some(name), Some(sub)),
                _ => Route::NotFound(path.to_string()),
            },
        },
        [] => Route::NotFound(path.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(path: &str) -> ResourcePath {
        match route(path) {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn routes_table() {
        let cases: &[(&str, &str, Option<&str>, Option<&str>, Option<&str>)] = &[
            ("/api/v1/pods", "pods", None, None, None),
            (
                "/api/v1/namespaces/default/pods",
                "pods",
                Some("default"),
                None,
                None,
            ),
            (
                "/api/v1/namespaces/default/pods/web",
                "pods",
                Some("default"),
                Some("web"),
                None,
            ),
            (
                "/api/v1/namespaces/default/pods/web/status",
                "pods",
                Some("default"),
                Some("web"),
                Some("status"),
            ),
            (
                "/api/v1/namespaces/default",
                "namespaces",
                None,
                Some("default"),
                None,
            ),
            (
                "/api/v1/namespaces/default/status",
                "namespaces",
                None,
                Some("default"),
                Some("status"),
            ),
            (
                "/api/v1/namespaces/default/finalize",
                "namespaces",
                None,
                Some("default"),
                Some("finalize"),
            ),
            ("/api/v1/namespaces", "namespaces", None, None, None),
            (
                "/api/v1/nodes/n1/status",
                "nodes",
                None,
                Some("n1"),
                Some("status"),
            ),
            (
                "/apis/apps/v1/namespaces/x/deployments/web/scale",
                "deployments",
                Some("x"),
                Some("web"),
                Some("scale"),
            ),
            ("/apis/apps/v1/deployments", "deployments", None, None, None),
            (
                "/apis/networking.k8s.io/v1/ingressclasses/nginx",
                "ingressclasses",
                None,
                Some("nginx"),
                None,
            ),
        ];
        for (path, plural, ns, name, sub) in cases {
            let r = rp(path);
            assert_eq!(r.res.plural, *plural, "{path}");
            assert_eq!(r.namespace.as_deref(), *ns, "{path}");
            assert_eq!(r.name.as_deref(), *name, "{path}");
            assert_eq!(r.sub.as_deref(), *sub, "{path}");
        }
    }

    #[test]
    fn discovery_and_unknown_paths() {
        assert_eq!(route("/api"), Route::CoreVersions);
        assert_eq!(route("/apis"), Route::Groups);
        assert_eq!(route("/apis/apps"), Route::Group("apps".into()));
        assert_eq!(
            route("/apis/apps/v1"),
            Route::Resources {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        assert!(matches!(route("/apis/apps/v2"), Route::NotFound(_)));
        assert!(matches!(route("/api/v1/widgets"), Route::NotFound(_)));
        assert!(matches!(route("/apis/nope"), Route::NotFound(_)));
        assert!(matches!(
            route("/api/v1/namespaces/a/pods/b/c/d"),
            Route::NotFound(_)
        ));
        assert_eq!(route("/version"), Route::Version);
        assert!(rp("/api/v1/watch/namespaces/a/pods").legacy_watch);
    }
}
