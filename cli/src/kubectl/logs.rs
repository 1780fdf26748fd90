//! `skiff logs POD|TYPE/NAME` through the `pods/log` subresource (`-f`, `-c`,
//! `--previous`, `--tail`, `--since`, `--timestamps`); `deploy/NAME` and friends pick
//! one of the workload's pods through its selector, as kubectl does.

use std::io::Write;

use anyhow::bail;
use clap::Args;
use http::Method;
use serde_json::Value;

use super::client::{ApiFailure, Ctx, LineStream};
use super::config::KubeFlags;
use super::wait::parse_duration;

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// POD, pod/NAME, deploy/NAME, rs/NAME ...
    pub target: String,
    /// The container, as kubectl also takes it: `logs POD CONTAINER`.
    #[arg(value_name = "CONTAINER")]
    pub container_arg: Option<String>,
    /// Keep streaming new lines.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The container (default: the only one, or the default-container annotation).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Logs of the previous, terminated instance.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Number of recent lines to show (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// Only lines newer than this, e.g. 5s, 2m, 3h.
    #[arg(long)]
    pub since: Option<String>,
    /// Prefix each line with its timestamp.
    #[arg(long)]
    pub timestamps: bool,
}

/// The pods/log query string.
pub fn log_query(args: &LogsArgs, container: &str) -> anyhow::Result<String> {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("container", container);
    if args.follow {
        q.append_pair("follow", "true");
    }
    if args.previous {
        q.append_pair("previous", "true");
    }
    if args.tail >= 0 {
        q.append_pair("tailLines", &args.tail.to_string());
    }
    if let Some(s) = &args.since {
        q.append_pair(
            "sinceSeconds",
            &parse_duration(s)?.as_secs().max(1).to_string(),
        );
    }
    if args.timestamps {
        q.append_pair("timestamps", "true");
    }
    Ok(q.finish())
}

/// The container to read: the flag, the default-container annotation, or the first.
pub fn pick_container(pod: &Value, flag: Option<&str>) -> anyhow::Result<(String, Option<String>)> {
    let names: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(c) = flag {
        let init: Vec<&str> = pod
            .pointer("/spec/initContainers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        if !names.contains(&c) && !init.contains(&c) {
            bail!(
                "container {c} is not valid for pod {pod_name}; choose one of: [{}]",
                names.join(" ")
            );
        }
        return Ok((c.to_string(), None));
    }
    let annotated = pod
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
        .and_then(Value::as_str)
        .filter(|a| names.contains(a));
    let chosen = annotated
        .or(names.first().copied())
        .ok_or_else(|| anyhow::anyhow!("pod {pod_name} has no containers"))?;
    let note = (names.len() > 1 && annotated.is_none()).then(|| {
        format!(
            "Defaulted container \"{chosen}\" out of: {}",
            names.join(", ")
        )
    });
    Ok((chosen.to_string(), note))
}

/// Finds the pod a `TYPE/NAME` refers to.
pub async fn resolve_pod(ctx: &Ctx, target: &str) -> anyhow::Result<Value> {
    let discovery = ctx.discovery().await?;
    let (typ, name) = target.split_once('/').unwrap_or(("pods", target));
    let r = discovery.resolve(typ)?;
    let obj = ctx
        .get_json(&r.object_path(Some(&ctx.namespace), name))
        .await?;
    if r.kind == "Pod" {
        return Ok(obj);
    }
    let labels = obj
        .pointer("/spec/selector/matchLabels")
        .or_else(|| {
            obj.pointer("/spec/selector")
                .filter(|_| r.kind == "Service" || r.kind == "ReplicationController")
        })
        .and_then(Value::as_object)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "cannot find the pods of {}/{name}: it has no label selector; name a pod instead",
                r.kind_prefix()
            )
        })?;
    let selector: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    let pods = discovery.resolve("pods")?;
    let path = format!(
        "{}{}",
        pods.collection_path(Some(&ctx.namespace)),
        super::get::list_query(Some(&selector.join(",")), None)
    );
    let list = ctx.get_json(&path).await?;
    let mut items: Vec<Value> = list["items"].as_array().cloned().unwrap_or_default();
    // Oldest first, as kubectl's "first pod" is not random.
    items.sort_by(|a, b| {
        a.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .cmp(
                &b.pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str),
            )
    });
    match items.len() {
        0 => bail!(
            "no pods found for {}/{name}; check `skiff get pods -l {}`",
            r.kind_prefix(),
            selector.join(",")
        ),
        1 => {}
        n => eprintln!(
            "Found {n} pods, using pod/{}",
            items[0]
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ),
    }
    Ok(items.swap_remove(0))
}

