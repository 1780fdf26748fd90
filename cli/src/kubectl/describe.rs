//! `skiff describe TYPE [NAME]`: human sections for pods, deployments, replicasets,
//! services, endpoints, nodes, ingresses and namespaces (other kinds get a generic dump), followed
//! by the object's recent Events. Layout follows kubectl: `Key:<tab>value` lines,
//! two-space indentation per level, aligned like Go's tabwriter with padding 2.

use std::io::Write;

use clap::Args;
use serde_json::{Map, Value};

use super::client::Ctx;
use super::config::KubeFlags;
use super::discovery::{parse_targets, Resource};
use super::printer::{age, format_labels};

#[derive(Debug, Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// TYPE [NAME...] or TYPE/NAME...; without a name, every object of the type.
    #[arg(required = true)]
    pub resources: Vec<String>,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Show events.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub show_events: bool,
}

/// Aligns `\t`-separated cells like Go's text/tabwriter (minwidth 0, padding 2): a
/// column is aligned over each run of consecutive lines that have a cell there; the
/// last cell of a line is not part of any column.
pub fn tabwrite(text: &str, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<Vec<usize>> = lines.iter().map(|l| vec![0; l.len()]).collect();
    fn block(
        lines: &[Vec<&str>],
        widths: &mut [Vec<usize>],
        from: usize,
        to: usize,
        col: usize,
        padding: usize,
    ) {
        let mut i = from;
        while i < to {
            if lines[i].len() > col + 1 {
                let start = i;
                let mut w = 0;
                while i < to && lines[i].len() > col + 1 {
                    w = w.max(lines[i][col].chars().count());
                    i += 1;
                }
                for row in widths.iter_mut().take(i).skip(start) {
                    row[col] = w + padding;
                }
                block(lines, widths, start, i, col + 1, padding);
            } else {
                i += 1;
            }
        }
    }
    block(&lines, &mut widths, 0, lines.len(), 0, padding);
    let mut out = String::new();
    for (cells, w) in lines.iter().zip(&widths) {
        let mut line = String::new();
        for (i, c) in cells.iter().enumerate() {
            line.push_str(c);
            if i + 1 < cells.len() {
                line.extend(std::iter::repeat_n(
                    ' ',
                    w[i].saturating_sub(c.chars().count()),
                ));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Builds describe text: `w.kv(level, "Key", value)`.
#[derive(Default)]
pub struct Describer {
    buf: String,
}

impl Describer {
    pub fn line(&mut self, level: usize, text: &str) {
        self.buf.push_str(&"  ".repeat(level));
        self.buf.push_str(text);
        self.buf.push('\n');
    }

    pub fn kv(&mut self, level: usize, key: &str, value: &str) {
        self.line(level, &format!("{key}:\t{value}"));
    }

    /// A map as kubectl prints labels: one `k=v` per line, `<none>` when empty.
    pub fn map(&mut self, level: usize, key: &str, map: Option<&Map<String, Value>>, sep: &str) {
        let mut entries: Vec<(&String, String)> = map
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k,
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
        entries.sort();
        if entries.is_empty() {
            self.kv(level, key, "<none>");
            return;
        }
        for (i, (k, v)) in entries.iter().enumerate() {
            let text = format!("{k}{sep}{v}");
            if i == 0 {
                self.kv(level, key, &text);
            } else {
                self.line(level, &format!("\t{text}"));
            }
        }
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn or_none(x: &str) -> &str {
    if x.is_empty() {
        "<none>"
    } else {
        x
    }
}

/// kubectl's timestamp form: `Mon, 02 Jan 2006 15:04:05 -0700`.
fn timestamp(ts: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(ts)
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S %z").to_string())
        .unwrap_or_else(|_| ts.to_string())
}

fn common_header(w: &mut Describer, obj: &Value, namespaced: bool) {
    w.kv(0, "Name", s(obj, "/metadata/name"));
    if namespaced {
        w.kv(0, "Namespace", s(obj, "/metadata/namespace"));
    }
}

fn selector_text(sel: &Value) -> String {
    let labels = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .or_else(|| {
            sel.as_object()
                .filter(|_| sel.get("matchExpressions").is_none())
        });
    let mut parts: Vec<String> = labels
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "matchLabels")
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let vals: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{} in ({})", s(e, "/key"), vals.join(",")),
            "NotIn" => format!("{} notin ({})", s(e, "/key"), vals.join(",")),
            "Exists" => s(e, "/key").to_string(),
            _ => format!("!{}", s(e, "/key")),
        });
    }
    parts.sort();
    parts.join(",")
}

fn ports_text(c: &Value) -> (String, String) {
    let ports: Vec<&Value> = c["ports"].as_array().into_iter().flatten().collect();
    if ports.is_empty() {
        return ("<none>".into(), "<none>".into());
    }
    let proto = |p: &Value| p["protocol"].as_str().unwrap_or("TCP").to_string();
    let port = ports
        .iter()
        .map(|p| format!("{}/{}", p["containerPort"], proto(p)))
        .collect::<Vec<_>>()
        .join(", ");
    let host = ports
        .iter()
        .map(|p| format!("{}/{}", p["hostPort"].as_i64().unwrap_or(0), proto(p)))
        .collect::<Vec<_>>()
        .join(", ");
    (port, host)
}

fn env_lines(w: &mut Describer, level: usize, c: &Value) {
    let env: Vec<&Value> = c["env"].as_array().into_iter().flatten().collect();
    if env.is_empty() {
        w.kv(level, "Environment", "<none>");
        return;
    }
    w.line(level, "Environment:");
    for e in env {
        let value = match e.get("value").and_then(Value::as_str) {
            Some(v) => v.to_string(),
            None if e.get("valueFrom").is_some() => "<set from a reference>".to_string(),
            None => String::new(),
        };
        w.kv(level + 1, s(e, "/name"), &value);
    }
}

fn mounts_line(w: &mut Describer, level: usize, c: &Value) {
    let mounts: Vec<&Value> = c["volumeMounts"].as_array().into_iter().flatten().collect();
    if mounts.is_empty() {
        w.kv(level, "Mounts", "<none>");
        return;
    }
    w.line(level, "Mounts:");
    for m in mounts {
        let ro = if m["readOnly"].as_bool() == Some(true) {
            "ro"
        } else {
            "rw"
        };
        w.line(
            level + 1,
            &format!("{} from {} ({ro})", s(m, "/mountPath"), s(m, "/name")),
        );
    }
}

/// Containers of a pod spec, with state from `statuses` when given (pods).
/// kubectl indents a pod's container names by two spaces and a template's by three;
/// the fields below are at four either way.
fn containers(w: &mut Describer, level: usize, spec: &Value, statuses: Option<&Value>) {
    w.line(level, "Containers:");
    for c in spec["containers"].as_array().into_iter().flatten() {
        let name = s(c, "/name");
        let indent = if level == 0 { "" } else { " " };
        w.line(1, &format!("{indent}{name}:"));
        let st = statuses
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| x["name"] == name));
        let l = 2;
        if let Some(st) = st {
            w.kv(l, "Container ID", s(st, "/containerID"));
        }
        w.kv(l, "Image", s(c, "/image"));
        if let Some(st) = st {
            w.kv(l, "Image ID", s(st, "/imageID"));
        }
        let (port, host) = ports_text(c);
        w.kv(l, "Port", &port);
        w.kv(l, "Host Port", &host);
        if let Some(cmd) = c["command"].as_array() {
            w.line(l, "Command:");
            for x in cmd {
                w.line(l + 1, x.as_str().unwrap_or_default());
            }
        }
        if let Some(args) = c["args"].as_array() {
            w.line(l, "Args:");
            for x in args {
                w.line(l + 1, x.as_str().unwrap_or_default());
            }
        }
        if let Some(st) = st {
            state_lines(w, l, "State", &st["state"]);
            if st["lastState"].as_object().is_some_and(|m| !m.is_empty()) {
                state_lines(w, l, "Last State", &st["lastState"]);
            }
            w.kv(
                l,
                "Ready",
                if st["ready"].as_bool() == Some(true) {
                    "True"
                } else {
                    "False"
                },
            );
            w.kv(
                l,
                "Restart Count",
                &st["restartCount"].as_i64().unwrap_or(0).to_string(),
            );
        }
        for kind in ["limits", "requests"] {
            if let Some(m) = c
                .pointer(&format!("/resources/{kind}"))
                .and_then(Value::as_object)
            {
                w.line(
                    l,
                    &format!(
                        "{}:",
                        if kind == "limits" {
                            "Limits"
                        } else {
                            "Requests"
                        }
                    ),
                );
                for (k, v) in m {
                    w.kv(l + 1, k, v.as_str().unwrap_or_default());
                }
            }
        }
        for probe in [
            ("livenessProbe", "Liveness"),
            ("readinessProbe", "Readiness"),
            ("startupProbe", "Startup"),
        ] {
            if let Some(p) = c.get(probe.0) {
                w.kv(l, probe.1, &probe_text(p));
            }
        }
        env_lines(w, l, c);
        mounts_line(w, l, c);
    }
}

