//! Service validation: type, ports (numbers, protocols, names, target ports, node
//! ports), cluster IPs, selector, traffic policies and session affinity, and on update
//! the cluster IP that may not change once allocated.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{
    array, invalid_each, is_set, names, one_of, port_num_or_name, str_field, validate_labels,
};
use crate::status::Cause;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// The node port range the API server allocates from (upstream's default
/// `--service-node-port-range`).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;

pub(super) fn validate_service(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let ty = str_field(spec, "type").unwrap_or("ClusterIP");
    if !TYPES.contains(&ty) {
        errs.push(Cause::not_supported(
            "spec.type",
            spec.get("type").unwrap_or(&Value::Null),
            TYPES,
        ));
    }
    let cluster_ips = cluster_ips(spec);
    let headless = cluster_ips.first().map(String::as_str) == Some("None");
    let ports = array(spec, "ports");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(Cause::required("spec.ports"));
    }
    if ty == "ExternalName" {
        if !cluster_ips.is_empty() {
            errs.push(Cause::forbidden(
                "spec.clusterIPs",
                "may not be set for ExternalName services",
            ));
        }
        match str_field(spec, "externalName").unwrap_or("") {
            "" => errs.push(Cause::required("spec.externalName")),
            name => {
                // A trailing dot (fully qualified) is allowed.
                let bare = name.strip_suffix('.').unwrap_or(name);
                invalid_each(
                    errs,
                    "spec.externalName",
                    &Value::from(name),
                    names::dns1123_subdomain(bare),
                );
            }
        }
    }
    validate_ports(spec, ty, errs);
    validate_cluster_ips(spec, errs);
    validate_labels(spec.get("selector"), "spec.selector", errs);
    one_of(
        spec,
        "sessionAffinity",
        "spec.sessionAffinity",
        &["ClientIP", "None"],
        errs,
    );
    one_of(
        spec,
        "internalTrafficPolicy",
        "spec.internalTrafficPolicy",
        &["Cluster", "Local"],
        errs,
    );
    one_of(
        spec,
        "ipFamilyPolicy",
        "spec.ipFamilyPolicy",
        &["PreferDualStack", "RequireDualStack", "SingleStack"],
        errs,
    );
    for (i, f) in array(spec, "ipFamilies").iter().enumerate() {
        if !f.as_str().is_some_and(|s| s == "IPv4" || s == "IPv6") {
            errs.push(Cause::not_supported(
                format!("spec.ipFamilies[{i}]"),
                f,
                &["IPv4", "IPv6"],
            ));
        }
    }
    let node_ports_allowed = ty == "NodePort" || ty == "LoadBalancer";
    if let Some(etp) = spec
        .get("externalTrafficPolicy")
        .filter(|v| is_set(Some(v)))
    {
        if !node_ports_allowed {
            errs.push(Cause::invalid(
                "spec.externalTrafficPolicy",
                etp,
                "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
            ));
        } else {
            one_of(
                spec,
                "externalTrafficPolicy",
                "spec.externalTrafficPolicy",
                &["Cluster", "Local"],
                errs,
            );
        }
    }
    if let Some(old) = old {
        validate_cluster_ip_update(spec, old.get("spec").unwrap_or(&Value::Null), errs);
    }
}

/// `spec.clusterIPs`, or `[spec.clusterIP]` for clients that only set the old field.
fn cluster_ips(spec: &Value) -> Vec<String> {
    let list: Vec<String> = array(spec, "clusterIPs")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if !list.is_empty() {
        return list;
    }
    match str_field(spec, "clusterIP") {
        Some(ip) if !ip.is_empty() => vec![ip.to_string()],
        _ => Vec::new(),
    }
}

