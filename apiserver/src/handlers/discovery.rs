//! Discovery documents: what kubectl reads to learn which resources exist, their short
//! names, verbs, categories and subresources. Built from the resource registry, never
//! written by hand per resource.
//!
//! Two forms are served. The legacy one is a document per level (`/api`, `/apis`, then
//! one `APIResourceList` per group-version). The aggregated one (`apidiscovery.k8s.io`,
//! v2 and the older v2beta1) answers `/api` or `/apis` with every group, version and
//! resource at once; client-go 1.26+ asks for it in `Accept` and falls back to the
//! legacy form when the answer's Content-Type is plain JSON.

use http::Response;
use serde_json::{json, Value};
use skiff_api::resource::{self, ResourceInfo, RESOURCES};

use super::Api;
use crate::response::{self, Body};

/// The Kubernetes version skiff speaks.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";

pub fn version() -> Response<Body> {
    response::json(
        200,
        &json!({
            "major": KUBE_MAJOR,
            "minor": KUBE_MINOR,
            "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0-skiff.{}", env!("CARGO_PKG_VERSION")),
            "gitCommit": "skiff",
            "gitTreeState": "clean",
            "buildDate": "1970-01-01T00:00:00Z",
            "goVersion": "n/a (rust)",
            "compiler": "rustc",
            "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
        }),
    )
}

/// Which form of `/api` and `/apis` a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Legacy,
    /// `apidiscovery.k8s.io` at this version (`v2` or `v2beta1`).
    Aggregated(&'static str),
}

/// Picks the form from `Accept` as upstream negotiates: the media ranges by
/// descending `q` (ties keep the client's order), the first one skiff can serve wins.
/// Aggregated discovery is served as JSON only; a header naming nothing servable gets
/// the legacy JSON, which every client reads.
pub fn negotiate(accept: Option<&str>) -> Form {
    let Some(accept) = accept else {
        return Form::Legacy;
    };
    let mut ranges: Vec<(f32, Form)> = Vec::new();
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| {
                (
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_string(),
                )
            })
            .collect();
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let q = param("q")
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if q <= 0.0 || !matches!(media.as_str(), "application/json" | "application/*" | "*/*") {
            continue;
        }
        let form = match (param("g"), param("v"), param("as")) {
            (None, None, None) => Form::Legacy,
            (Some("apidiscovery.k8s.io"), Some("v2"), Some("APIGroupDiscoveryList")) => {
                Form::Aggregated("v2")
            }
            (Some("apidiscovery.k8s.io"), Some("v2beta1"), Some("APIGroupDiscoveryList")) => {
                Form::Aggregated("v2beta1")
            }
            _ => continue,
        };
        ranges.push((q, form));
    }
    // A stable sort keeps the client's order among equal q values.
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranges.first().map_or(Form::Legacy, |(_, f)| *f)
}

/// The Content-Type of an aggregated answer, echoing the version chosen.
pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

fn aggregated_response(core: bool, version: &'static str) -> Response<Body> {
    let mut r = response::json(200, &aggregated(core, version));
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        aggregated_content_type(version)
            .parse()
            .expect("valid header"),
    );
    h.insert(http::header::VARY, http::HeaderValue::from_static("Accept"));
    r
}

/// `GET /api`, in the form `accept` asks for.
pub fn core(api: &Api, accept: Option<&str>) -> Response<Body> {
    match negotiate(accept) {
        Form::Legacy => core_versions(api),
        Form::Aggregated(v) => aggregated_response(true, v),
    }
}

/// `GET /apis`, in the form `accept` asks for.
pub fn apis(accept: Option<&str>) -> Response<Body> {
    match negotiate(accept) {
        Form::Legacy => groups(),
        Form::Aggregated(v) => aggregated_response(false, v),
    }
}

