//! Routing-table cases, most of them the examples table of the Kubernetes Ingress
//! documentation (path types, multiple matches, hostname wildcards).

use super::*;
use crate::testing::{class, ingress, service, simple_ingress, slice};
use serde_json::json;

fn sel() -> ClassSelector {
    ClassSelector {
        class_name: "skiff".into(),
        controller: "skiff.dev/ingress".into(),
        claim_classless: true,
    }
}

/// One Service per (path, type) so the matched backend names the rule that won.
fn table_for(paths: &[(&str, &str)], host: Option<&str>) -> RouteTable {
    let rules: Vec<(String, &str, String, i32)> = paths
        .iter()
        .map(|(p, t)| {
            (
                p.to_string(),
                *t,
                format!("{}{}", t.to_lowercase(), p.replace('/', "-")),
                80,
            )
        })
        .collect();
    let refs: Vec<(&str, &str, &str, i32)> = rules
        .iter()
        .map(|(p, t, s, n)| (p.as_str(), *t, s.as_str(), *n))
        .collect();
    let inputs = Inputs {
        ingresses: vec![simple_ingress("default", "web", host, &refs)],
        services: rules
            .iter()
            .map(|(_, _, s, _)| service("default", s, &[("", 80)]))
            .collect(),
        ..Default::default()
    };
    build(&inputs, &sel())
}

fn matched(t: &RouteTable, host: &str, path: &str) -> Option<String> {
    match t.route(host, path) {
        Match::Found(r) => Some(
            r.backend
                .name
                .trim_start_matches("default/")
                .trim_end_matches(":80")
                .to_string(),
        ),
        Match::NotFound => None,
    }
}

#[test]
fn path_types_follow_the_kubernetes_examples_table() {
    // (rule paths, request path, expected winning rule as "<type>-<path>")
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<&'a str>);
    let cases: &[Case] = &[
        (&[("/", "Prefix")], "/anything/at/all", Some("prefix-")),
        (&[("/foo", "Exact")], "/foo", Some("exact-foo")),
        (&[("/foo", "Exact")], "/bar", None),
        (&[("/foo", "Exact")], "/foo/", None),
        (&[("/foo/", "Exact")], "/foo", None),
        (&[("/foo", "Prefix")], "/foo", Some("prefix-foo")),
        (&[("/foo", "Prefix")], "/foo/", Some("prefix-foo")),
        (&[("/foo/", "Prefix")], "/foo", Some("prefix-foo-")),
        (&[("/foo/", "Prefix")], "/foo/", Some("prefix-foo-")),
        (&[("/aaa/bb", "Prefix")], "/aaa/bbb", None),
        (
            &[("/aaa/bbb", "Prefix")],
            "/aaa/bbb",
            Some("prefix-aaa-bbb"),
        ),
        (
            &[("/aaa/bbb/", "Prefix")],
            "/aaa/bbb",
            Some("prefix-aaa-bbb-"),
        ),
        (
            &[("/aaa/bbb", "Prefix")],
            "/aaa/bbb/",
            Some("prefix-aaa-bbb"),
        ),
        (
            &[("/aaa/bbb", "Prefix")],
            "/aaa/bbb/ccc",
            Some("prefix-aaa-bbb"),
        ),
        (&[("/aaa/bbb", "Prefix")], "/aaa/bbbxyz", None),
        (
            &[("/", "Prefix"), ("/aaa", "Prefix")],
            "/aaa/ccc",
            Some("prefix-aaa"),
        ),
        (
            &[("/", "Prefix"), ("/aaa", "Prefix"), ("/aaa/bbb", "Prefix")],
            "/aaa/bbb",
            Some("prefix-aaa-bbb"),
        ),
        (
            &[("/", "Prefix"), ("/aaa", "Prefix"), ("/aaa/bbb", "Prefix")],
            "/ccc",
            Some("prefix-"),
        ),
        (&[("/aaa", "Prefix")], "/ccc", None),
        (
            &[("/foo", "Prefix"), ("/foo", "Exact")],
            "/foo",
            Some("exact-foo"),
        ),
        (
            &[("/foo", "Exact"), ("/foo", "Prefix")],
            "/foo/x",
            Some("prefix-foo"),
        ),
        // ImplementationSpecific is a Prefix here
        (
            &[("/api", "ImplementationSpecific")],
            "/api/v1",
            Some("implementationspecific-api"),
        ),
        // a longer exact path beats a shorter prefix, a longer prefix beats a shorter exact
        (
            &[("/a", "Prefix"), ("/a/b", "Exact")],
            "/a/b",
            Some("exact-a-b"),
        ),
        (
            &[("/a/b", "Prefix"), ("/a", "Exact")],
            "/a/b/c",
            Some("prefix-a-b"),
        ),
    ];
    for (paths, request, want) in cases {
        let t = table_for(paths, None);
        assert!(t.warnings.is_empty(), "{paths:?}: {:?}", t.warnings);
        assert_eq!(
            matched(&t, "example.com", request).as_deref(),
            *want,
            "rules {paths:?}, request {request}"
        );
    }
}

