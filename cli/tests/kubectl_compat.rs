//! The `skiff` binary's kubectl-like commands next to the real kubectl, against the same
//! in-process API server: outputs must match (ages normalised). Skipped, with a line
//! saying so, when kubectl is not installed.

use std::path::Path;
use std::process::Command;

use skiff_apiserver::testing::TestServer;

const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

const MANIFEST: &str = "apiVersion: v1
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
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
";

fn run(bin: &str, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin)
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("KUBECONFIG")
        .env("RUST_LOG", "off")
        .output()
        .unwrap_or_else(|e| panic!("running {bin}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Replaces ages (`5s`, `2m3s`) so that a second between the two runs does not matter.
fn normalise(text: &str) -> String {
    text.split('\n')
        .map(|l| {
            l.split(' ')
                .map(|w| {
                    let is_age = !w.is_empty()
                        && w.chars().next().is_some_and(|c| c.is_ascii_digit())
                        && w.chars().all(|c| c.is_ascii_digit() || "smhdy".contains(c))
                        && w.chars().last().is_some_and(|c| "smhdy".contains(c));
                    if is_age {
                        "AGE"
                    } else {
                        w
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_describe_print_what_kubectl_prints() {
    if !Path::new(KUBECTL).exists() {
        println!("skipped: {KUBECTL} is not installed");
        return;
    }
    let server = TestServer::start().await;
    let kc = server.kubeconfig_path().to_path_buf();
    let skiff = env!("CARGO_BIN_EXE_skiff");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, MANIFEST).unwrap();
    let file = file.display().to_string();

    let (ok, out, err) = run(skiff, &kc, &["apply", "-f", &file]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "configmap/cfg created\ndeployment.apps/web created\nservice/web created\n"
    );

    let commands: &[&[&str]] = &[
        &["get", "cm"],
        &["get", "cm", "-A", "--show-labels"],
        &["get", "deploy,svc", "-o", "wide"],
        &["get", "all"],
        &["get", "deploy", "web", "-o", "json"],
        &["get", "cm", "-o", "name"],
        &["get", "svc", "web", "-o", "jsonpath={.spec.ports[0].port}"],
        &["describe", "svc", "web"],
        &["describe", "deployment", "web"],
        &["describe", "ns", "default"],
        &["api-resources"],
        &["config", "view"],
        // Nothing to describe: both print nothing on stdout and succeed.
        &["describe", "ingress"],
    ];
    for args in commands {
        let (k_ok, k_out, k_err) = run(KUBECTL, &kc, args);
        let (s_ok, s_out, s_err) = run(skiff, &kc, args);
        assert!(k_ok, "kubectl {args:?}: {k_err}");
        assert!(s_ok, "skiff {args:?}: {s_err}");
        assert_eq!(
            normalise(&s_out),
            normalise(&k_out),
            "skiff {args:?} differs from kubectl"
        );
    }

    // Connection flags before a subcommand that has subcommands of its own.
    let (ok, out, err) = run(
        skiff,
        &kc,
        &["-n", "default", "rollout", "pause", "deploy/web"],
    );
    assert!(ok, "{err}");
    assert_eq!(out, "deployment.apps/web paused\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_line_with_a_failing_exit() {
    let server = TestServer::start().await;
    let kc = server.kubeconfig_path().to_path_buf();
    let skiff = env!("CARGO_BIN_EXE_skiff");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: [oops\n",
    )
    .unwrap();
    let bad = bad.display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["get", "widgets"],
            "doesn't have a resource type \"widgets\"",
        ),
        (
            vec!["get", "cm", "missing"],
            "Error from server (NotFound): configmaps \"missing\" not found",
        ),
        (vec!["apply", "-f", "/nonexistent.yaml"], "does not exist"),
        (vec!["apply", "-f", &bad], "(document 2)"),
        (
            vec!["get", "pods", "--server", "https://127.0.0.1:1"],
            "127.0.0.1:1",
        ),
        (vec!["get", "pods", "--token", "wrong"], "Unauthorized"),
    ];
    for (args, want) in cases {
        let (ok, _, err) = run(skiff, &kc, &args);
        assert!(!ok, "{args:?} should fail");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line expected, got {err}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(want),
            "{args:?}: {err}"
        );
    }
    // A kubeconfig without the cluster's CA: one line saying the certificate is not
    // trusted and what to do (no log lines from the TLS library).
    let no_ca = dir.path().join("no-ca.kubeconfig");
    std::fs::write(
        &no_ca,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: '{}'}}\nusers:\n- name: u\n  user: {{token: '{}'}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
            server.url(),
            server.token()
        ),
    )
    .unwrap();
    // Without RUST_LOG=off: the default log filter itself must keep stderr clean.
    let o = Command::new(skiff)
        .args(["get", "ns", "--kubeconfig"])
        .arg(&no_ca)
        .env_remove("KUBECONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let (ok, err) = (o.status.success(), String::from_utf8_lossy(&o.stderr));
    assert!(!ok);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got {err}");
    assert!(
        lines[0].contains("not trusted") && lines[0].contains("--insecure-skip-tls-verify"),
        "{err}"
    );
    let (ok, out, err) = run(skiff, &no_ca, &["get", "ns", "--insecure-skip-tls-verify"]);
    assert!(ok && out.contains("default"), "{err}");

    // The good first document of the bad file was not applied.
    let (ok, _, _) = run(skiff, &kc, &["get", "cm", "a"]);
    assert!(!ok);
}
