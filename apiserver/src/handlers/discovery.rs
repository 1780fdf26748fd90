//! Discovery documents: what kubectl reads to learn which resources exist, their short
//! names, verbs, categories and subresources. Built from the resource registry, never
//! written by hand per resource.

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
