//! The commands end to end against an in-process API server (no controllers run, so
//! these check what the CLI sends and prints, not rollouts finishing).

use clap::Parser;
use skiff_apiserver::testing::TestServer;

use super::{execute, KubeCommand};

#[derive(Debug, Parser)]
struct Line {
    #[command(subcommand)]
    command: KubeCommand,
}

/// Runs `skiff ARGS --kubeconfig <server's>` and returns stdout or the error line.
async fn skiff(server: &TestServer, args: &[&str]) -> Result<String, String> {
    let kc = server.kubeconfig_path().display().to_string();
    let mut argv = vec!["skiff"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--kubeconfig", &kc]);
    run_argv(&argv).await
}

/// Like [`skiff`] with `--kubeconfig` right after the subcommand, for command lines
/// whose tail is not flags (`exec POD -- CMD`, completion words).
async fn skiff_early(server: &TestServer, args: &[&str]) -> Result<String, String> {
    let kc = server.kubeconfig_path().display().to_string();
    let mut argv = vec!["skiff", args[0], "--kubeconfig", &kc];
    argv.extend_from_slice(&args[1..]);
    run_argv(&argv).await
}

async fn run_argv(argv: &[&str]) -> Result<String, String> {
    isolate_discovery_cache();
    let line = Line::try_parse_from(argv).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    match execute(line.command, &mut out).await {
        Ok(()) => Ok(String::from_utf8(out).expect("utf-8")),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// Points the discovery cache at a directory of this test process, never the user's
/// ~/.kube/cache (every TestServer has its own port, hence its own cache file).
fn isolate_discovery_cache() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        std::env::set_var("SKIFF_CACHE_DIR", dir.path());
        dir
    })
    .path()
}

async fn ok(server: &TestServer, args: &[&str]) -> String {
    skiff(server, args)
        .await
        .unwrap_or_else(|e| panic!("skiff {args:?} failed: {e}"))
}

const WEB: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  labels: {app: web}
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: busybox
        command: [sleep, '3600']
        ports:
        - containerPort: 80
";

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write manifest");
    p.display().to_string()
}

#[tokio::test]
async fn apply_creates_then_reports_unchanged_then_configured() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "web.yaml", WEB);
    assert_eq!(
        ok(&server, &["apply", "-f", &f]).await,
        "configmap/cfg created\ndeployment.apps/web created\n"
    );
    assert_eq!(
        ok(&server, &["apply", "-f", &f]).await,
        "configmap/cfg unchanged\ndeployment.apps/web unchanged\n"
    );
    let changed = WEB
        .replace("greeting: hello", "greeting: bonjour")
        .replace("replicas: 2", "replicas: 4");
    let f2 = write(dir.path(), "web2.yaml", &changed);
    assert_eq!(
        ok(&server, &["apply", "-f", &f2]).await,
        "configmap/cfg configured\ndeployment.apps/web configured\n"
    );
    assert_eq!(
        ok(
            &server,
            &["get", "cm", "cfg", "-o", "jsonpath={.data.greeting}"]
        )
        .await,
        "bonjour"
    );
    assert_eq!(
        ok(
            &server,
            &["get", "deploy/web", "-o", "jsonpath={.spec.replicas}"]
        )
        .await,
        "4"
    );
    // A key removed from the file is removed from the object.
    let dropped = changed.replace("  labels: {app: web}\ndata:", "data:");
    let f3 = write(dir.path(), "web3.yaml", &dropped);
    ok(&server, &["apply", "-f", &f3]).await;
    assert_eq!(
        ok(
            &server,
            &["get", "cm", "cfg", "-o", "jsonpath={.metadata.labels}"]
        )
        .await,
        ""
    );
}

