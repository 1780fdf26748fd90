//! Output formats shared by the commands: server-side Tables printed as kubectl prints
//! them (uppercase headers, columns three spaces apart, `-o wide` adds the priority-1
//! columns, `-A` a NAMESPACE column, `--show-labels` a LABELS column), `-o name|yaml|json`,
//! a `-o jsonpath=` subset, and kubectl's human durations. All pure functions.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use serde_json::{Map, Value};

/// Left-aligned columns separated by three spaces, the last column unpadded (kubectl's
/// tabwriter settings: minwidth 0, padding 3).
pub fn align(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// How to turn a Table into rows.
#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    pub wide: bool,
    pub show_labels: bool,
    /// Add a leading NAMESPACE column (`-A`).
    pub with_namespace: bool,
    /// Print names as `PREFIX/NAME` (several types, or `all`).
    pub name_prefix: Option<String>,
    pub no_headers: bool,
}

/// Renders a cell value as kubectl does.
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => "<none>".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// `a=b,c=d` sorted by key, `<none>` when empty.
pub fn format_labels(labels: Option<&Map<String, Value>>) -> String {
    let sorted: BTreeMap<&String, String> = labels
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
        .collect();
    if sorted.is_empty() {
        return "<none>".into();
    }
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Header plus rows of a `meta.k8s.io/v1` Table.
pub fn table_rows(table: &Value, opts: &TableOptions) -> Vec<Vec<String>> {
    let columns: Vec<&Value> = table["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let shown: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| opts.wide || c["priority"].as_i64().unwrap_or(0) == 0)
        .map(|(i, _)| i)
        .collect();
    let name_col = columns
        .iter()
        .position(|c| c["name"].as_str() == Some("Name"));
    let mut rows = Vec::new();
    if !opts.no_headers {
        let mut header = Vec::new();
        if opts.with_namespace {
            header.push("NAMESPACE".to_string());
        }
        for i in &shown {
            header.push(
                columns[*i]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_uppercase(),
            );
        }
        if opts.show_labels {
            header.push("LABELS".into());
        }
        rows.push(header);
    }
    for row in table["rows"].as_array().into_iter().flatten() {
        let cells = row["cells"].as_array().cloned().unwrap_or_default();
        let meta = &row["object"]["metadata"];
        let mut line = Vec::new();
        if opts.with_namespace {
            line.push(meta["namespace"].as_str().unwrap_or_default().to_string());
        }
        for i in &shown {
            let mut text = cells.get(*i).map(cell_text).unwrap_or_default();
            if Some(*i) == name_col {
                if let Some(p) = &opts.name_prefix {
                    text = format!("{p}/{text}");
                }
            }
            line.push(text);
        }
        if opts.show_labels {
            line.push(format_labels(meta["labels"].as_object()));
        }
        rows.push(line);
    }
    rows
}

/// The objects of a list reply (or the object itself), with `kind`/`apiVersion` filled
/// in from the list as kubectl does for `-o yaml`.
pub fn items_of(reply: &Value, api_version: &str, kind: &str) -> Vec<Value> {
    let mut items = match reply["items"].as_array() {
        Some(items) => items.clone(),
        None => vec![reply.clone()],
    };
    for it in &mut items {
        if let Some(map) = it.as_object_mut() {
            map.entry("apiVersion")
                .or_insert_with(|| Value::String(api_version.into()));
            map.entry("kind")
                .or_insert_with(|| Value::String(kind.into()));
        }
    }
    items
}

/// One object as-is, several as a `v1 List` (what kubectl prints for `-o yaml|json`).
pub fn list_or_single(items: Vec<Value>, single: bool) -> Value {
    if single && items.len() == 1 {
        return items.into_iter().next().unwrap_or(Value::Null);
    }
    serde_json::json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
}

/// Keys sorted at every level, as kubectl prints objects (it goes through Go maps).
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

pub fn to_yaml(v: &Value) -> anyhow::Result<String> {
    Ok(serde_yaml::to_string(&sorted(v))?)
}

pub fn to_json(v: &Value) -> anyhow::Result<String> {
    // kubectl indents JSON by four spaces.
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(&sorted(v), &mut ser)?;
    let mut s = String::from_utf8(buf)?;
    s.push('\n');
    Ok(s)
}

/// kubectl's `HumanDuration` (`5s`, `3m20s`, `45m`, `2h10m`, `30h`, `5d3h`, `120d`, `3y`).
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let rem = s % 60;
        return if rem == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rem}s")
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        let rem = (s % 3600) / 60;
        return if rem == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rem}m")
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 192 {
        let rem = h % 24;
        return if rem == 0 {
            format!("{}d", h / 24)
        } else {
            format!("{}d{rem}h", h / 24)
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    let y = h / (24 * 365);
    if y < 8 {
        let d = (h / 24) % 365;
        return if d == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{d}d")
        };
    }
    format!("{y}y")
}

