//! Allocators for Service ClusterIPs and NodePorts.
//!
//! State is rebuilt at start-up from the Services in the store, so what is in use
//! survives restarts without a separate record; within a run a mutex makes each value
//! go to exactly one Service. Free values are handed out from a rotating cursor, so a
//! just-released IP or port is not reused at once (clients may still hold it).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use ipnet::Ipv4Net;
use serde_json::Value;
use skiff_api::ApiError;

#[derive(Debug)]
struct State {
    used_ips: BTreeSet<u32>,
    next_ip: u32,
    used_ports: BTreeSet<u16>,
    next_port: u16,
}

#[derive(Debug)]
pub struct Allocators {
    net: Ipv4Net,
    ports: (u16, u16),
    state: Mutex<State>,
}

impl Allocators {
    pub fn new(net: Ipv4Net, ports: (u16, u16)) -> Allocators {
        Allocators {
            net,
            ports,
            state: Mutex::new(State {
                used_ips: BTreeSet::new(),
                next_ip: u32::from(net.network()) + 2,
                used_ports: BTreeSet::new(),
                next_port: ports.0,
            }),
        }
    }

    /// The first usable address: reserved for the `kubernetes` Service.
    pub fn api_service_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net.network()) + 1)
    }

    pub fn service_cidr(&self) -> Ipv4Net {
        self.net
    }

    /// Marks what existing Services hold as used.
    pub fn rebuild<'a>(&self, services: impl Iterator<Item = &'a Value>) {
        let mut s = self.state.lock().expect("alloc lock");
        for svc in services {
            for ip in cluster_ips(svc) {
                if self.net.contains(&ip) {
                    s.used_ips.insert(u32::from(ip));
                }
            }
            for p in node_ports(svc) {
                s.used_ports.insert(p);
            }
        }
    }

    /// Allocates `requested` if given (it must be in range and free), else the next
    /// free address.
    pub fn allocate_ip(&self, requested: Option<Ipv4Addr>) -> Result<Ipv4Addr, ApiError> {
        let mut s = self.state.lock().expect("alloc lock");
        let first = u32::from(self.net.network()) + 1;
        let last = u32::from(self.net.broadcast()) - 1;
        if let Some(ip) = requested {
            let n = u32::from(ip);
            if !(first..=last).contains(&n) {
                return Err(ApiError::invalid_field(
                    "spec.clusterIPs",
                    &ip.to_string(),
                    &format!(
                        "provided IP is not in the valid range. The range of valid IPs is {}",
                        self.net
                    ),
                ));
            }
            if !s.used_ips.insert(n) {
                return Err(ApiError::invalid_field(
                    "spec.clusterIPs",
                    &ip.to_string(),
                    "provided IP is already allocated",
                ));
            }
            return Ok(ip);
        }
        let size = last - first + 1;
        for i in 0..size {
            let n = first + (s.next_ip - first + i) % size;
            if n == first {
                continue; // reserved for the kubernetes Service
            }
            if s.used_ips.insert(n) {
                s.next_ip = if n == last { first } else { n + 1 };
                return Ok(Ipv4Addr::from(n));
            }
        }
        Err(ApiError::internal(format!(
            "no ClusterIP left in the service range {}",
            self.net
        )))
    }

    pub fn release_ip(&self, ip: Ipv4Addr) {
        self.state
            .lock()
            .expect("alloc lock")
            .used_ips
            .remove(&u32::from(ip));
    }

    pub fn allocate_port(&self, requested: Option<u16>, field: &str) -> Result<u16, ApiError> {
        let mut s = self.state.lock().expect("alloc lock");
        let (lo, hi) = self.ports;
        if let Some(p) = requested {
            if !(lo..=hi).contains(&p) {
                return Err(ApiError::invalid_field(
                    field,
                    &p.to_string(),
                    &format!("provided port is not in the valid range. The range of valid ports is {lo}-{hi}"),
                ));
            }
            if !s.used_ports.insert(p) {
                return Err(ApiError::invalid_field(
                    field,
                    &p.to_string(),
                    "provided port is already allocated",
                ));
            }
            return Ok(p);
        }
        let size = u32::from(hi - lo) + 1;
        for i in 0..size {
            let p = lo + ((u32::from(s.next_port - lo) + i) % size) as u16;
            if s.used_ports.insert(p) {
                s.next_port = if p == hi { lo } else { p + 1 };
                return Ok(p);
            }
        }
        Err(ApiError::internal(format!("no NodePort left in {lo}-{hi}")))
    }

    pub fn release_port(&self, p: u16) {
        self.state.lock().expect("alloc lock").used_ports.remove(&p);
    }

    /// Releases everything a Service holds (on delete, or when its create failed).
    pub fn release_service(&self, svc: &Value) {
        for ip in cluster_ips(svc) {
            if self.net.contains(&ip) {
                self.release_ip(ip);
            }
        }
        for p in node_ports(svc) {
            self.release_port(p);
        }
    }
}

