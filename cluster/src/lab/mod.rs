//! `skiff lab`: a whole cluster on one machine.
//!
//! `up` checks prerequisites, then starts a detached *supervisor* process (`skiff lab
//! supervise`) that owns the lab: it builds the network ([`net`]), the offline images
//! and the registry mirror, runs the control plane in-process (listening on the host's
//! loopback and, through a socket bound inside the hub namespace, on the lab network),
//! one containerd and one `skiff agent` per node namespace, applies the demo and waits
//! for it to answer. It writes a progress line per step to `progress.log`, which `up`
//! prints as it goes. `down` asks the supervisor to tear everything down in order and
//! then removes whatever is left (also after a crash or a half-finished `up`).
//!
//! # Layout
//! - [`net`]: namespaces, bridge, veths, addresses (a pure plan plus `ip` runs).
//! - [`state`]: what the lab recorded about itself in its directory.
//! - [`supervisor`]: bring-up, the running lab, and orderly tear-down.
//! - [`cleanup`]: the forced clean-up `down` falls back to.

pub mod cleanup;
pub mod net;
pub mod state;
pub mod supervisor;

use std::io::{BufRead, Seek};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use state::LabState;

/// What `skiff lab up` was asked for.
#[derive(Debug, Clone)]
pub struct LabConfig {
    pub dir: PathBuf,
    pub nodes: usize,
    /// The API server's port on the host loopback.
    pub api_port: u16,
    /// Node timings shortened so failover shows in seconds.
    pub fast_failover: bool,
}

