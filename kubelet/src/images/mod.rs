//! Offline images: the project's own `pause` and a `busybox` image, built as OCI image
//! layouts on this machine (no registry is reachable from a lab), ready to be pushed
//! into the local registry mirror by [`crate::registry`].
//!
//! - `pause` is `images/pause/pause.c` compiled statically (`gcc -static -Os`); it is
//!   the sandbox image containerd starts for every pod.
//! - `busybox` is Debian's static `/bin/busybox` with one symlink per applet in `/bin`
//!   (`sh`, `httpd`, `wget`, `nc`, `sleep`, ...), so demo pods can serve and fetch HTTP.
//!
//! [`import`] pushes a user's own image (docker-save or OCI) into the same mirror
//! (`skiff image push`).

pub mod import;
pub mod oci;

use std::path::{Path, PathBuf};

use oci::{Entry, ImageSpec, RuntimeConfig, Written};

/// The sandbox image every node's containerd uses. registry.k8s.io is mirrored by the
/// same local registry as docker.io (see [`crate::containerd`]), so the name the real
/// kubelet uses by default also works here.
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.9";
/// What `image: busybox` in a pod spec normalises to.
pub const BUSYBOX_IMAGE: &str = "docker.io/library/busybox:latest";
/// A pinned tag for manifests that prefer one.
pub const BUSYBOX_PINNED_IMAGE: &str = "docker.io/library/busybox:1.36";

/// The source of the pause program, built into the library so that a `skiff` binary
/// can build its images anywhere a C compiler is present.
pub const PAUSE_C: &str = include_str!("../../../images/pause/pause.c");

/// The applets the demos need; used when `busybox --list` cannot be run.
const BASE_APPLETS: &[&str] = &[
    "sh", "ash", "cat", "echo", "ls", "sleep", "hostname", "httpd", "wget", "nc", "nslookup", "ps",
    "mkdir", "rm", "cp", "mv", "env", "true", "false", "test", "[", "grep", "sed", "awk", "head",
    "tail", "date", "id", "kill", "ip", "ping", "touch", "chmod", "uname", "wc", "tr", "printf",
    "seq", "timeout", "vi", "du", "df",
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Oci(#[from] oci::OciError),
    #[error("cannot run the C compiler {cc:?} to build pause: {source}; install gcc (Debian: apt-get install gcc libc6-dev)")]
    CompilerMissing {
        cc: String,
        #[source]
        source: std::io::Error,
    },
    #[error("building pause with {cc:?} failed: {stderr}")]
    CompileFailed { cc: String, stderr: String },
    #[error("cannot prepare the image build directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where the inputs come from; [`Default`] is right on Debian with `busybox-static`.
#[derive(Debug, Clone)]
pub struct Sources {
    /// A statically linked busybox (it is copied into an image with no libc).
    pub busybox: PathBuf,
    /// The C compiler for pause.
    pub cc: String,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            busybox: PathBuf::from("/bin/busybox"),
            cc: "gcc".into(),
        }
    }
}

/// One image on disk and the fully qualified names it should be known by.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// Short name, also the layout directory name under the output directory.
    pub name: String,
    pub layout: Written,
    /// e.g. `docker.io/library/busybox:latest`.
    pub references: Vec<String>,
}

/// Builds every offline image under `out_dir` (`out_dir/pause`, `out_dir/busybox`).
pub fn build_all(out_dir: &Path) -> Result<Vec<BuiltImage>, ImageError> {
    build_all_with(out_dir, &Sources::default())
}