fn probe_text(p: &Value) -> String {
    let how = if let Some(h) = p.get("httpGet") {
        let scheme = h["scheme"].as_str().unwrap_or("HTTP").to_lowercase();
        let port = h["port"]
            .as_i64()
            .map(|n| n.to_string())
            .unwrap_or_else(|| s(h, "/port").to_string());
        format!("http-get {scheme}://:{port}{}", s(h, "/path"))
    } else if let Some(t) = p.get("tcpSocket") {
        format!(
            "tcp-socket :{}",
            t["port"]
                .as_i64()
                .map(|n| n.to_string())
                .unwrap_or_else(|| s(t, "/port").to_string())
        )
    } else if let Some(e) = p.get("exec") {
        let cmd: Vec<&str> = e["command"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        format!("exec [{}]", cmd.join(" "))
    } else {
        "unknown".into()
    };
    let n = |k: &str, d: i64| p[k].as_i64().unwrap_or(d);
    format!(
        "{how} delay={}s timeout={}s period={}s #success={} #failure={}",
        n("initialDelaySeconds", 0),
        n("timeoutSeconds", 1),
        n("periodSeconds", 10),
        n("successThreshold", 1),
        n("failureThreshold", 3)
    )
}

fn state_lines(w: &mut Describer, level: usize, key: &str, state: &Value) {
    if let Some(r) = state.get("running") {
        w.kv(level, key, "Running");
        w.kv(level + 1, "Started", &timestamp(s(r, "/startedAt")));
    } else if let Some(t) = state.get("terminated") {
        w.kv(level, key, "Terminated");
        w.kv(level + 1, "Reason", s(t, "/reason"));
        w.kv(
            level + 1,
            "Exit Code",
            &t["exitCode"].as_i64().unwrap_or(0).to_string(),
        );
        w.kv(level + 1, "Started", &timestamp(s(t, "/startedAt")));
        w.kv(level + 1, "Finished", &timestamp(s(t, "/finishedAt")));
    } else if let Some(wt) = state.get("waiting") {
        w.kv(level, key, "Waiting");
        w.kv(level + 1, "Reason", s(wt, "/reason"));
    } else {
        w.kv(level, key, "Waiting");
    }
}

fn conditions_table(w: &mut Describer, obj: &Value, with_reason: bool) {
    let conds: Vec<&Value> = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if conds.is_empty() {
        return;
    }
    w.line(0, "Conditions:");
    if with_reason {
        w.line(1, "Type\tStatus\tReason");
        w.line(1, "----\t------\t------");
        for c in conds {
            w.line(
                1,
                &format!(
                    "{}\t{}\t{}",
                    s(c, "/type"),
                    s(c, "/status"),
                    s(c, "/reason")
                ),
            );
        }
    } else {
        w.line(1, "Type\tStatus");
        for c in conds {
            // kubectl leaves a space after each pod condition cell.
            w.line(1, &format!("{} \t{} ", s(c, "/type"), s(c, "/status")));
        }
    }
}

fn tolerations_text(spec: &Value) -> Vec<String> {
    spec["tolerations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let mut x = s(t, "/key").to_string();
            if let Some(v) = t["value"].as_str().filter(|v| !v.is_empty()) {
                x.push('=');
                x.push_str(v);
            }
            if let Some(e) = t["effect"].as_str().filter(|v| !v.is_empty()) {
                x.push(':');
                x.push_str(e);
            }
            if t["operator"] == "Exists" && t["value"].as_str().unwrap_or("").is_empty() {
                x.push_str(" op=Exists");
            }
            if let Some(sec) = t["tolerationSeconds"].as_i64() {
                x.push_str(&format!(" for {sec}s"));
            }
            x
        })
        .collect()
}

fn multi(w: &mut Describer, level: usize, key: &str, values: &[String]) {
    if values.is_empty() {
        w.kv(level, key, "<none>");
        return;
    }
    for (i, v) in values.iter().enumerate() {
        if i == 0 {
            w.kv(level, key, v);
        } else {
            w.line(level, &format!("\t{v}"));
        }
    }
}

fn annotations(w: &mut Describer, level: usize, obj: &Value) {
    let mut a = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    // kubectl hides the (long) last-applied copy.
    a.remove(super::apply::LAST_APPLIED);
    w.map(level, "Annotations", Some(&a), ": ");
}

