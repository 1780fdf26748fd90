//! Syncing one pod: observe what the runtime has for it, decide what to do ([`plan`],
//! pure), do it ([`execute`]), and report it as a `PodStatus` ([`pod_status`], pure).
//!
//! This is the kubelet's `SyncPod`: one sandbox per pod, init containers run one at a
//! time in order (each must exit 0; a sidecar, `restartPolicy: Always`, only has to be
//! started, then runs beside the app) before the app containers, containers restarted per
//! `restartPolicy` with crash-loop back-off, volumes written before containers start,
//! probe results deciding `ready`/`started`, pods torn down when deleted or finished,
//! postStart/preStop hooks ([`crate::lifecycle`]), `runAsNonRoot` checked against the
//! image user, pull secrets and image pull back-off, and the Events of each step.
//! Not yet: ephemeral containers.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::cri::{self, api, CriError, Runtime};
use crate::cri_config::{self, ConfigError, NodeContext, LABEL_CONTAINER_NAME, LABEL_POD_UID};
use crate::events::PodEvent;
use crate::probes::Health;
use crate::volumes::{PodObjects, VolumePaths};

/// The runtime's view of a pod's sandbox.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxInfo {
    pub id: String,
    pub attempt: u32,
    pub ready: bool,
    pub created_at: i64,
}

/// The runtime's view of one container of a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub attempt: u32,
    pub state: api::ContainerState,
    pub exit_code: i32,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub image_ref: String,
    pub reason: String,
    pub message: String,
}

/// Everything the runtime has for one pod UID.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub sandboxes: Vec<SandboxInfo>,
    pub containers: Vec<ContainerInfo>,
    /// The pod IP of the newest ready sandbox.
    pub pod_ip: String,
}

impl Observed {
    /// The newest sandbox (highest attempt, then latest creation).
    pub fn latest_sandbox(&self) -> Option<&SandboxInfo> {
        self.sandboxes
            .iter()
            .max_by_key(|s| (s.attempt, s.created_at))
    }

    /// The newest container of a name, in any sandbox.
    pub fn latest_container(&self, name: &str) -> Option<&ContainerInfo> {
        self.containers
            .iter()
            .filter(|c| c.name == name)
            .max_by_key(|c| (c.attempt, c.created_at))
    }

    fn has_live_parts(&self) -> bool {
        self.sandboxes.iter().any(|s| s.ready)
            || self.containers.iter().any(|c| {
                matches!(
                    c.state,
                    api::ContainerState::ContainerRunning | api::ContainerState::ContainerCreated
                )
            })
    }
}

/// One thing to do to bring the runtime closer to the pod spec.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Stop every sandbox (and so every container) of the pod.
    KillPod,
    /// Create a new sandbox; containers are then created in it.
    RunSandbox { attempt: u32 },
    /// Pull the image if needed, create the container and start it.
    StartContainer { name: String, attempt: u32 },
    /// Start a container that was created but not started (a previous sync failed).
    StartCreated { id: String },
    /// Remove an exited container superseded by a newer attempt.
    RemoveContainer { id: String },
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Whether an init container is a sidecar (`restartPolicy: Always` on the container):
/// it starts in init order, keeps running beside the app and is always restarted.
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Whether a sidecar counts as started: running, and past its startup probe if any.
fn sidecar_started(c: &Container, k: &ContainerInfo, health: &Health) -> bool {
    k.state == api::ContainerState::ContainerRunning
        && (c.startup_probe.is_none() || health.started(&k.id))
}

/// Whether the pod got past initialization in sandbox `sb`: an app container was
/// created there. From then on sidecars restart beside the app and never hold it back
/// (upstream does the same: a pod whose regular containers started is initialized).
fn app_started_in(pod: &Pod, observed: &Observed, sandbox_id: &str) -> bool {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    containers.iter().any(|c| {
        observed
            .containers
            .iter()
            .any(|k| k.sandbox_id == sandbox_id && k.name == c.name)
    })
}

/// Whether the kubelet should stop everything of this pod: it is being deleted or has
/// finished for good.
pub fn is_terminal(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
        || matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// First delay of the crash-loop back-off, doubled per restart up to [`MAX_BACKOFF`]
/// (upstream's 10 s and 5 min).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How long a container that has been restarted `restarts` times waits after exiting
/// before the next restart: the first restart is immediate, then 10 s, 20 s, 40 s, ...
pub fn restart_backoff(restarts: u32) -> Duration {
    if restarts == 0 {
        return Duration::ZERO;
    }
    let factor = 1u64.checked_shl(restarts - 1).unwrap_or(u64::MAX);
    INITIAL_BACKOFF
        .checked_mul(factor.min(u32::MAX as u64) as u32)
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

/// What a sync should do, and which containers wait in crash-loop back-off (with the
/// time left).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub backoff: BTreeMap<String, Duration>,
    /// An init container is running: sync again soon rather than at the next resync,
    /// so the next one starts promptly.
    pub poll: bool,
}

/// Decides what to do for a pod given what the runtime has, at `now` (nanoseconds
/// since the epoch, the unit CRI timestamps use), with no probe results. Pure.
pub fn plan(pod: &Pod, observed: &Observed, now: i64) -> Plan {
    plan_with(pod, observed, now, &Health::default())
}

/// [`plan`] knowing the prober's results: a sidecar with a startup probe holds the
/// next init container back until that probe passes. Pure.
pub fn plan_with(pod: &Pod, observed: &Observed, now: i64, health: &Health) -> Plan {
    let mut backoff = BTreeMap::new();
    let mut poll = false;
    let steps = plan_steps(pod, observed, now, health, &mut backoff, &mut poll);
    Plan {
        steps,
        backoff,
        poll,
    }
}

/// Init containers still to run in sandbox `sb`: `None` once all of them exited 0
/// (sidecars: started), otherwise the steps for the first one that has not (possibly
/// none while it runs or waits out its back-off). They run one at a time, in order; a
/// failed one is restarted unless the policy is `Never` (then the pod fails); a
/// sidecar is restarted whatever the policy.
fn plan_init(
    pod: &Pod,
    observed: &Observed,
    sb: &SandboxInfo,
    now: i64,
    health: &Health,
    backoff: &mut BTreeMap<String, Duration>,
    poll: &mut bool,
) -> Option<Vec<Step>> {
    let inits = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let policy = restart_policy(pod);
    for ic in inits {
        let current = observed
            .containers
            .iter()
            .filter(|k| k.sandbox_id == sb.id && k.name == ic.name)
            .max_by_key(|k| (k.attempt, k.created_at));
        let next_attempt = observed
            .latest_container(&ic.name)
            .map(|c| c.attempt + 1)
            .unwrap_or(0);
        match current {
            None => {
                *poll = true;
                return Some(vec![Step::StartContainer {
                    name: ic.name.clone(),
                    attempt: next_attempt,
                }]);
            }
            Some(k) if is_sidecar(ic) && k.state == api::ContainerState::ContainerRunning => {
                if sidecar_started(ic, k, health) {
                    continue;
                }
                *poll = true;
                return Some(vec![]);
            }
            Some(k) => match k.state {
                api::ContainerState::ContainerExited if k.exit_code == 0 && !is_sidecar(ic) => {
                    continue
                }
                api::ContainerState::ContainerExited if policy == "Never" && !is_sidecar(ic) => {
                    return Some(vec![])
                }
                api::ContainerState::ContainerExited => {
                    let ready_at = k
                        .finished_at
                        .saturating_add(restart_backoff(k.attempt).as_nanos() as i64);
                    if now >= ready_at {
                        *poll = true;
                        return Some(vec![Step::StartContainer {
                            name: ic.name.clone(),
                            attempt: k.attempt + 1,
                        }]);
                    }
                    backoff.insert(
                        ic.name.clone(),
                        Duration::from_nanos((ready_at - now) as u64),
                    );
                    return Some(vec![]);
                }
                api::ContainerState::ContainerCreated => {
                    *poll = true;
                    return Some(vec![Step::StartCreated { id: k.id.clone() }]);
                }
                _ => {
                    *poll = true;
                    return Some(vec![]);
                }
            },
        }
    }
    None
}

fn plan_steps(
    pod: &Pod,
    observed: &Observed,
    now: i64,
    health: &Health,
    backoff: &mut BTreeMap<String, Duration>,
    poll: &mut bool,
) -> Vec<Step> {
    if is_terminal(pod) {
        return if observed.has_live_parts() {
            vec![Step::KillPod]
        } else {
            vec![]
        };
    }
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let policy = restart_policy(pod);
    let mut steps = Vec::new();

    let next_attempt = |name: &str| {
        observed
            .latest_container(name)
            .map(|c| c.attempt + 1)
            .unwrap_or(0)
    };
    let sandbox = observed.latest_sandbox();
    match sandbox {
        Some(sb) if sb.ready => {
            let init = if app_started_in(pod, observed, &sb.id) {
                None
            } else {
                plan_init(pod, observed, sb, now, health, backoff, poll)
            };
            // Once initialized, sidecars are kept running beside the app containers
            // (restarted whatever the pod's policy), then the app containers.
            let sidecars = pod
                .spec
                .as_ref()
                .and_then(|s| s.init_containers.as_deref())
                .unwrap_or_default()
                .iter()
                .filter(|c| is_sidecar(c))
                .map(|c| (c, "Always"));
            let runnable: Vec<(&Container, &str)> = if init.is_some() {
                vec![]
            } else {
                sidecars
                    .chain(containers.iter().map(|c| (c, policy)))
                    .collect()
            };
            steps.extend(init.unwrap_or_default());
            for (c, policy) in runnable {
                let current = observed
                    .containers
                    .iter()
                    .filter(|k| k.sandbox_id == sb.id && k.name == c.name)
                    .max_by_key(|k| (k.attempt, k.created_at));
                match current {
                    None => steps.push(Step::StartContainer {
                        name: c.name.clone(),
                        attempt: next_attempt(&c.name),
                    }),
                    Some(k) => match k.state {
                        api::ContainerState::ContainerCreated => {
                            steps.push(Step::StartCreated { id: k.id.clone() })
                        }
                        api::ContainerState::ContainerExited
                            if should_restart(policy, k.exit_code) =>
                        {
                            let wait = restart_backoff(k.attempt).as_nanos() as i64;
                            let ready_at = k.finished_at.saturating_add(wait);
                            if now >= ready_at {
                                steps.push(Step::StartContainer {
                                    name: c.name.clone(),
                                    attempt: k.attempt + 1,
                                })
                            } else {
                                backoff.insert(
                                    c.name.clone(),
                                    Duration::from_nanos((ready_at - now) as u64),
                                );
                            }
                        }
                        _ => {}
                    },
                }
            }
        }
        _ => {
            // No usable sandbox. A pod whose containers all ran to completion under a
            // policy that does not restart them is finished, not recreated.
            let all_done = !containers.is_empty()
                && containers.iter().all(|c| {
                    observed.latest_container(&c.name).is_some_and(|k| {
                        k.state == api::ContainerState::ContainerExited
                            && !should_restart(policy, k.exit_code)
                    })
                });
            if all_done {
                return if observed.has_live_parts() {
                    vec![Step::KillPod]
                } else {
                    vec![]
                };
            }
            if observed.has_live_parts() {
                steps.push(Step::KillPod);
            }
            steps.push(Step::RunSandbox {
                attempt: sandbox.map(|s| s.attempt + 1).unwrap_or(0),
            });
            if let Some(first) = pod
                .spec
                .as_ref()
                .and_then(|s| s.init_containers.as_ref())
                .and_then(|i| i.first())
            {
                // Init containers run again in a new sandbox, the first one now.
                *poll = true;
                steps.push(Step::StartContainer {
                    name: first.name.clone(),
                    attempt: next_attempt(&first.name),
                });
            } else {
                for c in containers {
                    steps.push(Step::StartContainer {
                        name: c.name.clone(),
                        attempt: next_attempt(&c.name),
                    });
                }
            }
        }
    }
    // Old attempts are kept only until two newer ones exist: the attempt before the
    // current one stays for the status' `lastState` and `kubectl logs --previous`.
    for k in &observed.containers {
        let newer = observed
            .containers
            .iter()
            .filter(|n| n.name == k.name && (n.attempt, n.created_at) > (k.attempt, k.created_at))
            .count();
        if k.state == api::ContainerState::ContainerExited && newer >= 2 {
            steps.push(Step::RemoveContainer { id: k.id.clone() });
        }
    }
    steps
}

/// Why a container is not running, for its `waiting` state (`ErrImagePull`, ...).
pub type WaitingReasons = BTreeMap<String, (String, String)>;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Cri(#[from] CriError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Volume(#[from] crate::volumes::VolumeError),
    #[error(
        "cannot create the pod log directory {path}: {source}; check that the log root is writable"
    )]
    LogDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the runtime's state for one pod UID.
