//! `skiff port-forward POD|svc/NAME|deploy/NAME [LOCAL:]REMOTE...`: listens on
//! 127.0.0.1 (or `--address`) and carries each accepted connection to the pod over its
//! own `pods/portforward` websocket through the API server (the websocket port-forward
//! protocol: per port a data stream 0 and an error stream 1, each opened by the server
//! with a frame holding the port number, little-endian). A Service's port is mapped to
//! its targetPort on the chosen pod, as kubectl does.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use super::channel;
use super::client::Ctx;
use super::config::KubeFlags;

#[derive(Debug, Args)]
pub struct PortForwardArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// POD, pod/NAME, deploy/NAME, svc/NAME ...
    pub target: String,
    /// LOCAL:REMOTE, :REMOTE (any free local port) or PORT (the same on both sides).
    #[arg(required = true, value_name = "[LOCAL]:REMOTE")]
    pub ports: Vec<String>,
    /// Local address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: IpAddr,
}

/// `(local, remote)` from `8080:80`, `:80` (local 0 = any) or `80`.
pub fn parse_port_pair(s: &str) -> anyhow::Result<(u16, u16)> {
    let bad = || anyhow!("invalid port mapping {s:?}; use LOCAL:REMOTE, :REMOTE or PORT");
    let (local, remote) = match s.split_once(':') {
        Some((l, r)) => (l, r),
        None => (s, s),
    };
    let remote: u16 = remote.parse().map_err(|_| bad())?;
    let local: u16 = if local.is_empty() {
        0
    } else {
        local.parse().map_err(|_| bad())?
    };
    if remote == 0 {
        return Err(bad());
    }
    Ok((local, remote))
}

/// The pod port behind a Service port: its `targetPort` (a number, or a name looked up
/// in the pod's container ports), the port itself when `targetPort` is unset.
pub fn service_target_port(svc: &Value, pod: &Value, port: u16) -> anyhow::Result<u16> {
    let svc_name = svc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let entry = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p["port"].as_u64() == Some(port as u64))
        .ok_or_else(|| {
            anyhow!("service {svc_name} does not have a service port {port}; `skiff get svc {svc_name}` shows its ports")
        })?;
    match &entry["targetPort"] {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| anyhow!("service {svc_name} has a bad targetPort {n}")),
        Value::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            pod.pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                .find(|p| p["name"] == name.as_str())
                .and_then(|p| p["containerPort"].as_u64())
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| {
                    anyhow!("the pod has no container port named {name:?} (targetPort of service {svc_name})")
                })
        }
        _ => Ok(port),
    }
}

/// Strips the port-number prefix the server puts at the start of each stream.
#[derive(Debug, Default)]
pub struct StreamStart {
    seen: [bool; 2],
}

impl StreamStart {
    /// The payload to use from a frame on `stream` (0 data, 1 error).
    pub fn payload<'a>(&mut self, stream: u8, payload: &'a [u8]) -> &'a [u8] {
        let i = usize::from(stream.min(1));
        if self.seen[i] {
            payload
        } else {
            self.seen[i] = true;
            payload.get(2..).unwrap_or_default()
        }
    }
}

pub async fn run(ctx: &Ctx, args: &PortForwardArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let pairs: Vec<(u16, u16)> = args
        .ports
        .iter()
        .map(|p| parse_port_pair(p))
        .collect::<anyhow::Result<_>>()?;
    let pod = super::logs::resolve_pod(ctx, &args.target).await?;
    let is_service = {
        let typ = args.target.split_once('/').map(|(t, _)| t);
        match typ {
            Some(t) => ctx.discovery().await?.resolve(t)?.kind == "Service",
            None => false,
        }
    };
    let mut mapped = Vec::new();
    for (local, remote) in pairs {
        let remote = if is_service {
            let (_, name) = args.target.split_once('/').unwrap_or_default();
            let svc = ctx
                .get_json(&format!(
                    "/api/v1/namespaces/{}/services/{name}",
                    ctx.namespace
                ))
                .await?;
            service_target_port(&svc, &pod, remote)?
        } else {
            remote
        };
        mapped.push((local, remote));
    }
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if pod.pointer("/status/phase").and_then(Value::as_str) != Some("Running") {
        bail!("unable to forward port because pod {pod_name} is not running; check `skiff get pod {pod_name}`");
    }
    let mut tasks = tokio::task::JoinSet::new();
    // The caller holds stdout locked (`out`): tasks report through this channel.
    let (say, mut said) = tokio::sync::mpsc::unbounded_channel::<String>();
    for (local, remote) in mapped {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.address, local))
            .await
            .with_context(|| {
                format!(
                    "unable to listen on {}:{local}; is the port in use?",
                    args.address
                )
            })?;
        let bound = listener.local_addr()?;
        writeln!(out, "Forwarding from {bound} -> {remote}")?;
        out.flush()?;
        let path = format!(
            "/api/v1/namespaces/{}/pods/{pod_name}/portforward?ports={remote}",
            ctx.namespace
        );
        // Spawned tasks outlive this borrow: they get their own handle on the client.
        let client = (
            std::sync::Arc::new(Ctx::new(
                ctx.client.clone(),
                ctx.server.clone(),
                ctx.namespace.clone(),
                ctx.explicit_namespace,
                false,
            )),
            pod_name.clone(),
        );
        let say = say.clone();
        tasks.spawn(async move {
            loop {
                let (tcp, _) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        eprintln!("accepting on {bound} failed: {e}");
                        continue;
                    }
                };
                let _ = say.send(format!("Handling connection for {}", bound.port()));
                let (client, path) = (client.clone(), path.clone());
                tokio::spawn(async move {
                    if let Err(e) = forward(&client, &path, tcp).await {
                        eprintln!("error forwarding port {remote} to pod {}: {e:#}", client.1);
                    }
                });
            }
        });
    }
    drop(say);
    // Runs until interrupted, like kubectl.
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tasks.join_next() => return Ok(()),
            line = said.recv() => {
                if let Some(line) = line {
                    writeln!(out, "{line}")?;
                    out.flush()?;
                }
            }
        }
    }
}

