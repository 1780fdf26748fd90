//! Small network-namespace helpers: reaching an address that only exists inside a
//! node's namespace (the registry on that namespace's loopback, a pod IP on its bridge)
//! without changing the namespace of any tokio worker thread.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

use crate::process::netns_path;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot enter network namespace {name}: {reason}")]
    Enter { name: String, reason: String },
    #[error("nothing accepted connections on {addr} (netns {netns}) within {waited:?}: {last}")]
    NotReady {
        addr: SocketAddr,
        netns: String,
        waited: Duration,
        last: String,
    },
}

/// Waits until a TCP connect to `addr` succeeds, trying from inside `netns` when given.
///
/// `setns` changes the namespace of the calling thread only, and for good, so the probe
/// runs on a thread of its own that ends afterwards: never on a pooled thread.
pub async fn wait_for_tcp(
    netns: Option<&str>,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(), NetnsError> {
    let netns = netns.map(str::to_string);
    let handle = std::thread::spawn(move || probe_blocking(netns.as_deref(), addr, timeout));
    tokio::task::spawn_blocking(move || handle.join())
        .await
        .expect("the join task does not panic")
        .unwrap_or_else(|_| {
            Err(NetnsError::Enter {
                name: "?".into(),
                reason: "probe thread panicked".into(),
            })
        })
}

fn probe_blocking(
    netns: Option<&str>,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(), NetnsError> {
    if let Some(name) = netns {
        let enter = |reason: String| NetnsError::Enter {
            name: name.to_string(),
            reason,
        };
        let file = std::fs::File::open(netns_path(name)).map_err(|e| enter(e.to_string()))?;
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| enter(e.to_string()))?;
    }
    let start = Instant::now();
    let mut last = String::from("no attempt");
    while start.elapsed() < timeout {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(NetnsError::NotReady {
        addr,
        netns: netns.unwrap_or("host").to_string(),
        waited: timeout,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finds_a_listener_and_times_out_without_one() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        wait_for_tcp(None, addr, Duration::from_secs(2))
            .await
            .unwrap();
        // Nothing listens on this loopback address (tests in parallel bind 127.0.0.1
        // ports, so a just-freed port there may be taken again).
        let unused: SocketAddr = format!("127.0.0.77:{}", addr.port()).parse().unwrap();
        let err = wait_for_tcp(None, unused, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, NetnsError::NotReady { .. }), "{err}");
    }
}
