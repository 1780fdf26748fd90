//! One step of a Recreate rollout: scale every old ReplicaSet to zero, wait until their
//! pods are gone, then bring the new ReplicaSet up to `replicas`.

use super::rolling::RsView;

/// What a Recreate step does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Step {
    /// Old ReplicaSets to scale to zero.
    pub scale_old_to_zero: Vec<String>,
    /// Old pods are still there: do nothing more this time.
    pub wait_for_old_pods: bool,
    /// Replicas for the new ReplicaSet (create it with them if it does not exist).
    pub new_replicas: Option<i32>,
}

/// `old_pods` is the number of pods the old ReplicaSets still have (their
/// `status.replicas`).
pub fn step(replicas: i32, new: Option<&RsView>, old: &[RsView], old_pods: i32) -> Step {
    let scale_old_to_zero: Vec<String> = old
        .iter()
        .filter(|r| r.replicas > 0)
        .map(|r| r.name.clone())
        .collect();
    if !scale_old_to_zero.is_empty() {
        return Step {
            scale_old_to_zero,
            ..Default::default()
        };
    }
    if old_pods > 0 {
        return Step {
            wait_for_old_pods: true,
            ..Default::default()
        };
    }
    match new {
        Some(n) if n.replicas == replicas => Step::default(),
        _ => Step {
            new_replicas: Some(replicas),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str, replicas: i32) -> RsView {
        RsView {
            name: name.into(),
            replicas,
            available: replicas,
        }
    }

    #[test]
    fn recreate_steps_in_order() {
        let cases = vec![
            (
                "old running: scale down",
                Some(v("new", 0)),
                vec![v("old", 3)],
                3,
                Step {
                    scale_old_to_zero: vec!["old".into()],
                    ..Default::default()
                },
            ),
            (
                "old pods draining: wait",
                Some(v("new", 0)),
                vec![v("old", 0)],
                2,
                Step {
                    wait_for_old_pods: true,
                    ..Default::default()
                },
            ),
            (
                "old gone: create new",
                None,
                vec![v("old", 0)],
                0,
                Step {
                    new_replicas: Some(3),
                    ..Default::default()
                },
            ),
            (
                "old gone: scale new",
                Some(v("new", 0)),
                vec![],
                0,
                Step {
                    new_replicas: Some(3),
                    ..Default::default()
                },
            ),
            (
                "done",
                Some(v("new", 3)),
                vec![v("old", 0)],
                0,
                Step::default(),
            ),
        ];
        for (name, new, old, old_pods, want) in cases {
            assert_eq!(step(3, new.as_ref(), &old, old_pods), want, "{name}");
        }
    }
}