fn validate_ports(spec: &Value, ty: &str, errs: &mut Vec<Cause>) {
    let ports = array(spec, "ports");
    let require_name = ports.len() > 1;
    let node_ports_allowed = ty == "NodePort" || ty == "LoadBalancer";
    let mut seen_names = BTreeSet::new();
    let mut seen_ports = BTreeSet::new();
    let mut seen_node_ports = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        match str_field(p, "name").unwrap_or("") {
            "" if require_name => errs.push(Cause::required(format!("{path}.name"))),
            "" => {}
            n => {
                invalid_each(
                    errs,
                    &format!("{path}.name"),
                    &Value::from(n),
                    names::dns1123_label(n),
                );
                if !seen_names.insert(n.to_string()) {
                    errs.push(Cause::duplicate(format!("{path}.name"), &Value::from(n)));
                }
            }
        }
        let port = p.get("port").unwrap_or(&Value::Null);
        invalid_each(
            errs,
            &format!("{path}.port"),
            port,
            names::port_num(port.as_i64().unwrap_or(0)),
        );
        one_of(p, "protocol", &format!("{path}.protocol"), PROTOCOLS, errs);
        let protocol = str_field(p, "protocol").unwrap_or("TCP");
        if let Some(tp) = p.get("targetPort").filter(|v| !v.is_null()) {
            // 0 means "same as port" and is what defaulting replaces.
            if tp.as_i64() != Some(0) {
                port_num_or_name(tp, &format!("{path}.targetPort"), errs);
            }
        }
        if let Some(n) = port.as_i64() {
            if !seen_ports.insert((n, protocol.to_string())) {
                errs.push(Cause::duplicate(
                    path.clone(),
                    &serde_json::json!({"port": n, "protocol": protocol}),
                ));
            }
        }
        if let Some(np) = p
            .get("nodePort")
            .filter(|v| !v.is_null() && v.as_i64() != Some(0))
        {
            if !node_ports_allowed {
                errs.push(Cause::forbidden(
                    format!("{path}.nodePort"),
                    &format!("may not be used when `type` is '{ty}'"),
                ));
            } else if !np.as_i64().is_some_and(|n| NODE_PORT_RANGE.contains(&n)) {
                errs.push(Cause::invalid(
                    format!("{path}.nodePort"),
                    np,
                    &format!(
                        "provided port is not in the valid range. The range of valid ports is {}-{}",
                        NODE_PORT_RANGE.start(),
                        NODE_PORT_RANGE.end()
                    ),
                ));
            } else if !seen_node_ports.insert((np.as_i64().unwrap_or(0), protocol.to_string())) {
                errs.push(Cause::duplicate(format!("{path}.nodePort"), np));
            }
        }
    }
}

fn validate_cluster_ips(spec: &Value, errs: &mut Vec<Cause>) {
    let list = array(spec, "clusterIPs");
    let single = str_field(spec, "clusterIP").unwrap_or("");
    if list.is_empty() {
        if !single.is_empty() && single != "None" && !names::is_ip(single) {
            errs.push(Cause::invalid(
                "spec.clusterIP",
                &Value::from(single),
                names::IP_MSG,
            ));
        }
        return;
    }
    for (i, v) in list.iter().enumerate() {
        let ip = v.as_str().unwrap_or("");
        if i == 0 && ip == "None" {
            continue;
        }
        if !names::is_ip(ip) {
            errs.push(Cause::invalid(
                format!("spec.clusterIPs[{i}]"),
                v,
                names::IP_MSG,
            ));
        }
    }
    let first = list[0].as_str().unwrap_or("");
    if !single.is_empty() && single != first {
        errs.push(Cause::invalid(
            "spec.clusterIPs[0]",
            &list[0],
            "must match `clusterIP`",
        ));
    }
    if list.len() > 2 {
        errs.push(Cause::invalid(
            "spec.clusterIPs",
            &Value::from(list.to_vec()),
            "may only hold up to 2 values",
        ));
    }
}