#[test]
fn wildcard_hosts_cover_exactly_one_label() {
    let t = table_for(&[("/", "Prefix")], Some("*.foo.com"));
    let cases = [
        ("bar.foo.com", true),
        ("baz.bar.foo.com", false),
        ("foo.com", false),
        (".foo.com", false),
    ];
    for (host, hit) in cases {
        assert_eq!(matched(&t, host, "/").is_some(), hit, "{host}");
    }
}

#[test]
fn exact_host_beats_wildcard_beats_hostless_and_tiers_fall_through() {
    let inputs = Inputs {
        ingresses: vec![
            simple_ingress(
                "default",
                "exact",
                Some("a.foo.com"),
                &[("/only", "Prefix", "exact", 80)],
            ),
            simple_ingress(
                "default",
                "wild",
                Some("*.foo.com"),
                &[("/", "Prefix", "wild", 80)],
            ),
            simple_ingress("default", "any", None, &[("/", "Prefix", "any", 80)]),
        ],
        services: ["exact", "wild", "any"]
            .iter()
            .map(|s| service("default", s, &[("", 80)]))
            .collect(),
        ..Default::default()
    };
    let t = build(&inputs, &sel());
    let cases = [
        ("a.foo.com", "/only/x", "exact"),
        ("a.foo.com", "/other", "wild"), // the exact host has no such path
        ("b.foo.com", "/only", "wild"),
        ("foo.com", "/", "any"),
        ("example.org", "/x", "any"),
    ];
    for (host, path, want) in cases {
        assert_eq!(
            matched(&t, host, path).as_deref(),
            Some(want),
            "{host}{path}"
        );
    }
}

#[test]
fn default_backend_catches_the_rest_and_404_without_one() {
    let with_default = ingress(
        "default",
        "web",
        &[],
        json!({
            "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
            "rules": [{"host": "foo.com", "http": {"paths": [
                {"path": "/app", "pathType": "Prefix", "backend": {"service": {"name": "app", "port": {"number": 80}}}}
            ]}}]
        }),
    );
    let services = vec![
        service("default", "fallback", &[("", 80)]),
        service("default", "app", &[("", 80)]),
    ];
    let t = build(
        &Inputs {
            ingresses: vec![with_default],
            services: services.clone(),
            ..Default::default()
        },
        &sel(),
    );
    assert_eq!(matched(&t, "foo.com", "/app/x").as_deref(), Some("app"));
    assert_eq!(
        matched(&t, "foo.com", "/other").as_deref(),
        Some("fallback")
    );
    assert_eq!(matched(&t, "bar.com", "/app").as_deref(), Some("fallback"));

    let without = simple_ingress(
        "default",
        "web",
        Some("foo.com"),
        &[("/app", "Prefix", "app", 80)],
    );
    let t = build(
        &Inputs {
            ingresses: vec![without],
            services,
            ..Default::default()
        },
        &sel(),
    );
    assert_eq!(matched(&t, "bar.com", "/app"), None);
}

#[test]
fn hosts_are_normalised() {
    let cases = [
        ("Foo.COM", "foo.com"),
        ("foo.com:8080", "foo.com"),
        ("foo.com.", "foo.com"),
        ("[::1]:443", "::1"),
        ("10.0.0.1:80", "10.0.0.1"),
        ("foo.com", "foo.com"),
        (" foo.com\t", "foo.com"),
        ("", ""),
    ];
    for (raw, want) in cases {
        assert_eq!(normalize_host(raw), want, "{raw}");
    }
}