/// One local connection <-> one websocket to the pod's port.
async fn forward(
    (ctx, _pod): &(std::sync::Arc<Ctx>, String),
    path: &str,
    tcp: tokio::net::TcpStream,
) -> anyhow::Result<()> {
    let conn = channel::connect(ctx, path).await?;
    let (mut sink, mut source) = conn.into_stream().split();
    let (mut rd, mut wr) = tcp.into_split();
    let mut start = StreamStart::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut local_open = true;
    loop {
        tokio::select! {
            n = rd.read(&mut buf), if local_open => match n {
                Ok(0) | Err(_) => {
                    // The websocket protocol cannot half-close: the client is done, so
                    // is the forward.
                    local_open = false;
                    let _ = sink.send(Message::Close(None)).await;
                }
                Ok(n) => sink.send(Message::Binary(channel::frame(0, &buf[..n]).into())).await?,
            },
            msg = source.next() => match msg {
                Some(Ok(Message::Binary(data))) => match channel::split(&data) {
                    Some((0, p)) => {
                        let p = start.payload(0, p);
                        if !p.is_empty() {
                            wr.write_all(p).await?;
                        }
                    }
                    Some((1, p)) => {
                        let p = start.payload(1, p);
                        if !p.is_empty() {
                            bail!("{}", String::from_utf8_lossy(p).trim());
                        }
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    if local_open {
                        return Err(anyhow!("the port-forward stream broke: {e}"));
                    }
                    break;
                }
            },
        }
    }
    let _ = wr.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn port_pairs_parse_like_kubectl() {
        assert_eq!(parse_port_pair("8080:80").unwrap(), (8080, 80));
        assert_eq!(parse_port_pair(":80").unwrap(), (0, 80));
        assert_eq!(parse_port_pair("80").unwrap(), (80, 80));
        for bad in ["x", "80:", "80:0", "99999", "a:80"] {
            assert!(parse_port_pair(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn service_ports_map_to_target_ports() {
        let svc = json!({"metadata": {"name": "web"}, "spec": {"ports": [
            {"port": 80, "targetPort": 8080},
            {"port": 81, "targetPort": "http"},
            {"port": 82},
        ]}});
        let pod = json!({"spec": {"containers": [
            {"name": "c", "ports": [{"name": "http", "containerPort": 9090}]}
        ]}});
        assert_eq!(service_target_port(&svc, &pod, 80).unwrap(), 8080);
        assert_eq!(service_target_port(&svc, &pod, 81).unwrap(), 9090);
        assert_eq!(service_target_port(&svc, &pod, 82).unwrap(), 82);
        let err = service_target_port(&svc, &pod, 83).unwrap_err().to_string();
        assert!(err.contains("does not have a service port 83"), "{err}");
    }

    #[test]
    fn first_frame_of_each_stream_loses_its_port_prefix() {
        let mut s = StreamStart::default();
        assert_eq!(s.payload(0, &[80, 0]), b"");
        assert_eq!(s.payload(1, &[80, 0, b'e']), b"e");
        assert_eq!(s.payload(0, b"GET"), b"GET");
        assert_eq!(s.payload(1, b"boom"), b"boom");
    }
}