/// The primary cluster IP may not change once allocated, except to or from an
/// ExternalName service (which has none). An update that omits the IP is left to the
/// API server, which carries the allocated one over as upstream does for `kubectl
/// apply`.
fn validate_cluster_ip_update(new: &Value, old: &Value, errs: &mut Vec<Cause>) {
    let is_external = |s: &Value| str_field(s, "type") == Some("ExternalName");
    if is_external(new) || is_external(old) {
        return;
    }
    let (new_ips, old_ips) = (cluster_ips(new), cluster_ips(old));
    if let (Some(n), Some(o)) = (new_ips.first(), old_ips.first()) {
        if n != o {
            errs.push(Cause::invalid(
                "spec.clusterIPs[0]",
                &Value::from(new_ips.clone()),
                "may not change once set",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use serde_json::{json, Value};

    fn svc(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn service_rules() {
        let p80 = json!([{"port": 80}]);
        let cases: Vec<Case> = vec![
            (
                "minimal",
                json!({"ports": p80, "selector": {"app": "web"}}),
                vec![],
            ),
            (
                "full",
                json!({"type": "NodePort", "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "nodePort": 30080}, {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}], "sessionAffinity": "ClientIP", "externalTrafficPolicy": "Local", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"}),
                vec![],
            ),
            (
                "bad type",
                json!({"type": "Internal", "ports": p80}),
                vec![("spec.type", "FieldValueNotSupported")],
            ),
            (
                "no ports",
                json!({"selector": {"app": "web"}}),
                vec![("spec.ports", "FieldValueRequired")],
            ),
            ("headless no ports", json!({"clusterIP": "None"}), vec![]),
            (
                "external name",
                json!({"type": "ExternalName", "externalName": "db.example.com."}),
                vec![],
            ),
            (
                "external name missing",
                json!({"type": "ExternalName"}),
                vec![("spec.externalName", "FieldValueRequired")],
            ),
            (
                "external name invalid",
                json!({"type": "ExternalName", "externalName": "Bad_Name"}),
                vec![("spec.externalName", "FieldValueInvalid")],
            ),
            (
                "external name with IP",
                json!({"type": "ExternalName", "externalName": "a.b", "clusterIP": "10.0.0.1"}),
                vec![("spec.clusterIPs", "FieldValueForbidden")],
            ),
            (
                "port 0",
                json!({"ports": [{"port": 0}]}),
                vec![("spec.ports[0].port", "FieldValueInvalid")],
            ),
            (
                "port big",
                json!({"ports": [{"port": 65536}]}),
                vec![("spec.ports[0].port", "FieldValueInvalid")],
            ),
            (
                "protocol",
                json!({"ports": [{"port": 80, "protocol": "HTTP"}]}),
                vec![("spec.ports[0].protocol", "FieldValueNotSupported")],
            ),
            (
                "names required",
                json!({"ports": [{"port": 80}, {"port": 81, "name": "b"}]}),
                vec![("spec.ports[0].name", "FieldValueRequired")],
            ),
            (
                "names unique",
                json!({"ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]}),
                vec![("spec.ports[1].name", "FieldValueDuplicate")],
            ),
            (
                "name invalid",
                json!({"ports": [{"port": 80, "name": "A"}]}),
                vec![("spec.ports[0].name", "FieldValueInvalid")],
            ),
            (
                "duplicate port",
                json!({"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]}),
                vec![("spec.ports[1]", "FieldValueDuplicate")],
            ),
            (
                "same port other protocol",
                json!({"ports": [{"port": 53, "name": "a"}, {"port": 53, "name": "b", "protocol": "UDP"}]}),
                vec![],
            ),
            (
                "targetPort too big",
                json!({"ports": [{"port": 80, "targetPort": 70000}]}),
                vec![("spec.ports[0].targetPort", "FieldValueInvalid")],
            ),
            (
                "targetPort bad name",
                json!({"ports": [{"port": 80, "targetPort": "Http"}]}),
                vec![("spec.ports[0].targetPort", "FieldValueInvalid")],
            ),
            (
                "nodePort on ClusterIP",
                json!({"ports": [{"port": 80, "nodePort": 30080}]}),
                vec![("spec.ports[0].nodePort", "FieldValueForbidden")],
            ),
            (
                "nodePort out of range",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]}),
                vec![("spec.ports[0].nodePort", "FieldValueInvalid")],
            ),
            (
                "nodePort on LB",
                json!({"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 32767}]}),
                vec![],
            ),
            (
                "nodePort duplicate",
                json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30000}, {"name": "b", "port": 81, "nodePort": 30000}]}),
                vec![("spec.ports[1].nodePort", "FieldValueDuplicate")],
            ),
            (
                "bad clusterIP",
                json!({"ports": p80, "clusterIP": "10.0.0.300"}),
                vec![("spec.clusterIP", "FieldValueInvalid")],
            ),
            (
                "bad clusterIPs",
                json!({"ports": p80, "clusterIPs": ["x"]}),
                vec![("spec.clusterIPs[0]", "FieldValueInvalid")],
            ),
            (
                "clusterIP disagrees",
                json!({"ports": p80, "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.2"]}),
                vec![("spec.clusterIPs[0]", "FieldValueInvalid")],
            ),
            (
                "session affinity",
                json!({"ports": p80, "sessionAffinity": "Cookie"}),
                vec![("spec.sessionAffinity", "FieldValueNotSupported")],
            ),
            (
                "etp on ClusterIP",
                json!({"ports": p80, "externalTrafficPolicy": "Local"}),
                vec![("spec.externalTrafficPolicy", "FieldValueInvalid")],
            ),
            (
                "etp bad",
                json!({"type": "NodePort", "ports": p80, "externalTrafficPolicy": "Nearest"}),
                vec![("spec.externalTrafficPolicy", "FieldValueNotSupported")],
            ),
            (
                "itp bad",
                json!({"ports": p80, "internalTrafficPolicy": "Node"}),
                vec![("spec.internalTrafficPolicy", "FieldValueNotSupported")],
            ),
            (
                "bad selector",
                json!({"ports": p80, "selector": {"app": "a b"}}),
                vec![("spec.selector", "FieldValueInvalid")],
            ),
            (
                "bad family",
                json!({"ports": p80, "ipFamilies": ["IPv5"]}),
                vec![("spec.ipFamilies[0]", "FieldValueNotSupported")],
            ),
        ];
        for (case, spec, want) in cases {
            expect(&run("", "services", &svc(spec), None), &want, case);
        }
    }

    #[test]
    fn node_port_message_is_upstreams() {
        let errs = run(
            "",
            "services",
            &svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]})),
            None,
        );
        assert_eq!(errs[0].message, "Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767");
    }

    #[test]
    fn cluster_ip_is_immutable() {
        let old = svc(
            json!({"ports": [{"port": 80}], "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"]}),
        );
        let cases: Vec<Case> = vec![
            (
                "same",
                json!({"ports": [{"port": 81}], "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"]}),
                vec![],
            ),
            ("omitted", json!({"ports": [{"port": 80}]}), vec![]),
            (
                "changed",
                json!({"ports": [{"port": 80}], "clusterIP": "10.96.0.6"}),
                vec![("spec.clusterIPs[0]", "FieldValueInvalid")],
            ),
            (
                "to ExternalName",
                json!({"type": "ExternalName", "externalName": "x.example.com"}),
                vec![],
            ),
        ];
        for (case, spec, want) in cases {
            expect(&run("", "services", &svc(spec), Some(&old)), &want, case);
        }
        let from_external = svc(json!({"type": "ExternalName", "externalName": "x.example.com"}));
        let now_ip = svc(json!({"ports": [{"port": 80}], "clusterIP": "10.96.0.9"}));
        assert!(run("", "services", &now_ip, Some(&from_external)).is_empty());
        let errs = run(
            "",
            "services",
            &svc(json!({"ports": [{"port": 80}], "clusterIP": "10.96.0.6"})),
            Some(&old),
        );
        assert_eq!(
            errs[0].message,
            "Invalid value: [\"10.96.0.6\"]: may not change once set"
        );
    }
}
