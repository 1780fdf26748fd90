//! One step of a RollingUpdate: how far to scale the new ReplicaSet up and the old ones
//! down without ever exceeding `replicas + maxSurge` pods in total (counted by
//! ReplicaSet `spec.replicas`) or dropping below `replicas - maxUnavailable` available
//! pods. This is upstream's `NewRSNewReplicas` + `reconcileOldReplicaSets` arithmetic.
//!
//! The step is pure over [`RsView`]s; the controller applies it, the ReplicaSet
//! controller moves pods, and the next reconcile (triggered by ReplicaSet status
//! changes) takes the next step.

/// What the rollout arithmetic needs to know about one ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsView {
    pub name: String,
    /// `spec.replicas`
    pub replicas: i32,
    /// `status.availableReplicas`
    pub available: i32,
}

/// The scale changes of one step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Step {
    /// New `spec.replicas` of the new ReplicaSet, if it changes.
    pub scale_new: Option<i32>,
    /// New `spec.replicas` of old ReplicaSets that change.
    pub scale_old: Vec<(String, i32)>,
}

/// `maxSurge` and `maxUnavailable` resolved against `replicas` (surge rounds up,
/// unavailable down, as upstream). Both zero would deadlock the rollout, so
/// unavailable becomes 1 then, as upstream does.
pub fn resolve_bounds(
    replicas: i32,
    max_surge: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    max_unavailable: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
) -> (i32, i32) {
    let surge = crate::util::scaled_value(max_surge, "25%", replicas, true);
    let mut unavailable = crate::util::scaled_value(max_unavailable, "25%", replicas, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(replicas.max(0)))
}

/// Computes one step. `old` must be ordered oldest first: old ReplicaSets are drained in
/// that order.
pub fn step(replicas: i32, surge: i32, unavailable: i32, new: &RsView, old: &[RsView]) -> Step {
    let old_total: i32 = old.iter().map(|r| r.replicas).sum();
    let all_total = new.replicas + old_total;

    // Scale up the new ReplicaSet first, as far as the surge allows.
    let target_new = if new.replicas > replicas {
        // The Deployment was scaled down: the new ReplicaSet never needs more.
        replicas
    } else if new.replicas == replicas {
        new.replicas
    } else {
        let max_total = replicas + surge;
        if all_total >= max_total {
            new.replicas
        } else {
            new.replicas + (max_total - all_total).min(replicas - new.replicas)
        }
    };
    if target_new != new.replicas {
        return Step {
            scale_new: Some(target_new),
            scale_old: Vec::new(),
        };
    }
    if old_total == 0 {
        return Step::default();
    }

    // Then scale old ones down, never below the availability floor.
    let min_available = replicas - unavailable;
    let new_unavailable = (new.replicas - new.available).max(0);
    let max_scaled_down = all_total - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Step::default();
    }
    let mut olds: Vec<RsView> = old.to_vec();
    // Unhealthy old pods (not available) can go first: removing them costs no
    // availability.
    let mut cleaned = 0;
    for rs in olds.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = (rs.replicas - rs.available).max(0);
        if rs.replicas == 0 || unhealthy == 0 {
            continue;
        }
        let n = unhealthy.min(max_scaled_down - cleaned);
        rs.replicas -= n;
        cleaned += n;
    }
    // Then available ones, as far as availability above the floor allows.
    let available: i32 = new.available
        + olds
            .iter()
            .map(|r| r.available.min(r.replicas))
            .sum::<i32>();
    let mut budget = (available - min_available).max(0);
    for rs in olds.iter_mut() {
        if budget == 0 {
            break;
        }
        if rs.replicas == 0 {
            continue;
        }
        let n = rs.replicas.min(budget);
        rs.replicas -= n;
        budget -= n;
    }
    let scale_old = olds
        .into_iter()
        .zip(old.iter())
        .filter(|(after, before)| after.replicas != before.replicas)
        .map(|(after, _)| (after.name, after.replicas))
        .collect();
    Step {
        scale_new: None,
        scale_old,
    }
}

/// One active ReplicaSet as proportional scaling sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizing {
    pub name: String,
    /// `spec.replicas`
    pub replicas: i32,
    /// `deployment.kubernetes.io/max-replicas`: the Deployment's size (plus surge) when
    /// this ReplicaSet was last scaled.
    pub max_annotation: Option<i32>,
    /// Creation order: larger is newer.
    pub age_rank: usize,
}

