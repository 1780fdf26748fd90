//! Pod sync against the in-memory runtime for what surrounds a container's life:
//! the Events each step records, postStart and preStop hooks, `runAsNonRoot`, pull
//! secrets and image pull back-off; and Event aggregation against an in-process API
//! server.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use skiff_kubelet::cri::{api, ExecOutput, FakeRuntime};
use skiff_kubelet::cri_config::NodeContext;
use skiff_kubelet::events::PodEvent;
use skiff_kubelet::pod_sync::{self, PullBackoff, WaitingReasons};
use skiff_kubelet::volumes::PodObjects;

fn pod(container: serde_json::Value, extra: serde_json::Value) -> Pod {
    let mut spec = json!({"restartPolicy": "Always", "terminationGracePeriodSeconds": 5, "containers": [container]});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
        "spec": spec,
    }))
    .unwrap()
}

struct Synced {
    waiting: WaitingReasons,
    events: Vec<PodEvent>,
}

/// One sync: observe, plan, execute; returns the waiting reasons and events.
async fn sync(
    rt: &FakeRuntime,
    p: &Pod,
    node: &NodeContext,
    objects: &PodObjects,
    pulls: &PullBackoff,
) -> Synced {
    let observed = pod_sync::observe(rt, "u1").await.unwrap();
    let steps = pod_sync::plan(p, &observed, i64::MAX).steps;
    let mut events = Vec::new();
    let waiting =
        pod_sync::execute_with(rt, p, node, &observed, &steps, objects, pulls, &mut events)
            .await
            .unwrap();
    Synced { waiting, events }
}

fn reasons(events: &[PodEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.reason).collect()
}

fn node(dir: &tempfile::TempDir) -> NodeContext {
    NodeContext {
        node_name: "node-a".into(),
        log_root: dir.path().join("logs"),
        root_dir: dir.path().join("root"),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_new_pod_records_pull_create_and_start_events() {
    let dir = tempfile::tempdir().unwrap();
    let rt = FakeRuntime::new().with_pullable(&["busybox:1.36"]);
    let p = pod(json!({"name": "a", "image": "busybox:1.36"}), json!({}));
    let s = sync(
        &rt,
        &p,
        &node(&dir),
        &PodObjects::default(),
        &PullBackoff::default(),
    )
    .await;
    assert!(s.waiting.is_empty(), "{:?}", s.waiting);
    assert_eq!(
        reasons(&s.events),
        ["Pulling", "Pulled", "Created", "Started"]
    );
    assert!(s
        .events
        .iter()
        .all(|e| e.container == "a" && e.type_ == "Normal"));
    assert_eq!(s.events[0].message, "Pulling image \"busybox:1.36\"");
    assert_eq!(s.events[3].message, "Started container a");

    // Already present (IfNotPresent): Pulled says so, without Pulling.
    let rt = FakeRuntime::new().with_images(&["busybox:1.36"]);
    let s = sync(
        &rt,
        &p,
        &node(&dir),
        &PodObjects::default(),
        &PullBackoff::default(),
    )
    .await;
    assert_eq!(reasons(&s.events), ["Pulled", "Created", "Started"]);
    assert!(s.events[0].message.contains("already present on machine"));
}

#[tokio::test]
async fn a_failed_pull_backs_off_with_events() {
    let dir = tempfile::tempdir().unwrap();
    let rt = FakeRuntime::new();
    let p = pod(json!({"name": "a", "image": "nope:1"}), json!({}));
    let pulls = PullBackoff::default();
    let s = sync(&rt, &p, &node(&dir), &PodObjects::default(), &pulls).await;
    assert_eq!(s.waiting["a"].0, "ErrImagePull");
    assert_eq!(reasons(&s.events), ["Pulling", "Failed", "Failed"]);
    assert!(s.events[1]
        .message
        .starts_with("Failed to pull image \"nope:1\""));
    assert_eq!(s.events[2].message, "Error: ErrImagePull");

    // The next sync does not pull again: ImagePullBackOff.
    let s = sync(&rt, &p, &node(&dir), &PodObjects::default(), &pulls).await;
    assert_eq!(s.waiting["a"].0, "ImagePullBackOff");
    assert_eq!(reasons(&s.events), ["BackOff", "Failed"]);
    assert_eq!(s.events[1].message, "Error: ImagePullBackOff");
    assert!(
        s.waiting["a"].1.contains("not found"),
        "{}",
        s.waiting["a"].1
    );
    let pulls_made = rt
        .calls()
        .iter()
        .filter(|c| c.starts_with("PullImage"))
        .count();
    assert_eq!(pulls_made, 1);
    assert!(!pulls
        .wait("u1", "nope:1", Timestamp::now().as_nanosecond() as i64)
        .is_zero());
    pulls.forget_pod("u1");
    assert!(pulls.wait("u1", "nope:1", 0).is_zero());
}

fn docker_secret(name: &str, registry: &str, user: &str, password: &str) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": json!({"auths": {registry: {"username": user, "password": password}}}).to_string()},
    }))
    .unwrap()
}