#[tokio::test]
async fn a_bad_document_means_nothing_is_sent() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bad = format!("{WEB}---\napiVersion: v1\nkind: Widget\nmetadata: {{name: w}}\n");
    let f = write(dir.path(), "bad.yaml", &bad);
    let err = skiff(&server, &["apply", "-f", &f]).await.unwrap_err();
    assert!(
        err.contains("bad.yaml (document 3)") && err.contains("no matches for kind \"Widget\""),
        "{err}"
    );
    assert!(err.contains("nothing was sent"), "{err}");
    let err = skiff(&server, &["get", "cm", "cfg"]).await.unwrap_err();
    assert!(err.contains("(NotFound)"), "{err}");

    // A value only the server can judge (a port that is not a number): the dry run
    // of the whole batch finds it before the good first document is stored.
    let refused = format!(
        "{WEB}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {{containers: [{{name: c, image: x, ports: [{{containerPort: abc}}]}}]}}\n"
    );
    let f = write(dir.path(), "refused.yaml", &refused);
    let err = skiff(&server, &["apply", "-f", &f]).await.unwrap_err();
    assert!(
        err.contains("refused.yaml (document 3)")
            && err.contains("containerPort")
            && err.contains("nothing was sent"),
        "{err}"
    );
    let err = skiff(&server, &["get", "cm", "cfg"]).await.unwrap_err();
    assert!(err.contains("(NotFound)"), "{err}");
    let err = skiff(&server, &["create", "-f", &f]).await.unwrap_err();
    assert!(
        err.contains("refused.yaml (document 3)") && err.contains("nothing was sent"),
        "{err}"
    );
    let err = skiff(&server, &["get", "cm", "cfg"]).await.unwrap_err();
    assert!(err.contains("(NotFound)"), "{err}");
    // A namespace and an object in it, in one file: the dry run must not trip over
    // the namespace that does not exist yet.
    let with_ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: fresh}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: fresh}\n";
    assert_eq!(
        ok(
            &server,
            &["apply", "-f", &write(dir.path(), "ns.yaml", with_ns)]
        )
        .await,
        "namespace/fresh created\nconfigmap/c created\n"
    );

    let malformed = write(dir.path(), "m.yaml", "apiVersion: v1\nkind: [\n");
    let err = skiff(&server, &["apply", "-f", &malformed])
        .await
        .unwrap_err();
    assert!(
        err.starts_with("error parsing ") && err.contains("m.yaml (document 1)"),
        "{err}"
    );
    let err = skiff(&server, &["apply", "-f", "/nonexistent/file.yaml"])
        .await
        .unwrap_err();
    assert!(err.contains("does not exist"), "{err}");
}

#[tokio::test]
async fn get_prints_tables_names_and_documents() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    ok(
        &server,
        &["apply", "-f", &write(dir.path(), "web.yaml", WEB)],
    )
    .await;

    let table = ok(&server, &["get", "configmaps", "cfg"]).await;
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("NAME   "), "{table}");
    assert!(
        header.contains("DATA") && header.ends_with("AGE"),
        "{table}"
    );
    assert!(
        table.lines().nth(1).unwrap().starts_with("cfg    "),
        "{table}"
    );

    let labels = ok(&server, &["get", "cm", "-l", "app=web", "--show-labels"]).await;
    assert!(
        labels.lines().next().unwrap().ends_with("LABELS"),
        "{labels}"
    );
    assert!(labels.contains("app=web"), "{labels}");
    assert!(
        !labels.contains("kube-root-ca"),
        "selector applied: {labels}"
    );

    let several = ok(&server, &["get", "cm,deploy", "-l", "app=web"]).await;
    assert!(several.contains("\nconfigmap/cfg "), "{several}");
    assert!(several.contains("\ndeployment.apps/web "), "{several}");
    assert!(
        several.contains("\n\nNAME"),
        "tables are separated by a blank line: {several}"
    );

    assert_eq!(
        ok(&server, &["get", "deploy", "-o", "name"]).await,
        "deployment.apps/web\n"
    );
    let yaml = ok(&server, &["get", "deploy", "web", "-o", "yaml"]).await;
    assert!(
        yaml.starts_with("apiVersion: apps/v1\n") && yaml.contains("kind: Deployment"),
        "{yaml}"
    );
    let list: serde_json::Value =
        serde_json::from_str(&ok(&server, &["get", "cm", "-o", "json"]).await).unwrap();
    assert_eq!(list["kind"], "List");

    let all_ns = ok(&server, &["get", "cm", "-A"]).await;
    assert!(all_ns.starts_with("NAMESPACE   NAME"), "{all_ns}");

    let wide = ok(&server, &["get", "deploy", "-o", "wide"]).await;
    assert!(
        wide.contains("IMAGES") || wide.contains("SELECTOR"),
        "wide adds priority-1 columns: {wide}"
    );

    let err = skiff(&server, &["get", "cm", "nope"]).await.unwrap_err();
    // kubectl's line, then what to do.
    assert_eq!(
        err,
        "Error from server (NotFound): configmaps \"nope\" not found; looked in namespace \"default\"; check the name, or pick the namespace with -n"
    );
    let err = skiff(&server, &["get", "widgets"]).await.unwrap_err();
    assert!(
        err.starts_with("the server doesn't have a resource type \"widgets\""),
        "{err}"
    );
}

