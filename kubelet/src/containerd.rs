//! One containerd per node: its configuration (own root, state and socket, so several
//! can share a machine in a lab), the registry mirror it pulls through, and starting,
//! waiting for and stopping the daemon, optionally inside the node's network namespace.
//!
//! The CRI settings are the ones verified on Debian 12 (see docs and PLATFORM notes):
//! `restrict_oom_score_adj` (negative OOM scores are refused there, and runc then fails
//! with a misleading "can't get final child's PID from pipe"), a fully qualified and
//! pre-pushed `sandbox_image`, CNI plugins from `/usr/lib/cni`, the runc v2 shim with
//! cgroupfs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cri::{ContainerdRuntime, CriError, Runtime};
use crate::images::PAUSE_IMAGE;
use crate::process::{self, Daemon, ProcessError};

/// Registries the mirror stands in for: everything the offline images are named under.
pub const MIRRORED_REGISTRIES: &[&str] = &["docker.io", "registry.k8s.io"];

#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("cannot write containerd's files under {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the socket path {0} is longer than a unix socket allows (107 bytes); use a shorter base directory")]
    SocketPathTooLong(PathBuf),
    #[error("containerd exited during startup; see {log}")]
    Exited { log: PathBuf },
    #[error("containerd did not answer CRI Version within {waited:?} ({last}); see {log}")]
    NotReady {
        waited: Duration,
        last: String,
        log: PathBuf,
    },
}

/// Everything one node's containerd needs. [`ContainerdConfig::new`] derives every path
/// from one base directory.
#[derive(Debug, Clone)]
pub struct ContainerdConfig {
    /// Holds `config.toml`, `containerd.log`, `root/`, `state/`, `certs.d/`, the socket.
    pub base_dir: PathBuf,
    /// Network namespace to run in; pods' networks are then created inside it.
    pub netns: Option<String>,
    pub sandbox_image: String,
    /// `host:port` of the registry mirror; `None` pulls from the real registries.
    pub mirror: Option<String>,
    pub cni_bin_dir: PathBuf,
    pub cni_conf_dir: PathBuf,
    pub log_level: String,
}

impl ContainerdConfig {
    pub fn new(base_dir: &Path) -> ContainerdConfig {
        ContainerdConfig {
            base_dir: base_dir.to_path_buf(),
            netns: None,
            sandbox_image: PAUSE_IMAGE.into(),
            mirror: None,
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            cni_conf_dir: base_dir.join("cni").join("net.d"),
            log_level: "info".into(),
        }
    }

    /// The CRI (and containerd API) socket.
    pub fn socket(&self) -> PathBuf {
        self.base_dir.join("containerd.sock")
    }

    pub fn config_file(&self) -> PathBuf {
        self.base_dir.join("config.toml")
    }

    pub fn log_file(&self) -> PathBuf {
        self.base_dir.join("containerd.log")
    }

    pub fn certs_dir(&self) -> PathBuf {
        self.base_dir.join("certs.d")
    }
}

fn toml_str(s: &str) -> String {
    // TOML basic strings share JSON's escapes for everything a path can contain.
    serde_json::to_string(s).expect("strings always serialise")
}

