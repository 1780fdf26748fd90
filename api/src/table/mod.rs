//! `meta.k8s.io/v1` Tables: what `kubectl get` prints.
//!
//! kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints
//! the columns the server chooses; without a Table it can show only NAME and AGE. The
//! columns and cells here follow upstream's server-side printers
//! (`pkg/printers/internalversion`): the same names, types and `-o wide` priorities,
//! and cells computed by the same rules (the pod STATUS reasoning, `80:30080/TCP`,
//! `+ 3 more...`, ages such as `2d5h`).
//!
//! As upstream, the server always computes every cell, wide ones included; kubectl
//! hides columns of priority 1 unless asked for `-o wide`.
//!
//! # Layout
//! - [`duration`]: `human_duration` and timestamp helpers for the AGE-like cells.
//! - `pod`: pods, with the STATUS/READY/RESTARTS algorithm.
//! - `workloads`: deployments and replicasets.
//! - `network`: services, endpoints, endpointslices, ingresses, ingressclasses.
//! - `cluster`: namespaces, nodes, leases, events (core and events.k8s.io).
//! - `config`: configmaps, secrets, serviceaccounts.

mod cluster;
mod config;
pub mod duration;
mod network;
mod pod;
mod workloads;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::resource::ResourceInfo;

pub use duration::human_duration;

/// One column of a Table (`metav1.TableColumnDefinition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    /// `string`, `integer`, `number`, `boolean` or `date`, as OpenAPI names types.
    pub ty: &'static str,
    /// `name` for the column kubectl uses as the object's name, otherwise empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0: always shown; 1: shown with `-o wide`.
    pub priority: i32,
}

impl Column {
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

pub(crate) const NAME_DESC: &str =
    "Name of the object: unique per kind within its namespace, or within the cluster for cluster-scoped kinds.";
pub(crate) const AGE_DESC: &str =
    "Time since the object was created, from metadata.creationTimestamp.";

pub(crate) const fn name_col() -> Column {
    Column {
        name: "Name",
        ty: "string",
        format: "name",
        description: NAME_DESC,
        priority: 0,
    }
}

pub(crate) const fn age_col() -> Column {
    Column {
        name: "Age",
        ty: "string",
        format: "",
        description: AGE_DESC,
        priority: 0,
    }
}

pub(crate) const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column {
        name,
        ty,
        format: "",
        description,
        priority: 0,
    }
}

pub(crate) const fn wide(
    name: &'static str,
    ty: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name,
        ty,
        format: "",
        description,
        priority: 1,
    }
}

/// Computes one row's cells, wide ones included.
type CellsFn = fn(&Value, DateTime<Utc>) -> Vec<Value>;

/// How a kind is printed: its columns and the function computing one row's cells.
struct Printer {
    columns: &'static [Column],
    cells: CellsFn,
}

/// The fallback for kinds without a printer, like upstream's default convertor.
static DEFAULT_COLUMNS: &[Column] = &[name_col(), age_col()];

fn default_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![json!(name(obj)), json!(age(obj, now))]
}

fn printer(res: &ResourceInfo) -> Printer {
    let (columns, cells): (&'static [Column], CellsFn) = match (res.group, res.plural) {
        ("", "pods") => (pod::COLUMNS, pod::cells),
        ("apps", "deployments") => (workloads::DEPLOYMENT_COLUMNS, workloads::deployment_cells),
        ("apps", "replicasets") => (workloads::REPLICASET_COLUMNS, workloads::replicaset_cells),
        ("", "services") => (network::SERVICE_COLUMNS, network::service_cells),
        ("", "endpoints") => (network::ENDPOINTS_COLUMNS, network::endpoints_cells),
        ("discovery.k8s.io", "endpointslices") => {
            (network::ENDPOINTSLICE_COLUMNS, network::endpointslice_cells)
        }
        ("networking.k8s.io", "ingresses") => (network::INGRESS_COLUMNS, network::ingress_cells),
        ("networking.k8s.io", "ingressclasses") => {
            (network::INGRESSCLASS_COLUMNS, network::ingressclass_cells)
        }
        ("", "namespaces") => (cluster::NAMESPACE_COLUMNS, cluster::namespace_cells),
        ("", "nodes") => (cluster::NODE_COLUMNS, cluster::node_cells),
        ("coordination.k8s.io", "leases") => (cluster::LEASE_COLUMNS, cluster::lease_cells),
        ("", "events") => (cluster::EVENT_COLUMNS, cluster::core_event_cells),
        ("events.k8s.io", "events") => (cluster::EVENT_COLUMNS, cluster::events_v1_cells),
        ("", "configmaps") => (config::CONFIGMAP_COLUMNS, config::configmap_cells),
        ("", "secrets") => (config::SECRET_COLUMNS, config::secret_cells),
        ("", "serviceaccounts") => (config::SERVICEACCOUNT_COLUMNS, config::serviceaccount_cells),
        _ => (DEFAULT_COLUMNS, default_cells),
    };
    Printer { columns, cells }
}

