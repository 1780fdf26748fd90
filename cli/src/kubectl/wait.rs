//! `skiff wait --for=condition=C|delete|jsonpath=... TYPE NAME|-l SEL|--all` and the
//! watch-based waiting the other commands share (delete waits for objects to go,
//! rollout status for a Deployment to finish). Waits GET once, then follow a watch on
//! that one object, so nothing polls.

use std::io::Write;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use http::Method;
use serde_json::Value;

use super::client::{ApiFailure, Ctx, LineStream};
use super::config::KubeFlags;
use super::discovery::{parse_targets, Resource};

/// Parses a Go-style duration (`30s`, `5m`, `1h30m`, `500ms`, `0`).
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next().expect("peeked"));
        }
        let n: f64 = num
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid duration {s:?}; use e.g. 30s, 5m or 1h"))?;
        let secs = match unit.as_str() {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => bail!("invalid duration {s:?}: unknown unit {unit:?}; use ms, s, m or h"),
        };
        total += Duration::from_secs_f64(secs);
        num.clear();
        any = true;
    }
    if !num.is_empty() || !any {
        bail!("invalid duration {s:?}: missing unit; use e.g. 30s, 5m or 1h");
    }
    Ok(total)
}

/// Waits until `done` holds for the object (`None` = it does not exist). Returns the
/// last object seen, or an error naming the timeout.
pub async fn wait_for(
    ctx: &Ctx,
    r: &Resource,
    namespace: Option<&str>,
    name: &str,
    timeout: Duration,
    done: &(dyn Fn(Option<&Value>) -> bool + Sync),
) -> anyhow::Result<Option<Value>> {
    let work = async {
        loop {
            let (current, rv) = match ctx.get_json(&r.object_path(namespace, name)).await {
                Ok(v) => {
                    let rv = v
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    (Some(v), rv)
                }
                Err(e)
                    if e.downcast_ref::<ApiFailure>()
                        .is_some_and(ApiFailure::is_not_found) =>
                {
                    (None, String::new())
                }
                Err(e) => return Err(e),
            };
            if done(current.as_ref()) {
                return Ok(current);
            }
            if current.is_none() {
                // Waiting for something to appear: watch the collection from "now".
                tracing::debug!("{name} does not exist yet");
            }
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("watch", "1")
                .append_pair("fieldSelector", &format!("metadata.name={name}"));
            if !rv.is_empty() {
                q.append_pair("resourceVersion", &rv);
            }
            let path = format!("{}?{}", r.collection_path(namespace), q.finish());
            let resp = ctx
                .send(Method::GET, &path, "application/json", None)
                .await?;
            let mut lines = LineStream::new(resp.into_body());
            while let Some(line) = lines.next_line().await? {
                let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                match event["type"].as_str() {
                    Some("DELETED") if done(None) => return Ok(None),
                    Some("ADDED" | "MODIFIED") if done(Some(&event["object"])) => {
                        return Ok(Some(event["object"].clone()))
                    }
                    // An expired watch: start over from a fresh GET.
                    Some("ERROR") => break,
                    _ => {}
                }
            }
        }
    };
    if timeout.is_zero() {
        return work.await;
    }
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => bail!(
            "timed out waiting for the condition on {}/{name} after {}s; raise --timeout or check the object with `skiff describe`",
            r.kind_prefix(),
            timeout.as_secs()
        ),
    }
}

/// Whether `obj` has condition `cond` with status `want` (case-insensitive type, like
/// kubectl).
pub fn has_condition(obj: &Value, cond: &str, want: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(cond))
                && c["status"]
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(want))
        })
}

/// The parsed `--for` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    Delete,
    Condition { name: String, status: String },
    JsonPath { template: String, value: String },
}