impl LabConfig {
    pub fn new(dir: &Path) -> LabConfig {
        LabConfig {
            dir: dir.to_path_buf(),
            nodes: 2,
            api_port: 6443,
            fast_failover: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{0}")]
    Prerequisites(String),
    #[error("lab directory {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the lab did not come up: {0}")]
    Failed(String),
    /// A bring-up step that failed (the supervisor reports these as they are).
    #[error("{0}")]
    Step(String),
    #[error("no lab in {0}: run `skiff lab up --dir {0}` first")]
    NotUp(String),
    #[error("unknown lab host {name:?}; hosts are: {known}")]
    UnknownHost { name: String, known: String },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A short id derived from the lab directory, so two labs (yours and a test's) get
/// different namespace names.
pub fn lab_id(dir: &Path) -> String {
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    // FNV-1a: tiny, stable across releases, good enough to tell a few labs apart.
    let mut h: u32 = 0x811c9dc5;
    for b in canonical.to_string_lossy().bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    format!("{:04x}", h & 0xffff)
}

/// Checks what the lab needs and says exactly what to install.
pub fn check_prerequisites() -> Result<(), LabError> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(LabError::Prerequisites(
            "the lab creates network namespaces and runs containerd: run it as root (sudo skiff lab up)".into(),
        ));
    }
    let needs: &[(&str, &str)] = &[
        ("ip", "iproute2"),
        ("nsenter", "util-linux"),
        ("containerd", "containerd"),
        ("runc", "runc"),
        ("iptables-restore", "iptables"),
        ("docker-registry", "docker-registry"),
        ("skopeo", "skopeo"),
        ("cc", "build-essential"),
    ];
    let mut missing: Vec<&str> = Vec::new();
    for (bin, pkg) in needs {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .stdout(Stdio::null())
            .status();
        if !found.map(|s| s.success()).unwrap_or(false) && !missing.contains(pkg) {
            missing.push(pkg);
        }
    }
    if !Path::new("/usr/lib/cni/bridge").exists() && !Path::new("/opt/cni/bin/bridge").exists() {
        missing.push("containernetworking-plugins");
    }
    if !Path::new("/bin/busybox").exists() {
        missing.push("busybox-static");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(LabError::Prerequisites(format!(
            "missing: {}. Install them with: apt-get install -y {}",
            missing.join(", "),
            missing.join(" ")
        )))
    }
}

/// `skiff lab up`: starts (or repairs) the lab and streams its progress.
pub fn up(config: &LabConfig, exe: &Path) -> Result<LabState, LabError> {
    check_prerequisites()?;
    std::fs::create_dir_all(&config.dir).map_err(io(&config.dir))?;
    if let Some(state) = LabState::load(&config.dir) {
        if state.supervisor_alive() {
            println!("the lab in {} is already up", config.dir.display());
            println!("export KUBECONFIG={}", state.kubeconfig.display());
            return Ok(state);
        }
        println!(
            "a previous lab in {} is not running; cleaning it up first",
            config.dir.display()
        );
        down(&config.dir)?;
    }
    // Leftovers of a crashed lab that never wrote its state.
    cleanup::force(&config.dir, &lab_id(&config.dir));

    let progress = config.dir.join("progress.log");
    let _ = std::fs::remove_file(&progress);
    std::fs::write(&progress, b"").map_err(io(&progress))?;
    let log = std::fs::File::create(config.dir.join("supervisor.log")).map_err(io(&config.dir))?;
    let log2 = log.try_clone().map_err(io(&config.dir))?;
    let mut cmd = Command::new("setsid");
    cmd.arg(exe)
        .args(["lab", "supervise", "--dir"])
        .arg(&config.dir)
        .args([
            "--nodes",
            &config.nodes.to_string(),
            "--api-port",
            &config.api_port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    if !config.fast_failover {
        cmd.arg("--slow-failover");
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| LabError::Failed(format!("cannot start the lab supervisor: {e}")))?;

    // Follow progress.log until READY or FAILED.
    let started = Instant::now();
    let mut f = std::fs::File::open(&progress).map_err(io(&progress))?;
    let mut pos = 0u64;
    loop {
        f.seek(std::io::SeekFrom::Start(pos))
            .map_err(io(&progress))?;
        let mut reader = std::io::BufReader::new(&f);
        let mut line = String::new();
        while reader.read_line(&mut line).map_err(io(&progress))? > 0 {
            if !line.ends_with('\n') {
                break;
            }
            pos += line.len() as u64;
            let l = line.trim_end();
            if let Some(rest) = l.strip_prefix("FAILED ") {
                return Err(LabError::Failed(format!(
                    "{rest}\n(supervisor log: {}; clean up with `skiff lab down --dir {}`)",
                    config.dir.join("supervisor.log").display(),
                    config.dir.display()
                )));
            }
            if l == "READY" {
                let state = LabState::load(&config.dir)
                    .ok_or_else(|| LabError::Failed("the lab state was not written".into()))?;
                return Ok(state);
            }
            println!("{l}");
            line.clear();
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(LabError::Failed(format!(
                "the lab supervisor exited ({status}) before the lab was ready; see {}",
                config.dir.join("supervisor.log").display()
            )));
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(LabError::Failed(
                "the lab took more than 10 minutes to come up".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `skiff lab down`: stops everything and removes namespaces, veths, mounts and
/// processes, leaving nothing behind.
pub fn down(dir: &Path) -> Result<(), LabError> {
    let id = lab_id(dir);
    if let Some(state) = LabState::load(dir) {
        if state.supervisor_alive() {
            let pid = nix::unistd::Pid::from_raw(state.supervisor_pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(60);
            while state.supervisor_alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if state.supervisor_alive() {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
    cleanup::force(dir, &id);
    let _ = std::fs::remove_file(dir.join("state.json"));
    Ok(())
}

/// `skiff lab exec HOST -- CMD...`: runs a command inside a node's (or the client's)
/// network namespace. Returns its exit code.
pub fn exec(dir: &Path, host: &str, cmd: &[String]) -> Result<i32, LabError> {
    let state = LabState::load(dir).ok_or_else(|| LabError::NotUp(dir.display().to_string()))?;
    let mut known: Vec<String> = state.hosts.iter().map(|h| h.name.clone()).collect();
    known.push("hub".into());
    let netns = if host == "hub" {
        net::hub_netns(&state.id)
    } else {
        state
            .hosts
            .iter()
            .find(|h| h.name == host)
            .map(|h| h.netns.clone())
            .ok_or_else(|| LabError::UnknownHost {
                name: host.into(),
                known: known.join(", "),
            })?
    };
    let status = Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{netns}"))
        .arg("--")
        .args(cmd)
        .status()
        .map_err(|e| LabError::Failed(format!("cannot run {cmd:?}: {e}")))?;
    Ok(status.code().unwrap_or(1))
}

/// `skiff lab restart-server`: restarts the control plane over its data dir (what a
/// server reboot does), keeping nodes and pods running. Returns once it answers again.
pub fn restart_server(dir: &Path) -> Result<(), LabError> {
    let state = LabState::load(dir).ok_or_else(|| LabError::NotUp(dir.display().to_string()))?;
    if !state.supervisor_alive() {
        return Err(LabError::NotUp(dir.display().to_string()));
    }
    let pid = nix::unistd::Pid::from_raw(state.supervisor_pid as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1)
        .map_err(|e| LabError::Failed(format!("signalling the lab supervisor: {e}")))?;
    Ok(())
}

/// `skiff lab status`: nodes, addresses, processes and their memory.
pub fn status(dir: &Path) -> Result<String, LabError> {
    let state = LabState::load(dir).ok_or_else(|| LabError::NotUp(dir.display().to_string()))?;
    let mut out = String::new();
    out.push_str(&format!(
        "lab {} in {} (supervisor pid {}, {})\n",
        state.id,
        dir.display(),
        state.supervisor_pid,
        if state.supervisor_alive() {
            "running"
        } else {
            "NOT running"
        }
    ));
    out.push_str(&format!("kubeconfig: {}\n", state.kubeconfig.display()));
    out.push_str(&format!(
        "{:<8} {:<16} {:<20} {:<14}\n",
        "HOST", "ADDRESS", "NAMESPACE", "POD CIDR"
    ));
    for h in &state.hosts {
        out.push_str(&format!(
            "{:<8} {:<16} {:<20} {:<14}\n",
            h.name,
            h.ip.to_string(),
            h.netns,
            h.pod_cidr.clone().unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "\n{:<26} {:>8} {:>8} {:>8} {:>8}\n",
        "PROCESS", "PID", "RSS MiB", "PSS MiB", "OWN MiB"
    ));
    let mut procs: Vec<(String, u32)> = vec![("server (supervisor)".into(), state.supervisor_pid)];
    procs.extend(state.processes.iter().map(|(k, v)| (k.clone(), *v)));
    for (name, pid) in procs {
        let cols = match memory(pid) {
            Some(m) => format!("{:>8.1} {:>8.1} {:>8.1}", m.rss, m.pss, m.private),
            None => format!("{:>8} {:>8} {:>8}", "gone", "", ""),
        };
        out.push_str(&format!("{name:<26} {pid:>8} {cols}\n"));
    }
    out.push_str(
        "(RSS counts every page a process maps, also the skiff binary's pages that the \
         server and the agents share; PSS splits shared pages between their users; OWN \
         is memory no other process maps)\n",
    );
    Ok(out)
}

/// A process's memory in MiB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Memory {
    pub rss: f64,
    pub pss: f64,
    pub private: f64,
}

/// Resident memory of a process in MiB, from /proc.
pub fn rss_mib(pid: u32) -> Option<f64> {
    memory(pid).map(|m| m.rss)
}

/// RSS, PSS and private memory of a process, from `/proc/<pid>/smaps_rollup`.
pub fn memory(pid: u32) -> Option<Memory> {
    parse_smaps_rollup(&std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?)
}

/// Reads the `Rss:`, `Pss:` and `Private_*:` lines (kB) of a smaps_rollup text.
fn parse_smaps_rollup(text: &str) -> Option<Memory> {
    let kb = |key: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some(Memory {
        rss: kb("Rss:")? / 1024.0,
        pss: kb("Pss:")? / 1024.0,
        private: (kb("Private_Clean:")? + kb("Private_Dirty:")?) / 1024.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_rollup_gives_rss_pss_and_private_memory() {
        let text = "55e0-7ffd ---p 00000000 00:00 0  [rollup]\nRss:  56592 kB\nPss:  24724 kB\n\
                    Pss_Dirty:  7132 kB\nShared_Clean:  49248 kB\nPrivate_Clean:  212 kB\n\
                    Private_Dirty:  7132 kB\n";
        let m = parse_smaps_rollup(text).unwrap();
        assert_eq!(m.rss, 56592.0 / 1024.0);
        assert_eq!(m.pss, 24724.0 / 1024.0);
        assert_eq!(m.private, (212.0 + 7132.0) / 1024.0);
        assert_eq!(
            parse_smaps_rollup("Rss: 1 kB\n"),
            None,
            "a text without Pss is refused"
        );
        let me = memory(std::process::id()).expect("this test's own process");
        assert!(
            me.rss >= me.pss && me.pss >= me.private && me.private > 0.0,
            "{me:?}"
        );
    }

    #[test]
    fn lab_ids_are_stable_and_differ_by_directory() {
        let a = lab_id(Path::new("/nonexistent/lab-a"));
        assert_eq!(a, lab_id(Path::new("/nonexistent/lab-a")));
        assert_ne!(a, lab_id(Path::new("/nonexistent/lab-b")));
        assert_eq!(a.len(), 4);
    }
}