/// containerd's `config.toml` (version 2, containerd 1.6).
pub fn config_toml(cfg: &ContainerdConfig) -> String {
    let base = &cfg.base_dir;
    let p = |sub: &str| toml_str(&base.join(sub).display().to_string());
    let socket = cfg.socket().display().to_string();
    let registry = if cfg.mirror.is_some() {
        format!(
            "\n    [plugins.\"io.containerd.grpc.v1.cri\".registry]\n      config_path = {}\n",
            toml_str(&cfg.certs_dir().display().to_string())
        )
    } else {
        String::new()
    };
    format!(
        r#"# Written by skiff: one containerd per node.
version = 2
root = {root}
state = {state}
# Snapshotters that need extra kernel or disk setup are not used on lab nodes.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = {grpc}

[ttrpc]
  address = {ttrpc}

[debug]
  level = {level}

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = {opt}

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = {sandbox}
    restrict_oom_score_adj = true
    # A random port per instance: several nodes may share the machine's loopback.
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false

    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false

    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = {cni_bin}
      conf_dir = {cni_conf}
      max_conf_num = 1
{registry}"#,
        root = p("root"),
        state = p("state"),
        grpc = toml_str(&socket),
        ttrpc = toml_str(&format!("{socket}.ttrpc")),
        level = toml_str(&cfg.log_level),
        opt = p("opt"),
        sandbox = toml_str(&cfg.sandbox_image),
        cni_bin = toml_str(&cfg.cni_bin_dir.display().to_string()),
        cni_conf = toml_str(&cfg.cni_conf_dir.display().to_string()),
        registry = registry,
    )
}

/// `certs.d/<registry>/hosts.toml`: pull and resolve through the mirror over plain
/// HTTP. `server` is the mirror too, so a missing image fails at the mirror instead of
/// falling through to the internet (labs must not send traffic out).
pub fn hosts_toml(mirror: &str) -> String {
    format!(
        "# Written by skiff: every pull goes to the lab's registry mirror.\n\
         server = {server}\n\n\
         [host.{server}]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n",
        server = toml_str(&format!("http://{mirror}")),
    )
}

/// Writes `config.toml`, the mirror's `hosts.toml` files and the directories
/// containerd expects. Returns the config path.
pub fn write_files(cfg: &ContainerdConfig) -> Result<PathBuf, ContainerdError> {
    let socket = cfg.socket();
    if socket.as_os_str().len() > 107 {
        return Err(ContainerdError::SocketPathTooLong(socket));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ContainerdError::Io { path, source }
    };
    for dir in [cfg.base_dir.clone(), cfg.cni_conf_dir.clone()] {
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    }
    if let Some(mirror) = &cfg.mirror {
        for registry in MIRRORED_REGISTRIES {
            let dir = cfg.certs_dir().join(registry);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            let file = dir.join("hosts.toml");
            std::fs::write(&file, hosts_toml(mirror)).map_err(io(&file))?;
        }
    }
    let file = cfg.config_file();
    std::fs::write(&file, config_toml(cfg)).map_err(io(&file))?;
    Ok(file)
}

/// A running containerd. [`Containerd::stop`] ends it gracefully; dropping it kills
/// containerd and, as a last resort, the shims and containers it started.
#[derive(Debug)]
pub struct Containerd {
    config: ContainerdConfig,
    daemon: Daemon,
}

