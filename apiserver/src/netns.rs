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
            let f = std::fs::File::open(&path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("network namespace {path}: {e}"))
            })?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                std::io::Error::other(format!("entering network namespace {path}: {e}"))
            })?;
            std::net::TcpListener::bind(addr)
        })
        .join()
        .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
    })?;
    std_listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(std_listener)
}

/// Connects to `addr` from inside the network namespace `/var/run/netns/<name>`.
///
/// A dedicated, short-lived thread enters the namespace (never a pooled thread, which
/// would stay there for whatever runs on it next), connects, and hands the socket
/// back. This is how a server on the host reaches kubelets that exist only inside a
/// lab: the connection never touches the host's own routes.
pub async fn connect_in(
    name: &str,
    addr: SocketAddr,
    timeout: std::time::Duration,
) -> std::io::Result<tokio::net::TcpStream> {
    let path = format!("/var/run/netns/{name}");
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = (|| -> std::io::Result<std::net::TcpStream> {
            let f = std::fs::File::open(&path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("network namespace {path}: {e}"))
            })?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                std::io::Error::other(format!("entering network namespace {path}: {e}"))
            })?;
            std::net::TcpStream::connect_timeout(&addr, timeout)
        })();
        let _ = tx.send(result);
    });
    let stream = rx
        .await
        .map_err(|_| std::io::Error::other("the namespace thread ended early"))??;
    stream.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(stream)
}
