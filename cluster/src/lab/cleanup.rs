//! Forced clean-up: what `down` does after the supervisor is gone (or never finished),
//! so that a crashed or half-built lab still leaves nothing behind.
//!
//! Order matters: containers first (they are descendants of containerd shims whose
//! command lines carry the lab directory), then every process still inside a lab
//! namespace, then mounts under the lab directory, then the namespaces themselves
//! (which takes their veths and bridge with them).

use std::path::Path;

use super::net;

/// Removes every trace of the lab `id` rooted at `dir`. Best effort and idempotent:
/// each step goes on when something is already gone.
pub fn force(dir: &Path, id: &str) {
    let dir_str = std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string();
    // Only the lab's daemons name these directories on their command lines (the shims
    // and agents name the node's containerd socket); the commands that started the lab
    // name the lab directory itself and must survive.
    let mut killed =
        skiff_kubelet::process::kill_process_trees_mentioning(&format!("{dir_str}/nodes/"));
    killed.extend(skiff_kubelet::process::kill_process_trees_mentioning(
        &format!("{dir_str}/registry/"),
    ));
    if !killed.is_empty() {
        tracing::info!(
            count = killed.len(),
            "killed lab processes (shims, containers, daemons)"
        );
    }
    for ns in net::existing_netns(id) {
        for pid in net::pids_in(&ns) {
            if pid != std::process::id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    unmount_under(&dir_str);
    for ns in net::existing_netns(id) {
        if let Err(e) = net::ip(&["netns".into(), "del".into(), ns.clone()]) {
            tracing::warn!(netns = %ns, error = %e, "could not delete namespace");
        }
    }
    // Runtime state is large and useless without its processes; logs and the built
    // images stay for the next `up` and for reading what happened.
    for sub in ["nodes", "registry", "server"] {
        let _ = std::fs::remove_dir_all(dir.join(sub));
    }
}

/// Mount points at or below `prefix`, deepest first.
pub fn mounts_under(mounts: &str, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        // /proc/mounts escapes spaces as \040.
        .map(|m| m.replace("\\040", " "))
        .filter(|m| m == prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.len()));
    out.dedup();
    out
}

fn unmount_under(prefix: &str) {
    for _ in 0..3 {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let list = mounts_under(&mounts, prefix);
        if list.is_empty() {
            return;
        }
        for m in list {
            if let Err(e) = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH) {
                tracing::debug!(mount = %m, error = %e, "umount failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_under_picks_the_lab_only_deepest_first() {
        let m = "overlay /var/lib/skiff/lab/nodes/node1/root/x overlay rw 0 0\n\
                 shm /var/lib/skiff/lab/nodes/node1/state/io.containerd/sandboxes/abc/shm tmpfs rw 0 0\n\
                 /dev/vda /var/lib/skiff/lab2 ext4 rw 0 0\n\
                 proc /proc proc rw 0 0\n";
        let got = mounts_under(m, "/var/lib/skiff/lab");
        assert_eq!(got.len(), 2);
        assert!(got[0].ends_with("/shm"));
        assert!(!got.iter().any(|g| g.ends_with("lab2")));
    }
}
