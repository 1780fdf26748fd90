//! The real kubectl against skiff with the controllers and a fake kubelet: `rollout
//! status`, `wait --for=condition=Available`, `rollout history`, `rollout undo` and
//! `delete` must complete. Skipped (with a message) when kubectl is not installed.

mod support;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;
use support::*;

fn kubectl_binary() -> Option<String> {
    let candidates = [
        "/usr/lib/google-cloud-sdk/bin/kubectl",
        "/usr/bin/kubectl",
        "/usr/local/bin/kubectl",
    ];
    candidates
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| p.to_string())
}

async fn kubectl(bin: &str, kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(bin)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .output(),
    )
    .await
    .expect("kubectl finished within 90 s")
    .expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_wait_history_undo_and_delete_complete() {
    let Some(bin) = kubectl_binary() else {
        println!("skipped: kubectl not found (looked in /usr/lib/google-cloud-sdk/bin, /usr/bin, /usr/local/bin)");
        return;
    };
    let c = Cluster::start(fast_config(), true).await;
    let kc = c.server.kubeconfig_path().to_path_buf();
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {"kubernetes.io/change-cause": "first"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "img:1"}]}}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();

    let (ok, out) = kubectl(
        &bin,
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    )
    .await;
    assert!(
        ok && out.contains("successfully rolled out"),
        "rollout status: {out}"
    );
    let (ok, out) = kubectl(
        &bin,
        &kc,
        &[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=60s",
        ],
    )
    .await;
    assert!(ok && out.contains("condition met"), "wait: {out}");

    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"kubernetes.io/change-cause": "second"}},
                             "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img:2"}]}}}})),
    )
    .await
    .unwrap();
    let (ok, out) = kubectl(
        &bin,
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    )
    .await;
    assert!(
        ok && out.contains("successfully rolled out"),
        "rollout status 2: {out}"
    );

    let (ok, out) = kubectl(&bin, &kc, &["rollout", "history", "deployment/web"]).await;
    assert!(ok, "history: {out}");
    assert!(
        out.contains("1 ") && out.contains("2 ") && out.contains("second"),
        "history lists both revisions: {out}"
    );

    let (ok, out) = kubectl(&bin, &kc, &["rollout", "undo", "deployment/web"]).await;
    assert!(ok && out.contains("rolled back"), "undo: {out}");
    let (ok, out) = kubectl(
        &bin,
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    )
    .await;
    assert!(
        ok && out.contains("successfully rolled out"),
        "rollout status after undo: {out}"
    );
    let d = api.get("web").await.unwrap();
    let image = d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("img:1"));
    assert_eq!(
        d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "3"
    );

    let (ok, out) = kubectl(
        &bin,
        &kc,
        &["rollout", "history", "deployment/web", "--revision=3"],
    )
    .await;
    assert!(ok && out.contains("img:1"), "history --revision=3: {out}");

    let (ok, out) = kubectl(
        &bin,
        &kc,
        &["rollout", "undo", "deployment/web", "--to-revision=2"],
    )
    .await;
    assert!(
        ok && out.contains("rolled back"),
        "undo --to-revision=2: {out}"
    );
    let (ok, out) = kubectl(
        &bin,
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    )
    .await;
    assert!(
        ok && out.contains("successfully rolled out"),
        "rollout status after undo to 2: {out}"
    );
    let image = api
        .get("web")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("img:2"));

    let (ok, out) = kubectl(&bin, &kc, &["rollout", "restart", "deployment/web"]).await;
    assert!(ok && out.contains("restarted"), "restart: {out}");
    let (ok, out) = kubectl(
        &bin,
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    )
    .await;
    assert!(
        ok && out.contains("successfully rolled out"),
        "rollout status after restart: {out}"
    );
    let d = api.get("web").await.unwrap();
    assert_eq!(
        d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "5"
    );

    let (ok, out) = kubectl(&bin, &kc, &["describe", "deployment", "web"]).await;
    assert!(ok, "describe: {out}");
    assert!(
        out.contains("ScalingReplicaSet") && out.contains("deployment-controller"),
        "events shown by describe: {out}"
    );

    let (ok, out) = kubectl(&bin, &kc, &["delete", "deployment", "web", "--timeout=60s"]).await;
    assert!(ok && out.contains("deleted"), "delete: {out}");
    wait_for("pods gone", Duration::from_secs(20), || async {
        active_pods(&c.client, "default", "web")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(api.get_opt("web").await.unwrap().is_none());
    c.stop().await;
}