fn describe_pod(w: &mut Describer, p: &Value) {
    common_header(w, p, true);
    if let Some(prio) = p.pointer("/spec/priority").and_then(Value::as_i64) {
        w.kv(0, "Priority", &prio.to_string());
    }
    w.kv(
        0,
        "Service Account",
        or_none(s(p, "/spec/serviceAccountName")),
    );
    let node = s(p, "/spec/nodeName");
    let node = if node.is_empty() {
        "<none>".to_string()
    } else {
        format!("{node}/{}", s(p, "/status/hostIP"))
    };
    w.kv(0, "Node", &node);
    if let Some(t) = p.pointer("/status/startTime").and_then(Value::as_str) {
        w.kv(0, "Start Time", &timestamp(t));
    }
    w.map(
        0,
        "Labels",
        p.pointer("/metadata/labels").and_then(Value::as_object),
        "=",
    );
    annotations(w, 0, p);
    let status = if p.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else {
        s(p, "/status/phase")
    };
    w.kv(0, "Status", status);
    w.kv(0, "IP", s(p, "/status/podIP"));
    let ips: Vec<&str> = p
        .pointer("/status/podIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str())
        .collect();
    if ips.is_empty() {
        w.kv(0, "IPs", "<none>");
    } else {
        w.line(0, "IPs:");
        for ip in ips {
            w.kv(1, "IP", ip);
        }
    }
    if let Some(o) = p
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|o| o["controller"] == true))
    {
        w.kv(
            0,
            "Controlled By",
            &format!("{}/{}", s(o, "/kind"), s(o, "/name")),
        );
    }
    containers(w, 0, &p["spec"], p.pointer("/status/containerStatuses"));
    conditions_table(w, p, false);
    volumes(w, &p["spec"]);
    w.kv(0, "QoS Class", s(p, "/status/qosClass"));
    w.map(
        0,
        "Node-Selectors",
        p.pointer("/spec/nodeSelector").and_then(Value::as_object),
        "=",
    );
    multi(w, 0, "Tolerations", &tolerations_text(&p["spec"]));
}

fn volumes(w: &mut Describer, spec: &Value) {
    let vols: Vec<&Value> = spec["volumes"].as_array().into_iter().flatten().collect();
    if vols.is_empty() {
        w.kv(0, "Volumes", "<none>");
        return;
    }
    w.line(0, "Volumes:");
    for v in vols {
        w.line(1, &format!("{}:", s(v, "/name")));
        let kind = v
            .as_object()
            .and_then(|m| m.keys().find(|k| *k != "name").cloned())
            .unwrap_or_default();
        w.kv(2, "Type", &kind);
    }
}

fn pod_template(w: &mut Describer, t: &Value) {
    w.line(0, "Pod Template:");
    w.map(
        1,
        "Labels",
        t.pointer("/metadata/labels").and_then(Value::as_object),
        "=",
    );
    if let Some(sa) = t
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .filter(|x| !x.is_empty())
    {
        w.kv(1, "Service Account", sa);
    }
    if t.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| !a.is_empty())
    {
        w.map(
            1,
            "Annotations",
            t.pointer("/metadata/annotations")
                .and_then(Value::as_object),
            ": ",
        );
    }
    containers(w, 1, &t["spec"], None);
    let vols: Vec<&Value> = t
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if vols.is_empty() {
        w.kv(1, "Volumes", "<none>");
    }
    w.map(
        1,
        "Node-Selectors",
        t.pointer("/spec/nodeSelector").and_then(Value::as_object),
        "=",
    );
    multi(w, 1, "Tolerations", &tolerations_text(&t["spec"]));
}

fn describe_deployment(w: &mut Describer, d: &Value, replicasets: &[Value]) {
    common_header(w, d, true);
    w.kv(
        0,
        "CreationTimestamp",
        &timestamp(s(d, "/metadata/creationTimestamp")),
    );
    w.map(
        0,
        "Labels",
        d.pointer("/metadata/labels").and_then(Value::as_object),
        "=",
    );
    annotations(w, 0, d);
    w.kv(0, "Selector", &selector_text(&d["spec"]["selector"]));
    let n = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    w.kv(
        0,
        "Replicas",
        &format!(
            "{} desired | {} updated | {} total | {} available | {} unavailable",
            d.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1),
            n("/status/updatedReplicas"),
            n("/status/replicas"),
            n("/status/availableReplicas"),
            n("/status/unavailableReplicas")
        ),
    );
    let strategy = s(d, "/spec/strategy/type");
    w.kv(0, "StrategyType", strategy);
    w.kv(
        0,
        "MinReadySeconds",
        &n("/spec/minReadySeconds").to_string(),
    );
    if strategy == "RollingUpdate" {
        let v = |k: &str| {
            let x = &d["spec"]["strategy"]["rollingUpdate"][k];
            x.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| x.to_string())
        };
        w.kv(
            0,
            "RollingUpdateStrategy",
            &format!(
                "{} max unavailable, {} max surge",
                v("maxUnavailable"),
                v("maxSurge")
            ),
        );
    }
    pod_template(w, &d["spec"]["template"]);
    conditions_table(w, d, true);
    let uid = s(d, "/metadata/uid");
    let mut owned: Vec<(i64, &Value)> = replicasets
        .iter()
        .filter(|rs| {
            rs.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|o| o["uid"] == uid)
        })
        .map(|rs| {
            let rev = s(
                rs,
                "/metadata/annotations/deployment.kubernetes.io~1revision",
            )
            .parse()
            .unwrap_or(0);
            (rev, rs)
        })
        .collect();
    owned.sort_by_key(|(r, _)| -*r);
    let rs_text = |rs: &Value| {
        format!(
            "{} ({}/{} replicas created)",
            s(rs, "/metadata/name"),
            rs.pointer("/status/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            rs.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        )
    };
    let (new, old) = match owned.split_first() {
        Some((n, rest)) => (
            Some(n.1),
            rest.iter()
                .map(|(_, rs)| *rs)
                .filter(|rs| {
                    rs.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                        > 0
                        || rs
                            .pointer("/status/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                            > 0
                })
                .collect::<Vec<_>>(),
        ),
        None => (None, vec![]),
    };
    // kubectl prints the ReplicaSet lines only once the controller made one.
    if new.is_none() {
        return;
    }
    let old_text: Vec<String> = old.iter().map(|rs| rs_text(rs)).collect();
    w.kv(0, "OldReplicaSets", or_none(&old_text.join(", ")));
    w.kv(
        0,
        "NewReplicaSet",
        &new.map(rs_text).unwrap_or_else(|| "<none>".into()),
    );
}

fn describe_replicaset(w: &mut Describer, rs: &Value, pods: &[Value]) {
    common_header(w, rs, true);
    w.kv(0, "Selector", &selector_text(&rs["spec"]["selector"]));
    w.map(
        0,
        "Labels",
        rs.pointer("/metadata/labels").and_then(Value::as_object),
        "=",
    );
    annotations(w, 0, rs);
    if let Some(o) = rs
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|o| o["controller"] == true))
    {
        w.kv(
            0,
            "Controlled By",
            &format!("{}/{}", s(o, "/kind"), s(o, "/name")),
        );
    }
    let n = |p: &str| rs.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    w.kv(
        0,
        "Replicas",
        &format!(
            "{} current / {} desired",
            n("/status/replicas"),
            n("/spec/replicas")
        ),
    );
    let phase = |ph: &str| pods.iter().filter(|p| s(p, "/status/phase") == ph).count();
    w.kv(
        0,
        "Pods Status",
        &format!(
            "{} Running / {} Waiting / {} Succeeded / {} Failed",
            phase("Running"),
            phase("Pending"),
            phase("Succeeded"),
            phase("Failed")
        ),
    );
    pod_template(w, &rs["spec"]["template"]);
    conditions_table(w, rs, true);
}