pub async fn observe(runtime: &dyn Runtime, uid: &str) -> Result<Observed, CriError> {
    let selector = std::collections::HashMap::from([(LABEL_POD_UID.to_string(), uid.to_string())]);
    let sandboxes = runtime
        .list_pod_sandboxes(Some(api::PodSandboxFilter {
            label_selector: selector.clone(),
            ..Default::default()
        }))
        .await?;
    let mut observed = Observed::default();
    for sb in sandboxes {
        observed.sandboxes.push(SandboxInfo {
            id: sb.id.clone(),
            attempt: sb.metadata.map(|m| m.attempt).unwrap_or(0),
            ready: cri::sandbox_state(sb.state) == api::PodSandboxState::SandboxReady,
            created_at: sb.created_at,
        });
    }
    if let Some(latest) = observed.latest_sandbox().filter(|s| s.ready).cloned() {
        match runtime.pod_sandbox_status(&latest.id).await {
            Ok(st) => observed.pod_ip = st.network.map(|n| n.ip).unwrap_or_default(),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let containers = runtime
        .list_containers(Some(api::ContainerFilter {
            label_selector: selector,
            ..Default::default()
        }))
        .await?;
    for c in containers {
        // ListContainers has no exit code or times: ask for each (pods are small).
        let st = match runtime.container_status(&c.id).await {
            Ok(st) => st,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        observed.containers.push(ContainerInfo {
            id: c.id.clone(),
            sandbox_id: c.pod_sandbox_id.clone(),
            name: c
                .labels
                .get(LABEL_CONTAINER_NAME)
                .cloned()
                .or(c.metadata.as_ref().map(|m| m.name.clone()))
                .unwrap_or_default(),
            attempt: c.metadata.map(|m| m.attempt).unwrap_or(0),
            state: cri::container_state(st.state),
            exit_code: st.exit_code,
            created_at: st.created_at,
            started_at: st.started_at,
            finished_at: st.finished_at,
            image_ref: st.image_ref,
            reason: st.reason,
            message: st.message,
        });
    }
    Ok(observed)
}

/// Stops every sandbox of the pod (containers go with them). Running containers are
/// stopped first, all at once, each with its preStop hook and a `Killing` event.
pub async fn kill_pod(
    runtime: &dyn Runtime,
    pod: &Pod,
    observed: &Observed,
    grace: Duration,
    events: &mut Vec<PodEvent>,
) -> Result<(), CriError> {
    let spec_of = |name: &str| {
        pod.spec.as_ref().and_then(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
                .find(|c| c.name == name)
        })
    };
    let stops = observed
        .containers
        .iter()
        .filter(|c| c.state == api::ContainerState::ContainerRunning)
        .map(|c| async {
            let mut evs = Vec::new();
            let result = crate::lifecycle::stop_container(
                runtime,
                spec_of(&c.name),
                &c.name,
                &c.id,
                &observed.pod_ip,
                grace,
                Some(format!("Stopping container {}", c.name)),
                &mut evs,
            )
            .await;
            (result, evs)
        });
    for (result, evs) in futures::future::join_all(stops).await {
        events.extend(evs);
        result?;
    }
    for sb in &observed.sandboxes {
        match runtime.stop_pod_sandbox(&sb.id).await {
            Err(e) if !e.is_not_found() => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Removes every sandbox of the pod; the last step once it is stopped.
pub async fn remove_pod(runtime: &dyn Runtime, observed: &Observed) -> Result<(), CriError> {
    for sb in &observed.sandboxes {
        runtime.remove_pod_sandbox(&sb.id).await?;
    }
    Ok(())
}

/// Image pull back-off across syncs, per (pod UID, image): after a failed pull the
/// next one waits [`restart_backoff`]-style (10 s doubling to 5 min), and the
/// container shows `ImagePullBackOff` meanwhile, as upstream.
#[derive(Debug, Default)]
pub struct PullBackoff {
    /// (pod uid, image) -> (failed pulls in a row, when the last one failed (ns), why).
    failed: std::sync::Mutex<BTreeMap<(String, String), (u32, i64, String)>>,
}

impl PullBackoff {
    /// How long until `image` may be pulled again for pod `uid` at `now` (zero: now).
    pub fn wait(&self, uid: &str, image: &str, now: i64) -> Duration {
        let failed = self.failed.lock().unwrap();
        match failed.get(&(uid.to_string(), image.to_string())) {
            Some((n, at, _)) => {
                let until = at.saturating_add(restart_backoff(*n).as_nanos() as i64);
                Duration::from_nanos(until.saturating_sub(now).max(0) as u64)
            }
            None => Duration::ZERO,
        }
    }
    /// Why the last pull failed, if it did.
    pub fn last_error(&self, uid: &str, image: &str) -> Option<String> {
        let failed = self.failed.lock().unwrap();
        failed
            .get(&(uid.to_string(), image.to_string()))
            .map(|f| f.2.clone())
    }
    fn failed(&self, uid: &str, image: &str, now: i64, why: &str) {
        let mut failed = self.failed.lock().unwrap();
        let e = failed
            .entry((uid.to_string(), image.to_string()))
            .or_insert((0, now, String::new()));
        *e = (e.0.saturating_add(1), now, why.to_string());
    }
    fn succeeded(&self, uid: &str, image: &str) {
        self.failed
            .lock()
            .unwrap()
            .remove(&(uid.to_string(), image.to_string()));
    }
    /// Drops what is known about a pod (it was deleted).
    pub fn forget_pod(&self, uid: &str) {
        self.failed.lock().unwrap().retain(|k, _| k.0 != uid);
    }
}

fn now_nanos() -> i64 {
    Timestamp::now().as_nanosecond() as i64
}

/// Pulls per the pull policy, with the pod's pull secrets tried in turn, recording
/// `Pulling`/`Pulled`/`Failed`/`BackOff` events.
#[allow(clippy::too_many_arguments)]
async fn ensure_image(
    runtime: &dyn Runtime,
    pod: &Pod,
    container: &str,
    image: &str,
    policy: Option<&str>,
    sandbox: &api::PodSandboxConfig,
    objects: &PodObjects,
    pulls: &PullBackoff,
    events: &mut Vec<PodEvent>,
) -> Result<(), (String, String)> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let fail = |events: &mut Vec<PodEvent>, reason: &str, message: String| {
        events.push(PodEvent::warning(
            container,
            "Failed",
            format!("Error: {reason}"),
        ));
        Err((reason.to_string(), message))
    };
    let tag_is_latest =
        !image.rsplit('/').next().unwrap_or(image).contains(':') || image.ends_with(":latest");
    // Kubernetes' default: Always for :latest (or no tag), IfNotPresent otherwise.
    let policy = policy.unwrap_or(if tag_is_latest {
        "Always"
    } else {
        "IfNotPresent"
    });
    if policy != "Always" {
        match runtime.image_status(image).await {
            Ok(Some(_)) => {
                events.push(PodEvent::normal(
                    container,
                    "Pulled",
                    format!("Container image {image:?} already present on machine"),
                ));
                return Ok(());
            }
            Ok(None) if policy == "Never" => {
                let message =
                    format!("Container image {image:?} is not present with pull policy of Never");
                events.push(PodEvent::warning(
                    container,
                    "ErrImageNeverPull",
                    message.clone(),
                ));
                return fail(events, "ErrImageNeverPull", message);
            }
            Ok(None) => {}
            Err(e) => return fail(events, "ErrImagePull", e.to_string()),
        }
    }
    let wait = pulls.wait(uid, image, now_nanos());
    if !wait.is_zero() {
        events.push(PodEvent::normal(
            container,
            "BackOff",
            format!("Back-off pulling image {image:?}"),
        ));
        let last = pulls.last_error(uid, image).unwrap_or_default();
        return fail(
            events,
            "ImagePullBackOff",
            format!("Back-off pulling image {image:?}: ErrImagePull: {last}"),
        );
    }
    events.push(PodEvent::normal(
        container,
        "Pulling",
        format!("Pulling image {image:?}"),
    ));
    let secrets: Vec<&k8s_openapi::api::core::v1::Secret> = crate::pull_secrets::secret_names(pod)
        .iter()
        .filter_map(|n| objects.secrets.get(n))
        .collect();
    // No matching credentials: one anonymous pull. Otherwise each in turn, as the
    // kubelet does, until one works.
    let mut auths: Vec<Option<api::AuthConfig>> =
        crate::pull_secrets::credentials_for(image, &secrets)
            .into_iter()
            .map(Some)
            .collect();
    if auths.is_empty() {
        auths.push(None);
    }
    let started = std::time::Instant::now();
    let mut last_error = String::new();
    for auth in auths {
        match runtime
            .pull_image_with_auth(image, auth, Some(sandbox.clone()))
            .await
        {
            Ok(_) => {
                pulls.succeeded(uid, image);
                events.push(PodEvent::normal(
                    container,
                    "Pulled",
                    format!(
                        "Successfully pulled image {image:?} in {:.3}s",
                        started.elapsed().as_secs_f64()
                    ),
                ));
                return Ok(());
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    pulls.failed(uid, image, now_nanos(), &last_error);
    events.push(PodEvent::warning(
        container,
        "Failed",
        format!("Failed to pull image {image:?}: {last_error}"),
    ));
    fail(events, "ErrImagePull", last_error)
}

/// [`execute_with`] without pull back-off memory, dropping the events (tests).
pub async fn execute(
    runtime: &dyn Runtime,
    pod: &Pod,
    node: &NodeContext,
    observed: &Observed,
    steps: &[Step],
    objects: &PodObjects,
) -> Result<WaitingReasons, SyncError> {
    let mut events = Vec::new();
    execute_with(
        runtime,
        pod,
        node,
        observed,
        steps,
        objects,
        &PullBackoff::default(),
        &mut events,
    )
    .await
}

/// Carries out `steps`. Container-level failures become waiting reasons (the pod keeps
/// syncing); sandbox-level failures are errors (the pod is retried as a whole). What
/// happened is added to `events` (`Pulling`, `Created`, `Started`, ...).
#[allow(clippy::too_many_arguments)]
pub async fn execute_with(
    runtime: &dyn Runtime,
    pod: &Pod,
    node: &NodeContext,
    observed: &Observed,
    steps: &[Step],
    objects: &PodObjects,
    pulls: &PullBackoff,
    events: &mut Vec<PodEvent>,
) -> Result<WaitingReasons, SyncError> {
    let mut waiting = WaitingReasons::new();
    let config_error = |waiting: &mut WaitingReasons,
                        events: &mut Vec<PodEvent>,
                        name: &str,
                        reason: &str,
                        message: String| {
        events.push(PodEvent::warning(
            name,
            "Failed",
            format!("Error: {message}"),
        ));
        waiting.insert(name.to_string(), (reason.to_string(), message));
    };
    // Written once per sync, before the first container of it starts.
    let mut volumes: Option<Result<VolumePaths, String>> = None;
    let grace = Duration::from_secs(
        pod.spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0) as u64,
    );
    let mut sandbox = observed
        .latest_sandbox()
        .filter(|s| s.ready)
        .map(|s| (s.id.clone(), s.attempt));
    let mut pod_ip = observed.pod_ip.clone();
    for step in steps {
        match step {
            Step::KillPod => {
                kill_pod(runtime, pod, observed, grace, events).await?;
                sandbox = None;
            }
            Step::RunSandbox { attempt } => {
                let config = cri_config::sandbox_config(pod, node, *attempt)?;
                std::fs::create_dir_all(&config.log_directory).map_err(|source| {
                    SyncError::LogDir {
                        path: config.log_directory.clone(),
                        source,
                    }
                })?;
                let id = runtime.run_pod_sandbox(config).await?;
                pod_ip = runtime
                    .pod_sandbox_status(&id)
                    .await?
                    .network
                    .map(|n| n.ip)
                    .unwrap_or_default();
                sandbox = Some((id, *attempt));
            }
            Step::StartContainer { name, attempt } => {
                let Some((sandbox_id, sandbox_attempt)) = sandbox.clone() else {
                    continue;
                };
                let Some(spec) = pod.spec.as_ref().and_then(|s| {
                    s.init_containers
                        .iter()
                        .flatten()
                        .chain(s.containers.iter())
                        .find(|c| &c.name == name)
                }) else {
                    continue;
                };
                let sandbox_config = cri_config::sandbox_config(pod, node, sandbox_attempt)?;
                let paths = match volumes.get_or_insert_with(|| {
                    crate::volumes::prepare(&node.root_dir, pod, objects, node.allocatable.as_ref())
                        .map_err(|e| e.to_string())
                }) {
                    Ok(p) => p,
                    Err(e) => {
                        let e = e.clone();
                        config_error(&mut waiting, events, name, "CreateContainerConfigError", e);
                        continue;
                    }
                };
                let config = match cri_config::container_config(
                    pod, spec, *attempt, &pod_ip, node, objects, paths,
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        config_error(
                            &mut waiting,
                            events,
                            name,
                            "CreateContainerConfigError",
                            e.to_string(),
                        );
                        continue;
                    }
                };
                let image = spec.image.clone().unwrap_or_default();
                if let Err(reason) = ensure_image(
                    runtime,
                    pod,
                    name,
                    &image,
                    spec.image_pull_policy.as_deref(),
                    &sandbox_config,
                    objects,
                    pulls,
                    events,
                )
                .await
                {
                    waiting.insert(name.clone(), reason);
                    continue;
                }
                // runAsNonRoot is checked against the image's user once it is here.
                let image_user = match runtime.image_status(&image).await {
                    Ok(Some(i)) => crate::security::image_user(&i),
                    _ => (Some(0), String::new()),
                };
                if let Err(message) =
                    crate::security::verify_run_as_non_root(pod, spec, image_user.0, &image_user.1)
                {
                    config_error(
                        &mut waiting,
                        events,
                        name,
                        "CreateContainerConfigError",
                        message,
                    );
                    continue;
                }
                let dir = std::path::Path::new(&sandbox_config.log_directory).join(name);
                let _ = std::fs::create_dir_all(dir);
                // A subPath that does not exist yet is created, as upstream does.
                for m in &config.mounts {
                    let _ = std::fs::create_dir_all(&m.host_path);
                }
                let id = match runtime
                    .create_container(&sandbox_id, config, sandbox_config)
                    .await
                {
                    Ok(id) => id,
                    Err(e) => {
                        config_error(
                            &mut waiting,
                            events,
                            name,
                            "CreateContainerError",
                            e.to_string(),
                        );
                        continue;
                    }
                };
                events.push(PodEvent::normal(
                    name,
                    "Created",
                    format!("Created container: {name}"),
                ));
                start_and_hook(runtime, spec, &id, &pod_ip, grace, &mut waiting, events).await;
            }
            Step::StartCreated { id } => {
                let name = observed
                    .containers
                    .iter()
                    .find(|c| &c.id == id)
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                let spec = pod.spec.as_ref().and_then(|s| {
                    s.init_containers
                        .iter()
                        .flatten()
                        .chain(s.containers.iter())
                        .find(|c| c.name == name)
                });
                match spec {
                    Some(spec) => {
                        start_and_hook(runtime, spec, id, &pod_ip, grace, &mut waiting, events)
                            .await
                    }
                    None => {
                        if let Err(e) = runtime.start_container(id).await {
                            waiting.insert(name, ("RunContainerError".into(), e.to_string()));
                        }
                    }
                }
            }
            Step::RemoveContainer { id } => {
                runtime.remove_container(id).await?;
            }
        }
    }
    Ok(waiting)
}

/// Starts a created container and runs its postStart hook; a failed hook kills the
/// container (the restart policy then decides), as upstream.
async fn start_and_hook(
    runtime: &dyn Runtime,
    spec: &k8s_openapi::api::core::v1::Container,
    id: &str,
    pod_ip: &str,
    grace: Duration,
    waiting: &mut WaitingReasons,
    events: &mut Vec<PodEvent>,
) {
    let name = &spec.name;
    if let Err(e) = runtime.start_container(id).await {
        events.push(PodEvent::warning(name, "Failed", format!("Error: {e}")));
        waiting.insert(name.clone(), ("RunContainerError".into(), e.to_string()));
        return;
    }
    events.push(PodEvent::normal(
        name,
        "Started",
        format!("Started container {name}"),
    ));
    if let Err(ev) = crate::lifecycle::post_start(runtime, spec, id, pod_ip).await {
        let message = ev.message.clone();
        events.push(ev);
        let killed = crate::lifecycle::stop_container(
            runtime,
            Some(spec),
            name,
            id,
            pod_ip,
            grace,
            Some(format!(
                "FailedPostStartHook: container {name} will be killed and restarted per the restart policy"
            )),
            events,
        )
        .await;
        if let Err(e) = killed {
            tracing::warn!(container = %name, error = %e, "stopping a container whose postStart hook failed");
        }
        tracing::info!(container = %name, "postStart hook failed: {message}");
    }
}

fn time_from_nanos(nanos: i64) -> Option<Time> {
    if nanos <= 0 {
        return None;
    }
    Timestamp::from_nanosecond(nanos as i128).ok().map(Time)
}

fn condition(
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    old: Option<&PodStatus>,
    now: &Time,
) -> PodCondition {
    let status = if ok { "True" } else { "False" }.to_string();
    // The transition time moves only when the status changes.
    let previous = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone());
    PodCondition {
        type_: type_.into(),
        status,
        reason: if ok { None } else { reason.map(String::from) },
        last_transition_time: Some(previous.unwrap_or_else(|| now.clone())),
        ..Default::default()
    }
}

/// How a container's status counts toward the pod phase.
#[derive(Clone, Copy, PartialEq)]
enum Counted {
    Running,
    Waiting,
    Succeeded,
    Failed,
}

/// The `terminated` state of an exited runtime container. The runtime's reason wins
/// (containerd reports `OOMKilled` when the memory cgroup killed it); otherwise
/// `Completed` or `Error` by exit code, as kubectl shows.
fn terminated_state(k: &ContainerInfo) -> ContainerState {
    let reason = if k.reason.is_empty() {
        if k.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    } else {
        &k.reason
    };
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            container_id: Some(format!("containerd://{}", k.id)),
            exit_code: k.exit_code,
            reason: Some(reason.to_string()),
            message: Some(k.message.clone()).filter(|m| !m.is_empty()),
            started_at: time_from_nanos(k.started_at),
            finished_at: time_from_nanos(k.finished_at),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One container's status from its newest runtime container. `default_wait` is the
/// waiting reason when nothing more specific is known.
fn container_status(
    c: &k8s_openapi::api::core::v1::Container,
    latest: Option<&ContainerInfo>,
    previous: &[ContainerInfo],
    waiting: &WaitingReasons,
    health: &Health,
    default_wait: &str,
) -> (ContainerStatus, Counted) {
    let (state, ready, started, counted) = match latest {
        Some(k) if k.state == api::ContainerState::ContainerRunning => {
            // Without probes a running container is started and ready; with them the
            // prober's results decide (no result yet: not started / not ready).
            let started = c.startup_probe.is_none() || health.started(&k.id);
            let ready = started && (c.readiness_probe.is_none() || health.ready(&k.id));
            let running = ContainerStateRunning {
                started_at: time_from_nanos(k.started_at),
            };
            (
                ContainerState {
                    running: Some(running),
                    ..Default::default()
                },
                ready,
                started,
                Counted::Running,
            )
        }
        Some(k)
            if k.state == api::ContainerState::ContainerExited
                && !waiting.contains_key(&c.name) =>
        {
            let counted = if k.exit_code == 0 {
                Counted::Succeeded
            } else {
                Counted::Failed
            };
            (terminated_state(k), false, false, counted)
        }
        _ => {
            // Ran before: waiting to restart.
            let ran = latest
                .is_some_and(|k| k.attempt > 0 || k.state == api::ContainerState::ContainerExited);
            let (reason, message) = waiting
                .get(&c.name)
                .cloned()
                .unwrap_or((default_wait.into(), String::new()));
            let w = ContainerStateWaiting {
                reason: Some(reason),
                message: Some(message).filter(|m| !m.is_empty()),
            };
            (
                ContainerState {
                    waiting: Some(w),
                    ..Default::default()
                },
                false,
                false,
                if ran {
                    Counted::Failed
                } else {
                    Counted::Waiting
                },
            )
        }
    };
    // lastState: the newest attempt that exited before the current state. While the
    // container waits to restart that is its latest attempt itself; otherwise an
    // earlier one (kept for `logs --previous`).
    let waiting_after_exit = state.waiting.is_some()
        && latest.is_some_and(|k| k.state == api::ContainerState::ContainerExited);
    let last_state = latest.and_then(|k| {
        if waiting_after_exit {
            return Some(terminated_state(k));
        }
        previous
            .iter()
            .filter(|p| {
                p.name == k.name
                    && p.id != k.id
                    && p.attempt < k.attempt
                    && p.state == api::ContainerState::ContainerExited
            })
            .max_by_key(|p| (p.attempt, p.created_at))
            .map(terminated_state)
    });
    let status = ContainerStatus {
        last_state,
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: latest.map(|k| k.image_ref.clone()).unwrap_or_default(),
        container_id: latest.map(|k| format!("containerd://{}", k.id)),
        restart_count: latest.map(|k| k.attempt as i32).unwrap_or(0),
        ready,
        started: Some(started),
        state: Some(state),
        ..Default::default()
    };
    (status, counted)
}

/// The pod's status from what the runtime has and what the prober found. Pure (`now`
/// is passed in).
pub fn pod_status(
    pod: &Pod,
    observed: &Observed,
    waiting: &WaitingReasons,
    node: &NodeContext,
    now: Timestamp,
    health: &Health,
) -> PodStatus {
    let now = Time(now);
    let old = pod.status.as_ref();
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let inits = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let policy = restart_policy(pod);
    let sandbox_ready = observed.latest_sandbox().is_some_and(|s| s.ready);

    let mut init_statuses = Vec::new();
    let mut init_failed = false;
    let mut inits_done = true;
    let mut sidecars_ready = true;
    for c in inits {
        let latest = observed.latest_container(&c.name);
        let (mut st, counted) = container_status(
            c,
            latest,
            &observed.containers,
            waiting,
            health,
            "PodInitializing",
        );
        if is_sidecar(c) {
            // A sidecar's `ready` is its readiness, as for app containers; it is done
            // initializing once started, and its failures are restarts, not the pod's.
            inits_done &= latest.is_some_and(|k| sidecar_started(c, k, health));
            sidecars_ready &= st.ready;
        } else {
            // An init container is ready once it has completed.
            st.ready = counted == Counted::Succeeded;
            init_failed |= counted == Counted::Failed;
            inits_done &= st.ready;
        }
        init_statuses.push(st);
    }
    let initialized = inits_done
        || observed
            .latest_sandbox()
            .is_some_and(|sb| app_started_in(pod, observed, &sb.id));

    let mut statuses = Vec::new();
    let (mut running, mut waiting_n, mut succeeded, mut failed) = (0, 0, 0, 0);
    let default_wait = if initialized {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    for c in containers {
        let (st, counted) = container_status(
            c,
            observed.latest_container(&c.name),
            &observed.containers,
            waiting,
            health,
            default_wait,
        );
        match counted {
            Counted::Running => running += 1,
            Counted::Waiting => waiting_n += 1,
            Counted::Succeeded => succeeded += 1,
            Counted::Failed => failed += 1,
        }
        statuses.push(st);
    }
    let total = containers.len();
    // Kubernetes' getPhase: a container that never ran keeps the pod Pending; once all
    // have run, the restart policy decides between Running, Succeeded and Failed. Until
    // the init containers are done the pod is Pending, or Failed when one failed and
    // will not be restarted.
    let finished_before = old
        .and_then(|s| s.phase.as_deref())
        .filter(|p| *p == "Succeeded" || *p == "Failed");
    let phase = if let Some(p) = finished_before {
        p
    } else if !initialized {
        if init_failed && policy == "Never" {
            "Failed"
        } else {
            "Pending"
        }
    } else if waiting_n > 0
        || total == 0
        || !sandbox_ready && running == 0 && succeeded + failed == 0
    {
        "Pending"
    } else if running > 0 {
        "Running"
    } else {
        match policy {
            "Always" => "Running",
            "OnFailure" if failed > 0 => "Running",
            _ if failed > 0 => "Failed",
            _ => "Succeeded",
        }
    }
    .to_string();
    let all_ready = initialized && sidecars_ready && total > 0 && statuses.iter().all(|s| s.ready);
    let mut conditions = vec![
        condition("PodReadyToStartContainers", sandbox_ready, None, old, &now),
        condition(
            "Initialized",
            initialized,
            Some("ContainersNotInitialized"),
            old,
            &now,
        ),
        condition(
            "ContainersReady",
            all_ready,
            Some("ContainersNotReady"),
            old,
            &now,
        ),
        condition("Ready", all_ready, Some("ContainersNotReady"), old, &now),
    ];
    // PodScheduled is the scheduler's; keep what it wrote.
    if let Some(scheduled) = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
    {
        conditions.push(scheduled.clone());
    }
    let pod_ip = Some(observed.pod_ip.clone()).filter(|ip| !ip.is_empty() && sandbox_ready);
    PodStatus {
        phase: Some(phase),
        conditions: Some(conditions),
        container_statuses: Some(statuses),
        init_container_statuses: Some(init_statuses).filter(|s| !s.is_empty()),
        pod_ips: pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        pod_ip,
        host_ip: Some(node.node_ip.clone()).filter(|ip| !ip.is_empty()),
        host_ips: Some(vec![HostIP {
            ip: node.node_ip.clone(),
        }])
        .filter(|_| !node.node_ip.is_empty()),
        start_time: old.and_then(|s| s.start_time.clone()).or(Some(now)),
        qos_class: old.and_then(|s| s.qos_class.clone()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(policy: &str, names: &[&str]) -> Pod {
        let containers: Vec<_> = names
            .iter()
            .map(|n| json!({"name": n, "image": "busybox:1.36"}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"restartPolicy": policy, "containers": containers, "nodeName": "n"},
        }))
        .unwrap()
    }

    fn sb(id: &str, attempt: u32, ready: bool) -> SandboxInfo {
        SandboxInfo {
            id: id.into(),
            attempt,
            ready,
            created_at: attempt as i64,
        }
    }

    fn ctr(
        id: &str,
        sandbox: &str,
        name: &str,
        attempt: u32,
        state: api::ContainerState,
        exit: i32,
    ) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            sandbox_id: sandbox.into(),
            name: name.into(),
            attempt,
            state,
            exit_code: exit,
            created_at: attempt as i64,
            started_at: 1_700_000_000_000_000_000,
            finished_at: 0,
            image_ref: "sha256:abc".into(),
            reason: String::new(),
            message: String::new(),
        }
    }

    use api::ContainerState::{
        ContainerCreated as Created, ContainerExited as Exited, ContainerRunning as Running,
    };

    /// A `now` after every back-off has expired.
    const FAR_FUTURE: i64 = i64::MAX;

    #[test]
    fn backoff_doubles_from_ten_seconds_to_five_minutes() {
        let cases = [
            (0, 0),
            (1, 10),
            (2, 20),
            (3, 40),
            (5, 160),
            (6, 300),
            (40, 300),
            (u32::MAX, 300),
        ];
        for (restarts, secs) in cases {
            assert_eq!(
                restart_backoff(restarts),
                Duration::from_secs(secs),
                "{restarts}"
            );
        }
    }

    #[test]
    fn crashed_containers_wait_out_their_backoff() {
        let finished = 1_000_000_000_000i64;
        let mut crashed = ctr("c", "s", "a", 2, Exited, 1);
        crashed.finished_at = finished;
        let observed = Observed {
            sandboxes: vec![sb("s", 0, true)],
            containers: vec![crashed],
            pod_ip: String::new(),
        };
        let p = pod("Always", &["a"]);
        // Two restarts so far: 20 s back-off.
        let early = plan(&p, &observed, finished + 5_000_000_000);
        assert!(early.steps.is_empty());
        assert_eq!(early.backoff["a"], Duration::from_secs(15));
        let late = plan(&p, &observed, finished + 20_000_000_000);
        assert_eq!(late.steps, vec![start("a", 3)]);
        assert!(late.backoff.is_empty());
    }

    fn start(name: &str, attempt: u32) -> Step {
        Step::StartContainer {
            name: name.into(),
            attempt,
        }
    }

    #[test]
    fn plan_table() {
        let o = |sandboxes: Vec<SandboxInfo>, containers: Vec<ContainerInfo>| Observed {
            sandboxes,
            containers,
            pod_ip: "10.1.0.2".into(),
        };
        let cases: Vec<(&str, Pod, Observed, Vec<Step>)> = vec![
            (
                "new pod",
                pod("Always", &["a", "b"]),
                o(vec![], vec![]),
                vec![
                    Step::RunSandbox { attempt: 0 },
                    start("a", 0),
                    start("b", 0),
                ],
            ),
            (
                "steady",
                pod("Always", &["a"]),
                o(
                    vec![sb("s", 0, true)],
                    vec![ctr("c", "s", "a", 0, Running, 0)],
                ),
                vec![],
            ),
            (
                "missing container",
                pod("Always", &["a", "b"]),
                o(
                    vec![sb("s", 0, true)],
                    vec![ctr("c", "s", "a", 0, Running, 0)],
                ),
                vec![start("b", 0)],
            ),
            (
                "created only",
                pod("Always", &["a"]),
                o(
                    vec![sb("s", 0, true)],
                    vec![ctr("c", "s", "a", 0, Created, 0)],
                ),
                vec![Step::StartCreated { id: "c".into() }],
            ),
            (
                "always restarts",
                pod("Always", &["a"]),
                o(
                    vec![sb("s", 0, true)],
                    vec![ctr("c", "s", "a", 0, Exited, 0)],
                ),
                vec![start("a", 1)],
            ),
            (
                "the attempt before the current one is kept (lastState)",
                pod("Always", &["a"]),
                o(
                    vec![sb("s", 0, true)],
                    vec![
                        ctr("c0", "s", "a", 0, Exited, 1),
                        ctr("c1", "s", "a", 1, Exited, 1),
                    ],
                ),
                vec![start("a", 2)],
            ),
            (
                "older dead attempts are removed",
                pod("Always", &["a"]),
                o(
                    vec![sb("s", 0, true)],
                    vec![
                        ctr("c0", "s", "a", 0, Exited, 1),
                        ctr("c1", "s", "a", 1, Exited, 1),
                        ctr("c2", "s", "a", 2, Running, 0),
                    ],
                ),
                vec![Step::RemoveContainer { id: "c0".into() }],
            ),
            (
                "on-failure keeps success",
                pod("OnFailure", &["a"]),
                o(
                    vec![sb("s", 0, true)],
                    vec![ctr("c", "s", "a", 0, Exited, 0)],
                ),
                vec![],
            ),
            (
                "on-failure restarts failure",
                pod("OnFailure", &["a"]),
                o(
                    vec![sb("s", 0, true)],
                    vec![ctr("c", "s", "a", 0, Exited, 2)],
                ),
                vec![start("a", 1)],
            ),
            (
                "never",
                pod("Never", &["a"]),
                o(
                    vec![sb("s", 0, true)],
                    vec![ctr("c", "s", "a", 0, Exited, 2)],
                ),
                vec![],
            ),
            (
                "dead sandbox is replaced, restart counts continue",
                pod("Always", &["a"]),
                o(
                    vec![sb("s", 0, false)],
                    vec![ctr("c", "s", "a", 0, Exited, 137)],
                ),
                vec![Step::RunSandbox { attempt: 1 }, start("a", 1)],
            ),
            (
                "dead sandbox of a finished never-pod stays dead",
                pod("Never", &["a"]),
                o(
                    vec![sb("s", 0, false)],
                    vec![ctr("c", "s", "a", 0, Exited, 0)],
                ),
                vec![],
            ),
        ];
        for (name, pod, observed, want) in cases {
            assert_eq!(plan(&pod, &observed, FAR_FUTURE).steps, want, "{name}");
        }
    }

    #[test]
    fn terminal_pods_are_killed_once() {
        let mut p = pod("Always", &["a"]);
        p.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        let live = Observed {
            sandboxes: vec![sb("s", 0, true)],
            containers: vec![ctr("c", "s", "a", 0, Running, 0)],
            pod_ip: String::new(),
        };
        assert_eq!(plan(&p, &live, FAR_FUTURE).steps, vec![Step::KillPod]);
        let dead = Observed {
            sandboxes: vec![sb("s", 0, false)],
            containers: vec![ctr("c", "s", "a", 0, Exited, 0)],
            pod_ip: String::new(),
        };
        assert_eq!(plan(&p, &dead, FAR_FUTURE).steps, vec![]);
    }

    fn node() -> NodeContext {
        NodeContext {
            node_name: "n".into(),
            node_ip: "192.168.77.2".into(),
            ..Default::default()
        }
    }

    fn phase_of(policy: &str, observed: &Observed, waiting: &WaitingReasons) -> (String, bool) {
        let st = pod_status(
            &pod(policy, &["a"]),
            observed,
            waiting,
            &node(),
            Timestamp::now(),
            &Health::default(),
        );
        let ready = st
            .conditions
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap()
            .status
            == "True";
        (st.phase.unwrap(), ready)
    }

    #[test]
    fn phases_and_readiness() {
        let o = |sandboxes: Vec<SandboxInfo>, containers: Vec<ContainerInfo>| Observed {
            sandboxes,
            containers,
            pod_ip: "10.1.0.2".into(),
        };
        let none = WaitingReasons::new();
        let cases = [
            ("Always", o(vec![], vec![]), ("Pending", false)),
            (
                "Always",
                o(
                    vec![sb("s", 0, true)],
                    vec![ctr("c", "s", "a", 0, Running, 0)],
                ),
                ("Running", true),
            ),
            (
                "Never",
                o(
                    vec![sb("s", 0, true)],
                    vec![ctr("c", "s", "a", 0, Exited, 0)],
                ),
                ("Succeeded", false),
            ),
            (
                "Never",
                o(
                    vec![sb("s", 0, true)],
                    vec![ctr("c", "s", "a", 0, Exited, 1)],
                ),
                ("Failed", false),
            ),
            (
                "OnFailure",
                o(
                    vec![sb("s", 0, true)],
                    vec![ctr("c", "s", "a", 0, Exited, 1)],
                ),
                ("Running", false),
            ),
            (
                "Always",
                o(
                    vec![sb("s", 0, true)],
                    vec![ctr("c", "s", "a", 0, Exited, 0)],
                ),
                ("Running", false),
            ),
        ];
        for (policy, observed, (phase, ready)) in cases {
            assert_eq!(
                phase_of(policy, &observed, &none),
                (phase.to_string(), ready),
                "{policy} {observed:?}"
            );
        }
    }

    #[test]
    fn status_reports_ips_container_states_and_waiting_reasons() {
        let observed = Observed {
            sandboxes: vec![sb("s", 0, true)],
            containers: vec![ctr("c", "s", "a", 2, Running, 0)],
            pod_ip: "10.1.0.2".into(),
        };
        let st = pod_status(
            &pod("Always", &["a", "b"]),
            &observed,
            &WaitingReasons::from([(
                "b".to_string(),
                ("ErrImagePull".to_string(), "not found".to_string()),
            )]),
            &node(),
            Timestamp::now(),
            &Health::default(),
        );
        assert_eq!(st.pod_ip.as_deref(), Some("10.1.0.2"));
        assert_eq!(st.host_ip.as_deref(), Some("192.168.77.2"));
        assert_eq!(st.phase.as_deref(), Some("Pending"), "b never ran");
        let cs = st.container_statuses.unwrap();
        assert_eq!(cs[0].container_id.as_deref(), Some("containerd://c"));
        assert_eq!(cs[0].restart_count, 2);
        assert!(cs[0].state.as_ref().unwrap().running.is_some());
        let w = cs[1].state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(
            (w.reason.as_deref(), w.message.as_deref()),
            (Some("ErrImagePull"), Some("not found"))
        );
        let ready = st
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("ContainersNotReady"))
        );
    }

    #[test]
    fn terminated_reasons_and_last_state() {
        let oom = |mut k: ContainerInfo| {
            k.reason = "OOMKilled".into();
            k
        };
        let cases = [
            ("exit 0", ctr("c", "s", "a", 0, Exited, 0), "Completed"),
            ("exit 1", ctr("c", "s", "a", 0, Exited, 1), "Error"),
            (
                "runtime says",
                oom(ctr("c", "s", "a", 0, Exited, 137)),
                "OOMKilled",
            ),
        ];
        for (name, k, want) in cases {
            let observed = Observed {
                sandboxes: vec![sb("s", 0, true)],
                containers: vec![k],
                pod_ip: "10.1.0.2".into(),
            };
            let st = pod_status(
                &pod("Never", &["a"]),
                &observed,
                &WaitingReasons::new(),
                &node(),
                Timestamp::now(),
                &Health::default(),
            );
            let cs = &st.container_statuses.unwrap()[0];
            let t = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
            assert_eq!(t.reason.as_deref(), Some(want), "{name}");
            assert!(
                cs.last_state.is_none(),
                "{name}: first attempt has no lastState"
            );
        }
        // Restarted after an OOM kill, now in back-off: waiting CrashLoopBackOff with
        // the kill as lastState, the way `kubectl describe` shows it.
        let observed = Observed {
            sandboxes: vec![sb("s", 0, true)],
            containers: vec![
                oom(ctr("old", "s", "a", 0, Exited, 137)),
                oom(ctr("new", "s", "a", 1, Exited, 137)),
            ],
            pod_ip: "10.1.0.2".into(),
        };
        let st = pod_status(
            &pod("Always", &["a"]),
            &observed,
            &WaitingReasons::from([(
                "a".to_string(),
                ("CrashLoopBackOff".to_string(), "back-off".to_string()),
            )]),
            &node(),
            Timestamp::now(),
            &Health::default(),
        );
        let cs = &st.container_statuses.unwrap()[0];
        let waiting = cs.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(
            (
                last.reason.as_deref(),
                last.exit_code,
                last.container_id.as_deref()
            ),
            (Some("OOMKilled"), 137, Some("containerd://new"))
        );
        assert_eq!(cs.restart_count, 1);
    }

    #[test]
    fn transition_times_stay_while_the_status_stays() {
        let observed = Observed {
            sandboxes: vec![sb("s", 0, true)],
            containers: vec![ctr("c", "s", "a", 0, Running, 0)],
            pod_ip: "10.1.0.2".into(),
        };
        let mut p = pod("Always", &["a"]);
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        p.status = Some(pod_status(
            &p,
            &observed,
            &WaitingReasons::new(),
            &node(),
            t0,
            &Health::default(),
        ));
        let later = pod_status(
            &p,
            &observed,
            &WaitingReasons::new(),
            &node(),
            Timestamp::from_second(1_700_000_100).unwrap(),
            &Health::default(),
        );
        let ready = later
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.last_transition_time, Some(Time(t0)));
        assert_eq!(later.start_time, Some(Time(t0)));
    }

    #[tokio::test]
    async fn execute_runs_a_pod_on_the_fake_and_reports_image_errors() {
        let rt = crate::cri::FakeRuntime::new().with_pullable(&["busybox:1.36"]);
        let tmp = tempfile::tempdir().unwrap();
        let node = NodeContext {
            node_name: "n".into(),
            node_ip: "192.168.77.2".into(),
            log_root: tmp.path().into(),
            ..Default::default()
        };
        let mut p = pod("Always", &["a", "b"]);
        p.spec.as_mut().unwrap().containers[1].image = Some("nope:1".into());

        let observed = observe(&rt, "u1").await.unwrap();
        let waiting = execute(
            &rt,
            &p,
            &node,
            &observed,
            &plan(&p, &observed, FAR_FUTURE).steps,
            &PodObjects::default(),
        )
        .await
        .unwrap();
        assert_eq!(waiting["b"].0, "ErrImagePull");
        assert!(
            tmp.path().join("default_p_u1/a").is_dir(),
            "log directory created"
        );

        let observed = observe(&rt, "u1").await.unwrap();
        assert_eq!(observed.sandboxes.len(), 1);
        assert_eq!(observed.containers.len(), 1);
        assert!(!observed.pod_ip.is_empty());
        // The next sync only retries b.
        assert_eq!(plan(&p, &observed, FAR_FUTURE).steps, vec![start("b", 0)]);

        p.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        execute(
            &rt,
            &p,
            &node,
            &observed,
            &plan(&p, &observed, FAR_FUTURE).steps,
            &PodObjects::default(),
        )
        .await
        .unwrap();
        let observed = observe(&rt, "u1").await.unwrap();
        assert!(!observed.has_live_parts());
        remove_pod(&rt, &observed).await.unwrap();
        assert_eq!(observe(&rt, "u1").await.unwrap(), Observed::default());
    }

    #[tokio::test]
    async fn image_pull_policies() {
        let tmp = tempfile::tempdir().unwrap();
        let node = NodeContext {
            log_root: tmp.path().into(),
            ..Default::default()
        };
        // (image, policy, present on node, pullable) -> waiting reason, pulled?
        let cases = [
            (
                "busybox:1.36",
                Some("IfNotPresent"),
                true,
                false,
                None,
                false,
            ),
            ("busybox:1.36", Some("Always"), true, true, None, true),
            (
                "busybox:1.36",
                Some("Never"),
                false,
                true,
                Some("ErrImageNeverPull"),
                false,
            ),
            ("busybox:1.36", None, false, true, None, true),
            // No tag means :latest, which defaults to Always.
            ("busybox", None, true, true, None, true),
            (
                "busybox:1.36",
                Some("IfNotPresent"),
                false,
                false,
                Some("ErrImagePull"),
                true,
            ),
        ];
        for (image, policy, present, pullable, want_reason, want_pull) in cases {
            let only_if = |yes: bool| if yes { vec![image] } else { vec![] };
            let rt = crate::cri::FakeRuntime::new()
                .with_images(&only_if(present))
                .with_pullable(&only_if(pullable));
            let mut p = pod("Always", &["a"]);
            let c = &mut p.spec.as_mut().unwrap().containers[0];
            c.image = Some(image.into());
            c.image_pull_policy = policy.map(String::from);
            let observed = observe(&rt, "u1").await.unwrap();
            let waiting = execute(
                &rt,
                &p,
                &node,
                &observed,
                &plan(&p, &observed, FAR_FUTURE).steps,
                &PodObjects::default(),
            )
            .await
            .unwrap();
            let case = format!("{image} {policy:?} present={present} pullable={pullable}");
            assert_eq!(
                waiting.get("a").map(|w| w.0.as_str()),
                want_reason,
                "{case}"
            );
            let pulled = rt.calls().iter().any(|c| c.starts_with("PullImage"));
            assert_eq!(pulled, want_pull, "{case}");
        }
    }

    fn with_inits(policy: &str, inits: &[&str], names: &[&str]) -> Pod {
        let mut p = pod(policy, names);
        let inits: Vec<_> = inits
            .iter()
            .map(|n| json!({"name": n, "image": "busybox:1.36"}))
            .collect();
        p.spec.as_mut().unwrap().init_containers =
            Some(serde_json::from_value(json!(inits)).unwrap());
        p
    }

    #[test]
    fn init_containers_run_one_at_a_time_before_the_app() {
        let o = |containers: Vec<ContainerInfo>| Observed {
            sandboxes: vec![sb("s", 0, true)],
            containers,
            pod_ip: "10.1.0.2".into(),
        };
        let cases: Vec<(&str, &str, Observed, Vec<Step>, bool)> = vec![
            (
                "new pod starts the first init only",
                "Always",
                Observed::default(),
                vec![Step::RunSandbox { attempt: 0 }, start("i1", 0)],
                true,
            ),
            (
                "first init running: wait",
                "Always",
                o(vec![ctr("c1", "s", "i1", 0, Running, 0)]),
                vec![],
                true,
            ),
            (
                "first done: second starts",
                "Always",
                o(vec![ctr("c1", "s", "i1", 0, Exited, 0)]),
                vec![start("i2", 0)],
                true,
            ),
            (
                "all done: app starts",
                "Always",
                o(vec![
                    ctr("c1", "s", "i1", 0, Exited, 0),
                    ctr("c2", "s", "i2", 0, Exited, 0),
                ]),
                vec![start("a", 0)],
                false,
            ),
            (
                "failed init restarts",
                "OnFailure",
                o(vec![ctr("c1", "s", "i1", 0, Exited, 1)]),
                vec![start("i1", 1)],
                true,
            ),
            (
                "failed init under Never stops",
                "Never",
                o(vec![ctr("c1", "s", "i1", 0, Exited, 1)]),
                vec![],
                false,
            ),
            (
                "inits of an old sandbox do not count in a new one",
                "Always",
                Observed {
                    sandboxes: vec![sb("s", 0, false), sb("t", 1, true)],
                    containers: vec![
                        ctr("c1", "s", "i1", 0, Exited, 0),
                        ctr("c2", "s", "i2", 0, Exited, 0),
                    ],
                    pod_ip: String::new(),
                },
                vec![start("i1", 1)],
                true,
            ),
        ];
        for (name, policy, observed, want, poll) in cases {
            let got = plan(
                &with_inits(policy, &["i1", "i2"], &["a"]),
                &observed,
                FAR_FUTURE,
            );
            assert_eq!((got.steps, got.poll), (want, poll), "{name}");
        }
    }

    #[test]
    fn init_status_phase_and_conditions() {
        let status = |policy: &str, containers: Vec<ContainerInfo>| {
            let observed = Observed {
                sandboxes: vec![sb("s", 0, true)],
                containers,
                pod_ip: "10.1.0.2".into(),
            };
            pod_status(
                &with_inits(policy, &["i1", "i2"], &["a"]),
                &observed,
                &WaitingReasons::new(),
                &node(),
                Timestamp::now(),
                &Health::default(),
            )
        };
        let cond = |st: &PodStatus, t: &str| {
            st.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == t)
                .unwrap()
                .status
                .clone()
        };

        let st = status(
            "Always",
            vec![
                ctr("c1", "s", "i1", 0, Exited, 0),
                ctr("c2", "s", "i2", 0, Running, 0),
            ],
        );
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&st, "Initialized"), "False");
        let inits = st.init_container_statuses.as_ref().unwrap();
        assert_eq!(
            inits.iter().map(|s| s.ready).collect::<Vec<_>>(),
            [true, false]
        );
        assert!(inits[1].state.as_ref().unwrap().running.is_some());
        let app = &st.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            app.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );

        let st = status("Never", vec![ctr("c1", "s", "i1", 0, Exited, 1)]);
        assert_eq!(st.phase.as_deref(), Some("Failed"));
        let st = status("OnFailure", vec![ctr("c1", "s", "i1", 0, Exited, 1)]);
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        assert_eq!(
            st.init_container_statuses.unwrap()[0]
                .state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );

        let st = status(
            "Always",
            vec![
                ctr("c1", "s", "i1", 0, Exited, 0),
                ctr("c2", "s", "i2", 0, Exited, 0),
                ctr("c3", "s", "a", 0, Running, 0),
            ],
        );
        assert_eq!(
            (
                st.phase.as_deref(),
                cond(&st, "Initialized"),
                cond(&st, "Ready")
            ),
            (Some("Running"), "True".to_string(), "True".to_string())
        );
    }

    /// `i1` is an ordinary init container, `side` a sidecar (restartPolicy Always)
    /// between it and `i2`; `a` is the app.
    fn with_sidecar(policy: &str, startup_probe: bool) -> Pod {
        let mut side = json!({"name": "side", "image": "busybox:1.36", "restartPolicy": "Always"});
        if startup_probe {
            side["startupProbe"] = json!({"exec": {"command": ["true"]}});
        }
        let mut p = pod(policy, &["a"]);
        p.spec.as_mut().unwrap().init_containers = Some(
            serde_json::from_value(json!([
                {"name": "i1", "image": "busybox:1.36"}, side, {"name": "i2", "image": "busybox:1.36"}
            ]))
            .unwrap(),
        );
        p
    }

    #[test]
    fn sidecars_start_in_order_keep_running_and_restart() {
        let o = |containers: Vec<ContainerInfo>| Observed {
            sandboxes: vec![sb("s", 0, true)],
            containers,
            pod_ip: "10.1.0.2".into(),
        };
        let exited_at = |mut k: ContainerInfo, at: i64| {
            k.finished_at = at;
            k
        };
        let started = Health {
            started: [("cs".to_string(), true)].into(),
            ..Default::default()
        };
        let none = Health::default();
        // (case, pod restartPolicy, sidecar has a startup probe, probe results, runtime, want)
        type Case<'a> = (&'a str, &'a str, bool, &'a Health, Observed, Vec<Step>);
        let cases: Vec<Case> = vec![
            (
                "the sidecar starts after the init before it",
                "Never",
                false,
                &none,
                o(vec![ctr("c1", "s", "i1", 0, Exited, 0)]),
                vec![start("side", 0)],
            ),
            (
                "a running sidecar does not block the next init",
                "Never",
                false,
                &none,
                o(vec![
                    ctr("c1", "s", "i1", 0, Exited, 0),
                    ctr("cs", "s", "side", 0, Running, 0),
                ]),
                vec![start("i2", 0)],
            ),
            (
                "with a startup probe it blocks until started",
                "Never",
                true,
                &none,
                o(vec![
                    ctr("c1", "s", "i1", 0, Exited, 0),
                    ctr("cs", "s", "side", 0, Running, 0),
                ]),
                vec![],
            ),
            (
                "and not once the probe passed",
                "Never",
                true,
                &started,
                o(vec![
                    ctr("c1", "s", "i1", 0, Exited, 0),
                    ctr("cs", "s", "side", 0, Running, 0),
                ]),
                vec![start("i2", 0)],
            ),
            (
                "the app starts while the sidecar runs",
                "Never",
                false,
                &none,
                o(vec![
                    ctr("c1", "s", "i1", 0, Exited, 0),
                    ctr("cs", "s", "side", 0, Running, 0),
                    ctr("c2", "s", "i2", 0, Exited, 0),
                ]),
                vec![start("a", 0)],
            ),
            (
                "a sidecar that exited 0 during init restarts even under Never",
                "Never",
                false,
                &none,
                o(vec![
                    ctr("c1", "s", "i1", 0, Exited, 0),
                    ctr("cs", "s", "side", 0, Exited, 0),
                ]),
                vec![start("side", 1)],
            ),
            (
                "a sidecar that dies beside the app restarts; the app is left alone",
                "Never",
                false,
                &none,
                o(vec![
                    ctr("c1", "s", "i1", 0, Exited, 0),
                    ctr("cs", "s", "side", 0, Exited, 1),
                    ctr("c2", "s", "i2", 0, Exited, 0),
                    ctr("c3", "s", "a", 0, Running, 0),
                ]),
                vec![start("side", 1)],
            ),
        ];
        for (name, policy, probe, health, observed, want) in cases {
            let got = plan_with(&with_sidecar(policy, probe), &observed, FAR_FUTURE, health);
            assert_eq!(got.steps, want, "{name}");
        }
        // The restart of a crashing sidecar backs off like any container's.
        let crashed = o(vec![
            ctr("c1", "s", "i1", 0, Exited, 0),
            exited_at(ctr("cs", "s", "side", 1, Exited, 1), 1_000),
            ctr("c2", "s", "i2", 0, Exited, 0),
            ctr("c3", "s", "a", 0, Running, 0),
        ]);
        let got = plan_with(&with_sidecar("Always", false), &crashed, 2_000, &none);
        assert_eq!(got.steps, vec![]);
        assert!(got.backoff.contains_key("side"), "{:?}", got.backoff);
    }

    #[test]
    fn sidecar_status_ready_and_phase() {
        let observed = |containers: Vec<ContainerInfo>| Observed {
            sandboxes: vec![sb("s", 0, true)],
            containers,
            pod_ip: "10.1.0.2".into(),
        };
        let status = |policy: &str, o: &Observed| {
            pod_status(
                &with_sidecar(policy, false),
                o,
                &WaitingReasons::new(),
                &node(),
                Timestamp::now(),
                &Health::default(),
            )
        };
        let cond = |st: &PodStatus, t: &str| {
            st.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == t)
                .unwrap()
                .status
                .clone()
        };
        let running = observed(vec![
            ctr("c1", "s", "i1", 0, Exited, 0),
            ctr("cs", "s", "side", 0, Running, 0),
            ctr("c2", "s", "i2", 0, Exited, 0),
            ctr("c3", "s", "a", 0, Running, 0),
        ]);
        let st = status("Always", &running);
        let inits = st.init_container_statuses.as_ref().unwrap();
        assert_eq!(
            inits.iter().map(|s| s.ready).collect::<Vec<_>>(),
            [true, true, true],
            "a running sidecar without probes is ready"
        );
        assert_eq!(
            (
                st.phase.as_deref(),
                cond(&st, "Initialized"),
                cond(&st, "Ready")
            ),
            (Some("Running"), "True".into(), "True".into())
        );
        // A crashed sidecar beside the app: not ready, but the pod stays initialized
        // and running (its failure is not the pod's).
        let crashed = observed(vec![
            ctr("c1", "s", "i1", 0, Exited, 0),
            ctr("cs", "s", "side", 0, Exited, 1),
            ctr("c2", "s", "i2", 0, Exited, 0),
            ctr("c3", "s", "a", 0, Running, 0),
        ]);
        let st = status("Never", &crashed);
        assert_eq!(
            (
                st.phase.as_deref(),
                cond(&st, "Initialized"),
                cond(&st, "Ready")
            ),
            (Some("Running"), "True".into(), "False".into())
        );
        // The app finished under Never: the pod succeeded although the sidecar runs.
        let done = observed(vec![
            ctr("c1", "s", "i1", 0, Exited, 0),
            ctr("cs", "s", "side", 0, Running, 0),
            ctr("c2", "s", "i2", 0, Exited, 0),
            ctr("c3", "s", "a", 0, Exited, 0),
        ]);
        assert_eq!(status("Never", &done).phase.as_deref(), Some("Succeeded"));
    }

    #[test]
    fn probes_decide_ready_and_started() {
        let mut p = pod("Always", &["a"]);
        let c = &mut p.spec.as_mut().unwrap().containers[0];
        c.readiness_probe =
            Some(serde_json::from_value(json!({"exec": {"command": ["true"]}})).unwrap());
        c.startup_probe =
            Some(serde_json::from_value(json!({"exec": {"command": ["true"]}})).unwrap());
        let observed = Observed {
            sandboxes: vec![sb("s", 0, true)],
            containers: vec![ctr("c", "s", "a", 0, Running, 0)],
            pod_ip: "10.1.0.2".into(),
        };
        let health = |started: bool, ready: bool| Health {
            started: std::collections::HashMap::from([("c".to_string(), started)]),
            ready: std::collections::HashMap::from([("c".to_string(), ready)]),
        };
        // (health) -> (started, ready, pod Ready)
        let cases = [
            (Health::default(), (false, false)),
            (health(true, false), (true, false)),
            (health(false, true), (false, false)),
            (health(true, true), (true, true)),
        ];
        for (h, (started, ready)) in cases {
            let st = pod_status(
                &p,
                &observed,
                &WaitingReasons::new(),
                &node(),
                Timestamp::now(),
                &h,
            );
            let cs = &st.container_statuses.as_ref().unwrap()[0];
            assert_eq!((cs.started, cs.ready), (Some(started), ready), "{h:?}");
            let pod_ready = st
                .conditions
                .unwrap()
                .iter()
                .find(|c| c.type_ == "Ready")
                .unwrap()
                .status
                == "True";
            assert_eq!(pod_ready, ready, "{h:?}");
            assert_eq!(st.phase.as_deref(), Some("Running"));
        }
    }

    #[tokio::test]
    async fn execute_writes_volumes_and_mounts_them() {
        let rt = crate::cri::FakeRuntime::new().with_pullable(&["busybox:1.36"]);
        let tmp = tempfile::tempdir().unwrap();
        let node = NodeContext {
            log_root: tmp.path().join("logs"),
            root_dir: tmp.path().join("root"),
            ..Default::default()
        };
        let mut p = pod("Always", &["a", "b"]);
        let spec = p.spec.as_mut().unwrap();
        spec.volumes = Some(serde_json::from_value(json!([{"name": "conf", "configMap": {"name": "cm"}}, {"name": "scratch", "emptyDir": {}}])).unwrap());
        spec.containers[0].volume_mounts = Some(serde_json::from_value(json!([{"name": "conf", "mountPath": "/etc/c"}, {"name": "scratch", "mountPath": "/s", "subPath": "x"}])).unwrap());
        spec.containers[1].volume_mounts = Some(
            serde_json::from_value(json!([{"name": "undefined", "mountPath": "/u"}])).unwrap(),
        );
        let cm: k8s_openapi::api::core::v1::ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "cm"}, "data": {"k": "v"}}))
                .unwrap();
        let objects = PodObjects {
            config_maps: BTreeMap::from([("cm".to_string(), cm)]),
            ..Default::default()
        };
        let observed = observe(&rt, "u1").await.unwrap();
        let waiting = execute(
            &rt,
            &p,
            &node,
            &observed,
            &plan(&p, &observed, FAR_FUTURE).steps,
            &objects,
        )
        .await
        .unwrap();
        assert_eq!(waiting["b"].0, "CreateContainerConfigError");
        assert!(waiting["b"].1.contains("undefined"), "{}", waiting["b"].1);
        assert!(!waiting.contains_key("a"), "{waiting:?}");
        let vols = tmp.path().join("root/pods/u1/volumes");
        assert_eq!(std::fs::read_to_string(vols.join("conf/k")).unwrap(), "v");
        assert!(vols.join("scratch/x").is_dir(), "subPath created");
        // A missing configMap blocks the containers that need it.
        let p2 = {
            let mut q = p.clone();
            q.metadata.uid = Some("u2".into());
            q
        };
        let observed = observe(&rt, "u2").await.unwrap();
        let waiting = execute(
            &rt,
            &p2,
            &node,
            &observed,
            &plan(&p2, &observed, FAR_FUTURE).steps,
            &PodObjects::default(),
        )
        .await
        .unwrap();
        assert!(waiting["a"].1.contains("not found"), "{waiting:?}");
    }
}