#[tokio::test]
async fn delete_waits_and_scale_label_annotate_change_objects() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    ok(
        &server,
        &["apply", "-f", &write(dir.path(), "web.yaml", WEB)],
    )
    .await;

    assert_eq!(
        ok(&server, &["scale", "--replicas=5", "deploy/web"]).await,
        "deployment.apps/web scaled\n"
    );
    assert_eq!(
        ok(
            &server,
            &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]
        )
        .await,
        "5"
    );
    let err = skiff(
        &server,
        &[
            "scale",
            "--replicas=1",
            "--current-replicas=2",
            "deploy/web",
        ],
    )
    .await
    .unwrap_err();
    assert!(err.contains("expected replicas to be 2, was 5"), "{err}");

    assert_eq!(
        ok(&server, &["label", "cm", "cfg", "tier=fe"]).await,
        "configmap/cfg labeled\n"
    );
    let err = skiff(&server, &["label", "cm", "cfg", "tier=be"])
        .await
        .unwrap_err();
    assert!(err.contains("--overwrite"), "{err}");
    ok(&server, &["label", "cm", "cfg", "tier=be", "--overwrite"]).await;
    ok(&server, &["annotate", "cm/cfg", "note=hi"]).await;
    let got = ok(
        &server,
        &[
            "get",
            "cm",
            "cfg",
            "-o",
            "jsonpath={.metadata.labels.tier} {.metadata.annotations.note}",
        ],
    )
    .await;
    assert_eq!(got, "be hi");
    // Several types at once, by selector, as kubectl takes them.
    assert_eq!(
        ok(
            &server,
            &["label", "cm,deploy", "-l", "app=web", "multi=yes"]
        )
        .await,
        "configmap/cfg labeled\ndeployment.apps/web labeled\n"
    );
    assert_eq!(
        ok(
            &server,
            &["get", "cm,deploy", "-l", "multi=yes", "-o", "name"]
        )
        .await,
        "configmap/cfg\ndeployment.apps/web\n"
    );
    let both = ok(&server, &["describe", "cm,deploy", "-l", "multi=yes"]).await;
    assert!(
        both.starts_with("Name:         cfg\n")
            && both.contains("\n\n\nName:                   web\n"),
        "{both}"
    );
    assert_eq!(
        ok(&server, &["annotate", "cm", "cfg", "note-"]).await,
        "configmap/cfg annotated\n"
    );
    ok(&server, &["label", "cm", "cfg", "tier-"]).await;
    assert_eq!(
        ok(
            &server,
            &["get", "cm", "cfg", "-o", "jsonpath={.metadata.labels.tier}"]
        )
        .await,
        ""
    );

    assert_eq!(
        ok(&server, &["delete", "cm", "cfg"]).await,
        "configmap \"cfg\" deleted\n"
    );
    assert!(skiff(&server, &["get", "cm", "cfg"])
        .await
        .unwrap_err()
        .contains("NotFound"));
    let err = skiff(&server, &["delete", "cm", "cfg"]).await.unwrap_err();
    assert!(err.contains("NotFound"), "{err}");
    ok(&server, &["delete", "cm", "cfg", "--ignore-not-found"]).await;
    assert_eq!(
        ok(
            &server,
            &[
                "delete",
                "-f",
                &dir.path().join("web.yaml").display().to_string(),
                "--ignore-not-found"
            ]
        )
        .await,
        "deployment.apps \"web\" deleted\n"
    );
}