/// The column definitions (`name`, `type`, `format`, `description`, `priority`).
pub fn columns(res: &ResourceInfo) -> Vec<Value> {
    printer(res).columns.iter().map(Column::to_json).collect()
}

/// One row's cells for an object, in column order (wide columns included); `now` is
/// for ages.
pub fn cells(res: &ResourceInfo, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    (printer(res).cells)(obj, now)
}

/// Row conditions (`metav1.TableRowCondition`): upstream marks finished pods as
/// `Completed` so clients may dim or hide them.
pub fn row_conditions(res: &ResourceInfo, obj: &Value) -> Option<Value> {
    if (res.group, res.plural) != ("", "pods") {
        return None;
    }
    let (reason, message) = match str_at(obj, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

/// What each row carries besides its cells (query parameter `includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Include {
    /// No object.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl Include {
    /// Parses `includeObject`; `None` for a value Kubernetes does not define.
    pub fn from_query(value: &str) -> Option<Include> {
        match value {
            "None" => Some(Include::None),
            "Metadata" | "" => Some(Include::Metadata),
            "Object" => Some(Include::Object),
            _ => None,
        }
    }
}

/// One Table row: `cells`, `conditions` when the kind has any, and `object` as
/// `include` asks.
pub fn row(res: &ResourceInfo, obj: &Value, now: DateTime<Utc>, include: Include) -> Value {
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array(cells(res, obj, now)));
    if let Some(c) = row_conditions(res, obj) {
        row.insert("conditions".into(), c);
    }
    match include {
        Include::None => {}
        Include::Metadata => {
            let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
            row.insert(
                "object".into(),
                json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                }),
            );
        }
        Include::Object => {
            row.insert("object".into(), obj.clone());
        }
    }
    Value::Object(row)
}

/// Builds the whole `meta.k8s.io/v1` Table for a list (or a single object) of one
/// resource.
pub fn table(
    res: &ResourceInfo,
    objs: &[Value],
    now: DateTime<Utc>,
    include: Include,
    resource_version: Option<&str>,
    continue_token: Option<&str>,
) -> Value {
    let p = printer(res);
    let mut metadata = Map::new();
    if let Some(rv) = resource_version {
        metadata.insert("resourceVersion".into(), json!(rv));
    }
    if let Some(c) = continue_token.filter(|c| !c.is_empty()) {
        metadata.insert("continue".into(), json!(c));
    }
    let rows: Vec<Value> = objs.iter().map(|obj| row(res, obj, now, include)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": p.columns.iter().map(Column::to_json).collect::<Vec<_>>(),
        "rows": rows,
    })
}

// --- small JSON readers shared by the printers ---------------------------------------

/// The string at a JSON pointer, or "" (Go's zero value, which upstream prints).
pub(crate) fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn opt_str<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

pub(crate) fn int_at(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

pub(crate) fn arr_at<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(crate) fn map_len(v: &Value, ptr: &str) -> usize {
    v.pointer(ptr)
        .and_then(Value::as_object)
        .map(Map::len)
        .unwrap_or(0)
}

pub(crate) fn name(obj: &Value) -> &str {
    str_at(obj, "/metadata/name")
}

pub(crate) fn age(obj: &Value, now: DateTime<Utc>) -> String {
    duration::since(opt_str(obj, "/metadata/creationTimestamp"), now)
}

/// `a=1,b=2` sorted by key, or `<none>` (apimachinery's `labels.FormatLabels`).
pub(crate) fn format_labels(map: Option<&Value>) -> String {
    let mut pairs: Vec<(String, String)> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A `LabelSelector` in selector syntax (`app=web,tier in (a,b),!canary`), requirements
/// sorted by key as apimachinery prints them; "" for an empty or missing selector.
pub(crate) fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else { return String::new() };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())));
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = str_at(e, "/key");
        let mut values: Vec<&str> = arr_at(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort();
        values.dedup();
        let text = match str_at(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({})", values.join(",")),
        };
        reqs.push((key.to_string(), text));
    }
    // Stable: a key with both a label and an expression keeps the label first.
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

