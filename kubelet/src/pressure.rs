//! The node's resource pressure: the `MemoryPressure`, `DiskPressure` and
//! `PIDPressure` conditions, decided from eviction signals against upstream's default
//! hard eviction thresholds.
//!
//! Signals ([`Signals`]), read by [`measure`]:
//! - `memory.available`: `MemAvailable` from `/proc/meminfo` (upstream derives it from
//!   the root cgroup's working set; MemAvailable is the kernel's own estimate of the
//!   same thing and needs no cgroup walk);
//! - `nodefs.available` / `imagefs.available`: `statvfs` of the kubelet's root
//!   directory and of containerd's root (where images are unpacked);
//! - `pid.available`: `pid_max` minus the tasks counted in `/proc/loadavg`.
//!
//! Thresholds ([`Thresholds::default`]): upstream's `memory.available<100Mi`,
//! `nodefs.available<10%`, `imagefs.available<15%`; upstream sets no default for
//! pids, so skiff uses `pid.available<10%` of `pid_max`. [`pressure`] and
//! [`conditions`] are pure; only [`measure`] touches the system.

use std::path::Path;

/// Bytes free for unprivileged users and total, of one filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    pub available: u64,
    pub capacity: u64,
}

/// The eviction signals; `None` when a signal could not be read (it then reports
/// no pressure rather than a false alarm).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    pub memory_available: Option<u64>,
    pub nodefs: Option<FsStats>,
    pub imagefs: Option<FsStats>,
    /// (tasks in use, pid_max).
    pub pids: Option<(u64, u64)>,
}

/// Hard eviction thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub memory_available_bytes: u64,
    pub nodefs_available_fraction: f64,
    pub imagefs_available_fraction: f64,
    pub pid_available_fraction: f64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            memory_available_bytes: 100 << 20,
            nodefs_available_fraction: 0.10,
            imagefs_available_fraction: 0.15,
            pid_available_fraction: 0.10,
        }
    }
}

/// Which pressures the node is under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

fn below(fs: Option<FsStats>, fraction: f64) -> bool {
    fs.is_some_and(|f| f.capacity > 0 && (f.available as f64) < fraction * f.capacity as f64)
}

/// The pressures the signals show against the thresholds. Pure.
pub fn pressure(s: &Signals, t: &Thresholds) -> Pressure {
    Pressure {
        memory: s
            .memory_available
            .is_some_and(|m| m < t.memory_available_bytes),
        disk: below(s.nodefs, t.nodefs_available_fraction)
            || below(s.imagefs, t.imagefs_available_fraction),
        pid: s.pids.is_some_and(|(used, max)| {
            max > 0 && (max.saturating_sub(used) as f64) < t.pid_available_fraction * max as f64
        }),
    }
}

/// One condition as the Node reports it: (type, status, reason, message), with
/// upstream's reasons and messages.
pub type Condition = (&'static str, &'static str, &'static str, &'static str);

/// The three pressure conditions for `p`. Pure.
pub fn conditions(p: Pressure) -> [Condition; 3] {
    [
        if p.memory {
            (
                "MemoryPressure",
                "True",
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            )
        } else {
            (
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            )
        },
        if p.disk {
            (
                "DiskPressure",
                "True",
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
            )
        } else {
            (
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            )
        },
        if p.pid {
            (
                "PIDPressure",
                "True",
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            )
        } else {
            (
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            )
        },
    ]
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
pub fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(value * 1024),
        _ => None,
    }
}

/// The task count from `/proc/loadavg` (`0.1 0.2 0.3 4/156 11899`: 156).
pub fn parse_loadavg_tasks(loadavg: &str) -> Option<u64> {
    loadavg
        .split_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()
}

fn fs_stats(path: &Path) -> Option<FsStats> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = st.fragment_size() as u64;
    Some(FsStats {
        available: (st.blocks_available() as u64).saturating_mul(frag),
        capacity: (st.blocks() as u64).saturating_mul(frag),
    })
}