/// [`build_all`] with explicit inputs.
pub fn build_all_with(out_dir: &Path, sources: &Sources) -> Result<Vec<BuiltImage>, ImageError> {
    let io = |source| ImageError::Io {
        path: out_dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(out_dir).map_err(io)?;

    let pause_bin = compile_pause(&out_dir.join("pause-build"), &sources.cc)?;
    let pause_bytes = std::fs::read(&pause_bin).map_err(io)?;
    let pause = oci::write_layout(&out_dir.join("pause"), &pause_spec(pause_bytes))?;
    tracing::info!(image = PAUSE_IMAGE, digest = %pause.manifest_digest, "built image");

    let applets = busybox_applets(&sources.busybox);
    let busybox_bytes = std::fs::read(&sources.busybox).map_err(|source| {
        ImageError::Oci(oci::OciError::ReadSource {
            path: sources.busybox.clone(),
            source,
        })
    })?;
    let busybox = oci::write_layout(
        &out_dir.join("busybox"),
        &busybox_spec(busybox_bytes, &applets),
    )?;
    tracing::info!(image = BUSYBOX_IMAGE, digest = %busybox.manifest_digest, applets = applets.len(), "built image");

    Ok(vec![
        BuiltImage {
            name: "pause".into(),
            layout: pause,
            references: vec![PAUSE_IMAGE.into()],
        },
        BuiltImage {
            name: "busybox".into(),
            layout: busybox,
            references: vec![BUSYBOX_IMAGE.into(), BUSYBOX_PINNED_IMAGE.into()],
        },
    ])
}

/// Compiles [`PAUSE_C`] statically into `build_dir/pause` and returns its path.
pub fn compile_pause(build_dir: &Path, cc: &str) -> Result<PathBuf, ImageError> {
    let io = |source| ImageError::Io {
        path: build_dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(build_dir).map_err(io)?;
    let src = build_dir.join("pause.c");
    std::fs::write(&src, PAUSE_C).map_err(io)?;
    let out = build_dir.join("pause");
    let output = std::process::Command::new(cc)
        .args(["-static", "-Os", "-s", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .map_err(|source| ImageError::CompilerMissing {
            cc: cc.into(),
            source,
        })?;
    if !output.status.success() {
        return Err(ImageError::CompileFailed {
            cc: cc.into(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// The pause image: one static binary at `/pause`.
pub fn pause_spec(binary: Vec<u8>) -> ImageSpec {
    ImageSpec {
        tag: "3.9".into(),
        entries: vec![Entry::File {
            path: "/pause".into(),
            mode: 0o755,
            contents: binary,
        }],
        config: RuntimeConfig {
            entrypoint: vec!["/pause".into()],
            cmd: vec![],
            env: vec![DEFAULT_PATH.into()],
            working_dir: "/".into(),
        },
    }
}

/// The applets a busybox binary offers (`busybox --list`), or [`BASE_APPLETS`].
pub fn busybox_applets(busybox: &Path) -> Vec<String> {
    let listed = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    match listed {
        Some(text) if !text.trim().is_empty() => text
            .lines()
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
            .map(String::from)
            .collect(),
        _ => BASE_APPLETS.iter().map(|s| s.to_string()).collect(),
    }
}

/// The busybox image: `/bin/busybox`, a symlink per applet, the directories programs
/// expect, and passwd/group files so `id` and `httpd` find root and nobody.
pub fn busybox_spec(binary: Vec<u8>, applets: &[String]) -> ImageSpec {
    let dir = |path: &str, mode| Entry::Dir {
        path: path.into(),
        mode,
    };
    let mut entries = vec![
        dir("/bin", 0o755),
        dir("/etc", 0o755),
        dir("/root", 0o700),
        dir("/tmp", 0o1777),
        dir("/var", 0o755),
        dir("/usr", 0o755),
        dir("/usr/bin", 0o755),
        Entry::File {
            path: "/bin/busybox".into(),
            mode: 0o755,
            contents: binary,
        },
        Entry::File {
            path: "/etc/passwd".into(),
            mode: 0o644,
            contents:
                b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
                    .to_vec(),
        },
        Entry::File {
            path: "/etc/group".into(),
            mode: 0o644,
            contents: b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
        },
    ];
    let mut sorted: Vec<&String> = applets.iter().collect();
    sorted.sort();
    sorted.dedup();
    for applet in sorted {
        entries.push(Entry::Symlink {
            path: format!("/bin/{applet}"),
            target: "busybox".into(),
        });
    }
    ImageSpec {
        tag: "latest".into(),
        entries,
        config: RuntimeConfig {
            entrypoint: vec![],
            cmd: vec!["sh".into()],
            env: vec![DEFAULT_PATH.into()],
            working_dir: "/".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_spec_links_every_applet_once_and_defaults_to_sh() {
        let applets: Vec<String> = ["sh", "httpd", "sh", "wget"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let spec = busybox_spec(b"bb".to_vec(), &applets);
        let links: Vec<&str> = spec
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Symlink { path, target } => {
                    assert_eq!(target, "busybox");
                    Some(path.as_str())
                }
                _ => None,
            })
            .collect();
        assert_eq!(links, vec!["/bin/httpd", "/bin/sh", "/bin/wget"]);
        assert_eq!(spec.config.cmd, vec!["sh"]);
        assert!(spec.entries.contains(&Entry::Dir {
            path: "/tmp".into(),
            mode: 0o1777
        }));
    }

    #[test]
    fn pause_spec_runs_pause() {
        let spec = pause_spec(b"\x7fELF".to_vec());
        assert_eq!(spec.config.entrypoint, vec!["/pause"]);
        assert_eq!(spec.entries.len(), 1);
    }

    #[test]
    fn missing_busybox_list_falls_back_to_base_applets() {
        let applets = busybox_applets(Path::new("/nonexistent/busybox"));
        for needed in ["sh", "httpd", "wget", "nc", "hostname", "nslookup", "sleep"] {
            assert!(applets.iter().any(|a| a == needed), "{needed} missing");
        }
    }

    /// Builds the real images when gcc and a static busybox are present.
    #[test]
    fn build_all_writes_pause_and_busybox_layouts() {
        let sources = Sources::default();
        if !sources.busybox.exists() {
            println!(
                "skipped: {} not found (Debian: apt-get install busybox-static)",
                sources.busybox.display()
            );
            return;
        }
        if std::process::Command::new(&sources.cc)
            .arg("--version")
            .output()
            .is_err()
        {
            println!("skipped: no C compiler {:?}", sources.cc);
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let built = build_all_with(tmp.path(), &sources).unwrap();
        assert_eq!(built.len(), 2);
        assert_eq!(built[0].references, vec![PAUSE_IMAGE]);
        assert!(built[1].references.contains(&BUSYBOX_IMAGE.to_string()));
        for b in &built {
            assert!(b.layout.dir.join("index.json").is_file());
        }
        // The compiled pause answers -v, which proves it is a runnable binary.
        let out = std::process::Command::new(tmp.path().join("pause-build/pause"))
            .arg("-v")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "skiff pause 1.0"
        );

        // pause sleeps until told to stop, and SIGTERM is a clean exit (status 0).
        let mut child = std::process::Command::new(tmp.path().join("pause-build/pause"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            child.try_wait().unwrap().is_none(),
            "pause must keep running"
        );
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(0));
    }
}