fn describe_service(w: &mut Describer, svc: &Value, endpoints: Option<&Value>) {
    common_header(w, svc, true);
    w.map(
        0,
        "Labels",
        svc.pointer("/metadata/labels").and_then(Value::as_object),
        "=",
    );
    annotations(w, 0, svc);
    let sel = svc.pointer("/spec/selector").and_then(Value::as_object);
    w.kv(0, "Selector", &format_labels(sel).replace("<none>", ""));
    w.kv(0, "Type", s(svc, "/spec/type"));
    w.kv(
        0,
        "IP Family Policy",
        or_none(s(svc, "/spec/ipFamilyPolicy")),
    );
    let fams: Vec<&str> = svc
        .pointer("/spec/ipFamilies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    w.kv(0, "IP Families", or_none(&fams.join(",")));
    w.kv(0, "IP", or_none(s(svc, "/spec/clusterIP")));
    let ips: Vec<&str> = svc
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    w.kv(0, "IPs", or_none(&ips.join(",")));
    for p in svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = or_none(s(p, "/name")).replace("<none>", "<unset>");
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        w.kv(0, "Port", &format!("{name}\t{}/{proto}", p["port"]));
        let target = &p["targetPort"];
        let target = target
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| target.to_string());
        w.kv(0, "TargetPort", &format!("{target}/{proto}"));
        if let Some(np) = p["nodePort"].as_i64() {
            w.kv(0, "NodePort", &format!("{name}\t{np}/{proto}"));
        }
        // kubectl: `<none>` without an Endpoints object, empty when it has no addresses.
        let eps = match endpoints
            .and_then(|e| e.get("slices"))
            .and_then(Value::as_array)
        {
            // kubectl 1.33 reads the EndpointSlices: `<none>` when there are none.
            Some(slices) => format_endpoint_slices(slices, &[s(p, "/name")]),
            None => endpoints
                .map(|e| endpoint_addresses(e, p))
                .unwrap_or_else(|| "<none>".into()),
        };
        w.kv(0, "Endpoints", &eps);
    }
    w.kv(0, "Session Affinity", s(svc, "/spec/sessionAffinity"));
    if let Some(e) = svc
        .pointer("/spec/externalTrafficPolicy")
        .and_then(Value::as_str)
    {
        w.kv(0, "External Traffic Policy", e);
    }
    w.kv(
        0,
        "Internal Traffic Policy",
        or_none(s(svc, "/spec/internalTrafficPolicy")),
    );
}

fn endpoint_addresses(ep: &Value, port: &Value) -> String {
    let mut out = Vec::new();
    for subset in ep["subsets"].as_array().into_iter().flatten() {
        let ports: Vec<&Value> = subset["ports"].as_array().into_iter().flatten().collect();
        let matching = ports
            .iter()
            .find(|p| p["name"].as_str().unwrap_or("") == port["name"].as_str().unwrap_or(""))
            .or(ports.first());
        let Some(p) = matching else { continue };
        for a in subset["addresses"].as_array().into_iter().flatten() {
            out.push(format!("{}:{}", s(a, "/ip"), p["port"]));
        }
    }
    out.join(",")
}

fn describe_endpoints(w: &mut Describer, ep: &Value) {
    common_header(w, ep, true);
    w.map(
        0,
        "Labels",
        ep.pointer("/metadata/labels").and_then(Value::as_object),
        "=",
    );
    annotations(w, 0, ep);
    w.line(0, "Subsets:");
    for subset in ep["subsets"].as_array().into_iter().flatten() {
        let list = |k: &str| {
            subset[k]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["ip"].as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        w.kv(1, "Addresses", or_none(&list("addresses")));
        w.kv(1, "NotReadyAddresses", or_none(&list("notReadyAddresses")));
        w.line(1, "Ports:");
        w.line(2, "Name\tPort\tProtocol");
        w.line(2, "----\t----\t--------");
        for p in subset["ports"].as_array().into_iter().flatten() {
            w.line(
                2,
                &format!(
                    "{}\t{}\t{}",
                    or_none(s(p, "/name")).replace("<none>", "<unset>"),
                    p["port"],
                    p["protocol"].as_str().unwrap_or("TCP")
                ),
            );
        }
        // kubectl closes every subset with a blank line (which also ends the
        // alignment block, so `Events:` aligns on its own).
        w.line(0, "");
    }
}

/// kubectl's `formatEndpointSlices`: `address:port` for the ports named in
/// `port_names`, at most three and then `+ N more...`; `<none>` without any slice.
fn format_endpoint_slices(slices: &[Value], port_names: &[&str]) -> String {
    if slices.is_empty() {
        return "<none>".into();
    }
    let mut list = Vec::new();
    for slice in slices {
        let endpoints: Vec<&str> = slice["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.pointer("/addresses/0").and_then(Value::as_str))
            .collect();
        match slice["ports"].as_array().filter(|p| !p.is_empty()) {
            None => list.extend(endpoints.iter().map(|a| a.to_string())),
            Some(ports) => {
                for p in ports {
                    if !port_names.contains(&s(p, "/name")) {
                        continue;
                    }
                    list.extend(endpoints.iter().map(|a| format!("{a}:{}", p["port"])));
                }
            }
        }
    }
    let more = list.len().saturating_sub(3);
    let mut text = list[..list.len().min(3)].join(",");
    if more > 0 {
        text.push_str(&format!(" + {more} more..."));
    }
    text
}

/// An Ingress backend as kubectl prints it: `svc:port (endpoints)`. `related` holds the
/// namespace's Services (`services`) and EndpointSlices (`slices`).
fn ingress_backend(backend: &Value, related: Option<&Value>) -> String {
    let svc = s(backend, "/service/name");
    if svc.is_empty() {
        // A resource backend (`apiGroup/kind name`).
        let res = &backend["resource"];
        return format!(
            "APIGroup: {}, Kind: {}, Name: {}",
            s(res, "/apiGroup"),
            s(res, "/kind"),
            s(res, "/name")
        );
    }
    let port = &backend["service"]["port"];
    let port_text = match port["number"].as_i64() {
        Some(n) if n != 0 => n.to_string(),
        _ => s(port, "/name").to_string(),
    };
    let find = |key: &str| {
        related
            .and_then(|r| r[key].as_array())
            .into_iter()
            .flatten()
            .find(|o| s(o, "/metadata/name") == svc)
    };
    let Some(service) = find("services") else {
        return format!("{svc}:{port_text} (<error: services \"{svc}\" not found>)");
    };
    let slices: Vec<Value> = related
        .and_then(|r| r["slices"].as_array())
        .into_iter()
        .flatten()
        .filter(|sl| s(sl, "/metadata/labels/kubernetes.io~1service-name") == svc)
        .cloned()
        .collect();
    // The service port the backend means, by number or by name.
    let mut sp_name = "";
    for sp in service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let by_number = port["number"]
            .as_i64()
            .is_some_and(|n| n != 0 && sp["port"].as_i64() == Some(n));
        let by_name = !s(port, "/name").is_empty() && s(port, "/name") == s(sp, "/name");
        if by_number || by_name {
            sp_name = s(sp, "/name");
        }
    }
    format!(
        "{svc}:{port_text} ({})",
        format_endpoint_slices(&slices, &[sp_name])
    )
}

fn describe_ingress(w: &mut Describer, ing: &Value, related: Option<&Value>) {
    w.kv(0, "Name", s(ing, "/metadata/name"));
    w.map(
        0,
        "Labels",
        ing.pointer("/metadata/labels").and_then(Value::as_object),
        "=",
    );
    w.kv(0, "Namespace", s(ing, "/metadata/namespace"));
    let address: Vec<&str> = ing
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|i| [s(i, "/ip"), s(i, "/hostname")])
        .filter(|a| !a.is_empty())
        .collect();
    w.kv(0, "Address", &address.join(","));
    w.kv(
        0,
        "Ingress Class",
        or_none(s(ing, "/spec/ingressClassName")),
    );
    let default = ing.pointer("/spec/defaultBackend");
    let default_text = default
        .map(|d| ingress_backend(d, related))
        .unwrap_or_else(|| "<default>".into());
    w.kv(0, "Default backend", &default_text);
    let tls = ing.pointer("/spec/tls").and_then(Value::as_array);
    if let Some(tls) = tls.filter(|t| !t.is_empty()) {
        w.line(0, "TLS:");
        for t in tls {
            let hosts: Vec<&str> = t["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match s(t, "/secretName") {
                "" => w.line(1, &format!("SNI routes {}", hosts.join(","))),
                secret => w.line(1, &format!("{secret} terminates {}", hosts.join(","))),
            }
        }
    }
    w.line(0, "Rules:");
    w.line(1, "Host\tPath\tBackends");
    w.line(1, "----\t----\t--------");
    let mut rules = 0;
    for rule in ing
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(paths) = rule.pointer("/http/paths").and_then(Value::as_array) else {
            continue;
        };
        rules += 1;
        let host = s(rule, "/host");
        w.line(
            1,
            &format!("{}\t", if host.is_empty() { "*" } else { host }),
        );
        for p in paths {
            w.line(
                2,
                &format!(
                    "\t{} \t{}",
                    s(p, "/path"),
                    ingress_backend(&p["backend"], related)
                ),
            );
        }
    }
    if rules == 0 {
        w.line(1, &format!("*\t*\t{default_text}"));
    }
    annotations(w, 0, ing);
}