#[tokio::test]
async fn rollout_pause_resume_restart_and_wait() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    ok(
        &server,
        &["apply", "-f", &write(dir.path(), "web.yaml", WEB)],
    )
    .await;
    assert_eq!(
        ok(&server, &["rollout", "pause", "deployment/web"]).await,
        "deployment.apps/web paused\n"
    );
    assert!(skiff(&server, &["rollout", "pause", "deployment/web"])
        .await
        .unwrap_err()
        .contains("already paused"));
    assert_eq!(
        ok(&server, &["rollout", "resume", "deploy/web"]).await,
        "deployment.apps/web resumed\n"
    );
    assert_eq!(
        ok(&server, &["rollout", "restart", "deploy/web"]).await,
        "deployment.apps/web restarted\n"
    );
    let at = ok(
        &server,
        &[
            "get",
            "deploy/web",
            "-o",
            "jsonpath={.spec.template.metadata.annotations}",
        ],
    )
    .await;
    assert!(at.contains("kubectl.kubernetes.io/restartedAt"), "{at}");

    // undo and history read the ReplicaSets the deployment owns; no controller runs
    // here, so two revisions are made by hand.
    let uid = ok(
        &server,
        &["get", "deploy/web", "-o", "jsonpath={.metadata.uid}"],
    )
    .await;
    for (rev, image) in [(1, "busybox:old"), (2, "busybox")] {
        let rs = format!(
            "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web-r{rev}\n  annotations: {{deployment.kubernetes.io/revision: '{rev}'}}\n  ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: web, uid: {uid}, controller: true}}]\nspec:\n  replicas: 0\n  selector: {{matchLabels: {{app: web, pod-template-hash: r{rev}}}}}\n  template:\n    metadata: {{labels: {{app: web, pod-template-hash: r{rev}}}}}\n    spec: {{containers: [{{name: web, image: '{image}'}}]}}\n"
        );
        ok(
            &server,
            &["create", "-f", &write(dir.path(), "rs.yaml", &rs)],
        )
        .await;
    }
    assert_eq!(
        ok(&server, &["rollout", "history", "deploy/web"]).await,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"
    );
    assert_eq!(
        ok(&server, &["rollout", "undo", "deploy/web"]).await,
        "deployment.apps/web rolled back\n"
    );
    assert_eq!(
        ok(
            &server,
            &[
                "get",
                "deploy/web",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}"
            ]
        )
        .await,
        "busybox:old"
    );

    // wait --for=delete returns once the object is gone.
    ok(&server, &["delete", "cm", "cfg", "--wait=false"]).await;
    assert_eq!(
        ok(
            &server,
            &["wait", "--for=delete", "cm/cfg", "--timeout=10s"]
        )
        .await,
        "configmap/cfg condition met\n"
    );
    // No controller runs: the rollout never finishes, and the timeout named is the
    // one given, not what was left of it after the first status line.
    let err = skiff(
        &server,
        &["rollout", "status", "deploy/web", "--timeout=1s"],
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("timed out waiting for the rollout of deployment.apps/web after 1s"),
        "{err}"
    );

    // By selector: every matching object, each reported. The undo above wrote the
    // image as `skiff-rollout`, so apply (as `skiff`) must name that manager, as
    // kubectl's server-side apply names `kubectl-rollout`.
    let web = write(dir.path(), "web.yaml", WEB);
    let err = skiff(&server, &["apply", "-f", &web]).await.unwrap_err();
    assert!(
        err.contains("conflict with \"skiff-rollout\"") && err.contains("--force-conflicts"),
        "{err}"
    );
    ok(&server, &["apply", "-f", &web, "--force-conflicts"]).await;
    assert_eq!(
        ok(
            &server,
            &[
                "wait",
                "--for=jsonpath={.data.greeting}=hello",
                "cm",
                "-l",
                "app=web"
            ]
        )
        .await,
        "configmap/cfg condition met\n"
    );
    let err = skiff(&server, &["wait", "--for=delete", "cm", "-l", "app=none"])
        .await
        .unwrap_err();
    assert!(err.contains("no matching resources found"), "{err}");

    // A condition no controller will set times out with a clear message.
    let err = skiff(
        &server,
        &[
            "wait",
            "--for=condition=Available",
            "deploy/web",
            "--timeout=1s",
        ],
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("timed out waiting for the condition on deployment.apps/web"),
        "{err}"
    );
}

