//! `skiff rollout status|history|undo|restart|pause|resume` for Deployments. History
//! and undo read the Deployment's ReplicaSets (owned by UID) and their
//! `deployment.kubernetes.io/revision` annotations, as kubectl does.

use std::io::Write;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use http::Method;
use serde_json::{json, Value};

use super::client::{with_manager, Ctx};
use super::config::KubeFlags;
use super::discovery::Resource;
use super::wait::{parse_duration, wait_for};

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Watch a rollout until it completes.
    Status(RolloutTarget),
    /// List the revisions.
    History(RolloutTarget),
    /// Go back to the previous (or --to-revision) template.
    Undo(RolloutTarget),
    /// Restart every pod by changing a template annotation.
    Restart(RolloutTarget),
    /// Stop rolling out template changes.
    Pause(RolloutTarget),
    /// Continue rolling out template changes.
    Resume(RolloutTarget),
}

#[derive(Debug, Args)]
pub struct RolloutTarget {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// deployment/NAME (or `deployment NAME`)
    #[arg(required = true, num_args = 1..=2)]
    pub target: Vec<String>,
    /// undo: the revision to go back to (0: the previous one); history: show one.
    #[arg(long, default_value_t = 0)]
    pub to_revision: i64,
    /// history: show the details of this revision.
    #[arg(long, default_value_t = 0)]
    pub revision: i64,
    /// status: give up after this long (0: wait forever).
    #[arg(long, default_value = "0")]
    pub timeout: String,
    /// status: return after one report instead of waiting.
    #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub watch: bool,
}

impl RolloutCommand {
    pub fn target(&self) -> &RolloutTarget {
        match self {
            RolloutCommand::Status(t)
            | RolloutCommand::History(t)
            | RolloutCommand::Undo(t)
            | RolloutCommand::Restart(t)
            | RolloutCommand::Pause(t)
            | RolloutCommand::Resume(t) => t,
        }
    }
}

/// kubectl's rollout status message for a Deployment, and whether it is done.
pub fn deployment_status(d: &Value) -> Result<(String, bool), String> {
    let name = d
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let int = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    if int("/metadata/generation") > int("/status/observedGeneration") {
        return Ok((
            "Waiting for deployment spec update to be observed...".into(),
            false,
        ));
    }
    let deadline = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded");
    if deadline {
        return Err(format!("deployment \"{name}\" exceeded its progress deadline; see `skiff describe deployment {name}`"));
    }
    let want = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let updated = int("/status/updatedReplicas");
    let total = int("/status/replicas");
    let available = int("/status/availableReplicas");
    if updated < want {
        return Ok((
            format!("Waiting for deployment \"{name}\" rollout to finish: {updated} out of {want} new replicas have been updated..."),
            false,
        ));
    }
    if total > updated {
        return Ok((
            format!("Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...", total - updated),
            false,
        ));
    }
    if available < updated {
        return Ok((
            format!("Waiting for deployment \"{name}\" rollout to finish: {available} of {updated} updated replicas are available..."),
            false,
        ));
    }
    Ok((
        format!("deployment \"{name}\" successfully rolled out"),
        true,
    ))
}

/// `(revision, replicaset)` pairs owned by the deployment `uid`, oldest first.
pub fn revisions(replicasets: &[Value], uid: &str) -> Vec<(i64, Value)> {
    let mut out: Vec<(i64, Value)> = replicasets
        .iter()
        .filter(|rs| {
            rs.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|o| o["uid"] == uid)
        })
        .filter_map(|rs| {
            let rev = rs
                .pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
                .and_then(Value::as_str)?
                .parse()
                .ok()?;
            Some((rev, rs.clone()))
        })
        .collect();
    out.sort_by_key(|(r, _)| *r);
    out
}

/// The template to restore: the ReplicaSet's template without its pod-template-hash.
pub fn template_for_undo(revs: &[(i64, Value)], to: i64) -> anyhow::Result<(i64, Value)> {
    let target = if to == 0 {
        if revs.len() < 2 {
            bail!("no rollout history found for the deployment: there is no previous revision to go back to");
        }
        &revs[revs.len() - 2]
    } else {
        revs.iter().find(|(r, _)| *r == to).ok_or_else(|| {
            anyhow::anyhow!(
                "unable to find the specified revision {to}; `skiff rollout history` lists them"
            )
        })?
    };
    let mut template = target
        .1
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(json!({}));
    if let Some(l) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        l.remove("pod-template-hash");
    }
    Ok((target.0, template))
}

async fn deployment(ctx: &Ctx, t: &RolloutTarget) -> anyhow::Result<(&'static str, String)> {
    let (typ, name) = match t.target.as_slice() {
        [one] => match one.split_once('/') {
            Some((a, b)) => (a.to_string(), b.to_string()),
            None => bail!("give the object as TYPE/NAME, e.g. deployment/{one}"),
        },
        [a, b] => (a.clone(), b.clone()),
        _ => bail!("give exactly one deployment, e.g. deployment/web"),
    };
    let r = ctx.discovery().await?.resolve(&typ)?;
    if r.kind != "Deployment" {
        bail!(
            "rollout supports deployments only here, not {}",
            r.qualified_plural()
        );
    }
    Ok(("deployment", name))
}

