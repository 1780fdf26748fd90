//! Ingress and IngressClass validation: rule hosts (DNS names, optionally `*.`
//! wildcards), HTTP paths and their types, backends (a service with a port number or
//! name, or a resource, never both), TLS hosts, and the class's controller.

use serde_json::Value;

use super::{array, invalid_each, is_set, names, required_because, str_field, IMMUTABLE};
use crate::status::Cause;

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];
const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];

pub(super) fn validate_ingress(obj: &Value, errs: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let rules = array(spec, "rules");
    let default_backend = spec.get("defaultBackend").filter(|b| !b.is_null());
    if rules.is_empty() && default_backend.is_none() {
        errs.push(Cause::invalid(
            "spec",
            spec.get("rules").unwrap_or(&Value::Null),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default_backend {
        validate_backend(b, "spec.defaultBackend", errs);
    }
    if let Some(class) = str_field(spec, "ingressClassName").filter(|c| !c.is_empty()) {
        invalid_each(
            errs,
            "spec.ingressClassName",
            &Value::from(class),
            names::dns1123_subdomain(class),
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        if let Some(host) = str_field(rule, "host").filter(|h| !h.is_empty()) {
            validate_host(host, &format!("{path}.host"), errs);
        }
        if let Some(http) = rule.get("http").filter(|h| !h.is_null()) {
            let paths = array(http, "paths");
            if paths.is_empty() {
                errs.push(Cause::required(format!("{path}.http.paths")));
            }
            for (j, p) in paths.iter().enumerate() {
                validate_http_path(p, &format!("{path}.http.paths[{j}]"), errs);
            }
        }
    }
    for (i, tls) in array(spec, "tls").iter().enumerate() {
        for (j, h) in array(tls, "hosts").iter().enumerate() {
            validate_host(
                h.as_str().unwrap_or(""),
                &format!("spec.tls[{i}].hosts[{j}]"),
                errs,
            );
        }
        if let Some(s) = str_field(tls, "secretName").filter(|s| !s.is_empty()) {
            invalid_each(
                errs,
                &format!("spec.tls[{i}].secretName"),
                &Value::from(s),
                names::dns1123_subdomain(s),
            );
        }
    }
}

fn validate_host(host: &str, path: &str, errs: &mut Vec<Cause>) {
    let v = Value::from(host);
    if host.contains('*') {
        invalid_each(errs, path, &v, names::wildcard_dns1123_subdomain(host));
    } else {
        invalid_each(errs, path, &v, names::dns1123_subdomain(host));
    }
    if names::is_ip(host) {
        errs.push(Cause::invalid(
            path,
            &v,
            "must be a DNS name, not an IP address",
        ));
    }
}

fn validate_http_path(p: &Value, path: &str, errs: &mut Vec<Cause>) {
    let text = str_field(p, "path").unwrap_or("");
    let text_v = Value::from(text);
    match str_field(p, "pathType") {
        None | Some("") => {
            errs.push(required_because(
                format!("{path}.pathType"),
                "pathType must be specified",
            ));
            return;
        }
        Some("Exact" | "Prefix") => {
            if !text.starts_with('/') {
                errs.push(Cause::invalid(
                    format!("{path}.path"),
                    &text_v,
                    "must be an absolute path",
                ));
            }
            for seq in INVALID_PATH_SEQUENCES {
                if text.contains(seq) {
                    errs.push(Cause::invalid(
                        format!("{path}.path"),
                        &text_v,
                        &format!("must not contain '{seq}'"),
                    ));
                }
            }
            for suffix in INVALID_PATH_SUFFIXES {
                if text.ends_with(suffix) {
                    errs.push(Cause::invalid(
                        format!("{path}.path"),
                        &text_v,
                        &format!("cannot end with '{suffix}'"),
                    ));
                }
            }
        }
        Some("ImplementationSpecific") => {
            if !text.is_empty() && !text.starts_with('/') {
                errs.push(Cause::invalid(
                    format!("{path}.path"),
                    &text_v,
                    "must be an absolute path",
                ));
            }
        }
        Some(other) => {
            errs.push(Cause::not_supported(
                format!("{path}.pathType"),
                &Value::from(other),
                PATH_TYPES,
            ));
        }
    }
    match p.get("backend").filter(|b| !b.is_null()) {
        Some(b) => validate_backend(b, &format!("{path}.backend"), errs),
        None => errs.push(Cause::invalid(
            format!("{path}.backend"),
            &Value::from(""),
            "resource or service backend is required",
        )),
    }
}

fn validate_backend(b: &Value, path: &str, errs: &mut Vec<Cause>) {
    let service = b.get("service").filter(|s| !s.is_null());
    let resource = b.get("resource").filter(|r| !r.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => {
            errs.push(Cause::invalid(
                path,
                &Value::from(""),
                "cannot set both resource and service backends",
            ));
        }
        (None, Some(r)) => {
            if str_field(r, "kind").unwrap_or("").is_empty() {
                errs.push(required_because(
                    format!("{path}.resource.kind"),
                    "kind is required",
                ));
            }
            if str_field(r, "name").unwrap_or("").is_empty() {
                errs.push(required_because(
                    format!("{path}.resource.name"),
                    "name is required",
                ));
            }
        }
        (Some(s), None) => {
            match str_field(s, "name").unwrap_or("") {
                "" => errs.push(Cause::required(format!("{path}.service.name"))),
                n => invalid_each(
                    errs,
                    &format!("{path}.service.name"),
                    &Value::from(n),
                    names::dns1035_label(n),
                ),
            }
            let port = s.get("port").unwrap_or(&Value::Null);
            let has_name = is_set(port.get("name"));
            let number = port.get("number").and_then(Value::as_i64).unwrap_or(0);
            match (has_name, number != 0) {
                (true, true) => errs.push(Cause::invalid(
                    path,
                    &Value::from(""),
                    "cannot set both port name & port number",
                )),
                (true, false) => {
                    let n = port.get("name").unwrap_or(&Value::Null);
                    invalid_each(
                        errs,
                        &format!("{path}.service.port.name"),
                        n,
                        names::port_name(n.as_str().unwrap_or("")),
                    );
                }
                (false, true) => invalid_each(
                    errs,
                    &format!("{path}.service.port.number"),
                    &Value::from(number),
                    names::port_num(number),
                ),
                (false, false) => {
                    errs.push(required_because(path, "port name or number is required"))
                }
            }
        }
        (None, None) => {
            errs.push(Cause::invalid(
                path,
                &Value::from(""),
                "resource or service backend is required",
            ));
        }
    }
}

pub(super) fn validate_ingressclass(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let controller = obj
        .pointer("/spec/controller")
        .and_then(Value::as_str)
        .unwrap_or("");
    if controller.is_empty() {
        errs.push(Cause::required("spec.controller"));
    } else if controller.len() > 250 {
        errs.push(Cause::too_long("spec.controller", 250));
    } else {
        // A domain-prefixed path such as `example.com/ingress-controller`.
        let ok = controller.split_once('/').is_some_and(|(domain, rest)| {
            names::dns1123_subdomain(domain).is_empty() && !rest.is_empty()
        });
        if !ok {
            errs.push(Cause::invalid(
                "spec.controller",
                &Value::from(controller),
                "must be a domain-prefixed path (such as \"acme.io/foo\")",
            ));
        }
    }
    if let Some(old) = old {
        let before = old
            .pointer("/spec/controller")
            .and_then(Value::as_str)
            .unwrap_or("");
        if before != controller {
            errs.push(Cause::invalid(
                "spec.controller",
                &Value::from(controller),
                IMMUTABLE,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use serde_json::{json, Value};

    fn ing(spec: Value) -> Value {
        json!({"kind": "Ingress", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn rule(host: &str, paths: Value) -> Value {
        json!({"rules": [{"host": host, "http": {"paths": paths}}]})
    }

    fn svc_backend(port: Value) -> Value {
        json!({"service": {"name": "web", "port": port}})
    }

    #[test]
    fn ingress_rules() {
        let good_path = json!([{"path": "/", "pathType": "Prefix", "backend": svc_backend(json!({"number": 80}))}]);
        let p = |path: &str, ty: Value, backend: Value| json!([{"path": path, "pathType": ty, "backend": backend}]);
        let port80 = svc_backend(json!({"number": 80}));
        let cases: Vec<Case> = vec![
            ("ok", rule("web.example.com", good_path.clone()), vec![]),
            (
                "wildcard host",
                rule("*.example.com", good_path.clone()),
                vec![],
            ),
            (
                "bad wildcard",
                rule("a.*.example.com", good_path.clone()),
                vec![("spec.rules[0].host", "FieldValueInvalid")],
            ),
            (
                "upper host",
                rule("Web.example.com", good_path.clone()),
                vec![("spec.rules[0].host", "FieldValueInvalid")],
            ),
            (
                "ip host",
                rule("10.0.0.1", good_path.clone()),
                vec![("spec.rules[0].host", "FieldValueInvalid")],
            ),
            ("nothing", json!({}), vec![("spec", "FieldValueInvalid")]),
            (
                "default backend only",
                json!({"defaultBackend": port80.clone()}),
                vec![],
            ),
            (
                "no paths",
                rule("a.com", json!([])),
                vec![("spec.rules[0].http.paths", "FieldValueRequired")],
            ),
            (
                "relative path",
                rule("a.com", p("api", json!("Prefix"), port80.clone())),
                vec![("spec.rules[0].http.paths[0].path", "FieldValueInvalid")],
            ),
            (
                "double slash",
                rule("a.com", p("/a//b", json!("Exact"), port80.clone())),
                vec![("spec.rules[0].http.paths[0].path", "FieldValueInvalid")],
            ),
            (
                "impl specific any",
                rule(
                    "a.com",
                    p("/a//b", json!("ImplementationSpecific"), port80.clone()),
                ),
                vec![],
            ),
            (
                "no pathType",
                rule("a.com", json!([{"path": "/", "backend": port80.clone()}])),
                vec![("spec.rules[0].http.paths[0].pathType", "FieldValueRequired")],
            ),
            (
                "bad pathType",
                rule("a.com", p("/", json!("Regex"), port80.clone())),
                vec![(
                    "spec.rules[0].http.paths[0].pathType",
                    "FieldValueNotSupported",
                )],
            ),
            (
                "port name",
                rule(
                    "a.com",
                    p("/", json!("Prefix"), svc_backend(json!({"name": "http"}))),
                ),
                vec![],
            ),
            (
                "no port",
                rule("a.com", p("/", json!("Prefix"), svc_backend(json!({})))),
                vec![("spec.rules[0].http.paths[0].backend", "FieldValueRequired")],
            ),
            (
                "both ports",
                rule(
                    "a.com",
                    p(
                        "/",
                        json!("Prefix"),
                        svc_backend(json!({"name": "http", "number": 80})),
                    ),
                ),
                vec![("spec.rules[0].http.paths[0].backend", "FieldValueInvalid")],
            ),
            (
                "bad port number",
                rule(
                    "a.com",
                    p("/", json!("Prefix"), svc_backend(json!({"number": 70000}))),
                ),
                vec![(
                    "spec.rules[0].http.paths[0].backend.service.port.number",
                    "FieldValueInvalid",
                )],
            ),
            (
                "no service name",
                rule(
                    "a.com",
                    p(
                        "/",
                        json!("Prefix"),
                        json!({"service": {"port": {"number": 80}}}),
                    ),
                ),
                vec![(
                    "spec.rules[0].http.paths[0].backend.service.name",
                    "FieldValueRequired",
                )],
            ),
            (
                "both backends",
                rule(
                    "a.com",
                    p(
                        "/",
                        json!("Prefix"),
                        json!({"service": {"name": "a", "port": {"number": 80}}, "resource": {"kind": "Bucket", "name": "b"}}),
                    ),
                ),
                vec![("spec.rules[0].http.paths[0].backend", "FieldValueInvalid")],
            ),
            (
                "resource backend",
                rule(
                    "a.com",
                    p(
                        "/",
                        json!("Prefix"),
                        json!({"resource": {"apiGroup": "x.io", "kind": "Bucket", "name": "b"}}),
                    ),
                ),
                vec![],
            ),
            (
                "no backend",
                rule("a.com", p("/", json!("Prefix"), json!({}))),
                vec![("spec.rules[0].http.paths[0].backend", "FieldValueInvalid")],
            ),
            (
                "tls ok",
                json!({"defaultBackend": port80.clone(), "tls": [{"hosts": ["a.example.com", "*.b.com"], "secretName": "tls"}]}),
                vec![],
            ),
            (
                "tls bad host",
                json!({"defaultBackend": port80.clone(), "tls": [{"hosts": ["A"]}]}),
                vec![("spec.tls[0].hosts[0]", "FieldValueInvalid")],
            ),
            (
                "class name",
                json!({"defaultBackend": port80.clone(), "ingressClassName": "Nginx"}),
                vec![("spec.ingressClassName", "FieldValueInvalid")],
            ),
        ];
        for (case, spec, want) in cases {
            expect(
                &run("networking.k8s.io", "ingresses", &ing(spec), None),
                &want,
                case,
            );
        }
    }

    #[test]
    fn ingressclass_rules() {
        let class = |controller: Value| json!({"kind": "IngressClass", "metadata": {"name": "skiff"}, "spec": {"controller": controller}});
        let cases: Vec<Case> = vec![
            ("ok", class(json!("skiff.dev/ingress")), vec![]),
            (
                "missing",
                class(Value::Null),
                vec![("spec.controller", "FieldValueRequired")],
            ),
            (
                "no domain",
                class(json!("ingress")),
                vec![("spec.controller", "FieldValueInvalid")],
            ),
            (
                "too long",
                class(json!(format!("a.io/{}", "x".repeat(250)))),
                vec![("spec.controller", "FieldValueTooLong")],
            ),
        ];
        for (case, obj, want) in cases {
            expect(
                &run("networking.k8s.io", "ingressclasses", &obj, None),
                &want,
                case,
            );
        }
        let old = class(json!("skiff.dev/ingress"));
        expect(
            &run(
                "networking.k8s.io",
                "ingressclasses",
                &class(json!("other.dev/x")),
                Some(&old),
            ),
            &[("spec.controller", "FieldValueInvalid")],
            "immutable",
        );
    }
}
