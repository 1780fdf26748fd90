//! Service, Endpoints, EndpointSlice, Ingress and IngressClass rows.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{
    age, age_col, arr_at, col, format_labels, int_at, list_with_more, name, name_col, opt_str,
    str_at, wide, Column,
};

pub(super) static SERVICE_COLUMNS: &[Column] = &[
    name_col(),
    col("Type", "string", "How the service is exposed: ClusterIP, NodePort, LoadBalancer or ExternalName."),
    col("Cluster-IP", "string", "The virtual IP of the service inside the cluster (the first of spec.clusterIPs)."),
    col("External-IP", "string", "Addresses outside the cluster that reach the service (spec.externalIPs, load balancer ingress)."),
    col("Port(s)", "string", "The ports the service exposes, as port[:nodePort]/protocol."),
    age_col(),
    wide("Selector", "string", "The labels of the pods the service routes to."),
];

pub(super) static ENDPOINTS_COLUMNS: &[Column] = &[
    name_col(),
    col(
        "Endpoints",
        "string",
        "The addresses and ports of the ready endpoints of the service.",
    ),
    age_col(),
];

pub(super) static ENDPOINTSLICE_COLUMNS: &[Column] = &[
    name_col(),
    col(
        "AddressType",
        "string",
        "The type of address the slice carries: IPv4, IPv6 or FQDN.",
    ),
    col(
        "Ports",
        "string",
        "The network ports the endpoints of the slice expose.",
    ),
    col(
        "Endpoints",
        "string",
        "The addresses of the endpoints in the slice.",
    ),
    age_col(),
];