#[test]
fn backends_resolve_ready_endpoints_by_port_number_or_name() {
    let by_name = ingress(
        "default",
        "named",
        &[],
        json!({"rules": [{"host": "named.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}}
        ]}}]}),
    );
    let by_number = simple_ingress(
        "default",
        "numbered",
        Some("num.com"),
        &[("/", "Prefix", "web", 8080)],
    );
    let inputs = Inputs {
        ingresses: vec![by_name, by_number],
        services: vec![service(
            "default",
            "web",
            &[("http", 8080), ("metrics", 9090)],
        )],
        slices: vec![
            slice(
                "default",
                "web",
                "http",
                80,
                &[("10.1.0.2", true), ("10.1.0.3", false), ("10.1.0.4", true)],
            ),
            slice("default", "web", "metrics", 9100, &[("10.1.0.9", true)]),
            // same service name in another namespace must not leak in
            slice("other", "web", "http", 80, &[("10.9.0.1", true)]),
        ],
        ..Default::default()
    };
    let t = build(&inputs, &sel());
    for host in ["named.com", "num.com"] {
        let Match::Found(r) = t.route(host, "/") else {
            panic!("{host} not routed")
        };
        let eps: Vec<String> = r.backend.endpoints.iter().map(|e| e.to_string()).collect();
        assert_eq!(eps, ["10.1.0.2:80", "10.1.0.4:80"], "{host}");
    }
}

#[test]
fn missing_service_or_port_gives_a_backend_without_endpoints() {
    let inputs = Inputs {
        ingresses: vec![
            simple_ingress(
                "default",
                "a",
                Some("a.com"),
                &[("/", "Prefix", "nosuch", 80)],
            ),
            simple_ingress("default", "b", Some("b.com"), &[("/", "Prefix", "web", 81)]),
        ],
        services: vec![service("default", "web", &[("", 80)])],
        ..Default::default()
    };
    let t = build(&inputs, &sel());
    for host in ["a.com", "b.com"] {
        let Match::Found(r) = t.route(host, "/") else {
            panic!("{host} not routed")
        };
        assert!(r.backend.endpoints.is_empty(), "{host}");
    }
    assert_eq!(t.warnings.len(), 2, "{:?}", t.warnings);
}

#[test]
fn round_robin_visits_every_endpoint_and_lists_the_rest_for_retries() {
    let b = Backend::new(
        "x",
        vec![
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
            "10.0.0.3:80".parse().unwrap(),
        ],
    );
    let firsts: Vec<_> = (0..3).map(|_| b.pick().next().unwrap()).collect();
    assert_eq!(firsts, b.endpoints);
    let order: Vec<_> = b.pick().collect();
    assert_eq!(order.len(), 3);
    assert_eq!(order[0], b.endpoints[0]);
    assert_eq!(Backend::new("empty", vec![]).pick().count(), 0);
}

