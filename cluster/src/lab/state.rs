//! What a running lab records about itself in `<dir>/state.json`: enough for `exec`,
//! `status` and `down` to find its namespaces and processes from another invocation.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HostState {
    pub name: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub pod_cidr: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LabState {
    pub id: String,
    pub supervisor_pid: u32,
    pub kubeconfig: PathBuf,
    pub api_url: String,
    pub hosts: Vec<HostState>,
    /// Named child processes (`containerd node1`, `agent node1`, `registry`) by PID.
    pub processes: BTreeMap<String, u32>,
    /// The demo's NodePort.
    pub node_port: u16,
}

impl LabState {
    pub fn load(dir: &Path) -> Option<LabState> {
        let text = std::fs::read_to_string(dir.join("state.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Written atomically (temp file + rename) so a reader never sees half a file.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("serialise"))?;
        std::fs::rename(tmp, dir.join("state.json"))
    }

    pub fn supervisor_alive(&self) -> bool {
        pid_alive(self.supervisor_pid)
    }
}

/// A PID that exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_pid_checks_work() {
        let dir = tempfile::tempdir().unwrap();
        let s = LabState {
            id: "ab12".into(),
            supervisor_pid: std::process::id(),
            kubeconfig: dir.path().join("k"),
            api_url: "https://127.0.0.1:6443".into(),
            hosts: vec![HostState {
                name: "node1".into(),
                netns: "skiff-ab12-node1".into(),
                ip: Ipv4Addr::new(172, 30, 0, 11),
                pod_cidr: Some("10.244.1.0/24".into()),
            }],
            processes: BTreeMap::new(),
            node_port: 30080,
        };
        s.save(dir.path()).unwrap();
        let back = LabState::load(dir.path()).unwrap();
        assert_eq!(back.hosts[0].netns, "skiff-ab12-node1");
        assert!(back.supervisor_alive());
        assert!(!pid_alive(u32::MAX - 1));
    }
}