/// Age of an RFC 3339 timestamp relative to now; `<unknown>` when absent.
pub fn age(timestamp: Option<&str>) -> String {
    let Some(ts) = timestamp else {
        return "<unknown>".into();
    };
    match chrono::DateTime::parse_from_rfc3339(ts) {
        Ok(t) => human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()),
        Err(_) => "<unknown>".into(),
    }
}

// ---- jsonpath (the subset kubectl users reach for) ----

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Expr(Vec<Step>),
    Range(Vec<Step>, Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
}

/// Evaluates a kubectl `-o jsonpath=` template: `{.a.b}`, `{.items[*].metadata.name}`,
/// `{.items[0]}`, `{range .items[*]}...{end}`, `{"\n"}`, `{@}`.
pub fn jsonpath(template: &str, data: &Value) -> anyhow::Result<String> {
    let pieces = parse_template(template)?;
    let mut out = String::new();
    render(&pieces, data, &mut out)?;
    Ok(out)
}

fn parse_template(t: &str) -> anyhow::Result<Vec<Piece>> {
    let mut stack: Vec<(Vec<Step>, Vec<Piece>)> = vec![(Vec::new(), Vec::new())];
    let mut rest = t;
    while !rest.is_empty() {
        let Some(open) = rest.find('{') else {
            stack
                .last_mut()
                .expect("root")
                .1
                .push(Piece::Text(rest.to_string()));
            break;
        };
        if open > 0 {
            stack
                .last_mut()
                .expect("root")
                .1
                .push(Piece::Text(rest[..open].to_string()));
        }
        let close = rest[open..].find('}').ok_or_else(|| {
            anyhow!("error parsing jsonpath {t}: unclosed action; every {{ needs a }}")
        })? + open;
        let inner = rest[open + 1..close].trim();
        rest = &rest[close + 1..];
        if let Some(expr) = inner.strip_prefix("range ") {
            stack.push((parse_path(expr.trim())?, Vec::new()));
        } else if inner == "end" {
            if stack.len() < 2 {
                bail!("error parsing jsonpath {t}: {{end}} without {{range}}");
            }
            let (path, body) = stack.pop().expect("range");
            stack
                .last_mut()
                .expect("root")
                .1
                .push(Piece::Range(path, body));
        } else if let Some(lit) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            let text = lit.replace("\\n", "\n").replace("\\t", "\t");
            stack.last_mut().expect("root").1.push(Piece::Text(text));
        } else {
            stack
                .last_mut()
                .expect("root")
                .1
                .push(Piece::Expr(parse_path(inner)?));
        }
    }
    if stack.len() != 1 {
        bail!("error parsing jsonpath {t}: {{range}} without {{end}}");
    }
    Ok(stack.pop().expect("root").1)
}

fn parse_path(expr: &str) -> anyhow::Result<Vec<Step>> {
    let mut steps = Vec::new();
    let mut rest = expr.strip_prefix('$').unwrap_or(expr);
    if rest == "@" || rest.is_empty() {
        return Ok(steps);
    }
    rest = rest.strip_prefix('@').unwrap_or(rest);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                bail!("error parsing jsonpath {expr}: empty field name");
            }
            steps.push(Step::Field(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| anyhow!("error parsing jsonpath {expr}: unclosed ["))?;
            let idx = &r[..end];
            if idx == "*" {
                steps.push(Step::All);
            } else if let Some(q) = idx.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                steps.push(Step::Field(q.to_string()));
            } else {
                let n = idx
                    .parse()
                    .map_err(|_| anyhow!("error parsing jsonpath {expr}: bad index [{idx}]"))?;
                steps.push(Step::Index(n));
            }
            rest = &r[end + 1..];
        } else {
            bail!("error parsing jsonpath {expr}: expected . or [ at {rest:?}");
        }
    }
    Ok(steps)
}

