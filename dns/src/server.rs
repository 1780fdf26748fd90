//! The DNS server: UDP and TCP listeners on one address, answering from the current
//! record table and forwarding other names to the node's upstream resolvers.
//!
//! Cluster answers are computed inline on the receiving task (a table lookup is far
//! cheaper than a task spawn); only forwarded queries get their own task, so one slow
//! upstream never holds up cluster names. Forwarding is bounded by a timeout after
//! which the client gets SERVFAIL: a lab without upstream answers fast, never hangs.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::answer::{answer, cname_to_chase, encode_for_udp, reply, servfail_for_id, Outcome};
use crate::records::RecordTable;

/// The table every query reads; the watch layer replaces it whole.
pub type SharedTable = Arc<ArcSwap<RecordTable>>;

/// How long a TCP client may stay idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Parallel receive loops on the UDP socket (the machines are small).
const UDP_WORKERS: usize = 2;

/// The nameservers listed in a resolv.conf text, in order, on port 53.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then_some(())?;
            // A scoped IPv6 address (fe80::1%eth0) cannot be used from here: skip it.
            let ip: IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

/// Sends queries for names outside the cluster to upstream resolvers.
#[derive(Debug, Clone)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
}

impl Forwarder {
    /// A forwarder to `upstreams`, minus `own` (asking ourselves would loop until the
    /// timeout).
    pub fn new(upstreams: Vec<SocketAddr>, own: SocketAddr, timeout: Duration) -> Forwarder {
        let upstreams = upstreams.into_iter().filter(|u| *u != own).collect();
        Forwarder { upstreams, timeout }
    }

    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Asks every upstream at once and returns the first answer to `query` (raw bytes
    /// of a parsed request with id `id`), or `None` when none answers in time.
    pub async fn forward(&self, query: &[u8], id: u16) -> Option<Vec<u8>> {
        if self.upstreams.is_empty() {
            return None;
        }
        tokio::time::timeout(self.timeout, self.ask_all(query, id))
            .await
            .ok()
            .flatten()
    }

    /// Like [`Forwarder::forward`], for a client on TCP: an answer the upstream had to
    /// truncate over UDP is fetched again over TCP, so large answers arrive whole.
    pub async fn forward_for_tcp(&self, query: &[u8], id: u16) -> Option<Vec<u8>> {
        if self.upstreams.is_empty() {
            return None;
        }
        tokio::time::timeout(self.timeout, async {
            let answer = self.ask_all(query, id).await?;
            // The TC flag is bit 1 of the third header byte (RFC 1035 4.1.1).
            if answer.len() < 3 || answer[2] & 0x02 == 0 {
                return Some(answer);
            }
            for up in &self.upstreams {
                match ask_tcp(*up, query).await {
                    Ok(full) => return Some(full),
                    Err(e) => {
                        debug!(upstream = %up, error = %e, "tcp retry of a truncated answer failed")
                    }
                }
            }
            Some(answer)
        })
        .await
        .ok()
        .flatten()
    }

    async fn ask_all(&self, query: &[u8], id: u16) -> Option<Vec<u8>> {
        let v6 = self.upstreams.iter().any(|u| u.is_ipv6());
        let bind: SocketAddr = if v6 {
            "[::]:0".parse().ok()?
        } else {
            "0.0.0.0:0".parse().ok()?
        };
        let socket = UdpSocket::bind(bind).await.ok()?;
        let mut sent = false;
        for up in &self.upstreams {
            match socket.send_to(query, up).await {
                Ok(_) => sent = true,
                Err(e) => debug!(upstream = %up, error = %e, "cannot send to upstream resolver"),
            }
        }
        if !sent {
            return None;
        }
        let mut buf = vec![0u8; 65535];
        loop {
            let (n, from) = socket.recv_from(&mut buf).await.ok()?;
            // Only a reply from an upstream with our id counts (anything else is stray).
            if n >= 2
                && self.upstreams.contains(&from)
                && u16::from_be_bytes([buf[0], buf[1]]) == id
            {
                return Some(buf[..n].to_vec());
            }
        }
    }
}

/// One query over TCP (length-prefixed, RFC 1035 4.2.2).
async fn ask_tcp(upstream: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(upstream).await?;
    let len = u16::try_from(query.len()).map_err(|_| io::Error::other("query too long"))?;
    s.write_all(&len.to_be_bytes()).await?;
    s.write_all(query).await?;
    let n = s.read_u16().await?;
    let mut buf = vec![0u8; usize::from(n)];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

/// What the server needs to answer: the table and the forwarder.
#[derive(Clone)]
struct Handler {
    table: SharedTable,
    forwarder: Arc<Forwarder>,
}

/// A reply ready to send, or a forward to run first.
enum Step {
    Send(Vec<u8>),
    Forward {
        request: Message,
        raw: Vec<u8>,
    },
    /// Our reply ends in a CNAME to an outside name: resolve it upstream, then send.
    Chase {
        reply: Message,
        max: u16,
    },
    Drop,
}

impl Handler {
    fn step(&self, raw: &[u8], udp: bool) -> Step {
        let request = match Message::from_vec(raw) {
            Ok(m) => m,
            Err(_) if raw.len() >= 12 => {
                let id = u16::from_be_bytes([raw[0], raw[1]]);
                return encode(&servfail_for_id(id), udp, 512);
            }
            Err(_) => return Step::Drop, // too short to even carry an id
        };
        let max = request.max_payload();
        let table = self.table.load();
        match answer(&table, &request) {
            Outcome::Reply(msg) if cname_to_chase(&table, &msg).is_some() => {
                Step::Chase { reply: msg, max }
            }
            Outcome::Reply(msg) => encode(&msg, udp, max),
            Outcome::Forward => Step::Forward {
                request,
                raw: raw.to_vec(),
            },
        }
    }

    /// Appends the upstream's answers for the CNAME target; without them the CNAME alone
    /// is still a valid (if less useful) answer.
    async fn chase(&self, mut msg: Message, udp: bool, max: u16) -> Step {
        if let Some((target, qtype)) = cname_to_chase(&self.table.load(), &msg) {
            let mut q = Message::new(
                msg.metadata.id.wrapping_add(1),
                MessageType::Query,
                OpCode::Query,
            );
            q.metadata.recursion_desired = true;
            q.add_query(Query::query(target, qtype));
            if let Ok(raw) = q.to_vec() {
                if let Some(bytes) = self.forwarder.forward(&raw, q.metadata.id).await {
                    if let Ok(upstream) = Message::from_vec(&bytes) {
                        msg.answers.extend(upstream.answers);
                    }
                }
            }
        }
        encode(&msg, udp, max)
    }

    /// Runs whatever I/O a step still needs and returns what to send.
    async fn finish(&self, step: Step, udp: bool) -> Step {
        match step {
            Step::Forward { request, raw } => self.forward(&request, &raw, udp).await,
            Step::Chase { reply, max } => self.chase(reply, udp, max).await,
            other => other,
        }
    }

    async fn forward(&self, request: &Message, raw: &[u8], udp: bool) -> Step {
        let answer = if udp {
            self.forwarder.forward(raw, request.metadata.id).await
        } else {
            self.forwarder
                .forward_for_tcp(raw, request.metadata.id)
                .await
        };
        match answer {
            // An upstream answer is passed through untouched (its own truncation included).
            Some(bytes) => Step::Send(bytes),
            None => {
                debug!(name = ?request.queries.first().map(|q| q.name().to_string()), "no upstream resolver answered");
                encode(
                    &reply(request, ResponseCode::ServFail),
                    udp,
                    request.max_payload(),
                )
            }
        }
    }
}

fn encode(msg: &Message, udp: bool, max: u16) -> Step {
    let bytes = if udp {
        encode_for_udp(msg, max)
    } else {
        msg.to_vec().ok()
    };
    bytes.map(Step::Send).unwrap_or(Step::Drop)
}

/// Bound listeners, ready to [`DnsServer::serve`].
pub struct DnsServer {
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
    handler: Handler,
}

impl DnsServer {
    /// Binds UDP and TCP on `addr`. With port 0 both get the same, free port.
    pub async fn bind(
        addr: SocketAddr,
        table: SharedTable,
        forwarder: Forwarder,
    ) -> io::Result<DnsServer> {
        let mut last_err = None;
        for _ in 0..10 {
            let udp = UdpSocket::bind(addr).await?;
            let port = udp.local_addr()?.port();
            match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
                Ok(tcp) => {
                    let handler = Handler {
                        table,
                        forwarder: Arc::new(forwarder),
                    };
                    return Ok(DnsServer {
                        udp: Arc::new(udp),
                        tcp,
                        handler,
                    });
                }
                // Port 0 picked a UDP port whose TCP twin is taken: try another.
                Err(e) if addr.port() == 0 => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("no free port for both udp and tcp")))
    }

    /// The address both listeners are bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// Answers queries until `shutdown` is cancelled.
    pub async fn serve(self, shutdown: CancellationToken) {
        let mut tasks = Vec::new();
        for _ in 0..UDP_WORKERS {
            tasks.push(tokio::spawn(udp_loop(
                self.udp.clone(),
                self.handler.clone(),
                shutdown.clone(),
            )));
        }
        tasks.push(tokio::spawn(tcp_loop(
            self.tcp,
            self.handler,
            shutdown.clone(),
        )));
        for t in tasks {
            let _ = t.await;
        }
    }
}

async fn udp_loop(socket: Arc<UdpSocket>, handler: Handler, shutdown: CancellationToken) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    // ICMP errors from earlier sends surface here on Linux; keep serving.
                    debug!(error = %e, "udp receive failed");
                    continue;
                }
            },
        };
        match handler.step(&buf[..n], true) {
            Step::Send(bytes) => {
                let _ = socket.send_to(&bytes, peer).await;
            }
            Step::Drop => {}
            pending => {
                let (socket, handler) = (socket.clone(), handler.clone());
                tokio::spawn(async move {
                    if let Step::Send(bytes) = handler.finish(pending, true).await {
                        let _ = socket.send_to(&bytes, peer).await;
                    }
                });
            }
        }
    }
}