fn deployments(ctx_d: &super::discovery::Discovery) -> anyhow::Result<&Resource> {
    ctx_d.resolve("deployments.apps")
}

pub async fn run(ctx: &Ctx, cmd: &RolloutCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    let t = cmd.target();
    let (_, name) = deployment(ctx, t).await?;
    let discovery = ctx.discovery().await?;
    let r = deployments(discovery)?;
    let ns = Some(ctx.namespace.as_str());
    let path = r.object_path(ns, &name);
    let prefix = r.kind_prefix();
    match cmd {
        RolloutCommand::Status(t) => {
            let timeout = parse_duration(&t.timeout)?;
            let watch = async {
                let mut last = String::new();
                loop {
                    let seen = last.clone();
                    // No deadline per wait: the whole watch has one (below), so that a
                    // timeout names what was asked for, not what was left of it.
                    let obj = wait_for(ctx, r, ns, &name, Duration::ZERO, &|o| match o {
                        None => true,
                        Some(d) => match deployment_status(d) {
                            Ok((msg, done)) => done || msg != seen,
                            Err(_) => true,
                        },
                    })
                    .await?;
                    let Some(obj) = obj else {
                        bail!("deployments.apps \"{name}\" not found")
                    };
                    let (msg, done) = deployment_status(&obj).map_err(|e| anyhow::anyhow!(e))?;
                    if msg != last {
                        writeln!(out, "{msg}")?;
                        out.flush()?;
                    }
                    if done || !t.watch {
                        return Ok(());
                    }
                    last = msg;
                }
            };
            if timeout.is_zero() {
                return watch.await;
            }
            return match tokio::time::timeout(timeout, watch).await {
                Ok(r) => r,
                Err(_) => bail!(
                    "timed out waiting for the rollout of {prefix}/{name} after {}; raise --timeout or look at `skiff describe {prefix}/{name}`",
                    t.timeout
                ),
            };
        }
        RolloutCommand::History(t) => {
            let d = ctx.get_json(&path).await?;
            let revs = owned_revisions(ctx, discovery, &d).await?;
            if t.revision != 0 {
                let (_, rs) = revs.iter().find(|(r, _)| *r == t.revision).ok_or_else(|| {
                    anyhow::anyhow!("unable to find the specified revision {}; `skiff rollout history` lists them", t.revision)
                })?;
                writeln!(out, "{prefix}/{name} with revision #{}", t.revision)?;
                out.write_all(super::printer::to_yaml(&rs["spec"]["template"])?.as_bytes())?;
                return Ok(());
            }
            writeln!(out, "{prefix}/{name} ")?;
            let mut rows = vec![vec!["REVISION".to_string(), "CHANGE-CAUSE".to_string()]];
            for (rev, rs) in &revs {
                let cause = rs
                    .pointer("/metadata/annotations/kubernetes.io~1change-cause")
                    .and_then(Value::as_str)
                    .unwrap_or("<none>");
                rows.push(vec![rev.to_string(), cause.to_string()]);
            }
            // kubectl's history table is two spaces apart (not get's three).
            let text: String = rows.iter().map(|r| r.join("\t") + "\n").collect();
            out.write_all(super::describe::tabwrite(&text, 2).as_bytes())?;
            writeln!(out)?;
        }
        RolloutCommand::Undo(t) => {
            // The controller bumps the resourceVersion with every status write, so the
            // guarded patch can lose a race that has nothing to do with the template:
            // read again and retry a few times before giving up.
            let mut attempt = 0;
            loop {
                attempt += 1;
                let d = ctx.get_json(&path).await?;
                if d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
                    bail!("you cannot rollback a paused deployment; resume it first with `skiff rollout resume deployment/{name}`");
                }
                let revs = owned_revisions(ctx, discovery, &d).await?;
                let (rev, template) = template_for_undo(&revs, t.to_revision)?;
                if d.pointer("/spec/template") == Some(&template) {
                    writeln!(out, "{prefix}/{name} skipped rollback (current template already matches revision {rev})")?;
                    return Ok(());
                }
                let patch = json!([
                    {"op": "test", "path": "/metadata/resourceVersion", "value": d["metadata"]["resourceVersion"]},
                    {"op": "replace", "path": "/spec/template", "value": template}
                ]);
                match ctx
                    .send_json(
                        Method::PATCH,
                        &with_manager(&path, "rollout"),
                        "application/json-patch+json",
                        &patch,
                    )
                    .await
                {
                    Ok(_) => break,
                    Err(e) if attempt < 5 && lost_race(&e) => continue,
                    Err(e) => return Err(e),
                }
            }
            writeln!(out, "{prefix}/{name} rolled back")?;
        }
        RolloutCommand::Restart(_) => {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}});
            ctx.send_json(
                Method::PATCH,
                &with_manager(&path, "rollout"),
                "application/merge-patch+json",
                &patch,
            )
            .await?;
            writeln!(out, "{prefix}/{name} restarted")?;
        }
        RolloutCommand::Pause(_) | RolloutCommand::Resume(_) => {
            let pause = matches!(cmd, RolloutCommand::Pause(_));
            let d = ctx.get_json(&path).await?;
            let is_paused = d
                .pointer("/spec/paused")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let word = if pause { "paused" } else { "resumed" };
            if is_paused == pause {
                bail!(
                    "{prefix}/{name} is already {}",
                    if pause {
                        "paused"
                    } else {
                        "not paused (resumed)"
                    }
                );
            }
            let patch = json!({"spec": {"paused": pause}});
            ctx.send_json(
                Method::PATCH,
                &with_manager(&path, "rollout"),
                "application/merge-patch+json",
                &patch,
            )
            .await?;
            writeln!(out, "{prefix}/{name} {word}")?;
        }
    }
    Ok(())
}