/// The `APIGroupDiscoveryList` of the core group (`core`) or of every named group.
pub fn aggregated(core: bool, version: &str) -> Value {
    let mut names: Vec<&str> = Vec::new();
    for (g, _) in resource::group_versions() {
        if g.is_empty() == core && !names.contains(&g) {
            names.push(g);
        }
    }
    let items: Vec<Value> = names
        .into_iter()
        .map(|g| {
            let versions: Vec<Value> = resource::group_versions()
                .into_iter()
                .filter(|(gg, _)| *gg == g)
                .map(|(_, v)| {
                    let resources: Vec<Value> = RESOURCES
                        .iter()
                        .filter(|r| r.group == g && r.version == v)
                        .map(aggregated_resource)
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let mut metadata = json!({"creationTimestamp": null});
            if !g.is_empty() {
                metadata["name"] = json!(g);
            }
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|sub| {
            let (verbs, g, v, kind) = subresource(r, sub);
            json!({
                "subresource": sub,
                "responseKind": {"group": g, "version": v, "kind": kind},
                "verbs": verbs,
            })
        })
        .collect();
    let mut e = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced() { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": VERBS,
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        e["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        e["subresources"] = json!(subresources);
    }
    e
}

pub fn core_versions(api: &Api) -> Response<Body> {
    response::json(
        200,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": api.advertise}],
        }),
    )
}

fn group_json(group: &str) -> Value {
    let versions: Vec<Value> = resource::group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

pub fn groups() -> Response<Body> {
    let mut names: Vec<&str> = Vec::new();
    for (g, _) in resource::group_versions() {
        if !g.is_empty() && !names.contains(&g) {
            names.push(g);
        }
    }
    let groups: Vec<Value> = names.into_iter().map(group_json).collect();
    response::json(
        200,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

pub fn group(g: &str) -> Response<Body> {
    let mut v = group_json(g);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    response::json(200, &v)
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Discovery entry of a subresource: (verbs, group, version, kind).
fn subresource(
    res: &ResourceInfo,
    sub: &str,
) -> (
    &'static [&'static str],
    &'static str,
    &'static str,
    &'static str,
) {
    match sub {
        "status" => (
            &["get", "patch", "update"],
            res.group,
            res.version,
            res.kind,
        ),
        "scale" => (&["get", "patch", "update"], "autoscaling", "v1", "Scale"),
        "binding" => (&["create"], "", "v1", "Binding"),
        "eviction" => (&["create"], "policy", "v1", "Eviction"),
        "log" => (&["get"], "", "v1", "Pod"),
        "exec" => (&["create", "get"], "", "v1", "PodExecOptions"),
        "attach" => (&["create", "get"], "", "v1", "PodAttachOptions"),
        "portforward" => (&["create", "get"], "", "v1", "PodPortForwardOptions"),
        "finalize" => (&["update"], "", "v1", "Namespace"),
        "proxy" => (
            &["create", "delete", "get", "patch", "update"],
            "",
            "v1",
            "NodeProxyOptions",
        ),
        _ => (&["get"], res.group, res.version, res.kind),
    }
}

pub fn resource_list(group: &str, version: &str) -> Value {
    let mut out: Vec<Value> = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced(),
            "kind": r.kind,
            "verbs": VERBS,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        out.push(entry);
        for sub in r.subresources {
            let (verbs, g, v, kind) = subresource(r, sub);
            let mut e = json!({
                "name": format!("{}/{}", r.plural, sub),
                "singularName": "",
                "namespaced": r.namespaced(),
                "kind": kind,
                "verbs": verbs,
            });
            if (g, v) != (r.group, r.version) {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            out.push(e);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out})
}

pub fn resources(group: &str, version: &str) -> Response<Body> {
    response::json(200, &resource_list(group, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_the_form_as_upstream_negotiates() {
        let v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
        let v2b = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
        let cases: &[(Option<&str>, Form)] = &[
            (None, Form::Legacy),
            (Some("application/json"), Form::Legacy),
            (Some("*/*"), Form::Legacy),
            // client-go 1.30+.
            (Some(&*format!("{v2},{v2b},application/json")), Form::Aggregated("v2")),
            // client-go 1.26-1.29.
            (Some(&*format!("{v2b},application/json")), Form::Aggregated("v2beta1")),
            (Some(&*format!("{v2b}, {v2}")), Form::Aggregated("v2beta1")),
            (Some(&*format!("application/json;q=0.9,{v2}")), Form::Aggregated("v2")),
            (Some(&*format!("{v2};q=0.5,application/json")), Form::Legacy),
            (Some(&*format!("{v2};q=0,application/json")), Form::Legacy),
            // Protobuf is not served: the next range wins.
            (
                Some("application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"),
                Form::Legacy,
            ),
            (Some("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList"), Form::Legacy),
            (Some("text/html"), Form::Legacy),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(*accept), *want, "{accept:?}");
        }
    }

    #[test]
    fn aggregated_lists_carry_every_resource_with_its_details() {
        let apis = aggregated(false, "v2");
        assert_eq!(apis["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = apis["items"].as_array().unwrap();
        assert!(items.iter().all(|g| g["metadata"]["name"] != ""));
        let apps = items
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .unwrap();
        let v1 = &apps["versions"][0];
        assert_eq!(
            (v1["version"].as_str(), v1["freshness"].as_str()),
            (Some("v1"), Some("Current"))
        );
        let deploy = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(
            deploy["responseKind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        assert_eq!(deploy["scope"], "Namespaced");
        assert_eq!(deploy["singularResource"], "deployment");
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert_eq!(deploy["categories"], json!(["all"]));
        let scale = deploy["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "scale")
            .unwrap();
        assert_eq!(scale["responseKind"]["kind"], "Scale");
        assert_eq!(scale["verbs"], json!(["get", "patch", "update"]));

        let core = aggregated(true, "v2beta1");
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        let items = core["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        let res = items[0]["versions"][0]["resources"].as_array().unwrap();
        let pods = res.iter().find(|r| r["resource"] == "pods").unwrap();
        let subs: Vec<&str> = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["subresource"].as_str().unwrap())
            .collect();
        assert!(
            ["status", "log", "exec", "binding", "eviction"]
                .iter()
                .all(|s| subs.contains(s)),
            "{subs:?}"
        );
        let ns = res.iter().find(|r| r["resource"] == "namespaces").unwrap();
        assert_eq!(ns["scope"], "Cluster");
    }

    #[test]
    fn resource_lists_carry_short_names_categories_and_subresources() {
        let apps = resource_list("apps", "v1");
        let rs = apps["resources"].as_array().unwrap();
        let deploy = rs.iter().find(|r| r["name"] == "deployments").unwrap();
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert_eq!(deploy["categories"], json!(["all"]));
        let scale = rs
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["kind"], "Scale");
        let core = resource_list("", "v1");
        assert_eq!(core["groupVersion"], "v1");
        let ns = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "namespaces")
            .unwrap();
        assert_eq!(ns["namespaced"], false);
    }
}
