//! Endpoints and EndpointSlice validation: addresses of the declared family, ports with
//! names, numbers and protocols, and the slice's immutable address type.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{array, invalid_each, names, one_of, required_because, str_field, IMMUTABLE};
use crate::status::Cause;

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
/// Upstream's limits per slice.
const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;

pub(super) fn validate_endpoints(obj: &Value, errs: &mut Vec<Cause>) {
    for (i, subset) in array(obj, "subsets").iter().enumerate() {
        let path = format!("subsets[{i}]");
        let addresses = array(subset, "addresses");
        let not_ready = array(subset, "notReadyAddresses");
        if addresses.is_empty() && not_ready.is_empty() {
            errs.push(required_because(
                path.clone(),
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (field, list) in [("addresses", addresses), ("notReadyAddresses", not_ready)] {
            for (j, a) in list.iter().enumerate() {
                let apath = format!("{path}.{field}[{j}]");
                match str_field(a, "ip").unwrap_or("") {
                    "" => errs.push(Cause::required(format!("{apath}.ip"))),
                    ip if !names::is_ip(ip) => errs.push(Cause::invalid(
                        format!("{apath}.ip"),
                        &Value::from(ip),
                        names::IP_MSG,
                    )),
                    _ => {}
                }
                if let Some(h) = str_field(a, "hostname").filter(|h| !h.is_empty()) {
                    invalid_each(
                        errs,
                        &format!("{apath}.hostname"),
                        &Value::from(h),
                        names::dns1123_label(h),
                    );
                }
            }
        }
        let ports = array(subset, "ports");
        let require_name = ports.len() > 1;
        let mut seen = BTreeSet::new();
        for (j, p) in ports.iter().enumerate() {
            let ppath = format!("{path}.ports[{j}]");
            match str_field(p, "name").unwrap_or("") {
                "" if require_name => errs.push(Cause::required(format!("{ppath}.name"))),
                "" => {}
                n => {
                    invalid_each(
                        errs,
                        &format!("{ppath}.name"),
                        &Value::from(n),
                        names::dns1123_label(n),
                    );
                    if !seen.insert(n.to_string()) {
                        errs.push(Cause::duplicate(format!("{ppath}.name"), &Value::from(n)));
                    }
                }
            }
            let port = p.get("port").unwrap_or(&Value::Null);
            invalid_each(
                errs,
                &format!("{ppath}.port"),
                port,
                names::port_num(port.as_i64().unwrap_or(0)),
            );
            one_of(p, "protocol", &format!("{ppath}.protocol"), PROTOCOLS, errs);
        }
    }
}

pub(super) fn validate_endpointslice(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let address_type = str_field(obj, "addressType").unwrap_or("");
    if address_type.is_empty() {
        errs.push(Cause::required("addressType"));
    } else if !ADDRESS_TYPES.contains(&address_type) {
        errs.push(Cause::not_supported(
            "addressType",
            &Value::from(address_type),
            ADDRESS_TYPES,
        ));
    }
    let endpoints = array(obj, "endpoints");
    if endpoints.len() > MAX_ENDPOINTS {
        errs.push(Cause::new(
            "FieldValueTooMany",
            "endpoints",
            format!(
                "Too many: {}: must have at most {MAX_ENDPOINTS} items",
                endpoints.len()
            ),
        ));
    }
    for (i, ep) in endpoints.iter().enumerate() {
        let path = format!("endpoints[{i}]");
        let addresses = array(ep, "addresses");
        if addresses.is_empty() {
            errs.push(required_because(
                format!("{path}.addresses"),
                "must contain at least 1 address",
            ));
        } else if addresses.len() > MAX_ADDRESSES {
            errs.push(Cause::new(
                "FieldValueTooMany",
                format!("{path}.addresses"),
                format!(
                    "Too many: {}: must have at most {MAX_ADDRESSES} items",
                    addresses.len()
                ),
            ));
        }
        for (j, a) in addresses.iter().enumerate() {
            let apath = format!("{path}.addresses[{j}]");
            let s = a.as_str().unwrap_or("");
            match address_type {
                "IPv4" if !names::is_ipv4(s) => {
                    errs.push(Cause::invalid(apath, a, "must be a valid IPv4 address"))
                }
                "IPv6" if !names::is_ipv6(s) => {
                    errs.push(Cause::invalid(apath, a, "must be a valid IPv6 address"))
                }
                "FQDN" => invalid_each(errs, &apath, a, names::dns1123_subdomain(s)),
                _ => {}
            }
        }
        if let Some(h) = str_field(ep, "hostname").filter(|h| !h.is_empty()) {
            invalid_each(
                errs,
                &format!("{path}.hostname"),
                &Value::from(h),
                names::dns1123_label(h),
            );
        }
        if let Some(n) = str_field(ep, "nodeName").filter(|n| !n.is_empty()) {
            invalid_each(
                errs,
                &format!("{path}.nodeName"),
                &Value::from(n),
                names::dns1123_subdomain(n),
            );
        }
    }
    let mut seen = BTreeSet::new();
    for (i, p) in array(obj, "ports").iter().enumerate() {
        let path = format!("ports[{i}]");
        let name = str_field(p, "name").unwrap_or("");
        if !name.is_empty() {
            invalid_each(
                errs,
                &format!("{path}.name"),
                &Value::from(name),
                names::dns1123_label(name),
            );
        }
        if !seen.insert(name.to_string()) {
            errs.push(Cause::duplicate(format!("{path}.name"), &Value::from(name)));
        }
        // A slice port may be unset (all ports); when set it is 0..65535 as upstream
        // allows 0 here.
        if let Some(port) = p.get("port").filter(|v| !v.is_null()) {
            if !port.as_i64().is_some_and(|n| (0..=65535).contains(&n)) {
                errs.push(Cause::invalid(
                    format!("{path}.port"),
                    port,
                    &names::inclusive_range_error(0, 65535),
                ));
            }
        }
        one_of(p, "protocol", &format!("{path}.protocol"), PROTOCOLS, errs);
    }
    if let Some(old) = old {
        let old_type = str_field(old, "addressType").unwrap_or("");
        if !old_type.is_empty() && old_type != address_type {
            errs.push(Cause::invalid(
                "addressType",
                &Value::from(address_type),
                IMMUTABLE,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use serde_json::{json, Value};

    fn ep(subsets: Value) -> Value {
        json!({"kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"}, "subsets": subsets})
    }

    fn slice(extra: Value) -> Value {
        let mut v = json!({"kind": "EndpointSlice", "metadata": {"name": "web-abc", "namespace": "default"}});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }

    #[test]
    fn endpoints_rules() {
        let cases: Vec<Case> = vec![
            (
                "ok",
                ep(
                    json!([{"addresses": [{"ip": "10.244.0.5", "hostname": "web-0"}], "notReadyAddresses": [{"ip": "fd00::5"}], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}]),
                ),
                vec![],
            ),
            ("no subsets", ep(json!([])), vec![]),
            (
                "empty subset",
                ep(json!([{"ports": [{"port": 80}]}])),
                vec![("subsets[0]", "FieldValueRequired")],
            ),
            (
                "bad ip",
                ep(json!([{"addresses": [{"ip": "10.0.0"}]}])),
                vec![("subsets[0].addresses[0].ip", "FieldValueInvalid")],
            ),
            (
                "no ip",
                ep(json!([{"notReadyAddresses": [{}]}])),
                vec![("subsets[0].notReadyAddresses[0].ip", "FieldValueRequired")],
            ),
            (
                "port names required",
                ep(
                    json!([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}, {"port": 81, "name": "b"}]}]),
                ),
                vec![("subsets[0].ports[0].name", "FieldValueRequired")],
            ),
            (
                "bad port",
                ep(json!([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 0}]}])),
                vec![("subsets[0].ports[0].port", "FieldValueInvalid")],
            ),
            (
                "bad protocol",
                ep(
                    json!([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80, "protocol": "ICMP"}]}]),
                ),
                vec![("subsets[0].ports[0].protocol", "FieldValueNotSupported")],
            ),
        ];
        for (case, obj, want) in cases {
            expect(&run("", "endpoints", &obj, None), &want, case);
        }
    }

    #[test]
    fn endpointslice_rules() {
        let cases: Vec<Case> = vec![
            (
                "ok",
                slice(
                    json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": true}, "nodeName": "n1"}], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
                ),
                vec![],
            ),
            (
                "no type",
                slice(json!({"endpoints": []})),
                vec![("addressType", "FieldValueRequired")],
            ),
            (
                "bad type",
                slice(json!({"addressType": "IPv5"})),
                vec![("addressType", "FieldValueNotSupported")],
            ),
            (
                "no addresses",
                slice(json!({"addressType": "IPv4", "endpoints": [{"addresses": []}]})),
                vec![("endpoints[0].addresses", "FieldValueRequired")],
            ),
            (
                "wrong family",
                slice(json!({"addressType": "IPv4", "endpoints": [{"addresses": ["fd00::1"]}]})),
                vec![("endpoints[0].addresses[0]", "FieldValueInvalid")],
            ),
            (
                "ipv6",
                slice(json!({"addressType": "IPv6", "endpoints": [{"addresses": ["fd00::1"]}]})),
                vec![],
            ),
            (
                "fqdn",
                slice(
                    json!({"addressType": "FQDN", "endpoints": [{"addresses": ["db.example.com"]}, {"addresses": ["Bad_Name"]}]}),
                ),
                vec![("endpoints[1].addresses[0]", "FieldValueInvalid")],
            ),
            (
                "dup port names",
                slice(json!({"addressType": "IPv4", "ports": [{"port": 80}, {"port": 81}]})),
                vec![("ports[1].name", "FieldValueDuplicate")],
            ),
            (
                "port range",
                slice(json!({"addressType": "IPv4", "ports": [{"name": "a", "port": 70000}]})),
                vec![("ports[0].port", "FieldValueInvalid")],
            ),
            (
                "port protocol",
                slice(
                    json!({"addressType": "IPv4", "ports": [{"name": "a", "port": 80, "protocol": "tcp"}]}),
                ),
                vec![("ports[0].protocol", "FieldValueNotSupported")],
            ),
        ];
        for (case, obj, want) in cases {
            expect(
                &run("discovery.k8s.io", "endpointslices", &obj, None),
                &want,
                case,
            );
        }
        let old = slice(json!({"addressType": "IPv4"}));
        let new = slice(json!({"addressType": "IPv6"}));
        expect(
            &run("discovery.k8s.io", "endpointslices", &new, Some(&old)),
            &[("addressType", "FieldValueInvalid")],
            "type immutable",
        );
    }
}