impl WaitFor {
    pub fn parse(s: &str) -> anyhow::Result<WaitFor> {
        if s == "delete" {
            return Ok(WaitFor::Delete);
        }
        if let Some(c) = s.strip_prefix("condition=") {
            let (name, status) = c.split_once('=').unwrap_or((c, "True"));
            if name.is_empty() {
                bail!("--for=condition= needs a condition name, e.g. --for=condition=Available");
            }
            return Ok(WaitFor::Condition {
                name: name.into(),
                status: status.into(),
            });
        }
        if let Some(j) = s.strip_prefix("jsonpath=") {
            // `{.status.phase}=Running`: the value follows the closing brace.
            let Some(close) = j.rfind('}') else {
                bail!("--for=jsonpath= needs a {{...}} expression, e.g. --for=jsonpath='{{.status.phase}}'=Running");
            };
            let value = j[close + 1..].strip_prefix('=').unwrap_or("").to_string();
            return Ok(WaitFor::JsonPath {
                template: j[..=close].to_string(),
                value,
            });
        }
        bail!("unrecognized condition: \"{s}\"; use --for=delete, --for=condition=NAME[=STATUS] or --for=jsonpath='{{...}}'=VALUE")
    }

    pub fn met(&self, obj: Option<&Value>) -> bool {
        match (self, obj) {
            (WaitFor::Delete, o) => o.is_none(),
            (_, None) => false,
            (WaitFor::Condition { name, status }, Some(o)) => has_condition(o, name, status),
            (WaitFor::JsonPath { template, value }, Some(o)) => {
                super::printer::jsonpath(template, o)
                    .map(|v| &v == value)
                    .unwrap_or(false)
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// TYPE NAME... or TYPE/NAME...
    #[arg(required = true)]
    pub resources: Vec<String>,
    /// delete, condition=NAME[=STATUS] or jsonpath='{...}'=VALUE
    #[arg(long = "for", required = true)]
    pub for_: String,
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    /// Wait for the objects of the type matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Wait for every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
}

pub async fn run(ctx: &Ctx, args: &WaitArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let cond = WaitFor::parse(&args.for_)?;
    let timeout = parse_duration(&args.timeout)?;
    let discovery = ctx.discovery().await?;
    let ns = Some(ctx.namespace.as_str());
    let mut waits: Vec<(&Resource, String)> = Vec::new();
    for t in parse_targets(&args.resources)? {
        for r in discovery.resolve_list(&t.types)? {
            if !t.names.is_empty() {
                waits.extend(t.names.iter().map(|n| (r, n.clone())));
                continue;
            }
            if args.selector.is_none() && !args.all {
                bail!("wait needs names, -l SELECTOR or --all: e.g. `skiff wait --for=condition=Available deploy/web`");
            }
            // `wait deploy -l app=web` / `--all`: the objects there are now.
            let path = format!(
                "{}{}",
                r.collection_path(ns),
                super::get::list_query(args.selector.as_deref(), None)
            );
            let list = ctx.get_json(&path).await?;
            for o in list["items"].as_array().into_iter().flatten() {
                if let Some(n) = o.pointer("/metadata/name").and_then(Value::as_str) {
                    waits.push((r, n.to_string()));
                }
            }
        }
    }
    if waits.is_empty() {
        bail!(
            "no matching resources found in namespace {}; check the selector and -n",
            ctx.namespace
        );
    }
    for (r, name) in &waits {
        if cond != WaitFor::Delete {
            // kubectl fails at once when the object is missing, rather than wait for it.
            ctx.get_json(&r.object_path(ns, name)).await?;
        }
        wait_for(ctx, r, ns, name, timeout, &|o| cond.met(o)).await?;
        writeln!(out, "{}/{name} condition met", r.kind_prefix())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_parse() {
        let cases = [
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("0", 0),
            ("1.5s", 1500),
        ];
        for (s, ms) in cases {
            assert_eq!(parse_duration(s).unwrap().as_millis(), ms, "{s}");
        }
        for bad in ["", "10", "5x", "m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn for_values_parse_and_match() {
        let obj = json!({"status": {"phase": "Running", "conditions": [{"type": "Available", "status": "True"}]}});
        let cases = [
            ("condition=Available", Some(&obj), true),
            ("condition=available", Some(&obj), true),
            ("condition=Available=False", Some(&obj), false),
            ("condition=Progressing", Some(&obj), false),
            ("jsonpath={.status.phase}=Running", Some(&obj), true),
            ("jsonpath={.status.phase}=Pending", Some(&obj), false),
            ("delete", Some(&obj), false),
            ("delete", None, true),
            ("condition=Available", None, false),
        ];
        for (s, o, want) in cases {
            assert_eq!(WaitFor::parse(s).unwrap().met(o), want, "{s}");
        }
        assert!(WaitFor::parse("ready").is_err());
    }
}