#[tokio::test]
async fn describe_api_resources_version_and_connection_errors() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    ok(
        &server,
        &["apply", "-f", &write(dir.path(), "web.yaml", WEB)],
    )
    .await;

    let d = ok(&server, &["describe", "deployment", "web"]).await;
    let lines: Vec<&str> = d.lines().collect();
    assert_eq!(lines[0], "Name:                   web", "{d}");
    assert_eq!(lines[1], "Namespace:              default", "{d}");
    assert!(d.contains("\nReplicas:               2 desired | "), "{d}");
    // Template containers: name at three spaces, fields at four (kubectl's layout).
    assert!(d.contains("\nPod Template:\n  Labels:"), "{d}");
    assert!(
        d.contains("\n  Containers:\n   web:\n    Image:      busybox\n"),
        "{d}"
    );
    assert!(d.contains("\nEvents:"), "{d}");
    assert!(!d.contains("last-applied-configuration"), "{d}");

    // Nothing to describe is no error (kubectl notes it on stderr and exits 0).
    assert_eq!(ok(&server, &["describe", "ingress"]).await, "");
    assert_eq!(ok(&server, &["describe", "nodes"]).await, "");

    let ns = ok(&server, &["describe", "ns", "default"]).await;
    assert!(ns.starts_with("Name:         default\n"), "{ns}");

    let ar = ok(&server, &["api-resources"]).await;
    assert!(ar.lines().next().unwrap().starts_with("NAME "), "{ar}");
    assert!(
        ar.lines().any(|l| l.starts_with("deployments ")
            && l.contains("deploy")
            && l.contains("apps/v1")),
        "{ar}"
    );
    let v = ok(&server, &["version"]).await;
    assert!(
        v.starts_with("Client Version: v") && v.contains("\nServer Version: v"),
        "{v}"
    );

    let err = skiff(&server, &["get", "pods", "--server", "https://127.0.0.1:1"])
        .await
        .unwrap_err();
    assert!(
        err.contains("127.0.0.1:1") && err.contains("is the server running"),
        "{err}"
    );
    let err = skiff(&server, &["get", "pods", "--token", "wrong"])
        .await
        .unwrap_err();
    assert!(
        err.contains("Unauthorized") && err.contains("token"),
        "{err}"
    );
    let err = skiff(&server, &["logs", "nope"]).await.unwrap_err();
    assert!(err.contains("NotFound"), "{err}");
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p1}\nspec:\n  containers:\n  - {name: a, image: busybox}\n";
    ok(
        &server,
        &["create", "-f", &write(dir.path(), "pod.yaml", pod)],
    )
    .await;
    match skiff(&server, &["logs", "pod/p1", "--tail=5"]).await {
        // No kubelet runs in this test: the server refuses (unscheduled pod) or cannot
        // reach a node, and the error must say which.
        Err(e) => assert!(
            e.contains("not scheduled") || e.contains("cannot stream logs from the node"),
            "{e}"
        ),
        Ok(text) => assert!(
            text.is_empty(),
            "no kubelet ran the pod, so no lines: {text}"
        ),
    }
    let err = skiff(&server, &["logs", "deploy/web"]).await.unwrap_err();
    assert!(
        err.contains("no pods found for deployment.apps/web"),
        "{err}"
    );
}

#[tokio::test]
async fn flags_are_accepted_before_and_after_arguments() {
    let server = TestServer::start().await;
    let kc = server.kubeconfig_path().display().to_string();
    for argv in [
        vec![
            "skiff",
            "get",
            "-n",
            "kube-system",
            "cm",
            "--kubeconfig",
            &kc,
        ],
        vec![
            "skiff",
            "get",
            "cm",
            "-n",
            "kube-system",
            "--kubeconfig",
            &kc,
        ],
        vec![
            "skiff",
            "get",
            "--kubeconfig",
            &kc,
            "--namespace=kube-system",
            "cm",
        ],
    ] {
        let line = Line::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        let mut out = Vec::new();
        execute(line.command, &mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("kube-root-ca.crt") || text.is_empty(),
            "{argv:?}: {text}"
        );
    }
    let line = Line::try_parse_from([
        "skiff",
        "rollout",
        "status",
        "deploy/web",
        "-n",
        "x",
        "--kubeconfig",
        &kc,
    ])
    .unwrap();
    assert!(matches!(line.command, KubeCommand::Rollout(_)));
}