pub async fn run(ctx: &Ctx, args: &LogsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let pod = resolve_pod(ctx, &args.target).await?;
    let wanted = wanted_container(args)?;
    let (container, note) = pick_container(&pod, wanted)?;
    if let Some(n) = note {
        eprintln!("{n}");
    }
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let path = format!(
        "/api/v1/namespaces/{}/pods/{name}/log?{}",
        ctx.namespace,
        log_query(args, &container)?
    );
    let resp = match ctx.send(Method::GET, &path, "*/*", None).await {
        Ok(r) => r,
        Err(e) => {
            if let Some(f) = e.downcast_ref::<ApiFailure>() {
                if f.code == 503 || f.code == 502 || f.code == 501 {
                    bail!("{f}; the server cannot stream logs from the node right now (is the node's kubelet serving logs?)");
                }
            }
            return Err(e);
        }
    };
    let mut lines = LineStream::new(resp.into_body());
    while let Some(line) = lines.next_line().await? {
        out.write_all(&line)?;
        out.write_all(b"\n")?;
        if args.follow {
            out.flush()?;
        }
    }
    Ok(())
}

/// The container asked for, by `-c` or as the second word (`logs POD CONTAINER`).
pub fn wanted_container(args: &LogsArgs) -> anyhow::Result<Option<&str>> {
    Ok(match (&args.container, &args.container_arg) {
        (Some(flag), Some(arg)) if flag != arg => {
            bail!(
                "only one of -c or an inline container name is allowed (got {flag:?} and {arg:?})"
            )
        }
        (Some(c), _) | (None, Some(c)) => Some(c.as_str()),
        (None, None) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args() -> LogsArgs {
        LogsArgs {
            kube: Default::default(),
            target: "p".into(),
            follow: false,
            container: None,
            container_arg: None,
            previous: false,
            tail: -1,
            since: None,
            timestamps: false,
        }
    }

    #[test]
    fn query_carries_the_flags() {
        assert_eq!(log_query(&args(), "app").unwrap(), "container=app");
        let a = LogsArgs {
            follow: true,
            previous: true,
            tail: 10,
            since: Some("2m".into()),
            timestamps: true,
            ..args()
        };
        assert_eq!(
            log_query(&a, "app").unwrap(),
            "container=app&follow=true&previous=true&tailLines=10&sinceSeconds=120&timestamps=true"
        );
    }

    #[test]
    fn container_comes_from_the_flag_or_the_second_word() {
        use clap::Parser;
        #[derive(Parser)]
        struct Line {
            #[command(flatten)]
            a: LogsArgs,
        }
        let parse = |argv: &[&str]| Line::try_parse_from(argv).unwrap().a;
        assert_eq!(wanted_container(&parse(&["logs", "p"])).unwrap(), None);
        assert_eq!(
            wanted_container(&parse(&["logs", "p", "b"])).unwrap(),
            Some("b")
        );
        assert_eq!(
            wanted_container(&parse(&["logs", "p", "-c", "b"])).unwrap(),
            Some("b")
        );
        assert!(wanted_container(&parse(&["logs", "p", "a", "-c", "b"])).is_err());
    }

    #[test]
    fn container_choice_follows_kubectl() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let (c, note) = pick_container(&pod, None).unwrap();
        assert_eq!(c, "a");
        assert_eq!(note.unwrap(), "Defaulted container \"a\" out of: a, b");
        assert_eq!(pick_container(&pod, Some("b")).unwrap().0, "b");
        assert!(pick_container(&pod, Some("zz"))
            .unwrap_err()
            .to_string()
            .contains("choose one of: [a b]"));
        let annotated = json!({"metadata": {"name": "p", "annotations": {"kubectl.kubernetes.io/default-container": "b"}}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            pick_container(&annotated, None).unwrap(),
            ("b".to_string(), None)
        );
    }
}