/// Whether a guarded write failed only because the object changed since it was read
/// (a conflict, or the resourceVersion `test` of a JSON patch not matching).
fn lost_race(e: &anyhow::Error) -> bool {
    e.downcast_ref::<super::client::ApiFailure>()
        .is_some_and(|f| f.code == 409 || (f.code == 422 && f.message.contains("resourceVersion")))
}

async fn owned_revisions(
    ctx: &Ctx,
    d: &super::discovery::Discovery,
    dep: &Value,
) -> anyhow::Result<Vec<(i64, Value)>> {
    let rs = d.resolve("replicasets.apps")?;
    let uid = dep
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let list = ctx
        .get_json(&rs.collection_path(Some(&ctx.namespace)))
        .await?;
    Ok(revisions(
        list["items"].as_array().map(Vec::as_slice).unwrap_or(&[]),
        uid,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(
        gen: i64,
        observed: i64,
        want: i64,
        replicas: i64,
        updated: i64,
        available: i64,
    ) -> Value {
        json!({
            "metadata": {"name": "web", "generation": gen},
            "spec": {"replicas": want},
            "status": {"observedGeneration": observed, "replicas": replicas, "updatedReplicas": updated, "availableReplicas": available}
        })
    }

    #[test]
    fn rollout_status_messages_match_kubectl() {
        let cases = [
            (dep(2, 1, 3, 3, 3, 3), "Waiting for deployment spec update to be observed...", false),
            (dep(2, 2, 3, 3, 1, 1), "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...", false),
            (dep(2, 2, 3, 4, 3, 3), "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...", false),
            (dep(2, 2, 3, 3, 3, 2), "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...", false),
            (dep(2, 2, 3, 3, 3, 3), "deployment \"web\" successfully rolled out", true),
        ];
        for (d, msg, done) in cases {
            assert_eq!(deployment_status(&d).unwrap(), (msg.to_string(), done));
        }
        let mut stuck = dep(1, 1, 1, 1, 0, 0);
        stuck["status"]["conditions"] = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]);
        assert!(deployment_status(&stuck)
            .unwrap_err()
            .contains("exceeded its progress deadline"));
    }

    fn rs(rev: &str, owner: &str, image: &str) -> Value {
        json!({
            "metadata": {"annotations": {"deployment.kubernetes.io/revision": rev}, "ownerReferences": [{"uid": owner}]},
            "spec": {"template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}}, "spec": {"image": image}}}
        })
    }

    #[test]
    fn only_a_changed_object_is_retried() {
        let fail = |code: u16, message: &str| {
            anyhow::Error::from(super::super::client::ApiFailure {
                code,
                reason: String::new(),
                message: message.into(),
                causes: vec![],
                hint: None,
            })
        };
        assert!(lost_race(&fail(409, "the object has been modified")));
        assert!(lost_race(&fail(
            422,
            "the JSON patch failed: operation '/0' failed at path '/metadata/resourceVersion'"
        )));
        assert!(!lost_race(&fail(
            422,
            "spec.template.spec.containers: Required value"
        )));
        assert!(!lost_race(&fail(404, "not found")));
    }

    #[test]
    fn history_and_undo_pick_the_right_revision() {
        let all = vec![
            rs("2", "u1", "v2"),
            rs("1", "u1", "v1"),
            rs("3", "u1", "v3"),
            rs("9", "other", "x"),
        ];
        let revs = revisions(&all, "u1");
        assert_eq!(
            revs.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        let (rev, t) = template_for_undo(&revs, 0).unwrap();
        assert_eq!(rev, 2);
        assert_eq!(
            t,
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"image": "v2"}})
        );
        assert_eq!(template_for_undo(&revs, 1).unwrap().0, 1);
        assert!(template_for_undo(&revs, 7).is_err());
        assert!(template_for_undo(&revs[..1], 0).is_err());
    }
}