fn describe_node(w: &mut Describer, n: &Value, pods: &[Value], lease: Option<&Value>) {
    w.kv(0, "Name", s(n, "/metadata/name"));
    let roles: Vec<String> = n
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_string)
        })
        .collect();
    w.kv(0, "Roles", or_none(&roles.join(",")));
    w.map(
        0,
        "Labels",
        n.pointer("/metadata/labels").and_then(Value::as_object),
        "=",
    );
    annotations(w, 0, n);
    w.kv(
        0,
        "CreationTimestamp",
        &timestamp(s(n, "/metadata/creationTimestamp")),
    );
    let taints: Vec<String> = n
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| {
            let v = t["value"]
                .as_str()
                .filter(|v| !v.is_empty())
                .map(|v| format!("={v}"))
                .unwrap_or_default();
            format!("{}{v}:{}", s(t, "/key"), s(t, "/effect"))
        })
        .collect();
    multi(w, 0, "Taints", &taints);
    w.kv(
        0,
        "Unschedulable",
        &n.pointer("/spec/unschedulable")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
    );
    w.line(0, "Lease:");
    let lease_field = |f: &str| {
        lease
            .and_then(|l| l.pointer(&format!("/spec/{f}")))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    w.kv(
        1,
        "HolderIdentity",
        lease_field("holderIdentity").unwrap_or("<unset>"),
    );
    for (key, f) in [("AcquireTime", "acquireTime"), ("RenewTime", "renewTime")] {
        let t = lease_field(f).map(timestamp);
        w.kv(1, key, t.as_deref().unwrap_or("<unset>"));
    }
    let conds: Vec<&Value> = n
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if !conds.is_empty() {
        w.line(0, "Conditions:");
        w.line(
            1,
            "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage",
        );
        w.line(
            1,
            "----\t------\t-----------------\t------------------\t------\t-------",
        );
        for c in conds {
            w.line(
                1,
                // kubectl leaves a space after each cell but the message.
                &format!(
                    "{} \t{} \t{} \t{} \t{} \t{}",
                    s(c, "/type"),
                    s(c, "/status"),
                    timestamp(s(c, "/lastHeartbeatTime")),
                    timestamp(s(c, "/lastTransitionTime")),
                    s(c, "/reason"),
                    s(c, "/message")
                ),
            );
        }
    }
    w.line(0, "Addresses:");
    for a in n
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        w.kv(1, s(a, "/type"), s(a, "/address"));
    }
    for (key, field) in [("Capacity", "capacity"), ("Allocatable", "allocatable")] {
        if let Some(m) = n
            .pointer(&format!("/status/{field}"))
            .and_then(Value::as_object)
        {
            w.line(0, &format!("{key}:"));
            for (k, v) in m {
                w.kv(1, k, v.as_str().unwrap_or_default());
            }
        }
    }
    if let Some(info) = n.pointer("/status/nodeInfo").and_then(Value::as_object) {
        w.line(0, "System Info:");
        for (label, key) in [
            ("Machine ID", "machineID"),
            ("System UUID", "systemUUID"),
            ("Boot ID", "bootID"),
            ("Kernel Version", "kernelVersion"),
            ("OS Image", "osImage"),
            ("Operating System", "operatingSystem"),
            ("Architecture", "architecture"),
            ("Container Runtime Version", "containerRuntimeVersion"),
            ("Kubelet Version", "kubeletVersion"),
            ("Kube-Proxy Version", "kubeProxyVersion"),
        ] {
            w.kv(
                1,
                label,
                info.get(key).and_then(Value::as_str).unwrap_or_default(),
            );
        }
    }
    if let Some(cidr) = n.pointer("/spec/podCIDR").and_then(Value::as_str) {
        w.kv(0, "PodCIDR", cidr);
    }
    let cidrs: Vec<&str> = n
        .pointer("/spec/podCIDRs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !cidrs.is_empty() {
        w.kv(0, "PodCIDRs", &cidrs.join(","));
    }
    if let Some(id) = n.pointer("/spec/providerID").and_then(Value::as_str) {
        w.kv(0, "ProviderID", id);
    }
    let alloc = |r: &str| {
        n.pointer(&format!("/status/allocatable/{r}"))
            .and_then(Value::as_str)
            .and_then(Quantity::parse)
            .map(|q| q.millis)
            .unwrap_or(0)
    };
    let used = |q: &Quantity, r: &str| format!("{q} ({}%)", q.percent_of(alloc(r)));
    w.line(
        0,
        &format!("Non-terminated Pods:\t({} in total)", pods.len()),
    );
    w.line(
        1,
        "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge",
    );
    w.line(
        1,
        "---------\t----\t\t------------\t----------\t---------------\t-------------\t---",
    );
    let mut totals: [Quantity; 6] = Default::default();
    for p in pods {
        let spec = p.get("spec").unwrap_or(&Value::Null);
        let [cr, cl, mr, ml, er, el] = [
            ("requests", "cpu"),
            ("limits", "cpu"),
            ("requests", "memory"),
            ("limits", "memory"),
            ("requests", "ephemeral-storage"),
            ("limits", "ephemeral-storage"),
        ]
        .map(|(kind, r)| pod_resource(spec, kind, r));
        w.line(
            1,
            &format!(
                "{}\t{}\t\t{}\t{}\t{}\t{}\t{}",
                s(p, "/metadata/namespace"),
                s(p, "/metadata/name"),
                used(&cr, "cpu"),
                used(&cl, "cpu"),
                used(&mr, "memory"),
                used(&ml, "memory"),
                age(p
                    .pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str))
            ),
        );
        for (t, q) in totals.iter_mut().zip([cr, cl, mr, ml, er, el]) {
            t.add(&q);
        }
    }
    let [cr, cl, mr, ml, er, el] = totals;
    w.line(0, "Allocated resources:");
    w.line(
        1,
        "(Total limits may be over 100 percent, i.e., overcommitted.)",
    );
    w.line(1, "Resource\tRequests\tLimits");
    w.line(1, "--------\t--------\t------");
    for (r, req, lim) in [
        ("cpu", cr, cl),
        ("memory", mr, ml),
        ("ephemeral-storage", er, el),
    ] {
        w.line(1, &format!("{r}\t{}\t{}", used(&req, r), used(&lim, r)));
    }
}