#[tokio::test]
async fn pull_secrets_are_passed_as_cri_auth() {
    let dir = tempfile::tempdir().unwrap();
    let image = "reg.example.com:5000/team/app:1";
    let p = pod(
        json!({"name": "a", "image": image}),
        json!({"imagePullSecrets": [{"name": "wrong"}, {"name": "right"}, {"name": "absent"}]}),
    );
    let objects = PodObjects {
        secrets: BTreeMap::from([
            // Both match the host; the wrong one is tried first (pod order) and fails.
            (
                "wrong".to_string(),
                docker_secret("wrong", "reg.example.com:5000", "me", "bad"),
            ),
            (
                "right".to_string(),
                docker_secret("right", "https://reg.example.com:5000", "me", "s3cret"),
            ),
        ]),
        ..Default::default()
    };
    let rt = FakeRuntime::new().with_protected(image, "me", "s3cret");
    let s = sync(&rt, &p, &node(&dir), &objects, &PullBackoff::default()).await;
    assert!(s.waiting.is_empty(), "{:?}", s.waiting);
    let pulls = rt.pulls();
    let passwords: Vec<String> = pulls
        .iter()
        .map(|(_, a)| a.as_ref().map(|a| a.password.clone()).unwrap_or_default())
        .collect();
    assert_eq!(passwords, ["bad", "s3cret"]);
    // No server address: containerd would withhold credentials from a mirror.
    assert_eq!(pulls[1].1.as_ref().unwrap().server_address, "");

    // Without the secrets the registry refuses: ErrImagePull, one anonymous try.
    let rt = FakeRuntime::new().with_protected(image, "me", "s3cret");
    let s = sync(
        &rt,
        &p,
        &node(&dir),
        &PodObjects::default(),
        &PullBackoff::default(),
    )
    .await;
    assert_eq!(s.waiting["a"].0, "ErrImagePull");
    assert!(s.waiting["a"].1.contains("401"), "{}", s.waiting["a"].1);
    assert_eq!(rt.pulls().len(), 1);
    assert!(rt.pulls()[0].1.is_none());
}

#[tokio::test]
async fn run_as_non_root_refuses_a_root_image() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // (pod securityContext, container securityContext, image USER, waiting?)
        (
            json!({"runAsNonRoot": true}),
            json!({}),
            None,
            Some("image will run as root"),
        ),
        (json!({"runAsNonRoot": true}), json!({}), Some("1000"), None),
        (
            json!({"runAsNonRoot": true}),
            json!({"runAsUser": 1000}),
            None,
            None,
        ),
        (
            json!({"runAsNonRoot": true}),
            json!({}),
            Some("nobody"),
            Some("non-numeric user (nobody)"),
        ),
        (json!({}), json!({}), None, None),
    ];
    for (psc, csc, user, want) in cases {
        let mut rt = FakeRuntime::new().with_images(&["busybox:1.36"]);
        if let Some(u) = user {
            rt = rt.with_image_user("busybox:1.36", u);
        }
        let p = pod(
            json!({"name": "a", "image": "busybox:1.36", "securityContext": csc}),
            json!({"securityContext": psc}),
        );
        let s = sync(
            &rt,
            &p,
            &node(&dir),
            &PodObjects::default(),
            &PullBackoff::default(),
        )
        .await;
        let case = format!("{psc} {csc} {user:?}");
        match want {
            Some(fragment) => {
                let (reason, message) = &s.waiting["a"];
                assert_eq!(reason, "CreateContainerConfigError", "{case}");
                assert!(message.contains(fragment), "{case}: {message}");
                let failed = s.events.iter().find(|e| e.reason == "Failed").unwrap();
                assert!(failed.message.starts_with("Error: container"), "{case}");
                assert!(
                    !rt.calls().iter().any(|c| c.starts_with("CreateContainer")),
                    "{case}"
                );
            }
            None => assert!(s.waiting.is_empty(), "{case}: {:?}", s.waiting),
        }
    }
}

