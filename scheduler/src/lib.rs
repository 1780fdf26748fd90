//! skiff's scheduler: binds every pending pod to a node that can run it, or says why none
//! can.
//!
//! It is an ordinary API client, like an out-of-tree scheduler: it watches Pods and Nodes,
//! and writes only `POST pods/NAME/binding`, the pod's `PodScheduled` condition, and
//! `FailedScheduling` Events (plus a Lease in `kube-system` when leader election is on).
//! It takes the pods whose `spec.schedulerName` is its name (`default-scheduler`), so a
//! student can run their own scheduler next to it under another name.
//!
//! Decisions are pure functions over a snapshot ([`framework::schedule`]), the queue is
//! pure with an injected clock ([`queue`]), and the I/O is a thin shell ([`scheduler`],
//! [`binder`], [`leader`]).
//!
//! # Layout
//! - [`quantity`]: resource quantities (`100m`, `128Mi`) as integers.
//! - [`selectors`]: label selector and node selector term matching.
//! - [`podinfo`]: what the scheduler needs from a Pod (requests, ports, constraints).
//! - [`snapshot`]: nodes with requested resources and placed pods, including assumed ones.
//! - [`framework`]: filter/score plugin contracts and the scheduling cycle with
//!   upstream-style "0/N nodes are available" messages.
//! - [`plugins`]: one file per filter or score plugin, and the default profile.
//! - [`queue`]: active / backoff / unschedulable queues with priority.
//! - [`binder`]: bindings, the Unschedulable condition and FailedScheduling events.
//! - [`scheduler`]: informers, the scheduling loop and the binding tasks.
//! - [`leader`]: Lease-based leader election.

pub mod binder;
pub mod framework;
pub mod leader;
pub mod plugins;
pub mod podinfo;
pub mod quantity;
pub mod queue;
pub mod scheduler;
pub mod selectors;
pub mod snapshot;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use leader::LeaderElectionConfig;
pub use plugins::Weights;
pub use queue::QueueTimings;

/// Everything the scheduler can be told.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Pods with this `spec.schedulerName` are ours.
    pub scheduler_name: String,
    /// Who we are in the Lease and in events (`reportingInstance`); unique per server.
    pub identity: String,
    /// `None` schedules right away (single server); `Some` waits for the Lease.
    pub leader_election: Option<LeaderElectionConfig>,
    pub weights: Weights,
    /// Share of nodes to search per pod; 0 = adaptive like upstream, 100 = all.
    pub percentage_of_nodes_to_score: u32,
    pub queue: QueueTimings,
    /// Bindings and status writes in flight at once.
    pub max_concurrent_writes: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            scheduler_name: "default-scheduler".into(),
            identity: default_identity(),
            leader_election: None,
            weights: Weights::default(),
            percentage_of_nodes_to_score: 0,
            queue: QueueTimings::default(),
            max_concurrent_writes: 64,
        }
    }
}

/// `hostname_pid`: unique enough for two servers on one machine.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}_{}", host.trim(), std::process::id())
}

/// Why the scheduler stopped.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("invalid scheduler config: {0}")]
    Config(String),
}

impl SchedulerConfig {
    fn validate(&self) -> Result<(), SchedulerError> {
        if self.scheduler_name.is_empty() {
            return Err(SchedulerError::Config(
                "scheduler_name must not be empty".into(),
            ));
        }
        if self.percentage_of_nodes_to_score > 100 {
            return Err(SchedulerError::Config(
                "percentage_of_nodes_to_score must be 0..=100".into(),
            ));
        }
        if let Some(le) = &self.leader_election {
            if le.renew_deadline >= le.lease_duration || le.retry_period >= le.renew_deadline {
                return Err(SchedulerError::Config(
                    "leader election needs retry_period < renew_deadline < lease_duration".into(),
                ));
            }
        }
        Ok(())
    }

    fn core(&self) -> scheduler::Core {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        scheduler::Core::new(
            self.scheduler_name.clone(),
            plugins::default_plugins(&self.weights, self.percentage_of_nodes_to_score),
            self.queue,
            seed,
        )
    }

    fn loop_settings(&self) -> scheduler::LoopSettings {
        scheduler::LoopSettings {
            max_concurrent_writes: self.max_concurrent_writes,
            flush_interval: Duration::from_secs(30),
        }
    }
}

/// Runs the scheduler until `shutdown` is cancelled. With leader election, only the Lease
/// holder schedules; a holder that loses the Lease stops at once and campaigns again with
/// fresh caches. API errors are logged and retried, never returned.
pub async fn run(
    config: SchedulerConfig,
    client: kube::Client,
    shutdown: CancellationToken,
) -> Result<(), SchedulerError> {
    config.validate()?;
    let writer = Arc::new(binder::KubeWriter::new(
        client.clone(),
        config.scheduler_name.clone(),
        config.identity.clone(),
    ));
    let Some(le) = config.leader_election.clone() else {
        scheduler::run_scheduling(
            client,
            config.core(),
            writer,
            config.loop_settings(),
            shutdown,
        )
        .await;
        return Ok(());
    };

    let mut elector =
        leader::LeaderElector::new(client.clone(), le.clone(), config.identity.clone());
    loop {
        // Campaign.
        loop {
            match elector.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election round failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(le.retry_period) => {}
            }
        }
        // Lead until shutdown or until renewals fail for renew_deadline. The scheduling
        // work runs inside this task (not spawned), so if this future is dropped the
        // informers and bindings go with it and nothing keeps scheduling unled.
        let leading = shutdown.child_token();
        let work = scheduler::run_scheduling(
            client.clone(),
            config.core(),
            writer.clone(),
            config.loop_settings(),
            leading.clone(),
        );
        tokio::pin!(work);
        let renew = async {
            let mut last_renew = Instant::now();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(le.retry_period) => {}
                }
                // A hung API call must not keep us leading past the deadline.
                match tokio::time::timeout(le.renew_deadline, elector.try_acquire_or_renew()).await
                {
                    Ok(Ok(true)) => last_renew = Instant::now(),
                    Ok(Ok(false)) => {
                        tracing::warn!(
                            "another server holds the scheduler lease; stopping scheduling"
                        );
                        return;
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "renewing the scheduler lease failed"),
                    Err(_) => tracing::warn!("renewing the scheduler lease timed out"),
                }
                if last_renew.elapsed() >= le.renew_deadline {
                    tracing::warn!(
                        "could not renew the scheduler lease in time; stopping scheduling"
                    );
                    return;
                }
            }
        };
        let mut work_done = false;
        tokio::select! {
            _ = &mut work => work_done = true,
            _ = renew => {}
        }
        leading.cancel();
        if !work_done {
            work.await;
        }
        if shutdown.is_cancelled() {
            if let Err(e) = elector.release().await {
                tracing::warn!(error = %e, "releasing the scheduler lease failed; a standby takes over when it expires");
            }
            return Ok(());
        }
    }
}
