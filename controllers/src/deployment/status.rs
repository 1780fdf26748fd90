//! Deployment status: replica counts summed over its ReplicaSets and the `Available`
//! and `Progressing` conditions, with the reasons kubectl looks for
//! (`kubectl rollout status` fails on `ProgressDeadlineExceeded`; `kubectl wait
//! --for=condition=Available` waits for `Available=True`).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";

/// What happened in this reconcile that the Progressing condition reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happened {
    CreatedNew,
    Nothing,
}

/// The status to write and, while a rollout is in progress, when to look again to
/// notice a passed progress deadline.
pub fn compute(
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    all: &[&ReplicaSet],
    max_unavailable: i32,
    happened: Happened,
    now: Timestamp,
) -> (DeploymentStatus, Option<Duration>) {
    let spec = d.spec.as_ref();
    let want = spec.and_then(|s| s.replicas).unwrap_or(1);
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| all.iter().map(|rs| f(rs)).sum::<i32>();
    let st = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let old = d.status.clone().unwrap_or_default();
    let mut s = DeploymentStatus {
        replicas: Some(sum(&|rs| st(rs).replicas)),
        updated_replicas: Some(new_rs.map_or(0, |rs| st(rs).replicas)),
        ready_replicas: Some(sum(&|rs| st(rs).ready_replicas.unwrap_or(0))),
        available_replicas: Some(sum(&|rs| st(rs).available_replicas.unwrap_or(0))),
        observed_generation: d.metadata.generation,
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    let available = s.available_replicas.unwrap_or(0);
    s.unavailable_replicas = Some((want - available).max(0));

    let mut conds = s.conditions.take().unwrap_or_default();
    if available >= want - max_unavailable {
        set(
            &mut conds,
            AVAILABLE,
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            now,
            false,
        );
    } else {
        set(
            &mut conds,
            AVAILABLE,
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            now,
            false,
        );
    }

    let mut requeue = None;
    let paused = spec.and_then(|s| s.paused).unwrap_or(false);
    let rs_name = new_rs.map(|rs| rs.name_any()).unwrap_or_default();
    let current = conds.iter().find(|c| c.type_ == PROGRESSING).cloned();
    if paused {
        set(
            &mut conds,
            PROGRESSING,
            "Unknown",
            PAUSED,
            "Deployment is paused",
            now,
            false,
        );
    } else if current
        .as_ref()
        .is_some_and(|c| c.reason.as_deref() == Some(PAUSED))
    {
        set(
            &mut conds,
            PROGRESSING,
            "Unknown",
            RESUMED,
            "Deployment is resumed",
            now,
            false,
        );
    } else if let Some(deadline) = spec.and_then(|s| s.progress_deadline_seconds).or(Some(600)) {
        let complete = s.updated_replicas == Some(want)
            && s.replicas == Some(want)
            && available == want
            && new_rs.is_some();
        let progressed = s.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
            || s.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
            || available > old.available_replicas.unwrap_or(0)
            || s.replicas.unwrap_or(0) < old.replicas.unwrap_or(0);
        if complete {
            let msg = format!("ReplicaSet \"{rs_name}\" has successfully progressed.");
            set(
                &mut conds,
                PROGRESSING,
                "True",
                NEW_RS_AVAILABLE,
                &msg,
                now,
                false,
            );
        } else if happened == Happened::CreatedNew {
            let msg = format!("Created new replica set \"{rs_name}\"");
            set(
                &mut conds,
                PROGRESSING,
                "True",
                NEW_RS_CREATED,
                &msg,
                now,
                true,
            );
        } else if progressed || current.is_none() {
            let (reason, msg) = if current.is_none() {
                (FOUND_NEW_RS, format!("Found new replica set \"{rs_name}\""))
            } else {
                (
                    RS_UPDATED,
                    format!("ReplicaSet \"{rs_name}\" is progressing."),
                )
            };
            set(&mut conds, PROGRESSING, "True", reason, &msg, now, true);
        } else if let Some(c) = current.as_ref() {
            let reason = c.reason.as_deref().unwrap_or("");
            if reason != NEW_RS_AVAILABLE && reason != DEADLINE_EXCEEDED {
                let since = c.last_update_time.as_ref().map_or(now, |t| t.0);
                let at = since + SignedDuration::from_secs(i64::from(deadline));
                if at <= now {
                    let msg = format!("ReplicaSet \"{rs_name}\" has timed out progressing.");
                    set(
                        &mut conds,
                        PROGRESSING,
                        "False",
                        DEADLINE_EXCEEDED,
                        &msg,
                        now,
                        false,
                    );
                } else {
                    requeue = Some(crate::util::until(now, at) + Duration::from_millis(100));
                }
            }
        }
        if !complete && requeue.is_none() {
            let c = conds.iter().find(|c| c.type_ == PROGRESSING);
            if let Some(c) =
                c.filter(|c| c.status == "True" && c.reason.as_deref() != Some(NEW_RS_AVAILABLE))
            {
                let since = c.last_update_time.as_ref().map_or(now, |t| t.0);
                let at = since + SignedDuration::from_secs(i64::from(deadline));
                requeue = Some(crate::util::until(now, at) + Duration::from_millis(100));
            }
        }
    }
    s.conditions = Some(conds);
    (s, requeue)
}

/// Sets condition `type_`. An unchanged status and reason keeps the condition as it is
/// unless `touch` (progress refreshes `lastUpdateTime`); `lastTransitionTime` changes
/// only when the status does.
fn set(
    conds: &mut Vec<DeploymentCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
    touch: bool,
) {
    let existing = conds.iter().position(|c| c.type_ == type_);
    if let Some(i) = existing {
        let c = &conds[i];
        if c.status == status
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message)
            && !touch
        {
            return;
        }
        if c.status == status
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message)
            && touch
        {
            conds[i].last_update_time = Some(Time(now));
            return;
        }
    }
    let transition = match existing.map(|i| &conds[i]) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    let cond = DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_update_time: Some(Time(now)),
        last_transition_time: transition,
    };
    match existing {
        Some(i) => conds[i] = cond,
        None => conds.push(cond),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::fixtures::{deployment, rs_with_status};

    fn cond<'a>(s: &'a DeploymentStatus, t: &str) -> &'a DeploymentCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
    }

    #[test]
    fn complete_rollout_is_available_and_progressed() {
        let d = deployment("web", 3);
        let new = rs_with_status("web-abc", 3, 3, 3);
        let (s, requeue) = compute(
            &d,
            Some(&new),
            &[&new],
            0,
            Happened::Nothing,
            Timestamp::now(),
        );
        assert_eq!(
            (
                s.replicas,
                s.updated_replicas,
                s.available_replicas,
                s.unavailable_replicas
            ),
            (Some(3), Some(3), Some(3), Some(0))
        );
        assert_eq!(cond(&s, AVAILABLE).status, "True");
        let p = cond(&s, PROGRESSING);
        assert_eq!(
            (p.status.as_str(), p.reason.as_deref()),
            ("True", Some(NEW_RS_AVAILABLE))
        );
        assert_eq!(
            p.message.as_deref(),
            Some("ReplicaSet \"web-abc\" has successfully progressed.")
        );
        assert_eq!(requeue, None);
    }

    #[test]
    fn rollout_in_progress_then_deadline_exceeded() {
        let now = Timestamp::now();
        let mut d = deployment("web", 3);
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(60);
        let new = rs_with_status("web-new", 1, 1, 0);
        let old = rs_with_status("web-old", 3, 3, 3);
        let (s, requeue) = compute(&d, Some(&new), &[&new, &old], 1, Happened::CreatedNew, now);
        assert_eq!(
            cond(&s, PROGRESSING).reason.as_deref(),
            Some(NEW_RS_CREATED)
        );
        assert_eq!(cond(&s, AVAILABLE).status, "True", "3 available >= 3 - 1");
        let wait = requeue.expect("deadline check scheduled");
        assert!(
            wait > Duration::from_secs(59) && wait < Duration::from_secs(61),
            "{wait:?}"
        );

        // No progress for longer than the deadline.
        d.status = Some(s);
        let later = now + SignedDuration::from_secs(61);
        let (s2, _) = compute(&d, Some(&new), &[&new, &old], 1, Happened::Nothing, later);
        let p = cond(&s2, PROGRESSING);
        assert_eq!(
            (p.status.as_str(), p.reason.as_deref()),
            ("False", Some(DEADLINE_EXCEEDED))
        );

        // Progress before the deadline refreshes lastUpdateTime instead.
        let soon = now + SignedDuration::from_secs(30);
        let newer = rs_with_status("web-new", 2, 2, 1);
        let (s3, _) = compute(
            &d,
            Some(&newer),
            &[&newer, &old],
            1,
            Happened::Nothing,
            soon,
        );
        let p = cond(&s3, PROGRESSING);
        assert_eq!(p.reason.as_deref(), Some(RS_UPDATED));
        assert_eq!(p.last_update_time.as_ref().unwrap().0, soon);
        assert_eq!(
            p.last_transition_time.as_ref().unwrap().0,
            now,
            "still True: transition time kept"
        );
    }

    #[test]
    fn unavailable_and_paused() {
        let mut d = deployment("web", 3);
        let new = rs_with_status("web-new", 3, 3, 1);
        let (s, _) = compute(
            &d,
            Some(&new),
            &[&new],
            0,
            Happened::Nothing,
            Timestamp::now(),
        );
        assert_eq!(
            cond(&s, AVAILABLE).reason.as_deref(),
            Some("MinimumReplicasUnavailable")
        );
        d.spec.as_mut().unwrap().paused = Some(true);
        let (s, _) = compute(
            &d,
            Some(&new),
            &[&new],
            0,
            Happened::Nothing,
            Timestamp::now(),
        );
        assert_eq!(cond(&s, PROGRESSING).status, "Unknown");
        assert_eq!(cond(&s, PROGRESSING).reason.as_deref(), Some(PAUSED));
        d.spec.as_mut().unwrap().paused = Some(false);
        d.status = Some(s);
        let (s, _) = compute(
            &d,
            Some(&new),
            &[&new],
            0,
            Happened::Nothing,
            Timestamp::now(),
        );
        assert_eq!(cond(&s, PROGRESSING).reason.as_deref(), Some(RESUMED));
    }
}
