//! Leader election through a `coordination.k8s.io/v1` Lease, so that of several skiff
//! servers exactly one schedules at a time (the others wait as hot standbys).
//!
//! The protocol is upstream's (client-go `leaderelection` with a `LeaseLock`):
//! - the leader writes `holderIdentity`, `leaseDurationSeconds` and `renewTime` every
//!   retry period; every write carries the `resourceVersion` it read, so of two servers
//!   racing, the API server accepts one and answers 409 Conflict to the other;
//! - a follower takes over once it has seen the *same* record for longer than the lease
//!   duration by its own clock — it never compares another machine's timestamps with its
//!   own, so clock skew between servers cannot cause two leaders;
//! - a leader that cannot renew within the renew deadline stops scheduling;
//! - on shutdown the leader releases the lease (empty holder, 1 s duration) so a standby
//!   takes over at once.
//!
//! [`decide`] is the pure rule; [`LeaderElector`] is the thin API shell around it.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

/// Where the lease lives and how long its terms are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    pub namespace: String,
    pub name: String,
    /// How long followers wait after the last change they saw before taking over.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long gives up (must be < lease_duration).
    pub renew_deadline: Duration,
    /// How often the leader renews and followers retry.
    pub retry_period: Duration,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        // kube-scheduler's defaults.
        LeaderElectionConfig {
            namespace: "kube-system".into(),
            name: "kube-scheduler".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What to do with the lease as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// There is no lease: create it, holding it.
    Create,
    /// We hold it: write a fresh renewTime.
    Renew,
    /// Nobody holds it, or the holder stopped renewing: take it.
    TakeOver,
    /// Someone else holds it and is alive.
    Follow { holder: String },
}

/// The rule. `observed_at` is when this process first saw the current record unchanged.
pub fn decide(
    current: Option<&LeaseSpec>,
    me: &str,
    observed_at: Instant,
    now: Instant,
) -> Decision {
    let Some(spec) = current else {
        return Decision::Create;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == me {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    let secs = spec.lease_duration_seconds.unwrap_or(0).max(0) as u64;
    if now.duration_since(observed_at) >= Duration::from_secs(secs) {
        Decision::TakeOver
    } else {
        Decision::Follow {
            holder: holder.to_string(),
        }
    }
}

/// The spec to write after a Create/Renew/TakeOver decision.
pub fn next_spec(
    current: Option<&LeaseSpec>,
    decision: &Decision,
    me: &str,
    now: Timestamp,
    duration: Duration,
) -> LeaseSpec {
    let mut spec = current.cloned().unwrap_or_default();
    let secs = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX).max(1);
    match decision {
        Decision::Create => {
            spec = LeaseSpec {
                lease_transitions: Some(0),
                acquire_time: Some(MicroTime(now)),
                ..Default::default()
            };
        }
        Decision::TakeOver => {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.acquire_time = Some(MicroTime(now));
        }
        Decision::Renew | Decision::Follow { .. } => {}
    }
    spec.holder_identity = Some(me.to_string());
    spec.lease_duration_seconds = Some(secs);
    spec.renew_time = Some(MicroTime(now));
    spec
}

/// A lease API failure.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("reading or writing lease {namespace}/{name} failed (check the API server and that the namespace exists): {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Tries to acquire, renew and release one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    identity: String,
    observed: Option<(LeaseSpec, Instant)>,
    leading: bool,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaderElectionConfig, identity: String) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        LeaderElector {
            api,
            config,
            identity,
            observed: None,
            leading: false,
        }
    }

    pub fn config(&self) -> &LeaderElectionConfig {
        &self.config
    }

    fn api_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source,
        }
    }

    /// One round: returns whether we hold the lease afterwards. A lost write race (409)
    /// is not an error, just "not leader this round".
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let now = Instant::now();
        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.api_error(e))?;
        let spec = current.as_ref().map(|l| l.spec.clone().unwrap_or_default());
        let observed_at = match (&self.observed, &spec) {
            (Some((seen, at)), Some(s)) if seen == s => *at,
            _ => now,
        };
        if let Some(s) = &spec {
            self.observed = Some((s.clone(), observed_at));
        }
        let decision = decide(spec.as_ref(), &self.identity, observed_at, now);
        if let Decision::Follow { holder } = &decision {
            if self.leading {
                tracing::warn!(%holder, "lost the scheduler lease to another holder");
            }
            self.leading = false;
            return Ok(false);
        }
        let new_spec = next_spec(
            spec.as_ref(),
            &decision,
            &self.identity,
            Timestamp::now(),
            self.config.lease_duration,
        );
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(new_spec.clone()),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                // The read resourceVersion stays in metadata: the update is conditional on it.
                lease.spec = Some(new_spec.clone());
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => {
                if !self.leading {
                    tracing::info!(identity = %self.identity, ?decision, "acquired the scheduler lease");
                }
                self.leading = true;
                self.observed = Some((new_spec, Instant::now()));
                Ok(true)
            }
            Err(e) if is_conflict(&e) => {
                self.leading = false;
                Ok(false)
            }
            Err(e) => Err(self.api_error(e)),
        }
    }

    /// Gives the lease up if we hold it, so a standby takes over without waiting.
    pub async fn release(&mut self) -> Result<(), LeaderError> {
        if !self.leading {
            return Ok(());
        }
        self.leading = false;
        let Some(mut lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.api_error(e))?
        else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(self.api_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(String::from),
            lease_duration_seconds: Some(secs),
            ..Default::default()
        }
    }

    #[test]
    fn decisions() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let cases = [
            (None, t0, t0, Decision::Create),
            (Some(spec(Some("me"), 15)), t0, t0 + s(100), Decision::Renew),
            (Some(spec(None, 15)), t0, t0, Decision::TakeOver),
            (Some(spec(Some(""), 15)), t0, t0, Decision::TakeOver),
            (
                Some(spec(Some("other"), 15)),
                t0,
                t0 + s(14),
                Decision::Follow {
                    holder: "other".into(),
                },
            ),
            (
                Some(spec(Some("other"), 15)),
                t0,
                t0 + s(15),
                Decision::TakeOver,
            ),
            (
                Some(spec(Some("other"), 1)),
                t0,
                t0 + s(1),
                Decision::TakeOver,
            ),
        ];
        for (current, observed, now, want) in cases {
            assert_eq!(
                decide(current.as_ref(), "me", observed, now),
                want,
                "{current:?}"
            );
        }
    }

    #[test]
    fn specs_written() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let d = Duration::from_secs(15);
        let created = next_spec(None, &Decision::Create, "me", now, d);
        assert_eq!(created.holder_identity.as_deref(), Some("me"));
        assert_eq!(created.lease_duration_seconds, Some(15));
        assert_eq!(created.lease_transitions, Some(0));
        assert_eq!(created.renew_time, Some(MicroTime(now)));
        assert_eq!(created.acquire_time, Some(MicroTime(now)));

        let later = Timestamp::from_second(1_700_000_010).unwrap();
        let renewed = next_spec(Some(&created), &Decision::Renew, "me", later, d);
        assert_eq!(
            renewed.acquire_time,
            Some(MicroTime(now)),
            "renewal keeps acquireTime"
        );
        assert_eq!(renewed.renew_time, Some(MicroTime(later)));
        assert_eq!(renewed.lease_transitions, Some(0));

        let taken = next_spec(Some(&renewed), &Decision::TakeOver, "you", later, d);
        assert_eq!(taken.holder_identity.as_deref(), Some("you"));
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.acquire_time, Some(MicroTime(later)));
    }
}