async fn tcp_loop(listener: TcpListener, handler: Handler, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (handler, stop) = (handler.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tcp_conn(stream, handler) => {}
            }
        });
    }
}

/// Serves length-prefixed queries on one connection (RFC 1035 4.2.2) until the client
/// closes it or stays idle too long.
async fn tcp_conn(mut stream: TcpStream, handler: Handler) -> io::Result<()> {
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            _ => return Ok(()),
        };
        let mut raw = vec![0u8; len];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut raw))
            .await
            .map_err(|_| io::ErrorKind::TimedOut)??;
        let step = handler.finish(handler.step(&raw, false), false).await;
        if let Step::Send(bytes) = step {
            let Ok(len) = u16::try_from(bytes.len()) else {
                continue;
            };
            stream.write_all(&len.to_be_bytes()).await?;
            stream.write_all(&bytes).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_are_read_in_order() {
        let text = "# comment\nsearch lab\nnameserver 10.0.0.2\nnameserver  fd00::53 \nnameserver fe80::1%eth0\noptions ndots:1\nnameserver bogus\n";
        let want: Vec<SocketAddr> = vec![
            "10.0.0.2:53".parse().unwrap(),
            "[fd00::53]:53".parse().unwrap(),
        ];
        assert_eq!(parse_resolv_conf(text), want);
    }

    #[test]
    fn the_server_never_forwards_to_itself() {
        let own: SocketAddr = "172.30.0.11:53".parse().unwrap();
        let f = Forwarder::new(
            vec![own, "10.0.0.2:53".parse().unwrap()],
            own,
            Duration::from_secs(2),
        );
        assert_eq!(
            f.upstreams(),
            ["10.0.0.2:53".parse::<SocketAddr>().unwrap()]
        );
    }
}