/// Resizes several active ReplicaSets when the Deployment is resized in the middle of a
/// rollout, keeping their proportions (upstream `scale` for RollingUpdate): each gets
/// its share of the difference, rounded, and the largest one absorbs the leftover.
/// `status_replicas` is the Deployment's `status.replicas`, used for ReplicaSets without
/// the annotation. Returns the new size of every ReplicaSet, in input order.
pub fn proportional(
    replicas: i32,
    surge: i32,
    status_replicas: i32,
    active: &[Sizing],
) -> Vec<(String, i32)> {
    let current: i32 = active.iter().map(|r| r.replicas).sum();
    let allowed = if replicas > 0 { replicas + surge } else { 0 };
    let to_add = allowed - current;
    let mut order: Vec<&Sizing> = active.iter().collect();
    // Scaling up favours the larger, then newer; scaling down the larger, then older.
    order.sort_by(|a, b| {
        b.replicas.cmp(&a.replicas).then(if to_add > 0 {
            b.age_rank.cmp(&a.age_rank)
        } else {
            a.age_rank.cmp(&b.age_rank)
        })
    });
    let mut sizes: Vec<(String, i32)> = Vec::new();
    let mut added = 0;
    for rs in &order {
        let mut share = 0;
        if to_add != 0 && rs.replicas != 0 && to_add != added {
            let fraction = if replicas == 0 {
                -rs.replicas
            } else {
                let annotated = rs.max_annotation.unwrap_or(status_replicas).max(1);
                let target =
                    f64::from(rs.replicas) * f64::from(replicas + surge) / f64::from(annotated);
                target.round() as i32 - rs.replicas
            };
            let left = to_add - added;
            share = if to_add > 0 {
                fraction.min(left)
            } else {
                fraction.max(left)
            };
        }
        added += share;
        sizes.push((rs.name.clone(), rs.replicas + share));
    }
    if let Some(first) = sizes.first_mut() {
        first.1 = (first.1 + to_add - added).max(0);
    }
    active
        .iter()
        .map(|rs| {
            sizes
                .iter()
                .find(|(n, _)| n == &rs.name)
                .cloned()
                .unwrap_or((rs.name.clone(), rs.replicas))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn v(name: &str, replicas: i32, available: i32) -> RsView {
        RsView {
            name: name.into(),
            replicas,
            available,
        }
    }

    #[test]
    fn bounds_resolve_like_upstream() {
        let s = |x: &str| IntOrString::String(x.into());
        let cases = vec![
            (10, None, None, (3, 2)),
            (1, None, None, (1, 0)),
            (
                4,
                Some(IntOrString::Int(0)),
                Some(IntOrString::Int(0)),
                (0, 1),
            ),
            (10, Some(s("50%")), Some(s("10%")), (5, 1)),
            (
                3,
                Some(IntOrString::Int(1)),
                Some(IntOrString::Int(5)),
                (1, 3),
            ),
        ];
        for (replicas, surge, unav, want) in cases {
            assert_eq!(
                resolve_bounds(replicas, surge.as_ref(), unav.as_ref()),
                want,
                "{replicas} {surge:?} {unav:?}"
            );
        }
    }

    #[test]
    fn single_steps() {
        struct Case {
            name: &'static str,
            replicas: i32,
            surge: i32,
            unavailable: i32,
            new: RsView,
            old: Vec<RsView>,
            want: Step,
        }
        let cases = vec![
            Case {
                name: "start: surge up the new replicaset",
                replicas: 4,
                surge: 1,
                unavailable: 1,
                new: v("new", 0, 0),
                old: vec![v("old", 4, 4)],
                want: Step {
                    scale_new: Some(1),
                    scale_old: vec![],
                },
            },
            Case {
                name: "surge used: scale old down by what availability allows",
                replicas: 4,
                surge: 1,
                unavailable: 1,
                new: v("new", 1, 0),
                old: vec![v("old", 4, 4)],
                want: Step {
                    scale_new: None,
                    scale_old: vec![("old".into(), 3)],
                },
            },
            Case {
                name: "new pods not available yet: wait",
                replicas: 4,
                surge: 1,
                unavailable: 0,
                new: v("new", 1, 0),
                old: vec![v("old", 4, 4)],
                want: Step::default(),
            },
            Case {
                name: "unhealthy old pods go first",
                replicas: 4,
                surge: 0,
                unavailable: 1,
                new: v("new", 0, 0),
                old: vec![v("older", 2, 0), v("old", 4, 4)],
                want: Step {
                    scale_new: None,
                    scale_old: vec![("older".into(), 0), ("old".into(), 3)],
                },
            },
            Case {
                name: "done",
                replicas: 3,
                surge: 1,
                unavailable: 0,
                new: v("new", 3, 3),
                old: vec![v("old", 0, 0)],
                want: Step::default(),
            },
            Case {
                name: "deployment scaled down: new shrinks at once",
                replicas: 2,
                surge: 1,
                unavailable: 0,
                new: v("new", 5, 5),
                old: vec![],
                want: Step {
                    scale_new: Some(2),
                    scale_old: vec![],
                },
            },
        ];
        for c in cases {
            assert_eq!(
                step(c.replicas, c.surge, c.unavailable, &c.new, &c.old),
                c.want,
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn proportional_scaling_keeps_shares() {
        let sz = |name: &str, replicas: i32, max: Option<i32>, age: usize| Sizing {
            name: name.into(),
            replicas,
            max_annotation: max,
            age_rank: age,
        };
        // 10 -> 20 replicas (surge 3 -> 5), mid-rollout with old 8, new 5 (13 = 10 + 3).
        let out = proportional(
            20,
            5,
            13,
            &[sz("old", 8, Some(13), 0), sz("new", 5, Some(13), 1)],
        );
        assert_eq!(out.iter().map(|(_, n)| n).sum::<i32>(), 25);
        let old = out.iter().find(|(n, _)| n == "old").unwrap().1;
        let new = out.iter().find(|(n, _)| n == "new").unwrap().1;
        assert!(old > 8 && new > 5 && old > new, "{out:?}");
        // Scale down to 0.
        let out = proportional(
            0,
            0,
            13,
            &[sz("old", 8, Some(13), 0), sz("new", 5, Some(13), 1)],
        );
        assert_eq!(out, vec![("old".to_string(), 0), ("new".to_string(), 0)]);
        // Scale down 10 -> 5 (surge 2).
        let out = proportional(
            5,
            2,
            13,
            &[sz("old", 8, Some(13), 0), sz("new", 5, Some(13), 1)],
        );
        assert_eq!(out.iter().map(|(_, n)| n).sum::<i32>(), 7);
        assert!(out.iter().all(|(_, n)| *n >= 0));
    }

    /// Simulates whole rollouts with a kubelet that makes created pods available one
    /// tick later, and checks the bounds at every tick.
    #[test]
    fn simulated_rollouts_never_exceed_bounds_and_finish() {
        for &(replicas, surge, unavailable) in &[
            (10, 3, 2),
            (10, 0, 1),
            (10, 1, 0),
            (5, 5, 0),
            (1, 1, 0),
            (7, 2, 3),
        ] {
            let mut new = v("new", 0, 0);
            let mut old = vec![v("old", replicas, replicas)];
            let mut ticks = 0;
            loop {
                ticks += 1;
                assert!(
                    ticks < 200,
                    "rollout {replicas}/{surge}/{unavailable} did not finish"
                );
                let s = step(replicas, surge, unavailable, &new, &old);
                if let Some(n) = s.scale_new {
                    new.replicas = n;
                }
                for (name, n) in &s.scale_old {
                    let rs = old.iter_mut().find(|r| &r.name == name).unwrap();
                    rs.replicas = *n;
                    // Deleted pods vanish at once.
                    rs.available = rs.available.min(*n);
                }
                let total: i32 = new.replicas + old.iter().map(|r| r.replicas).sum::<i32>();
                let avail: i32 = new.available + old.iter().map(|r| r.available).sum::<i32>();
                assert!(
                    total <= replicas + surge,
                    "surge exceeded: {total} at tick {ticks}"
                );
                assert!(
                    avail >= replicas - unavailable,
                    "availability {avail} below floor at tick {ticks}"
                );
                if s == Step::default()
                    && new.available == replicas
                    && old.iter().all(|r| r.replicas == 0)
                {
                    break;
                }
                // The kubelet: pods created last tick are available now.
                new.available = new.replicas;
            }
        }
    }
}
