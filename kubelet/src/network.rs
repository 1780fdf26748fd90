//! The pod network of one node, as CNI configuration: a Linux bridge that is the pods'
//! gateway, host-local IPAM handing out addresses from the node's `podCIDR`, and
//! portmap for `hostPort`. containerd's CRI plugin reads the conflist from its CNI
//! `conf_dir` and runs the plugins (from `/usr/lib/cni` on Debian) for every sandbox.
//!
//! Routes between nodes are not CNI's job; they are added by the lab/agent per node.

use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde_json::json;

/// The conflist file name; the `10-` prefix sorts it first, and containerd uses the
/// first network it finds (`max_conf_num = 1`).
pub const CONFLIST_FILE: &str = "10-skiff.conflist";
/// The loopback config, for runtimes that do not bring `lo` up themselves.
pub const LOOPBACK_FILE: &str = "99-loopback.conf";
pub const CNI_VERSION: &str = "1.0.0";

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("invalid podCIDR {cidr:?}: {why}")]
    BadCidr { cidr: String, why: String },
    #[error("cannot write the CNI configuration into {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What one node's pod network looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct PodNetwork {
    /// CNI network name (also the host-local allocation directory name).
    pub name: String,
    /// The bridge device on the node, e.g. `skiff0`.
    pub bridge: String,
    /// The node's `spec.podCIDR`, e.g. `10.244.1.0/24`.
    pub pod_cidr: String,
    /// Where host-local keeps its leases. Per node, so that several nodes sharing one
    /// machine (a lab) do not hand out each other's addresses.
    pub ipam_data_dir: PathBuf,
    /// Masquerade pod traffic leaving the pod CIDR (needed to reach anything that has no
    /// route back to the pod network).
    pub ip_masq: bool,
    pub mtu: Option<u32>,
}

impl PodNetwork {
    pub fn new(pod_cidr: &str, ipam_data_dir: &Path) -> PodNetwork {
        PodNetwork {
            name: "skiff".into(),
            bridge: "skiff0".into(),
            pod_cidr: pod_cidr.into(),
            ipam_data_dir: ipam_data_dir.to_path_buf(),
            ip_masq: true,
            mtu: None,
        }
    }
}

/// Checks the podCIDR: an IPv4 network, given by its network address, with room for a
/// gateway and at least one pod.
pub fn parse_pod_cidr(cidr: &str) -> Result<Ipv4Net, NetworkError> {
    let bad = |why: &str| NetworkError::BadCidr {
        cidr: cidr.into(),
        why: why.into(),
    };
    let net: Ipv4Net = cidr
        .parse()
        .map_err(|_| bad("not an IPv4 CIDR like 10.244.1.0/24"))?;
    if net.network() != net.addr() {
        return Err(bad(&format!(
            "host bits are set; did you mean {}?",
            net.trunc()
        )));
    }
    if net.prefix_len() > 29 {
        return Err(bad("too small: use a /29 or larger (gateway + pods)"));
    }
    Ok(net)
}

/// The gateway address the bridge gets: the first host address of the pod CIDR.
pub fn gateway(net: &Ipv4Net) -> std::net::Ipv4Addr {
    net.hosts().next().expect("a /29 or larger has hosts")
}

/// The conflist JSON: bridge (+ host-local IPAM), then portmap.
pub fn conflist(net: &PodNetwork) -> Result<serde_json::Value, NetworkError> {
    let cidr = parse_pod_cidr(&net.pod_cidr)?;
    let mut bridge = json!({
        "type": "bridge",
        "bridge": net.bridge,
        // The bridge holds the gateway address: pods route through the node.
        "isGateway": true,
        "ipMasq": net.ip_masq,
        // A pod reaching itself through a Service IP comes back over the same port.
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{ "subnet": cidr.to_string(), "gateway": gateway(&cidr).to_string() }]],
            "routes": [{ "dst": "0.0.0.0/0" }],
            "dataDir": net.ipam_data_dir.display().to_string(),
        },
    });
    if let Some(mtu) = net.mtu {
        bridge["mtu"] = json!(mtu);
    }
    Ok(json!({
        "cniVersion": CNI_VERSION,
        "name": net.name,
        "plugins": [
            bridge,
            { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true },
        ],
    }))
}