#[tokio::test]
async fn a_failed_post_start_hook_kills_the_container_for_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = FakeRuntime::new().with_images(&["busybox:1.36"]);
    rt.set_exec_output(ExecOutput {
        stdout: vec![],
        stderr: b"no such file".to_vec(),
        exit_code: 1,
    });
    let p = pod(
        json!({"name": "a", "image": "busybox:1.36",
               "lifecycle": {"postStart": {"exec": {"command": ["/missing"]}}}}),
        json!({}),
    );
    let s = sync(
        &rt,
        &p,
        &node(&dir),
        &PodObjects::default(),
        &PullBackoff::default(),
    )
    .await;
    assert_eq!(
        reasons(&s.events),
        [
            "Pulled",
            "Created",
            "Started",
            "FailedPostStartHook",
            "Killing"
        ]
    );
    assert_eq!(rt.execs()[0].1, ["/missing"]);
    let observed = pod_sync::observe(&rt, "u1").await.unwrap();
    let c = observed.latest_container("a").unwrap();
    assert_eq!(c.state, api::ContainerState::ContainerExited);
    // restartPolicy Always: the next sync starts attempt 1.
    let plan = pod_sync::plan(&p, &observed, i64::MAX);
    assert!(
        plan.steps.contains(&pod_sync::Step::StartContainer {
            name: "a".into(),
            attempt: 1
        }),
        "{:?}",
        plan.steps
    );

    // With a hook that succeeds the container keeps running.
    let rt = FakeRuntime::new().with_images(&["busybox:1.36"]);
    let s = sync(
        &rt,
        &p,
        &node(&dir),
        &PodObjects::default(),
        &PullBackoff::default(),
    )
    .await;
    assert_eq!(reasons(&s.events), ["Pulled", "Created", "Started"]);
    let observed = pod_sync::observe(&rt, "u1").await.unwrap();
    assert_eq!(
        observed.latest_container("a").unwrap().state,
        api::ContainerState::ContainerRunning
    );
}