#[test]
fn ingress_class_selection() {
    let sel = ClassSelector {
        claim_classless: false,
        ..sel()
    };
    let ours = class("skiff", "skiff.dev/ingress", false);
    let theirs = class("nginx", "k8s.io/ingress-nginx", false);
    let ours_default = class("skiff-default", "skiff.dev/ingress", true);
    let theirs_default = class("nginx-default", "k8s.io/ingress-nginx", true);
    let with_class = |c: &str| ingress("default", "x", &[], json!({"ingressClassName": c}));
    let legacy = |c: &str| ingress("default", "x", &[(LEGACY_CLASS_ANNOTATION, c)], json!({}));
    let classless = ingress("default", "x", &[], json!({}));

    type Case = (&'static str, Arc<Ingress>, Vec<Arc<IngressClass>>, bool);
    let cases: Vec<Case> = vec![
        (
            "our class",
            with_class("skiff"),
            vec![ours.clone(), theirs.clone()],
            true,
        ),
        (
            "other controller's class",
            with_class("nginx"),
            vec![ours.clone(), theirs.clone()],
            false,
        ),
        (
            "our name, no class object",
            with_class("skiff"),
            vec![],
            true,
        ),
        ("unknown class", with_class("mystery"), vec![], false),
        (
            "class object named like us but another controller",
            with_class("skiff"),
            vec![class("skiff", "k8s.io/ingress-nginx", false)],
            false,
        ),
        ("legacy annotation", legacy("skiff"), vec![], true),
        (
            "legacy annotation for another",
            legacy("nginx"),
            vec![theirs.clone()],
            false,
        ),
        (
            "classless, our default",
            classless.clone(),
            vec![ours_default.clone(), theirs.clone()],
            true,
        ),
        (
            "classless, their default",
            classless.clone(),
            vec![theirs_default.clone(), ours.clone()],
            false,
        ),
        (
            "classless, no default, not claimed",
            classless.clone(),
            vec![ours.clone()],
            false,
        ),
    ];
    for (what, ing, classes, want) in cases {
        assert_eq!(is_ours(&ing, &classes, &sel), want, "{what}");
    }
    let claiming = ClassSelector {
        claim_classless: true,
        ..sel
    };
    assert!(is_ours(&classless, &[], &claiming));
    assert!(
        !is_ours(&classless, &[theirs_default], &claiming),
        "a default class of another controller wins over claiming"
    );
}

#[test]
fn oldest_ingress_wins_a_conflict() {
    let mk = |name: &str, svc: &str, ts: &str| {
        let mut i = (*simple_ingress(
            "default",
            name,
            Some("foo.com"),
            &[("/", "Prefix", svc, 80)],
        ))
        .clone();
        i.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            ts.parse().expect("timestamp"),
        ));
        Arc::new(i)
    };
    let inputs = Inputs {
        ingresses: vec![
            mk("young", "new", "2025-01-02T00:00:00Z"),
            mk("old", "old", "2025-01-01T00:00:00Z"),
        ],
        services: vec![
            service("default", "new", &[("", 80)]),
            service("default", "old", &[("", 80)]),
        ],
        ..Default::default()
    };
    let t = build(&inputs, &sel());
    assert_eq!(matched(&t, "foo.com", "/").as_deref(), Some("old"));
    assert!(
        t.warnings.iter().any(|w| w.contains("default/young")),
        "{:?}",
        t.warnings
    );
}

#[test]
fn invalid_paths_are_skipped_with_a_warning() {
    let t = table_for(
        &[("relative", "Prefix"), ("/ok", "Weird"), ("/good", "Exact")],
        None,
    );
    assert_eq!(t.warnings.len(), 2, "{:?}", t.warnings);
    assert_eq!(matched(&t, "x", "/good").as_deref(), Some("exact-good"));
}

#[test]
fn rewrite_target_replaces_the_matched_prefix() {
    let route = |path: &str, path_type, target: &str| Route {
        backend: Arc::new(Backend::new("b", vec![])),
        ingress: "default/x".into(),
        path: path.into(),
        path_type,
        rewrite_target: Some(target.into()),
        ssl_redirect: false,
        protocol: BackendProtocol::Http,
    };
    let cases = [
        (route("/api", PathType::Prefix, "/"), "/api", "/"),
        (route("/api", PathType::Prefix, "/"), "/api/", "/"),
        (route("/api", PathType::Prefix, "/"), "/api/v1/x", "/v1/x"),
        (
            route("/api", PathType::Prefix, "/v2/"),
            "/api/users",
            "/v2/users",
        ),
        (route("", PathType::Prefix, "/app"), "/x", "/app/x"),
        (
            route("/exact", PathType::Exact, "/other"),
            "/exact",
            "/other",
        ),
    ];
    for (r, path, want) in cases {
        assert_eq!(r.upstream_path(path), want, "{} -> {path}", r.path);
    }
}

#[test]
fn ssl_redirect_defaults_to_tls_hosts_and_obeys_the_annotation() {
    let spec = json!({
        "tls": [{"hosts": ["secure.com"], "secretName": "cert"}],
        "rules": [
            {"host": "secure.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}},
            {"host": "plain.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}
        ]
    });
    let services = vec![service("default", "web", &[("", 80)])];
    let redirect = |t: &RouteTable, host| match t.route(host, "/") {
        Match::Found(r) => r.ssl_redirect,
        Match::NotFound => panic!("{host} not routed"),
    };
    let t = build(
        &Inputs {
            ingresses: vec![ingress("default", "a", &[], spec.clone())],
            services: services.clone(),
            ..Default::default()
        },
        &sel(),
    );
    assert!(redirect(&t, "secure.com"));
    assert!(!redirect(&t, "plain.com"));
    let off = ingress(
        "default",
        "a",
        &[("nginx.ingress.kubernetes.io/ssl-redirect", "false")],
        spec,
    );
    let t = build(
        &Inputs {
            ingresses: vec![off],
            services,
            ..Default::default()
        },
        &sel(),
    );
    assert!(!redirect(&t, "secure.com"));
}