/// A resource quantity (`100m`, `64Mi`, `1G`, `2`) in thousandths, with the notation
/// to print sums in: kubectl's sums keep the binary or decimal form of the first term.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quantity {
    pub millis: i128,
    pub binary: bool,
}

impl Quantity {
    pub fn parse(text: &str) -> Option<Quantity> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(text.len());
        let (num, suffix) = text.split_at(split);
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let neg = int.starts_with('-');
        let int = int.trim_start_matches(['+', '-']);
        // Work in thousandths from here, keeping three fraction digits.
        let mut frac3: String = frac.chars().take(3).collect();
        while frac3.len() < 3 {
            frac3.push('0');
        }
        let base: i128 = format!("{}{frac3}", if int.is_empty() { "0" } else { int })
            .parse()
            .ok()?;
        let (mul, div, binary): (i128, i128, bool) = match suffix {
            "" => (1, 1, false),
            "m" => (1, 1000, false),
            "k" => (1_000, 1, false),
            "M" => (1_000_000, 1, false),
            "G" => (1_000_000_000, 1, false),
            "T" => (1_000_000_000_000, 1, false),
            "P" => (1_000_000_000_000_000, 1, false),
            "Ki" => (1 << 10, 1, true),
            "Mi" => (1 << 20, 1, true),
            "Gi" => (1 << 30, 1, true),
            "Ti" => (1 << 40, 1, true),
            "Pi" => (1 << 50, 1, true),
            e if e.starts_with(['e', 'E']) => (10i128.checked_pow(e[1..].parse().ok()?)?, 1, false),
            _ => return None,
        };
        let millis = base * mul / div;
        Some(Quantity {
            millis: if neg { -millis } else { millis },
            binary,
        })
    }

    pub fn add(&mut self, other: &Quantity) {
        if self.millis == 0 {
            self.binary = other.binary;
        }
        self.millis += other.millis;
    }

    /// Whole percent of `total` (thousandths), 0 when there is no total.
    pub fn percent_of(&self, total: i128) -> i128 {
        if total == 0 {
            0
        } else {
            self.millis * 100 / total
        }
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.millis % 1000 != 0 {
            return write!(f, "{}m", self.millis);
        }
        let mut v = self.millis / 1000;
        let (step, suffixes): (i128, &[&str]) = if self.binary {
            (1024, &["", "Ki", "Mi", "Gi", "Ti", "Pi"])
        } else {
            (1000, &["", "k", "M", "G", "T", "P"])
        };
        let mut i = 0;
        while v != 0 && v % step == 0 && i + 1 < suffixes.len() {
            v /= step;
            i += 1;
        }
        write!(f, "{v}{}", suffixes[i])
    }
}

/// A pod's total request or limit of one resource, as kubectl adds it up: the sum over
/// its containers, or the largest init container's when that is more, plus overhead.
fn pod_resource(spec: &Value, kind: &str, resource: &str) -> Quantity {
    let get = |c: &Value| {
        c.pointer(&format!("/resources/{kind}/{resource}"))
            .and_then(Value::as_str)
            .and_then(Quantity::parse)
            .unwrap_or_default()
    };
    let mut total = Quantity::default();
    for c in spec["containers"].as_array().into_iter().flatten() {
        total.add(&get(c));
    }
    for c in spec["initContainers"].as_array().into_iter().flatten() {
        let q = get(c);
        if q.millis > total.millis {
            total = q;
        }
    }
    if let Some(o) = spec
        .pointer(&format!("/overhead/{resource}"))
        .and_then(Value::as_str)
        .and_then(Quantity::parse)
    {
        total.add(&o);
    }
    total
}

fn describe_namespace(w: &mut Describer, ns: &Value) {
    w.kv(0, "Name", s(ns, "/metadata/name"));
    w.map(
        0,
        "Labels",
        ns.pointer("/metadata/labels").and_then(Value::as_object),
        "=",
    );
    annotations(w, 0, ns);
    w.kv(0, "Status", s(ns, "/status/phase"));
}

fn describe_generic(w: &mut Describer, obj: &Value, r: &Resource) {
    common_header(w, obj, r.namespaced);
    w.map(
        0,
        "Labels",
        obj.pointer("/metadata/labels").and_then(Value::as_object),
        "=",
    );
    annotations(w, 0, obj);
    w.kv(0, "API Version", &r.api_version());
    w.kv(0, "Kind", &r.kind);
    for key in ["spec", "data", "status"] {
        if let Some(v) = obj.get(key) {
            w.line(0, &format!("{}{}:", key[..1].to_uppercase(), &key[1..]));
            let text = serde_yaml::to_string(v).unwrap_or_default();
            for l in text.lines() {
                w.line(1, l);
            }
        }
    }
}

