//! The control plane process: the API server, then the controller-manager and the
//! scheduler as ordinary API clients of it over HTTPS (exactly like out-of-tree ones, so
//! a student can switch the built-in scheduler off and run their own).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// What `skiff server` and the lab run.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    pub api: skiff_apiserver::Config,
    pub controllers: Option<skiff_controllers::ControllersConfig>,
    pub scheduler: Option<skiff_scheduler::SchedulerConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error(transparent)]
    Server(#[from] skiff_apiserver::ServerError),
    #[error("cannot build a client for the in-process components: {0}")]
    Client(String),
}

/// A started control plane.
pub struct ControlPlane {
    pub api: skiff_apiserver::Running,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ControlPlane {
    /// Waits for everything to stop (after the shutdown token is cancelled).
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
        self.api.wait().await;
    }
}

/// The scheduler as `skiff server` runs it: with leader election through the
/// `kube-system/kube-scheduler` Lease, so two servers never both schedule.
pub fn default_scheduler() -> skiff_scheduler::SchedulerConfig {
    skiff_scheduler::SchedulerConfig {
        leader_election: Some(skiff_scheduler::LeaderElectionConfig::default()),
        ..Default::default()
    }
}

/// A client with the admin kubeconfig the server wrote, named `component` in its
/// User-Agent (`component/version`). The API server derives the field manager of every
/// write from the part before the `/`, so `metadata.managedFields` shows which
/// component wrote which field, as it does for upstream's components.
pub async fn admin_client(
    kubeconfig: &std::path::Path,
    component: &str,
) -> Result<kube::Client, ControlPlaneError> {
    let err = |e: &dyn std::fmt::Display| ControlPlaneError::Client(e.to_string());
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| err(&e))?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| err(&e))?;
    let agent = format!("{component}/{}", env!("CARGO_PKG_VERSION"));
    let value = http::HeaderValue::from_str(&agent).map_err(|e| err(&e))?;
    cfg.headers.push((http::header::USER_AGENT, value));
    kube::Client::try_from(cfg).map_err(|e| err(&e))
}

/// Starts the API server, then the enabled components. A component that fails is
/// logged and restarted after a pause: the API server keeps serving regardless.
pub async fn start(
    config: ControlPlaneConfig,
    shutdown: CancellationToken,
) -> Result<ControlPlane, ControlPlaneError> {
    let api = skiff_apiserver::start(config.api.clone(), shutdown.clone()).await?;
    let mut tasks = Vec::new();
    if let Some(cc) = config.controllers.clone() {
        let client = admin_client(&api.kubeconfig, "skiff-controller-manager").await?;
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            supervise("controller-manager", stop.clone(), || {
                skiff_controllers::run(cc.clone(), client.clone(), stop.clone())
            })
            .await
        }));
    }
    if let Some(sc) = config.scheduler.clone() {
        let client = admin_client(&api.kubeconfig, "skiff-scheduler").await?;
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            supervise("scheduler", stop.clone(), || {
                skiff_scheduler::run(sc.clone(), client.clone(), stop.clone())
            })
            .await
        }));
    }
    Ok(ControlPlane { api, tasks })
}

/// Runs a component until shutdown, restarting it (with a pause) if it returns early.
pub async fn supervise<F, Fut, E>(name: &str, shutdown: CancellationToken, mut run: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    while !shutdown.is_cancelled() {
        match run().await {
            Ok(()) if shutdown.is_cancelled() => break,
            Ok(()) => tracing::warn!(component = name, "stopped unexpectedly; restarting"),
            Err(e) => tracing::error!(component = name, error = %e, "failed; restarting in 2s"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