/// Reads the signals of this machine: `nodefs` is the filesystem of `root_dir`,
/// `imagefs` that of `image_dir`.
pub fn measure(root_dir: &Path, image_dir: &Path) -> Signals {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    // A directory not created yet is measured at its nearest existing parent.
    let existing = |p: &Path| {
        p.ancestors()
            .find(|a| a.exists())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| "/".into())
    };
    let pids = match (
        read("/proc/loadavg").and_then(|t| parse_loadavg_tasks(&t)),
        read("/proc/sys/kernel/pid_max").and_then(|t| t.trim().parse::<u64>().ok()),
    ) {
        (Some(used), Some(max)) => Some((used, max)),
        _ => None,
    };
    Signals {
        memory_available: read("/proc/meminfo").and_then(|t| parse_mem_available(&t)),
        nodefs: fs_stats(&existing(root_dir)),
        imagefs: fs_stats(&existing(image_dir)),
        pids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: u64 = 1 << 20;
    const GI: u64 = 1 << 30;

    fn fs(available: u64, capacity: u64) -> Option<FsStats> {
        Some(FsStats {
            available,
            capacity,
        })
    }

    #[test]
    fn pressure_follows_the_default_thresholds() {
        let ok = Signals {
            memory_available: Some(2 * GI),
            nodefs: fs(50 * GI, 100 * GI),
            imagefs: fs(50 * GI, 100 * GI),
            pids: Some((200, 32768)),
        };
        let none = Pressure::default();
        let with = |f: &dyn Fn(&mut Signals)| {
            let mut s = ok;
            f(&mut s);
            s
        };
        let cases: Vec<(&str, Signals, Pressure)> = vec![
            ("healthy", ok, none),
            ("nothing readable", Signals::default(), none),
            (
                "memory just under 100Mi",
                with(&|s| s.memory_available = Some(100 * MI - 1)),
                Pressure {
                    memory: true,
                    ..none
                },
            ),
            (
                "memory at 100Mi",
                with(&|s| s.memory_available = Some(100 * MI)),
                none,
            ),
            (
                "nodefs under 10%",
                with(&|s| s.nodefs = fs(9 * GI, 100 * GI)),
                Pressure { disk: true, ..none },
            ),
            (
                "nodefs at 10%",
                with(&|s| s.nodefs = fs(10 * GI, 100 * GI)),
                none,
            ),
            (
                "imagefs under 15%",
                with(&|s| s.imagefs = fs(14 * GI, 100 * GI)),
                Pressure { disk: true, ..none },
            ),
            (
                "imagefs at 12% is fine for nodefs but not imagefs",
                with(&|s| {
                    s.nodefs = fs(12 * GI, 100 * GI);
                    s.imagefs = fs(12 * GI, 100 * GI)
                }),
                Pressure { disk: true, ..none },
            ),
            (
                "empty filesystem stats are ignored",
                with(&|s| s.nodefs = fs(0, 0)),
                none,
            ),
            (
                "pids nearly exhausted",
                with(&|s| s.pids = Some((32000, 32768))),
                Pressure { pid: true, ..none },
            ),
            (
                "pids at 90% used",
                with(&|s| s.pids = Some((29491, 32768))),
                none,
            ),
            (
                "everything",
                Signals {
                    memory_available: Some(MI),
                    nodefs: fs(1, 100),
                    imagefs: fs(1, 100),
                    pids: Some((100, 100)),
                },
                Pressure {
                    memory: true,
                    disk: true,
                    pid: true,
                },
            ),
        ];
        for (name, signals, want) in cases {
            assert_eq!(pressure(&signals, &Thresholds::default()), want, "{name}");
        }
    }

    #[test]
    fn conditions_use_upstream_reasons() {
        let calm = conditions(Pressure::default());
        assert_eq!(
            calm.map(|c| (c.0, c.1, c.2)),
            [
                ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                ("PIDPressure", "False", "KubeletHasSufficientPID"),
            ]
        );
        let all = conditions(Pressure {
            memory: true,
            disk: true,
            pid: true,
        });
        assert_eq!(
            all.map(|c| (c.1, c.2)),
            [
                ("True", "KubeletHasInsufficientMemory"),
                ("True", "KubeletHasDiskPressure"),
                ("True", "KubeletHasInsufficientPID"),
            ]
        );
    }

    #[test]
    fn proc_files_parse() {
        let meminfo =
            "MemTotal:       24000000 kB\nMemFree:         1000 kB\nMemAvailable:   12345 kB\n";
        assert_eq!(parse_mem_available(meminfo), Some(12345 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: x kB\n"), None);
        assert_eq!(
            parse_loadavg_tasks("3.50 1.67 0.85 4/156 11899\n"),
            Some(156)
        );
        assert_eq!(parse_loadavg_tasks("garbage"), None);
    }

    #[test]
    fn measuring_this_machine_reads_every_signal() {
        let dir = tempfile::tempdir().unwrap();
        let s = measure(&dir.path().join("not/yet/created"), dir.path());
        assert!(s.memory_available.is_some_and(|m| m > 0), "{s:?}");
        assert!(s.nodefs.is_some_and(|f| f.capacity > 0), "{s:?}");
        assert!(
            s.imagefs.is_some_and(|f| f.capacity >= f.available),
            "{s:?}"
        );
        assert!(
            s.pids.is_some_and(|(used, max)| used > 0 && max > 0),
            "{s:?}"
        );
    }
}
