//! The node-local image registry: Debian's `docker-registry` (CNCF distribution)
//! serving a directory, and `skopeo` pushing the offline OCI layouts into it.
//!
//! A lab has no internet, so containerd is told (see [`crate::containerd`]) to use this
//! registry as the mirror of `docker.io` and `registry.k8s.io`; an image pushed here as
//! `library/busybox:latest` is then pulled by CRI as `docker.io/library/busybox:latest`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::images::BuiltImage;
use crate::netns;
use crate::process::{self, Daemon, ProcessError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("cannot write the registry directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the registry did not come up on {addr}: {reason}; see {log}")]
    NotReady {
        addr: SocketAddr,
        log: PathBuf,
        reason: String,
    },
    #[error("image reference {0:?} is not fully qualified (want HOST/PATH:TAG)")]
    BadReference(String),
    #[error("pushing {reference} with skopeo failed: {stderr}")]
    Push { reference: String, stderr: String },
}

/// Where and how to run the registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// `http.addr`; loopback of the lab namespace is enough for one node's containerd.
    pub addr: SocketAddr,
    /// Holds `config.yml`, `registry.log` and the blob store under `data/`.
    pub dir: PathBuf,
    /// Network namespace to run in (`/var/run/netns/NAME`), or the current one.
    pub netns: Option<String>,
}

/// A running registry, stopped by [`Registry::stop`] or killed on drop.
#[derive(Debug)]
pub struct Registry {
    config: RegistryConfig,
    daemon: Daemon,
}

/// The registry's `config.yml`: filesystem storage and an HTTP listener, nothing else
/// (no auth: it serves only a lab's own loopback or namespace).
pub fn config_yaml(addr: SocketAddr, data_dir: &Path) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: warn\n\
         storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
         http:\n  addr: {addr}\n",
        data = data_dir.display(),
    )
}

/// Splits `docker.io/library/busybox:latest` into the host and the path the mirror
/// stores it under (`library/busybox:latest`). A reference with a digest is refused:
/// pushes are by tag.
pub fn mirror_path(reference: &str) -> Result<(&str, &str), RegistryError> {
    let bad = || RegistryError::BadReference(reference.to_string());
    let (host, rest) = reference.split_once('/').ok_or_else(bad)?;
    let looks_like_host = host.contains('.') || host.contains(':') || host == "localhost";
    let last = rest.rsplit('/').next().unwrap_or(rest);
    if !looks_like_host || rest.contains('@') || !last.contains(':') {
        return Err(bad());
    }
    Ok((host, rest))
}

impl Registry {
    /// Writes the config, starts `docker-registry serve` and waits until it accepts
    /// connections.
    pub async fn start(config: RegistryConfig) -> Result<Registry, RegistryError> {
        let io = |source| RegistryError::Io {
            path: config.dir.clone(),
            source,
        };
        let data = config.dir.join("data");
        std::fs::create_dir_all(&data).map_err(io)?;
        let config_file = config.dir.join("config.yml");
        std::fs::write(&config_file, config_yaml(config.addr, &data)).map_err(io)?;
        let log = config.dir.join("registry.log");

        let mut cmd = process::command_in(config.netns.as_deref(), "docker-registry")?;
        cmd.arg("serve").arg(&config_file);
        let daemon = Daemon::spawn("docker-registry", cmd, &log)?;
        let registry = Registry { config, daemon };
        netns::wait_for_tcp(
            registry.config.netns.as_deref(),
            registry.config.addr,
            Duration::from_secs(15),
        )
        .await
        .map_err(|e| RegistryError::NotReady {
            addr: registry.config.addr,
            log,
            reason: e.to_string(),
        })?;
        tracing::info!(addr = %registry.config.addr, netns = ?registry.config.netns, "registry ready");
        Ok(registry)
    }

    pub fn addr(&self) -> SocketAddr {
        self.config.addr
    }

    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// Pushes one image under every reference it has, logging one line per image.
    pub async fn push(&self, image: &BuiltImage) -> Result<(), RegistryError> {
        let started = std::time::Instant::now();
        for reference in &image.references {
            let (_, path) = mirror_path(reference)?;
            let mut cmd = process::command_in(self.config.netns.as_deref(), "skopeo")?;
            // --insecure-policy: these are images this process just built, there is no
            // signature to check; it also avoids depending on /etc/containers/policy.json.
            cmd.args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
                .arg(format!(
                    "oci:{}:{}",
                    image.layout.dir.display(),
                    image.layout.tag
                ))
                .arg(format!("docker://{}/{}", self.config.addr, path));
            let out = cmd.output().await.map_err(|source| ProcessError::Spawn {
                program: "skopeo".into(),
                source,
            })?;
            if !out.status.success() {
                return Err(RegistryError::Push {
                    reference: reference.clone(),
                    stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                });
            }
        }
        tracing::info!(
            image = %image.name,
            references = ?image.references,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "pushed image to the registry mirror"
        );
        Ok(())
    }

    /// Pushes all images, in order.
    pub async fn push_all(&self, images: &[BuiltImage]) -> Result<(), RegistryError> {
        for image in images {
            self.push(image).await?;
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after a grace period.
    pub async fn stop(&mut self) {
        self.daemon.stop(Duration::from_secs(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_path_strips_the_host() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            (
                "docker.io/library/busybox:latest",
                Some(("docker.io", "library/busybox:latest")),
            ),
            (
                "registry.k8s.io/pause:3.9",
                Some(("registry.k8s.io", "pause:3.9")),
            ),
            ("localhost:5000/a/b:1", Some(("localhost:5000", "a/b:1"))),
            ("busybox:latest", None),
            ("library/busybox:latest", None),
            ("docker.io/library/busybox", None),
            ("docker.io/library/busybox@sha256:00", None),
        ];
        for (input, want) in cases {
            assert_eq!(mirror_path(input).ok(), *want, "{input}");
        }
    }

    #[test]
    fn config_names_the_address_and_storage() {
        let y = config_yaml("127.0.0.1:5000".parse().unwrap(), Path::new("/x/data"));
        assert!(y.contains("rootdirectory: /x/data"));
        assert!(y.contains("addr: 127.0.0.1:5000"));
        assert!(!y.contains("auth"));
    }
}