#[tokio::test]
async fn edit_sends_what_the_editor_wrote() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    ok(
        &server,
        &["apply", "-f", &write(dir.path(), "web.yaml", WEB)],
    )
    .await;
    // A non-interactive "editor" that changes one value in place.
    let script = write(
        dir.path(),
        "ed.sh",
        "#!/bin/sh\nsed -i 's/greeting: hello/greeting: edited/' \"$1\"\n",
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::env::set_var("KUBE_EDITOR", &script);
    let out = ok(&server, &["edit", "cm/cfg"]).await;
    assert_eq!(out, "configmap/cfg edited\n");
    // A refused edit names the field and keeps the text for another try.
    let bad = write(
        dir.path(),
        "bad.sh",
        "#!/bin/sh\nsed -i 's/replicas: 2/replicas: -1/' \"$1\"\n",
    );
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::env::set_var("KUBE_EDITOR", &bad);
    let err = skiff(&server, &["edit", "deploy/web"]).await.unwrap_err();
    std::env::remove_var("KUBE_EDITOR");
    assert!(err.contains("spec.replicas"), "{err}");
    let copy = err
        .split("has been stored to \"")
        .nth(1)
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no copy named: {err}"));
    let kept = std::fs::read_to_string(copy).unwrap();
    std::fs::remove_file(copy).unwrap();
    assert!(kept.contains("replicas: -1"), "{kept}");
    assert_eq!(
        ok(
            &server,
            &["get", "cm", "cfg", "-o", "jsonpath={.data.greeting}"]
        )
        .await,
        "edited"
    );
}

#[tokio::test]
async fn explain_reads_the_servers_openapi() {
    let server = TestServer::start().await;
    let top = ok(&server, &["explain", "deploy"]).await;
    assert!(
        top.starts_with("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n"),
        "{top}"
    );
    assert!(top.contains("\n  spec\t<DeploymentSpec>\n"), "{top}");
    let field = ok(&server, &["explain", "pods.spec.containers.image"]).await;
    assert!(
        field.contains("KIND:       Pod\nVERSION:    v1\n"),
        "{field}"
    );
    assert!(field.contains("FIELD: image <string>"), "{field}");
    let err = skiff(&server, &["explain", "svc.spec.nope"])
        .await
        .unwrap_err();
    assert!(
        err.contains("field \"nope\" does not exist in service.spec"),
        "{err}"
    );
    let err = skiff(&server, &["explain", "widgets"]).await.unwrap_err();
    assert!(err.contains("resource type \"widgets\""), "{err}");
}

#[tokio::test]
async fn discovery_is_cached_per_server_and_refreshed_on_a_miss() {
    let server = TestServer::start().await;
    let root = isolate_discovery_cache();
    ok(&server, &["get", "cm"]).await;
    let url = server.url().to_string();
    let file = root
        .join("discovery")
        .join(super::discovery::host_dir(&url))
        .join("skiff.json");
    let cached: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("the cache was written")).unwrap();
    assert!(cached["fetchedAt"].as_u64().is_some(), "{cached}");

    // A cached copy that lacks configmaps is believed (no round trip) until it misses.
    let mut stale = cached.clone();
    for list in stale["lists"].as_array_mut().unwrap() {
        if let Some(r) = list["resources"].as_array_mut() {
            r.retain(|r| !r["name"].as_str().unwrap_or("").starts_with("configmaps"));
        }
    }
    std::fs::write(&file, stale.to_string()).unwrap();
    let kc = server.kubeconfig_path().display().to_string();
    let line = Line::try_parse_from(["skiff", "get", "cm", "--kubeconfig", &kc]).unwrap();
    let err = execute(line.command, &mut Vec::new()).await.unwrap_err();
    assert!(err.to_string().contains("\"cm\""), "{err:#}");
    // What `main` does: drop the stale copy and run again, which fetches fresh.
    assert!(super::discovery::invalidate_on_stale_miss(&err));
    assert!(!file.exists());
    ok(&server, &["get", "cm"]).await;
    assert!(file.exists(), "a fresh copy replaces the stale one");
}

