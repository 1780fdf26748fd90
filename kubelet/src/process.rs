//! Helper processes the node agent starts and owns (containerd, the image registry):
//! started in an optional network namespace, stopped gracefully by PID, and killed on
//! drop so a failing test or a crashed agent does not leave them behind.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the log file {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("network namespace {0} does not exist (expected /var/run/netns/{0}); create it with `ip netns add {0}`")]
    NoNetns(String),
}

/// The path of a named network namespace, as `ip netns add` creates it.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new("/var/run/netns").join(name)
}

/// A command that runs `program` inside the named network namespace (or here, when
/// `netns` is `None`). `nsenter --net` is used rather than `ip netns exec` because it
/// keeps the host mount namespace: containerd's mounts must be visible to everyone.
pub fn command_in(
    netns: Option<&str>,
    program: &str,
) -> Result<tokio::process::Command, ProcessError> {
    match netns {
        None => Ok(tokio::process::Command::new(program)),
        Some(ns) => {
            let path = netns_path(ns);
            if !path.exists() {
                return Err(ProcessError::NoNetns(ns.to_string()));
            }
            let mut cmd = tokio::process::Command::new("nsenter");
            cmd.arg(format!("--net={}", path.display()))
                .arg("--")
                .arg(program);
            Ok(cmd)
        }
    }
}

/// A started daemon. nsenter execs its target (no fork for --net), so the PID is the
/// daemon itself.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Option<tokio::process::Child>,
}

impl Daemon {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(
        name: &str,
        mut cmd: tokio::process::Command,
        log: &Path,
    ) -> Result<Daemon, ProcessError> {
        let log_err = |source| ProcessError::Log {
            path: log.to_path_buf(),
            source,
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(log_err)?;
        let err = out.try_clone().map_err(log_err)?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            program: name.into(),
            source,
        })?;
        tracing::debug!(name, pid = child.id(), "started");
        Ok(Daemon {
            name: name.into(),
            child: Some(child),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGTERM, then SIGKILL after `grace`. Idempotent.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            match tokio::time::timeout(grace, child.wait()).await {
                Ok(_) => tracing::debug!(name = %self.name, pid, "stopped"),
                Err(_) => {
                    tracing::warn!(name = %self.name, pid, "did not stop on SIGTERM, killing");
                    let _ = child.kill().await;
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // kill_on_drop sends SIGKILL; reaping happens in tokio's orphan queue.
        if let Some(child) = self.child.as_ref() {
            tracing::debug!(name = %self.name, pid = child.id(), "killing on drop");
        }
    }
}

/// Kills (SIGKILL) every process whose command line contains `needle`, and all their
/// descendants. Used to clean up containerd shims, which re-parent themselves away from
/// containerd: they carry the node's own containerd socket path, unique per node, in
/// their arguments, and the containers are their children. Returns the PIDs killed.
pub fn kill_process_trees_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let table = process_table();
    let mut doomed: Vec<u32> = table
        .iter()
        .filter(|p| p.pid != me && p.cmdline.contains(needle))
        .map(|p| p.pid)
        .collect();
    // Breadth-first over parent links; the table is a snapshot, which is enough for a
    // last-resort cleanup.
    let mut i = 0;
    while i < doomed.len() {
        let parent = doomed[i];
        for p in &table {
            if p.ppid == parent && p.pid != me && !doomed.contains(&p.pid) {
                doomed.push(p.pid);
            }
        }
        i += 1;
    }
    // Children first, so a shim does not restart or report anything in between.
    doomed.reverse();
    doomed
        .into_iter()
        .filter(|pid| kill(Pid::from_raw(*pid as i32), Signal::SIGKILL).is_ok())
        .collect()
}

#[derive(Debug)]
struct ProcEntry {
    pid: u32,
    ppid: u32,
    cmdline: String,
}

fn process_table() -> Vec<ProcEntry> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let ppid = status
                .lines()
                .find_map(|l| l.strip_prefix("PPid:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            Some(ProcEntry {
                pid,
                ppid,
                cmdline: String::from_utf8_lossy(&cmdline).replace('\0', " "),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_netns_is_a_clear_error() {
        let err = command_in(Some("skk-does-not-exist"), "true").unwrap_err();
        assert!(
            err.to_string().contains("ip netns add skk-does-not-exist"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn stop_terminates_a_running_daemon() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cmd = command_in(None, "sleep").unwrap();
        cmd.arg("30");
        let mut d = Daemon::spawn("sleep", cmd, &tmp.path().join("log")).unwrap();
        assert!(d.is_running());
        d.stop(Duration::from_secs(5)).await;
        assert!(!d.is_running());
        d.stop(Duration::from_secs(1)).await; // idempotent
    }

    #[tokio::test]
    async fn process_trees_are_killed_by_a_unique_argument() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = format!("skk-marker-{}", std::process::id());
        // A parent shell whose argument list has the marker, with a child that does not.
        let mut cmd = command_in(None, "sh").unwrap();
        cmd.args(["-c", "sleep 30 & wait", &marker]);
        let mut d = Daemon::spawn("tree", cmd, &tmp.path().join("log")).unwrap();
        let parent = d.pid().unwrap();
        // Wait for the child to exist.
        let mut child = None;
        for _ in 0..50 {
            child = process_table()
                .into_iter()
                .find(|p| p.ppid == parent)
                .map(|p| p.pid);
            if child.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let child = child.expect("the sleep child started");
        let killed = kill_process_trees_mentioning(&marker);
        assert!(
            killed.contains(&parent) && killed.contains(&child),
            "{killed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!d.is_running());
        assert!(kill_process_trees_mentioning(&marker).is_empty());
    }
}
