//! The lab's network: one namespace per node plus a `client`, all on a bridge that
//! lives in a `hub` namespace of its own.
//!
//! Nothing is added to the host namespace except the namespace files under
//! /var/run/netns: no interface, no route, no iptables rule. The lab's addresses exist
//! only inside its namespaces, so its traffic cannot leave them (the safety rule).
//!
//! The plan is a pure function from the lab's shape to `ip` commands (unit-tested);
//! [`apply`] runs them.

use std::net::Ipv4Addr;
use std::process::Command;

/// The lab network: 172.30.0.0/24 inside the hub. Labs are isolated from each other,
/// so every lab may use the same addresses.
pub const HUB_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
pub const PREFIX: u8 = 24;
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 100);

/// Address of node `i` (1-based).
pub fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(172, 30, 0, 10 + i as u8)
}

/// podCIDR of node `i` (1-based).
pub fn pod_cidr(i: usize) -> String {
    format!("10.244.{i}.0/24")
}

/// One host on the lab network.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Host {
    /// Short name: `node1`, `client`.
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    pub ip: Ipv4Addr,
    /// The veth end in the hub (interface names are at most 15 bytes).
    pub hub_veth: String,
}

/// The names of a lab's namespaces: `skiff-<id>-hub`, `skiff-<id>-node1`, ...
pub fn hub_netns(id: &str) -> String {
    format!("skiff-{id}-hub")
}

pub fn hosts(id: &str, nodes: usize) -> Vec<Host> {
    let mut out: Vec<Host> = (1..=nodes)
        .map(|i| Host {
            name: format!("node{i}"),
            netns: format!("skiff-{id}-node{i}"),
            ip: node_ip(i),
            hub_veth: format!("sk{id}n{i}"),
        })
        .collect();
    out.push(Host {
        name: "client".into(),
        netns: format!("skiff-{id}-client"),
        ip: CLIENT_IP,
        hub_veth: format!("sk{id}c"),
    });
    out
}

/// The `ip` commands (argument lists) that build the network from nothing.
pub fn plan_up(id: &str, hosts: &[Host]) -> Vec<Vec<String>> {
    let hub = hub_netns(id);
    let mut cmds: Vec<Vec<String>> = Vec::new();
    let mut c = |args: &[&str]| cmds.push(args.iter().map(|s| s.to_string()).collect());
    c(&["netns", "add", &hub]);
    c(&["-n", &hub, "link", "set", "lo", "up"]);
    c(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
    c(&[
        "-n",
        &hub,
        "addr",
        "add",
        &format!("{HUB_IP}/{PREFIX}"),
        "dev",
        "br0",
    ]);
    c(&["-n", &hub, "link", "set", "br0", "up"]);
    for h in hosts {
        c(&["netns", "add", &h.netns]);
        c(&["-n", &h.netns, "link", "set", "lo", "up"]);
        // Create the pair inside the hub, then move one end into the host's namespace.
        c(&[
            "-n",
            &hub,
            "link",
            "add",
            &h.hub_veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &h.netns,
        ]);
        c(&["-n", &hub, "link", "set", &h.hub_veth, "master", "br0"]);
        c(&["-n", &hub, "link", "set", &h.hub_veth, "up"]);
        c(&[
            "-n",
            &h.netns,
            "addr",
            "add",
            &format!("{}/{PREFIX}", h.ip),
            "dev",
            "eth0",
        ]);
        c(&["-n", &h.netns, "link", "set", "eth0", "up"]);
        // A default route into the hub, which routes nowhere: node-local connections to
        // ClusterIPs need some route before iptables can rewrite them, and anything
        // not rewritten dies in the hub.
        c(&[
            "-n",
            &h.netns,
            "route",
            "add",
            "default",
            "via",
            &HUB_IP.to_string(),
        ]);
    }
    cmds
}

#[derive(Debug, thiserror::Error)]
#[error("`ip {args}` failed: {stderr}")]
pub struct NetError {
    pub args: String,
    pub stderr: String,
}

/// Runs `ip` with `args`.
pub fn ip(args: &[String]) -> Result<(), NetError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetError {
            args: args.join(" "),
            stderr: format!("cannot run ip: {e} (install iproute2)"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs a plan, stopping at the first failure.
pub fn apply(plan: &[Vec<String>]) -> Result<(), NetError> {
    plan.iter().try_for_each(|args| ip(args))
}

/// Sets a sysctl inside a namespace (e.g. `net.ipv4.ip_forward`).
pub fn sysctl_in(netns: &str, key: &str, value: &str) -> Result<(), NetError> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            "sh",
            "-c",
            &format!("echo {value} > {path}"),
        ])
        .output()
        .map_err(|e| NetError {
            args: format!("netns exec {netns} sysctl {key}"),
            stderr: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError {
            args: format!("netns exec {netns} sysctl {key}"),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        })
    }
}

/// Namespaces of this lab that exist now.
pub fn existing_netns(id: &str) -> Vec<String> {
    let prefix = format!("skiff-{id}-");
    std::fs::read_dir("/var/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// PIDs of processes inside a namespace (`ip netns pids`).
pub fn pids_in(netns: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", netns])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_have_unique_short_interface_names_and_addresses() {
        let hs = hosts("ab12", 3);
        assert_eq!(hs.len(), 4);
        assert_eq!(hs[0].name, "node1");
        assert_eq!(hs[3].name, "client");
        let mut seen = std::collections::HashSet::new();
        for h in &hs {
            assert!(
                h.hub_veth.len() <= 15,
                "{} is too long for an interface name",
                h.hub_veth
            );
            assert!(seen.insert(h.ip));
            assert!(seen.len() <= 4);
        }
    }

    #[test]
    fn the_plan_never_touches_the_host_namespace() {
        let hs = hosts("ab12", 2);
        let plan = plan_up("ab12", &hs);
        for args in &plan {
            // Every command either creates a namespace or names one with -n.
            let ok = args[0] == "-n" || (args[0] == "netns" && args[1] == "add");
            assert!(ok, "command outside a lab namespace: ip {}", args.join(" "));
            if args[0] == "-n" {
                assert!(args[1].starts_with("skiff-ab12-"), "{:?}", args);
            }
        }
        // The bridge is addressed inside the hub only.
        assert!(plan
            .iter()
            .any(|a| a.join(" ") == "-n skiff-ab12-hub addr add 172.30.0.1/24 dev br0"));
    }
}