impl Containerd {
    /// Writes the configuration, starts containerd and waits until CRI answers.
    pub async fn start(config: ContainerdConfig) -> Result<Containerd, ContainerdError> {
        let file = write_files(&config)?;
        let mut cmd = process::command_in(config.netns.as_deref(), "containerd")?;
        cmd.arg("--config").arg(&file);
        let daemon = Daemon::spawn("containerd", cmd, &config.log_file())?;
        let mut me = Containerd { config, daemon };
        me.wait_ready(Duration::from_secs(30)).await?;
        tracing::info!(socket = %me.config.socket().display(), netns = ?me.config.netns, pid = me.pid(), "containerd ready");
        Ok(me)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), ContainerdError> {
        let started = Instant::now();
        let mut last = String::from("socket not created yet");
        while started.elapsed() < timeout {
            if !self.daemon.is_running() {
                return Err(ContainerdError::Exited {
                    log: self.config.log_file(),
                });
            }
            if self.config.socket().exists() {
                match self.runtime().await {
                    Ok(rt) => match rt.version().await {
                        Ok(_) => return Ok(()),
                        Err(e) => last = e.to_string(),
                    },
                    Err(e) => last = e.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ContainerdError::NotReady {
            waited: timeout,
            last,
            log: self.config.log_file(),
        })
    }

    /// A CRI client on this containerd.
    pub async fn runtime(&self) -> Result<ContainerdRuntime, CriError> {
        ContainerdRuntime::connect(&self.config.socket()).await
    }

    pub fn config(&self) -> &ContainerdConfig {
        &self.config
    }

    pub fn socket(&self) -> PathBuf {
        self.config.socket()
    }

    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// Stops containerd (SIGTERM, SIGKILL after 10 s). Pods keep running, as with any
    /// containerd restart: remove them through CRI first to end them.
    pub async fn stop(&mut self) {
        self.daemon.stop(Duration::from_secs(10)).await;
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Shims carry this containerd's socket path in their arguments, which is unique
        // per node; their children are the containers. Only reached when a caller did
        // not tear the node down through CRI (a failed test, a crash).
        let killed =
            process::kill_process_trees_mentioning(&self.config.socket().display().to_string());
        if !killed.is_empty() {
            tracing::warn!(pids = ?killed, "killed leftover containerd shims and containers");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ContainerdConfig {
        let mut c = ContainerdConfig::new(Path::new("/tmp/node-a"));
        c.mirror = Some("127.0.0.1:5000".into());
        c
    }

    #[test]
    fn config_has_the_verified_cri_settings_and_own_paths() {
        let text = config_toml(&cfg());
        let must = [
            r#"root = "/tmp/node-a/root""#,
            r#"state = "/tmp/node-a/state""#,
            r#"address = "/tmp/node-a/containerd.sock""#,
            r#"address = "/tmp/node-a/containerd.sock.ttrpc""#,
            "restrict_oom_score_adj = true",
            r#"sandbox_image = "registry.k8s.io/pause:3.9""#,
            r#"bin_dir = "/usr/lib/cni""#,
            r#"conf_dir = "/tmp/node-a/cni/net.d""#,
            r#"runtime_type = "io.containerd.runc.v2""#,
            "SystemdCgroup = false",
            r#"config_path = "/tmp/node-a/certs.d""#,
            r#"stream_server_port = "0""#,
        ];
        for m in must {
            assert!(text.contains(m), "missing {m:?} in\n{text}");
        }
        let mut no_mirror = cfg();
        no_mirror.mirror = None;
        assert!(!config_toml(&no_mirror).contains("config_path"));
    }

    #[test]
    fn paths_with_quotes_are_escaped() {
        let c = ContainerdConfig::new(Path::new("/tmp/we\"ird"));
        assert!(config_toml(&c).contains(r#"root = "/tmp/we\"ird/root""#));
    }

    #[test]
    fn hosts_toml_points_server_and_host_at_the_mirror() {
        let text = hosts_toml("127.0.0.1:5000");
        assert!(
            text.contains(r#"server = "http://127.0.0.1:5000""#),
            "{text}"
        );
        assert!(text.contains(r#"[host."http://127.0.0.1:5000"]"#), "{text}");
        assert!(
            text.contains(r#"capabilities = ["pull", "resolve"]"#),
            "{text}"
        );
        assert!(
            !text.contains("docker.io"),
            "never falls back to the internet"
        );
    }

    #[test]
    fn write_files_lays_out_config_and_certs_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = ContainerdConfig::new(tmp.path());
        c.mirror = Some("10.0.0.1:5000".into());
        let file = write_files(&c).unwrap();
        assert_eq!(std::fs::read_to_string(file).unwrap(), config_toml(&c));
        for r in MIRRORED_REGISTRIES {
            let hosts = std::fs::read_to_string(c.certs_dir().join(r).join("hosts.toml")).unwrap();
            assert!(hosts.contains("http://10.0.0.1:5000"));
        }
        assert!(c.cni_conf_dir.is_dir());

        let long = ContainerdConfig::new(&tmp.path().join("x".repeat(120)));
        assert!(matches!(
            write_files(&long),
            Err(ContainerdError::SocketPathTooLong(_))
        ));
    }
}