#[tokio::test]
async fn deleting_a_pod_runs_pre_stop_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let rt = FakeRuntime::new().with_images(&["busybox:1.36"]);
    let mut p = pod(
        json!({"name": "a", "image": "busybox:1.36",
               "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "drain"]}}}}),
        json!({}),
    );
    sync(
        &rt,
        &p,
        &node(&dir),
        &PodObjects::default(),
        &PullBackoff::default(),
    )
    .await;
    p.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    let s = sync(
        &rt,
        &p,
        &node(&dir),
        &PodObjects::default(),
        &PullBackoff::default(),
    )
    .await;
    assert_eq!(reasons(&s.events), ["Killing"]);
    assert_eq!(s.events[0].message, "Stopping container a");
    let calls = rt.calls();
    let exec = calls
        .iter()
        .position(|c| c.starts_with("ExecSync"))
        .expect("preStop ran");
    let stop = calls
        .iter()
        .position(|c| c.starts_with("StopContainer"))
        .unwrap();
    assert!(exec < stop, "{calls:?}");
    assert_eq!(rt.execs()[0].1, ["sh", "-c", "drain"]);
}

#[tokio::test]
async fn security_context_reaches_cri() {
    let dir = tempfile::tempdir().unwrap();
    let rt = FakeRuntime::new().with_images(&["busybox:1.36"]);
    let p = pod(
        json!({"name": "a", "image": "busybox:1.36", "securityContext": {
            "runAsUser": 1234, "privileged": true, "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]}}}),
        json!({"securityContext": {"runAsUser": 1, "runAsGroup": 2345, "supplementalGroups": [7], "fsGroup": 8}}),
    );
    let node = node(&dir);
    let sandbox = skiff_kubelet::cri_config::sandbox_config(&p, &node, 0).unwrap();
    let sb_sc = sandbox.linux.unwrap().security_context.unwrap();
    assert!(
        sb_sc.privileged,
        "a privileged container needs a privileged sandbox"
    );
    let s = sync(
        &rt,
        &p,
        &node,
        &PodObjects::default(),
        &PullBackoff::default(),
    )
    .await;
    assert!(s.waiting.is_empty(), "{:?}", s.waiting);
    let config = skiff_kubelet::cri_config::container_config(
        &p,
        &p.spec.as_ref().unwrap().containers[0],
        0,
        "",
        &node,
        &PodObjects::default(),
        &Default::default(),
    )
    .unwrap();
    let sc = config.linux.unwrap().security_context.unwrap();
    assert_eq!(
        (
            sc.run_as_user.map(|v| v.value),
            sc.run_as_group.map(|v| v.value),
            sc.supplemental_groups,
            sc.privileged,
            sc.readonly_rootfs,
            sc.no_new_privs
        ),
        (Some(1234), Some(2345), vec![7, 8], true, true, true)
    );
    let caps = sc.capabilities.unwrap();
    assert_eq!(
        (caps.add_capabilities, caps.drop_capabilities),
        (vec!["NET_ADMIN".to_string()], vec!["MKNOD".to_string()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_events_aggregate_into_one_with_a_count() {
    let server = skiff_apiserver::testing::TestServer::start().await;
    let client = server.client().await;
    let recorder = skiff_kubelet::events::Recorder::new(client.clone(), "node-a");
    let p = pod(json!({"name": "a", "image": "busybox"}), json!({}));
    let back = PodEvent::warning(
        "a",
        "BackOff",
        "Back-off restarting failed container a".into(),
    );
    let started = PodEvent::normal("a", "Started", "Started container a".into());
    for _ in 0..3 {
        recorder.record(&p, &back).await;
    }
    recorder.record(&p, &started).await;
    let events: kube::Api<Event> = kube::Api::namespaced(client, "default");
    let list = events.list(&Default::default()).await.unwrap().items;
    let mut got: Vec<(String, i32)> = list
        .iter()
        .map(|e| (e.reason.clone().unwrap_or_default(), e.count.unwrap_or(0)))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [("BackOff".to_string(), 3), ("Started".to_string(), 1)]
    );
    let b = list
        .iter()
        .find(|e| e.reason.as_deref() == Some("BackOff"))
        .unwrap();
    assert_eq!(
        b.source.as_ref().unwrap().component.as_deref(),
        Some("kubelet")
    );
    assert_eq!(b.source.as_ref().unwrap().host.as_deref(), Some("node-a"));
    assert_eq!(
        b.involved_object.field_path.as_deref(),
        Some("spec.containers{a}")
    );
    assert!(b.last_timestamp >= b.first_timestamp);

    // An Event deleted behind the recorder's back is created again.
    let events2: kube::Api<Event> = kube::Api::namespaced(server.client().await, "default");
    events2
        .delete(b.metadata.name.as_deref().unwrap(), &Default::default())
        .await
        .unwrap();
    recorder.record(&p, &back).await;
    let again = events2.list(&Default::default()).await.unwrap().items;
    let b2: Vec<_> = again
        .iter()
        .filter(|e| e.reason.as_deref() == Some("BackOff"))
        .collect();
    assert_eq!(b2.len(), 1);
    assert_eq!(b2[0].count, Some(1));

    // Queued events reach the API from the background writer.
    let pulled = PodEvent::normal("a", "Pulled", "queued".into());
    recorder.post(&std::sync::Arc::new(p.clone()), &[pulled.clone(), pulled]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let list = events2.list(&Default::default()).await.unwrap().items;
        let queued: Vec<_> = list
            .iter()
            .filter(|e| e.message.as_deref() == Some("queued"))
            .collect();
        if queued.len() == 1 && queued[0].count == Some(2) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "queued events not written: {queued:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