/// The loopback network config (a single-plugin `.conf`). containerd brings `lo` up on
/// its own, and it reads only the first file ([`CONFLIST_FILE`]), so this file is for
/// other CNI users of the same directory.
pub fn loopback_conf() -> serde_json::Value {
    json!({ "cniVersion": CNI_VERSION, "name": "lo", "type": "loopback" })
}

/// Writes the conflist and the loopback config into `conf_dir` (created if needed).
/// Each file is written to a temporary name and renamed, so containerd, which watches
/// the directory, never reads half a file.
pub fn write_config(conf_dir: &Path, net: &PodNetwork) -> Result<PathBuf, NetworkError> {
    let conflist = conflist(net)?;
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| NetworkError::Write { path, source }
    };
    std::fs::create_dir_all(conf_dir).map_err(werr(conf_dir))?;
    std::fs::create_dir_all(&net.ipam_data_dir).map_err(werr(&net.ipam_data_dir))?;
    for (name, value) in [
        (CONFLIST_FILE, &conflist),
        (LOOPBACK_FILE, &loopback_conf()),
    ] {
        let path = conf_dir.join(name);
        let tmp = conf_dir.join(format!(".{name}.tmp"));
        let text = serde_json::to_string_pretty(value).expect("a json! value always serialises");
        std::fs::write(&tmp, text).map_err(werr(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(werr(&path))?;
    }
    Ok(conf_dir.join(CONFLIST_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cidrs_are_checked() {
        let cases = [
            ("10.244.1.0/24", Ok("10.244.1.1")),
            ("10.88.0.0/16", Ok("10.88.0.1")),
            ("192.168.5.8/29", Ok("192.168.5.9")),
            (
                "10.244.1.5/24",
                Err("host bits are set; did you mean 10.244.1.0/24?"),
            ),
            ("10.244.1.0/30", Err("too small")),
            ("fd00::/64", Err("not an IPv4 CIDR")),
            ("banana", Err("not an IPv4 CIDR")),
        ];
        for (cidr, want) in cases {
            match (parse_pod_cidr(cidr), want) {
                (Ok(net), Ok(gw)) => assert_eq!(gateway(&net).to_string(), gw, "{cidr}"),
                (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{cidr}: {e}"),
                (got, want) => panic!("{cidr}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn conflist_has_bridge_gateway_ipam_and_portmap() {
        let mut net = PodNetwork::new("10.244.3.0/24", Path::new("/var/lib/skiff/ipam"));
        net.mtu = Some(1400);
        let c = conflist(&net).unwrap();
        assert_eq!(c["cniVersion"], CNI_VERSION);
        let bridge = &c["plugins"][0];
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(bridge["bridge"], "skiff0");
        assert_eq!(bridge["isGateway"], true);
        assert_eq!(bridge["ipMasq"], true);
        assert_eq!(bridge["hairpinMode"], true);
        assert_eq!(bridge["mtu"], 1400);
        let range = &bridge["ipam"]["ranges"][0][0];
        assert_eq!(range["subnet"], "10.244.3.0/24");
        assert_eq!(range["gateway"], "10.244.3.1");
        assert_eq!(bridge["ipam"]["dataDir"], "/var/lib/skiff/ipam");
        assert_eq!(c["plugins"][1]["type"], "portmap");
        assert_eq!(c["plugins"][1]["capabilities"]["portMappings"], true);
        assert_eq!(c["plugins"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn write_config_writes_both_files_and_refuses_bad_cidrs() {
        let tmp = tempfile::tempdir().unwrap();
        let conf_dir = tmp.path().join("net.d");
        let net = PodNetwork::new("10.244.9.0/24", &tmp.path().join("ipam"));
        let path = write_config(&conf_dir, &net).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, conflist(&net).unwrap());
        assert!(conf_dir.join(LOOPBACK_FILE).is_file());
        assert!(tmp.path().join("ipam").is_dir());
        let names: Vec<_> = std::fs::read_dir(&conf_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary files left: {names:?}");

        let bad = PodNetwork::new("10.244.9.0/31", &tmp.path().join("ipam"));
        assert!(write_config(&tmp.path().join("other"), &bad).is_err());
        assert!(
            !tmp.path().join("other").exists(),
            "nothing written for a bad config"
        );
    }
}