#[tokio::test]
async fn completion_offers_types_names_and_namespaces() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    ok(
        &server,
        &["apply", "-f", &write(dir.path(), "web.yaml", WEB)],
    )
    .await;
    let types = ok(&server, &["__complete", "get"]).await;
    let types: Vec<&str> = types.lines().collect();
    assert!(
        types.contains(&"deployments") && types.contains(&"pods"),
        "{types:?}"
    );
    let names = ok(&server, &["__complete", "get", "deploy"]).await;
    assert_eq!(names, "web\n");
    let namespaces = skiff_early(&server, &["__complete", "get", "pods", "-n"])
        .await
        .unwrap();
    assert!(namespaces.lines().any(|n| n == "default"), "{namespaces}");
    // Subcommands and flags are the static script's job.
    let err = skiff(&server, &["__complete", "apply", "-f"])
        .await
        .unwrap_err();
    assert!(err.contains("no dynamic completion"), "{err}");
}

#[tokio::test]
async fn errors_say_what_failed_and_what_to_do() {
    let server = TestServer::start().await;
    let err = skiff(&server, &["get", "pods", "--token", "wrong"])
        .await
        .unwrap_err();
    assert!(
        err.contains("Unauthorized") && err.contains("refused the token from the --token flag"),
        "{err}"
    );
    let err = skiff(&server, &["get", "pods", "--server", "https://127.0.0.1:1"])
        .await
        .unwrap_err();
    assert!(err.contains("server https://127.0.0.1:1 failed"), "{err}");
    let err = skiff(&server, &["get", "nodes", "nope"]).await.unwrap_err();
    assert!(err.contains("nodes \"nope\" not found"), "{err}");
    let err = skiff_early(&server, &["exec", "nope", "--", "true"])
        .await
        .unwrap_err();
    assert!(err.contains("pods \"nope\" not found"), "{err}");
    let err = skiff(&server, &["port-forward", "svc/nope", "80"])
        .await
        .unwrap_err();
    assert!(err.contains("services \"nope\" not found"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    ok(
        &server,
        &["apply", "-f", &write(dir.path(), "web.yaml", WEB)],
    )
    .await;
    let bad =
        "apiVersion: v1\nkind: Service\nmetadata: {name: s1}\nspec:\n  ports:\n  - {port: 70000}\n";
    let err = skiff(
        &server,
        &["create", "-f", &write(dir.path(), "bad.yaml", bad)],
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("Invalid") && err.contains("spec.ports[0].port"),
        "{err}"
    );
}

#[tokio::test]
async fn apply_is_server_side_with_conflicts_force_and_a_move_from_client_side() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Created by an ordinary write of manager skiff (what client-side apply did): the
    // first server-side apply moves that ownership instead of conflicting with it.
    let f = write(dir.path(), "web.yaml", WEB);
    ok(&server, &["create", "-f", &f]).await;
    let four = write(
        dir.path(),
        "web4.yaml",
        &WEB.replace("replicas: 2", "replicas: 4"),
    );
    assert_eq!(
        ok(&server, &["apply", "-f", &four]).await,
        "configmap/cfg unchanged\ndeployment.apps/web configured\n"
    );
    let managers = ok(
        &server,
        &[
            "get",
            "deploy/web",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].operation}",
        ],
    )
    .await;
    assert_eq!(managers, "Apply");

    let five = write(
        dir.path(),
        "web5.yaml",
        &WEB.replace("replicas: 2", "replicas: 5"),
    );
    let err = skiff(&server, &["apply", "--field-manager", "other", "-f", &five])
        .await
        .unwrap_err();
    assert!(
        err.contains("conflict with \"skiff\": .spec.replicas")
            && err.contains("--force-conflicts"),
        "{err}"
    );
    assert_eq!(
        ok(
            &server,
            &[
                "apply",
                "--field-manager",
                "other",
                "--force-conflicts",
                "-f",
                &five
            ]
        )
        .await,
        "configmap/cfg unchanged\ndeployment.apps/web configured\n"
    );
    assert_eq!(
        ok(
            &server,
            &["get", "deploy/web", "-o", "jsonpath={.spec.replicas}"]
        )
        .await,
        "5"
    );
}