/// The Events section from events about `uid` (newest last, like kubectl).
pub fn events_section(events: &[Value]) -> String {
    let mut evs: Vec<&Value> = events.iter().collect();
    let when = |e: &Value| {
        e.pointer("/lastTimestamp")
            .or_else(|| e.pointer("/eventTime"))
            .or_else(|| e.pointer("/metadata/creationTimestamp"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_default()
    };
    evs.sort_by_key(|e| when(e));
    if evs.is_empty() {
        return "Events:\t<none>\n".into();
    }
    let mut text = String::from(
        "Events:\n  Type\tReason\tAge\tFrom\tMessage\n  ----\t------\t----\t----\t-------\n",
    );
    for e in evs {
        let count = e["count"].as_i64().unwrap_or(1);
        let mut age_text = age(Some(&when(e)));
        if count > 1 {
            let first = e.pointer("/firstTimestamp").and_then(Value::as_str);
            age_text = format!("{} (x{count} over {})", age_text, age(first));
        }
        let from = e
            .pointer("/source/component")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .or_else(|| e.pointer("/reportingComponent").and_then(Value::as_str))
            .unwrap_or("");
        let message = s(e, "/message").trim().replace('\n', " ");
        text.push_str(&format!(
            "  {}\t{}\t{age_text}\t{from}\t{message}\n",
            s(e, "/type"),
            s(e, "/reason")
        ));
    }
    text
}

/// Renders one object's description (without events).
pub fn describe_object(
    r: &Resource,
    obj: &Value,
    related: &[Value],
    extra: Option<&Value>,
) -> String {
    let mut w = Describer::default();
    match (r.group.as_str(), r.kind.as_str()) {
        ("", "Pod") => describe_pod(&mut w, obj),
        ("apps", "Deployment") => describe_deployment(&mut w, obj, related),
        ("apps", "ReplicaSet") => describe_replicaset(&mut w, obj, related),
        ("", "Service") => describe_service(&mut w, obj, extra),
        ("", "Endpoints") => describe_endpoints(&mut w, obj),
        ("", "Node") => describe_node(&mut w, obj, related, extra),
        ("", "Namespace") => describe_namespace(&mut w, obj),
        ("networking.k8s.io", "Ingress") => describe_ingress(&mut w, obj, extra),
        _ => describe_generic(&mut w, obj, r),
    }
    w.buf
}

/// The note for an empty listing: kubectl names the namespace when it searched one.
pub fn no_resources_found(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("No resources found in {ns} namespace."),
        None => "No resources found".to_string(),
    }
}

pub async fn run(ctx: &Ctx, args: &DescribeArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let discovery = ctx.discovery().await?;
    let ns = Some(ctx.namespace.as_str());
    let mut first = true;
    let mut searched_namespaced = false;
    for t in parse_targets(&args.resources)? {
        // `describe deploy,svc` and `describe all` as kubectl: each type in turn.
        for r in discovery.resolve_list(&t.types)? {
            searched_namespaced |= r.namespaced;
            let objects: Vec<Value> = if t.names.is_empty() {
                let list_ns = if ctx.all_namespaces { None } else { ns };
                let path = format!(
                    "{}{}",
                    r.collection_path(list_ns),
                    super::get::list_query(args.selector.as_deref(), None)
                );
                ctx.get_json(&path).await?["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            } else {
                let mut v = Vec::new();
                for n in &t.names {
                    v.push(ctx.get_json(&r.object_path(ns, n)).await?);
                }
                v
            };
            for obj in objects {
                let obj_ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
                let (related, extra) = related_objects(ctx, r, &obj, obj_ns).await;
                let mut text = describe_object(r, &obj, &related, extra.as_ref());
                // kubectl's namespace description has no Events section.
                if args.show_events && r.kind != "Namespace" {
                    text.push_str(&events_section(&events_for(ctx, &obj, obj_ns).await));
                }
                if !first {
                    out.write_all(b"\n\n")?;
                }
                first = false;
                out.write_all(tabwrite(&text, 2).as_bytes())?;
            }
        }
    }
    if first {
        // Like kubectl: a note on stderr, and success (an empty list is no error).
        let list_ns =
            (searched_namespaced && !ctx.all_namespaces).then_some(ctx.namespace.as_str());
        eprintln!("{}", no_resources_found(list_ns));
    }
    Ok(())
}

/// What a description needs besides the object: a Deployment's ReplicaSets, a Node's
/// pods, a Service's Endpoints. Missing related objects only shorten the output.
async fn related_objects(
    ctx: &Ctx,
    r: &Resource,
    obj: &Value,
    ns: Option<&str>,
) -> (Vec<Value>, Option<Value>) {
    let name = s(obj, "/metadata/name");
    let list = |path: String| async move {
        ctx.get_json(&path)
            .await
            .ok()
            .and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default()
    };
    match (r.group.as_str(), r.kind.as_str()) {
        ("apps", "Deployment") => (
            list(format!(
                "/apis/apps/v1/namespaces/{}/replicasets",
                ns.unwrap_or("default")
            ))
            .await,
            None,
        ),
        ("apps", "ReplicaSet") => {
            let uid = s(obj, "/metadata/uid");
            let pods = list(format!(
                "/api/v1/namespaces/{}/pods",
                ns.unwrap_or("default")
            ))
            .await;
            let owned = pods
                .into_iter()
                .filter(|p| {
                    p.pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .any(|o| o["uid"] == uid)
                })
                .collect();
            (owned, None)
        }
        ("", "Node") => {
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair(
                    "fieldSelector",
                    &format!("spec.nodeName={name},status.phase!=Succeeded,status.phase!=Failed"),
                )
                .finish();
            let lease = ctx
                .get_json(&format!(
                    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
                ))
                .await
                .ok();
            (list(format!("/api/v1/pods?{q}")).await, lease)
        }
        ("", "Service") => {
            let ns = ns.unwrap_or("default");
            // The Service's EndpointSlices, as kubectl 1.33 reads them; a server
            // without slices falls back to the Endpoints object.
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair(
                    "labelSelector",
                    &format!("kubernetes.io/service-name={name}"),
                )
                .finish();
            let slices = ctx
                .get_json(&format!(
                    "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?{q}"
                ))
                .await;
            let extra = match slices {
                Ok(l) => Some(serde_json::json!({"slices": l["items"].clone()})),
                Err(_) => ctx
                    .get_json(&format!("/api/v1/namespaces/{ns}/endpoints/{name}"))
                    .await
                    .ok(),
            };
            (vec![], extra)
        }
        ("networking.k8s.io", "Ingress") => {
            let ns = ns.unwrap_or("default");
            let services = list(format!("/api/v1/namespaces/{ns}/services")).await;
            let slices = list(format!(
                "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
            ))
            .await;
            (
                vec![],
                Some(serde_json::json!({"services": services, "slices": slices})),
            )
        }
        _ => (vec![], None),
    }
}

async fn events_for(ctx: &Ctx, obj: &Value, ns: Option<&str>) -> Vec<Value> {
    let uid = s(obj, "/metadata/uid");
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("fieldSelector", &format!("involvedObject.uid={uid}"))
        .finish();
    let path = match ns {
        Some(ns) => format!("/api/v1/namespaces/{ns}/events?{q}"),
        None => format!("/api/v1/events?{q}"),
    };
    ctx.get_json(&path)
        .await
        .ok()
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tabwriter_aligns_runs_of_lines() {
        let text = "Name:\tweb\nNamespace:\tdefault\nPod Template:\n  Labels:\tapp=web\n  Containers:\n   web:\n    Image:\tbusybox\n    Environment:\t<none>\n  Volumes:\t<none>\n";
        let want = "Name:       web\nNamespace:  default\nPod Template:\n  Labels:  app=web\n  Containers:\n   web:\n    Image:        busybox\n    Environment:  <none>\n  Volumes:        <none>\n";
        assert_eq!(tabwrite(text, 2), want);
    }

    #[test]
    fn maps_print_one_entry_per_line() {
        let mut w = Describer::default();
        let labels = json!({"b": "2", "a": "1"});
        w.map(0, "Labels", labels.as_object(), "=");
        w.map(0, "Annotations", None, ": ");
        assert_eq!(
            tabwrite(&w.buf, 2),
            "Labels:       a=1\n              b=2\nAnnotations:  <none>\n"
        );
    }

    /// The lab's demo Ingress, against what kubectl 1.33 printed for it.
    #[test]
    fn ingress_describes_like_kubectl() {
        let ing = json!({
            "metadata": {"name": "web", "namespace": "demo"},
            "spec": {"rules": [{"host": "web.skiff.lab", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "172.30.0.11"}]}}
        });
        let related = json!({
            "services": [{"metadata": {"name": "web"},
                          "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}],
            "slices": [{"metadata": {"name": "web-x", "labels": {"kubernetes.io/service-name": "web"}},
                        "endpoints": [{"addresses": ["10.244.1.4"]}, {"addresses": ["10.244.1.2"]},
                                      {"addresses": ["10.244.1.3"]}],
                        "ports": [{"name": "http", "port": 8080}]}]
        });
        let mut w = Describer::default();
        describe_ingress(&mut w, &ing, Some(&related));
        let text = tabwrite(&(w.buf + &events_section(&[])), 2);
        assert_eq!(
            text,
            "Name:             web\n\
             Labels:           <none>\n\
             Namespace:        demo\n\
             Address:          172.30.0.11\n\
             Ingress Class:    <none>\n\
             Default backend:  <default>\n\
             Rules:\n\
             \x20 Host           Path  Backends\n\
             \x20 ----           ----  --------\n\
             \x20 web.skiff.lab  \n\
             \x20                /   web:http (10.244.1.4:8080,10.244.1.2:8080,10.244.1.3:8080)\n\
             Annotations:     <none>\n\
             Events:          <none>\n"
        );
        // No rules: one catch-all line; a missing Service is said, not fatal.
        let bare = json!({"metadata": {"name": "b", "namespace": "d"},
            "spec": {"defaultBackend": {"service": {"name": "gone", "port": {"number": 80}}}}});
        let mut w = Describer::default();
        describe_ingress(&mut w, &bare, None);
        assert!(
            w.buf
                .contains("  *\t*\tgone:80 (<error: services \"gone\" not found>)\n"),
            "{}",
            w.buf
        );
        let eps: Vec<Value> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|a| json!({"addresses": [a]}))
            .collect();
        let five = [json!({"endpoints": eps, "ports": [{"name": "", "port": 1}]})];
        assert_eq!(
            format_endpoint_slices(&five, &[""]),
            "a:1,b:1,c:1 + 2 more..."
        );
        assert_eq!(format_endpoint_slices(&five, &["http"]), "");
        assert_eq!(format_endpoint_slices(&[], &[""]), "<none>");
    }

    #[test]
    fn quantities_parse_add_and_print_like_kubectl() {
        let q = |t: &str| Quantity::parse(t).unwrap_or_else(|| panic!("{t}"));
        for (text, millis, shown) in [
            ("100m", 100, "100m"),
            ("1", 1000, "1"),
            ("0.5", 500, "500m"),
            ("64Mi", 67_108_864_000, "64Mi"),
            ("1G", 1_000_000_000_000, "1G"),
            ("1Gi", (1i128 << 30) * 1000, "1Gi"),
            ("2k", 2_000_000, "2k"),
            ("1e3", 1_000_000, "1k"),
        ] {
            assert_eq!(q(text).millis, millis, "{text}");
            assert_eq!(q(text).to_string(), shown, "{text}");
        }
        assert!(Quantity::parse("12x").is_none());
        // A sum keeps the first term's notation: 64Mi + 1G in bytes, as kubectl prints it.
        let mut sum = q("64Mi");
        sum.add(&q("1G"));
        assert_eq!(sum.to_string(), "1067108864");
        let mut cpu = q("100m");
        cpu.add(&q("1"));
        assert_eq!(
            format!("{cpu} ({}%)", cpu.percent_of(q("2").millis)),
            "1100m (55%)"
        );
        assert_eq!(Quantity::default().to_string(), "0");
    }

    /// The lab's node with a pod that asks for resources, against kubectl 1.33's text.
    #[test]
    fn node_lists_pod_resources_and_totals_like_kubectl() {
        let node = json!({
            "metadata": {"name": "node1"},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
            "status": {"allocatable": {"cpu": "2", "ephemeral-storage": "10Gi",
                                       "memory": "24684084Ki", "pods": "110"}}
        });
        let pod = json!({"metadata": {"namespace": "default", "name": "res"}, "spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                        "limits": {"cpu": "250m", "memory": "128Mi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "1", "memory": "1G",
                                                     "ephemeral-storage": "1Gi"}}}]}});
        let mut w = Describer::default();
        describe_node(&mut w, &node, &[pod], None);
        let text = tabwrite(&w.buf, 2);
        let tail = &text[text.find("PodCIDR:").unwrap()..];
        assert_eq!(
            tail,
            "PodCIDR:              10.244.1.0/24\n\
             PodCIDRs:             10.244.1.0/24\n\
             Non-terminated Pods:  (1 in total)\n\
             \x20 Namespace           Name    CPU Requests  CPU Limits  Memory Requests  Memory Limits  Age\n\
             \x20 ---------           ----    ------------  ----------  ---------------  -------------  ---\n\
             \x20 default             res     1100m (55%)   250m (12%)  1067108864 (4%)  128Mi (0%)     <unknown>\n\
             Allocated resources:\n\
             \x20 (Total limits may be over 100 percent, i.e., overcommitted.)\n\
             \x20 Resource           Requests         Limits\n\
             \x20 --------           --------         ------\n\
             \x20 cpu                1100m (55%)      250m (12%)\n\
             \x20 memory             1067108864 (4%)  128Mi (0%)\n\
             \x20 ephemeral-storage  1Gi (10%)        0 (0%)\n"
        );
        assert!(
            text.contains("Lease:\n  HolderIdentity:  <unset>\n"),
            "{text}"
        );
    }

    #[test]
    fn events_render_like_kubectl() {
        assert_eq!(tabwrite(&events_section(&[]), 2), "Events:  <none>\n");
        let ev = json!({"type": "Normal", "reason": "Scheduled", "message": "assigned default/web to n1", "source": {"component": "default-scheduler"}, "lastTimestamp": chrono::Utc::now().to_rfc3339()});
        let text = tabwrite(&events_section(&[ev]), 2);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Events:");
        assert_eq!(
            lines[1],
            "  Type    Reason     Age   From               Message"
        );
        assert_eq!(
            lines[2],
            "  ----    ------     ----  ----               -------"
        );
        assert!(
            lines[3].starts_with(
                "  Normal  Scheduled  0s    default-scheduler  assigned default/web to n1"
            ),
            "{}",
            lines[3]
        );
    }

    #[test]
    fn selectors_print_like_kubectl() {
        assert_eq!(
            selector_text(&json!({"matchLabels": {"b": "2", "a": "1"}})),
            "a=1,b=2"
        );
        assert_eq!(
            selector_text(
                &json!({"matchExpressions": [{"key": "t", "operator": "In", "values": ["x", "y"]}]})
            ),
            "t in (x,y)"
        );
    }
}
