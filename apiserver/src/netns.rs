//! Binding a listening socket inside another network namespace.
//!
//! A socket belongs to the namespace it was created in, not to the process. So a
//! short-lived thread switches itself into the target namespace, binds, and ends; the
//! listener then serves from this process while living in that namespace. The rest of
//! the process never leaves its own namespace.

use std::net::SocketAddr;

/// Binds `addr` in the network namespace `/var/run/netns/<name>`.
pub fn bind_in(name: &str, addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let path = format!("/var/run/netns/{name}");
    let std_listener = std::thread::scope(|s| {
        s.spawn(|| -> std::io::Result<std::net::TcpListener> {
            let f = std::fs::File::open(&path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("network namespace {path}: {e}")))?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| std::io::Error::other(format!("entering network namespace {path}: {e}")))?;
            std::net::TcpListener::bind(addr)
        })
        .join()
        .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
    })?;
    std_listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(std_listener)
}