pub(super) static INGRESS_COLUMNS: &[Column] = &[
    name_col(),
    col(
        "Class",
        "string",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    col(
        "Hosts",
        "string",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    col(
        "Address",
        "string",
        "Address is a list containing ingress points for the load-balancer",
    ),
    col("Ports", "string", "Ports of TLS configurations that open"),
    age_col(),
];

pub(super) static INGRESSCLASS_COLUMNS: &[Column] = &[
    name_col(),
    col(
        "Controller",
        "string",
        "Controller that is responsible for handling this class",
    ),
    col(
        "Parameters",
        "string",
        "A reference to a resource with additional parameters",
    ),
    age_col(),
];

/// Load balancer ingress points, de-duplicated and sorted, IPs preferred over
/// hostnames. The server prints the wide form, so nothing is clipped.
fn load_balancer_addresses(ingress: &[Value]) -> Vec<String> {
    let set: BTreeSet<String> = ingress
        .iter()
        .filter_map(|i| opt_str(i, "/ip").or_else(|| opt_str(i, "/hostname")))
        .map(str::to_string)
        .collect();
    set.into_iter().collect()
}

fn external_ip(svc: &Value) -> String {
    let external: Vec<String> = arr_at(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    match opt_str(svc, "/spec/type").unwrap_or("ClusterIP") {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".to_string()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut all = load_balancer_addresses(arr_at(svc, "/status/loadBalancer/ingress"));
            if all.is_empty() && external.is_empty() {
                return "<pending>".to_string();
            }
            all.extend(external);
            all.join(",")
        }
        "ExternalName" => str_at(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

fn service_ports(svc: &Value) -> String {
    let pieces: Vec<String> = arr_at(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = int_at(p, "/port");
            let proto = opt_str(p, "/protocol").unwrap_or("TCP");
            match int_at(p, "/nodePort") {
                n if n > 0 => format!("{port}:{n}/{proto}"),
                _ => format!("{port}/{proto}"),
            }
        })
        .collect();
    if pieces.is_empty() {
        "<none>".to_string()
    } else {
        pieces.join(",")
    }
}

pub(super) fn service_cells(svc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let cluster_ip = arr_at(svc, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        // clusterIPs is filled from clusterIP by defaulting; read the singular field
        // when an object was stored without it.
        .or_else(|| opt_str(svc, "/spec/clusterIP"))
        .unwrap_or("<none>");
    vec![
        json!(name(svc)),
        json!(opt_str(svc, "/spec/type").unwrap_or("ClusterIP")),
        json!(cluster_ip),
        json!(external_ip(svc)),
        json!(service_ports(svc)),
        json!(age(svc, now)),
        json!(format_labels(svc.pointer("/spec/selector"))),
    ]
}

/// `ip:port` pairs over all subsets, at most three shown (`+ N more...`); addresses of
/// a subset without ports are shown bare (headless services).
fn format_endpoints(ep: &Value) -> String {
    let subsets = arr_at(ep, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut count = 0;
    for ss in subsets {
        let addresses: Vec<&str> = arr_at(ss, "/addresses")
            .iter()
            .map(|a| str_at(a, "/ip"))
            .collect();
        let ports = arr_at(ss, "/ports");
        if ports.is_empty() {
            count += addresses.len();
            for ip in &addresses {
                if list.len() == MAX {
                    break;
                }
                list.push(ip.to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            let p = int_at(port, "/port");
            for ip in &addresses {
                if list.len() == MAX {
                    break;
                }
                list.push(join_host_port(ip, p));
            }
        }
    }
    // Upstream leaves an all-empty list blank rather than <none> here.
    list_with_more(&list, count, MAX, "")
}

/// `host:port`, with brackets around IPv6 addresses.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub(super) fn endpoints_cells(ep: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(ep)),
        json!(format_endpoints(ep)),
        json!(age(ep, now)),
    ]
}

pub(super) fn endpointslice_cells(slice: &Value, now: DateTime<Utc>) -> Vec<Value> {
    const MAX: usize = 3;
    let ports = arr_at(slice, "/ports");
    let port_list: Vec<String> = ports
        .iter()
        .take(MAX)
        .map(|p| match p.get("port").and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => opt_str(p, "/name").unwrap_or("*").to_string(),
        })
        .collect();
    let addresses: Vec<String> = arr_at(slice, "/endpoints")
        .iter()
        .flat_map(|e| arr_at(e, "/addresses").iter().filter_map(Value::as_str))
        .map(str::to_string)
        .collect();
    let shown: Vec<String> = addresses.iter().take(MAX).cloned().collect();
    vec![
        json!(name(slice)),
        json!(str_at(slice, "/addressType")),
        json!(list_with_more(&port_list, ports.len(), MAX, "<unset>")),
        json!(list_with_more(&shown, addresses.len(), MAX, "<unset>")),
        json!(age(slice, now)),
    ]
}

/// Up to three rule hosts; `*` when no rule names a host.
fn format_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == MAX {
            more = true;
        }
        if let (false, Some(h)) = (more, opt_str(rule, "/host")) {
            list.push(h.to_string());
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let ret = list.join(",");
    if more {
        // Upstream counts the rules, not the hosts, past the third.
        return format!("{ret} + {} more...", rules.len() - MAX);
    }
    ret
}

pub(super) fn ingress_cells(ing: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ports = if arr_at(ing, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        json!(name(ing)),
        json!(opt_str(ing, "/spec/ingressClassName").unwrap_or("<none>")),
        json!(format_hosts(arr_at(ing, "/spec/rules"))),
        json!(load_balancer_addresses(arr_at(ing, "/status/loadBalancer/ingress")).join(",")),
        json!(ports),
        json!(age(ing, now)),
    ]
}

pub(super) fn ingressclass_cells(ic: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let parameters = match ic.pointer("/spec/parameters") {
        Some(p) if p.is_object() => {
            let mut s = str_at(p, "/kind").to_string();
            if let Some(g) = p.get("apiGroup").and_then(Value::as_str) {
                s.push('.');
                s.push_str(g);
            }
            format!("{s}/{}", str_at(p, "/name"))
        }
        _ => "<none>".to_string(),
    };
    vec![
        json!(name(ic)),
        json!(str_at(ic, "/spec/controller")),
        json!(parameters),
        json!(age(ic, now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::testutil::now;
    use super::*;

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default", "creationTimestamp": "2024-05-01T11:15:00Z"})
    }

    #[test]
    fn service_rows_by_type() {
        let cases = vec![
            (
                json!({"metadata": meta("web"), "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10",
                    "clusterIPs": ["10.96.0.10"], "selector": {"app": "web", "tier": "fe"},
                    "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}}),
                vec![
                    "web",
                    "ClusterIP",
                    "10.96.0.10",
                    "<none>",
                    "80/TCP,53/UDP",
                    "45m",
                    "app=web,tier=fe",
                ],
            ),
            (
                json!({"metadata": meta("np"), "spec": {"type": "NodePort", "clusterIPs": ["10.96.3.4"],
                    "externalIPs": ["192.0.2.10"], "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}}),
                vec![
                    "np",
                    "NodePort",
                    "10.96.3.4",
                    "192.0.2.10",
                    "80:30080/TCP",
                    "45m",
                    "<none>",
                ],
            ),
            (
                json!({"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.5.5"],
                    "ports": [{"port": 443, "nodePort": 31443}]}}),
                vec![
                    "lb",
                    "LoadBalancer",
                    "10.96.5.5",
                    "<pending>",
                    "443:31443/TCP",
                    "45m",
                    "<none>",
                ],
            ),
            (
                json!({"metadata": meta("lb2"), "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.5.6"],
                    "externalIPs": ["198.51.100.9"], "ports": [{"port": 80, "nodePort": 30001, "protocol": "TCP"}]},
                    "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"}, {"ip": "203.0.113.7"}]}}}),
                vec![
                    "lb2",
                    "LoadBalancer",
                    "10.96.5.6",
                    "203.0.113.7,lb.example.com,198.51.100.9",
                    "80:30001/TCP",
                    "45m",
                    "<none>",
                ],
            ),
            (
                json!({"metadata": meta("db"), "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"],
                    "selector": {"app": "db"}}}),
                vec![
                    "db",
                    "ClusterIP",
                    "None",
                    "<none>",
                    "<none>",
                    "45m",
                    "app=db",
                ],
            ),
            (
                json!({"metadata": meta("ext"), "spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
                vec![
                    "ext",
                    "ExternalName",
                    "<none>",
                    "db.example.com",
                    "<none>",
                    "45m",
                    "<none>",
                ],
            ),
        ];
        for (svc, want) in cases {
            let want: Vec<Value> = want.into_iter().map(|s| json!(s)).collect();
            assert_eq!(
                service_cells(&svc, now()),
                want,
                "{}",
                svc["metadata"]["name"]
            );
        }
    }

    #[test]
    fn endpoints_rows_shorten_after_three() {
        let few = json!({"metadata": meta("web"), "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}]}]});
        assert_eq!(
            endpoints_cells(&few, now()),
            vec![json!("web"), json!("10.0.0.1:80,10.0.0.2:80"), json!("45m")]
        );

        let many = json!({"metadata": meta("web"), "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}], "ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]},
            {"addresses": [{"ip": "fd00::5"}], "ports": [{"port": 80}]}]});
        assert_eq!(
            endpoints_cells(&many, now())[1],
            "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 4 more..."
        );

        let headless = json!({"metadata": meta("h"), "subsets": [{"addresses": [{"ip": "fd00::5"}, {"ip": "10.0.0.9"}]}]});
        assert_eq!(endpoints_cells(&headless, now())[1], "fd00::5,10.0.0.9");

        let v6 = json!({"metadata": meta("h"), "subsets": [{"addresses": [{"ip": "fd00::5"}], "ports": [{"port": 8080}]}]});
        assert_eq!(endpoints_cells(&v6, now())[1], "[fd00::5]:8080");

        let empty = json!({"metadata": meta("none")});
        assert_eq!(endpoints_cells(&empty, now())[1], "<none>");
    }

    #[test]
    fn endpointslice_rows() {
        let s = json!({"metadata": meta("web-abc12"), "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics"}],
            "endpoints": [
                {"addresses": ["10.244.1.5"], "conditions": {"ready": true}},
                {"addresses": ["10.244.2.6"]}, {"addresses": ["10.244.2.7"]}, {"addresses": ["10.244.3.8", "10.244.3.9"]}]});
        assert_eq!(
            endpointslice_cells(&s, now()),
            vec![
                json!("web-abc12"),
                json!("IPv4"),
                json!("80,metrics"),
                json!("10.244.1.5,10.244.2.6,10.244.2.7 + 2 more..."),
                json!("45m")
            ]
        );
        let empty =
            json!({"metadata": meta("e"), "addressType": "IPv4", "ports": [{}], "endpoints": []});
        assert_eq!(
            endpointslice_cells(&empty, now())[2..4],
            [json!("*"), json!("<unset>")]
        );
        let no_ports = json!({"metadata": meta("e"), "addressType": "IPv6", "endpoints": null});
        assert_eq!(endpointslice_cells(&no_ports, now())[2], "<unset>");
    }

    #[test]
    fn ingress_rows() {
        let ing = json!({"metadata": meta("site"), "spec": {"ingressClassName": "skiff",
            "tls": [{"hosts": ["a.example.com"], "secretName": "tls"}],
            "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}});
        assert_eq!(
            ingress_cells(&ing, now()),
            vec![
                json!("site"),
                json!("skiff"),
                json!("a.example.com,b.example.com"),
                json!("192.0.2.1"),
                json!("80, 443"),
                json!("45m")
            ]
        );
        let catch_all = json!({"metadata": meta("all"), "spec": {"defaultBackend": {}, "rules": [{"http": {}}]}});
        assert_eq!(
            ingress_cells(&catch_all, now()),
            vec![
                json!("all"),
                json!("<none>"),
                json!("*"),
                json!(""),
                json!("80"),
                json!("45m")
            ]
        );
        let many = json!({"metadata": meta("m"), "spec": {"rules": [
            {"host": "a"}, {"host": "b"}, {"host": "c"}, {"host": "d"}, {"host": "e"}]}});
        assert_eq!(ingress_cells(&many, now())[2], "a,b,c + 2 more...");
    }

    #[test]
    fn ingressclass_rows() {
        let ic = json!({"metadata": {"name": "skiff", "creationTimestamp": "2024-03-22T12:00:00Z"},
            "spec": {"controller": "skiff.dev/ingress",
                     "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}});
        assert_eq!(
            ingressclass_cells(&ic, now()),
            vec![
                json!("skiff"),
                json!("skiff.dev/ingress"),
                json!("IngressParameters.k8s.example.com/external-lb"),
                json!("40d")
            ]
        );
        let plain = json!({"metadata": {"name": "p"}, "spec": {"controller": "x/y"}});
        assert_eq!(ingressclass_cells(&plain, now())[2], "<none>");
    }
}