/// Container names and images joined by commas (upstream's `layoutContainerCells`).
pub(crate) fn container_cells(pod_spec: Option<&Value>) -> (String, String) {
    let containers = pod_spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// Joins up to three items and tells how many more there were
/// (`a,b,c + 2 more...`), as the endpoint and host columns do.
pub(crate) fn list_with_more(list: &[String], total: usize, max: usize, empty: &str) -> String {
    let ret = list.join(",");
    if total > max {
        return format!("{ret} + {} more...", total - max);
    }
    if ret.is_empty() {
        return empty.to_string();
    }
    ret
}

#[cfg(test)]
pub(crate) mod testutil {
    use chrono::{DateTime, Utc};

    /// The fixed "now" every table test uses.
    pub fn now() -> DateTime<Utc> {
        super::duration::parse_time("2024-05-01T12:00:00Z").unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::now;
    use super::*;
    use crate::resource::{lookup, RESOURCES};

    #[test]
    fn every_resource_has_a_name_column_and_cells_matching_columns() {
        let obj = json!({"metadata": {"name": "x", "creationTimestamp": "2024-05-01T11:59:00Z"}});
        for res in RESOURCES {
            let cols = columns(res);
            let cells = cells(res, &obj, now());
            assert_eq!(
                cols.len(),
                cells.len(),
                "{}: one cell per column",
                res.plural
            );
            assert!(
                cols.iter()
                    .any(|c| c["name"] == "Name" && c["format"] == "name"),
                "{}: has a Name column",
                res.plural
            );
            assert_ne!(
                printer(res).columns.as_ptr(),
                DEFAULT_COLUMNS.as_ptr(),
                "{}: has its own printer",
                res.plural
            );
        }
    }

    #[test]
    fn table_with_metadata_rows_is_what_kubectl_expects() {
        let res = lookup("", "v1", "configmaps").unwrap();
        let objs = vec![
            json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d", "creationTimestamp": "2024-05-01T11:00:00Z"}, "data": {"k": "v"}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "b", "namespace": "d", "creationTimestamp": "2024-04-29T07:00:00Z"}}),
        ];
        let t = table(
            res,
            &objs,
            now(),
            Include::default(),
            Some("42"),
            Some("tok"),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "42", "continue": "tok"})
        );
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
        assert_eq!(t["columnDefinitions"][1]["name"], "Data");
        assert_eq!(t["rows"][0]["cells"], json!(["a", 1, "60m"]));
        assert_eq!(t["rows"][1]["cells"], json!(["b", 0, "2d5h"]));
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": {"name": "a", "namespace": "d", "creationTimestamp": "2024-05-01T11:00:00Z"}})
        );
    }

    #[test]
    fn include_object_and_none_change_only_the_row_object() {
        let res = lookup("", "v1", "configmaps").unwrap();
        let obj = json!({"kind": "ConfigMap", "metadata": {"name": "a"}, "data": {}});
        let whole = table(
            res,
            std::slice::from_ref(&obj),
            now(),
            Include::Object,
            None,
            None,
        );
        assert_eq!(whole["rows"][0]["object"], obj);
        assert_eq!(whole["metadata"], json!({}));
        let none = table(
            res,
            std::slice::from_ref(&obj),
            now(),
            Include::None,
            None,
            Some(""),
        );
        assert!(none["rows"][0].get("object").is_none());
        assert_eq!(none["rows"][0]["cells"], json!(["a", 0, "<unknown>"]));
        assert_eq!(none["metadata"], json!({}));
    }

    #[test]
    fn include_parses_the_query_values() {
        assert_eq!(Include::from_query("None"), Some(Include::None));
        assert_eq!(Include::from_query("Metadata"), Some(Include::Metadata));
        assert_eq!(Include::from_query("Object"), Some(Include::Object));
        assert_eq!(Include::from_query("object"), None);
    }

    #[test]
    fn finished_pods_carry_a_completed_row_condition() {
        let res = lookup("", "v1", "pods").unwrap();
        let done = json!({"metadata": {"name": "p"}, "status": {"phase": "Succeeded"}});
        let t = table(res, &[done], now(), Include::None, None, None);
        assert_eq!(t["rows"][0]["conditions"][0]["type"], "Completed");
        assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Succeeded");
        let running = json!({"metadata": {"name": "p"}, "status": {"phase": "Running"}});
        let t = table(res, &[running], now(), Include::None, None, None);
        assert!(t["rows"][0].get("conditions").is_none());
    }

    #[test]
    fn selectors_print_in_selector_syntax_sorted_by_key() {
        let sel = json!({
            "matchLabels": {"tier": "web", "app": "shop"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "gpu", "operator": "Exists"}
            ]
        });
        assert_eq!(
            selector_string(Some(&sel)),
            "app=shop,!canary,env in (dev,prod),gpu,tier=web,zone notin (b)"
        );
        assert_eq!(selector_string(Some(&json!({}))), "");
        assert_eq!(selector_string(None), "");
    }

    #[test]
    fn labels_format_sorted_or_none() {
        assert_eq!(format_labels(Some(&json!({"b": "2", "a": "1"}))), "a=1,b=2");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(None), "<none>");
    }
}