fn eval<'a>(steps: &[Step], data: &'a Value) -> Vec<&'a Value> {
    let mut cur = vec![data];
    for step in steps {
        let mut next = Vec::new();
        for v in cur {
            match step {
                Step::Field(f) => {
                    if let Some(x) = v.get(f) {
                        next.push(x);
                    }
                }
                Step::Index(i) => {
                    if let Some(a) = v.as_array() {
                        let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                        if let Some(x) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                            next.push(x);
                        }
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
            }
        }
        cur = next;
    }
    cur
}

fn render(pieces: &[Piece], data: &Value, out: &mut String) -> anyhow::Result<()> {
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Expr(steps) => {
                let vals: Vec<String> = eval(steps, data)
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.push_str(&vals.join(" "));
            }
            Piece::Range(steps, body) => {
                for v in eval(steps, data) {
                    render(body, v, out)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_are_three_spaces_apart_and_last_is_unpadded() {
        let rows = vec![
            vec!["NAME".to_string(), "READY".into(), "AGE".into()],
            vec!["web-1".to_string(), "1/1".into(), "5s".into()],
        ];
        assert_eq!(align(&rows), "NAME    READY   AGE\nweb-1   1/1     5s\n");
    }

    fn table() -> Value {
        json!({
            "kind": "Table",
            "columnDefinitions": [
                {"name": "Name", "type": "string", "priority": 0},
                {"name": "Ready", "type": "string", "priority": 0},
                {"name": "IP", "type": "string", "priority": 1},
                {"name": "Age", "type": "string", "priority": 0}
            ],
            "rows": [
                {"cells": ["web-1", "1/1", "10.0.0.5", "5s"], "object": {"metadata": {"name": "web-1", "namespace": "prod", "labels": {"b": "2", "a": "1"}}}},
                {"cells": ["db", "0/1", null, "2m"], "object": {"metadata": {"name": "db", "namespace": "dev"}}}
            ]
        })
    }

    #[test]
    fn table_options_shape_the_columns() {
        let cases: Vec<(TableOptions, &str)> = vec![
            (TableOptions::default(), "NAME    READY   AGE\nweb-1   1/1     5s\ndb      0/1     2m\n"),
            (
                TableOptions { wide: true, ..Default::default() },
                "NAME    READY   IP         AGE\nweb-1   1/1     10.0.0.5   5s\ndb      0/1     <none>     2m\n",
            ),
            (
                TableOptions { with_namespace: true, show_labels: true, ..Default::default() },
                "NAMESPACE   NAME    READY   AGE   LABELS\nprod        web-1   1/1     5s    a=1,b=2\ndev         db      0/1     2m    <none>\n",
            ),
            (
                TableOptions { name_prefix: Some("pod".into()), no_headers: true, ..Default::default() },
                "pod/web-1   1/1   5s\npod/db      0/1   2m\n",
            ),
        ];
        for (opts, want) in cases {
            assert_eq!(align(&table_rows(&table(), &opts)), want, "{opts:?}");
        }
    }

    #[test]
    fn durations_match_kubectl() {
        let cases = [
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (45 * 60, "45m"),
            (3 * 3600 + 600, "3h10m"),
            (30 * 3600, "30h"),
            (5 * 86400 + 3 * 3600, "5d3h"),
            (100 * 86400, "100d"),
            (3 * 365 * 86400, "3y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn jsonpath_subset() {
        let data = json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app": "x"}}, "spec": {"replicas": 2}},
            {"metadata": {"name": "b"}, "spec": {"replicas": 3}}
        ]});
        let cases = [
            ("{.items[*].metadata.name}", "a b"),
            ("{.items[0].spec.replicas}", "2"),
            ("{.items[-1].metadata.name}", "b"),
            (
                "{range .items[*]}{.metadata.name}={.spec.replicas}{\"\\n\"}{end}",
                "a=2\nb=3\n",
            ),
            ("name: {.items[0].metadata.labels['app']}", "name: x"),
            ("{.kind}", "List"),
            ("{.missing}", ""),
        ];
        for (t, want) in cases {
            assert_eq!(jsonpath(t, &data).unwrap(), want, "{t}");
        }
        assert!(jsonpath("{.items", &data).is_err());
        assert!(jsonpath("{range .items[*]}{.x}", &data).is_err());
    }

    #[test]
    fn lists_wrap_several_objects() {
        let one = list_or_single(vec![json!({"a": 1})], true);
        assert_eq!(one, json!({"a": 1}));
        let many = list_or_single(vec![json!({"a": 1}), json!({"a": 2})], true);
        assert_eq!(many["kind"], "List");
        assert_eq!(many["items"].as_array().unwrap().len(), 2);
    }
}