pub fn cluster_ips(svc: &Value) -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = Vec::new();
    if let Some(ip) = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
    {
        out.push(ip);
    }
    if let Some(ips) = svc.pointer("/spec/clusterIPs").and_then(Value::as_array) {
        for ip in ips.iter().filter_map(|v| v.as_str()?.parse().ok()) {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out
}

pub fn node_ports(svc: &Value) -> Vec<u16> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| p.get("nodePort")?.as_u64())
                .filter_map(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alloc() -> Allocators {
        Allocators::new("10.96.0.0/28".parse().unwrap(), (30000, 30002))
    }

    #[test]
    fn ips_are_unique_skip_the_api_address_and_run_out_cleanly() {
        let a = alloc();
        assert_eq!(a.api_service_ip(), Ipv4Addr::new(10, 96, 0, 1));
        let mut seen = BTreeSet::new();
        // /28: .1 to .14 usable, .1 reserved => 13 allocations.
        for _ in 0..13 {
            let ip = a.allocate_ip(None).unwrap();
            assert_ne!(ip, a.api_service_ip());
            assert!(seen.insert(ip));
        }
        assert_eq!(a.allocate_ip(None).unwrap_err().code, 500);
        a.release_ip(Ipv4Addr::new(10, 96, 0, 5));
        assert_eq!(a.allocate_ip(None).unwrap(), Ipv4Addr::new(10, 96, 0, 5));
    }

    #[test]
    fn requested_values_are_checked() {
        let a = alloc();
        assert_eq!(
            a.allocate_ip(Some(Ipv4Addr::new(10, 96, 0, 7))).unwrap(),
            Ipv4Addr::new(10, 96, 0, 7)
        );
        assert_eq!(
            a.allocate_ip(Some(Ipv4Addr::new(10, 96, 0, 7)))
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            a.allocate_ip(Some(Ipv4Addr::new(10, 97, 0, 7)))
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            a.allocate_port(Some(30001), "spec.ports[0].nodePort")
                .unwrap(),
            30001
        );
        assert_eq!(
            a.allocate_port(Some(30001), "spec.ports[0].nodePort")
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            a.allocate_port(Some(80), "spec.ports[0].nodePort")
                .unwrap_err()
                .code,
            422
        );
    }

    #[test]
    fn rebuild_marks_existing_services_used() {
        let a = alloc();
        let svc = json!({"spec": {"clusterIP": "10.96.0.2", "clusterIPs": ["10.96.0.2"], "ports": [{"port": 80, "nodePort": 30000}]}});
        a.rebuild([&svc].into_iter());
        assert_ne!(a.allocate_ip(None).unwrap(), Ipv4Addr::new(10, 96, 0, 2));
        assert_ne!(a.allocate_port(None, "f").unwrap(), 30000);
        a.release_service(&svc);
        assert_eq!(a.allocate_port(Some(30000), "f").unwrap(), 30000);
    }
}
