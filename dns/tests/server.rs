//! The DNS server on 127.0.0.1 port 0, asked over real UDP and TCP sockets with
//! hand-built queries: cluster answers, denials with SOA, forwarding to a fake upstream
//! on loopback, and SERVFAIL within the timeout when no upstream answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use skiff_dns::{DnsServer, Forwarder, RecordTable, SharedTable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

fn table() -> RecordTable {
    let services: Vec<Service> = [
        json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}}),
        json!({"metadata": {"name": "db", "namespace": "shop"}, "spec": {"clusterIP": "None"}}),
        json!({"metadata": {"name": "ext", "namespace": "shop"}, "spec": {"type": "ExternalName", "externalName": "example.org"}}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    let slices: Vec<EndpointSlice> = vec![serde_json::from_value(json!({
        "metadata": {"name": "db-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.1.5"], "hostname": "db-0"}]
    }))
    .unwrap()];
    RecordTable::build("cluster.local", services.iter(), slices.iter())
}

struct Running {
    addr: SocketAddr,
    table: SharedTable,
    stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(upstreams: Vec<SocketAddr>, timeout: Duration) -> Running {
    let table: SharedTable = Arc::new(ArcSwap::from_pointee(table()));
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = DnsServer::bind(
        listen,
        table.clone(),
        Forwarder::new(upstreams, listen, timeout),
    )
    .await
    .expect("bind");
    let addr = server.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(server.serve(stop.clone()));
    Running { addr, table, stop }
}

fn query(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m
}

async fn ask_udp(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&query(name, qtype).to_vec().unwrap(), addr)
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("udp answer in time")
        .unwrap();
    Message::from_vec(&buf[..n]).expect("answer parses")
}

async fn ask_tcp(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let q = query(name, qtype).to_vec().unwrap();
    s.write_all(&(q.len() as u16).to_be_bytes()).await.unwrap();
    s.write_all(&q).await.unwrap();
    let len = tokio::time::timeout(Duration::from_secs(5), s.read_u16())
        .await
        .expect("tcp answer in time")
        .unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    s.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).expect("answer parses")
}

fn texts(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

#[tokio::test]
async fn cluster_names_are_answered_over_udp_and_tcp() {
    let s = start(vec![], Duration::from_millis(200)).await;
    let cases: Vec<(&str, RecordType, ResponseCode, Vec<&str>)> = vec![
        (
            "web.shop.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NoError,
            vec!["web.shop.svc.cluster.local. A 10.96.0.20"],
        ),
        (
            "_http._tcp.web.shop.svc.cluster.local.",
            RecordType::SRV,
            ResponseCode::NoError,
            vec!["_http._tcp.web.shop.svc.cluster.local. SRV 0 100 80 web.shop.svc.cluster.local."],
        ),
        (
            "20.0.96.10.in-addr.arpa.",
            RecordType::PTR,
            ResponseCode::NoError,
            vec!["20.0.96.10.in-addr.arpa. PTR web.shop.svc.cluster.local."],
        ),
        (
            "ext.shop.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NoError,
            vec!["ext.shop.svc.cluster.local. CNAME example.org."],
        ),
        (
            "db-0.db.shop.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NoError,
            vec!["db-0.db.shop.svc.cluster.local. A 10.244.1.5"],
        ),
        (
            "db.shop.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NoError,
            vec!["db.shop.svc.cluster.local. A 10.244.1.5"],
        ),
        (
            "web.shop.shop.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NXDomain,
            vec![],
        ),
    ];
    for (name, qtype, code, answers) in cases {
        for (via, m) in [
            ("udp", ask_udp(s.addr, name, qtype).await),
            ("tcp", ask_tcp(s.addr, name, qtype).await),
        ] {
            assert_eq!(m.metadata.id, 4242, "{via} {name}");
            assert_eq!(m.metadata.message_type, MessageType::Response);
            assert_eq!(m.metadata.response_code, code, "{via} {name}");
            assert_eq!(texts(&m.answers), answers, "{via} {name}");
            assert!(m.metadata.authoritative, "{via} {name}");
        }
    }
}

#[tokio::test]
async fn unknown_names_get_nxdomain_with_the_zone_soa() {
    let s = start(vec![], Duration::from_millis(200)).await;
    let m = ask_udp(s.addr, "nope.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
    let soa: Vec<_> = m
        .authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::SOA)
        .collect();
    assert_eq!(
        soa.len(),
        1,
        "one SOA in authority: {:?}",
        texts(&m.authorities)
    );
    assert_eq!(soa[0].name.to_ascii(), "cluster.local.");
    let RData::SOA(data) = &soa[0].data else {
        panic!("not an SOA")
    };
    assert_eq!(data.minimum, 5, "negative answers are cached only briefly");
}

#[tokio::test]
async fn a_new_table_is_served_as_soon_as_it_is_stored() {
    let s = start(vec![], Duration::from_millis(200)).await;
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": "late", "namespace": "a"}, "spec": {"clusterIP": "10.96.7.7"}}),
    )
    .unwrap();
    assert_eq!(
        ask_udp(s.addr, "late.a.svc.cluster.local.", RecordType::A)
            .await
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    s.table
        .store(Arc::new(RecordTable::build("cluster.local", [&svc], [])));
    let m = ask_udp(s.addr, "late.a.svc.cluster.local.", RecordType::A).await;
    assert_eq!(texts(&m.answers), ["late.a.svc.cluster.local. A 10.96.7.7"]);
}

/// A fake upstream on loopback: answers every A query with 192.0.2.1 (TEST-NET-1).
async fn fake_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.add_queries(q.queries.clone());
            let name = q.queries[0].name().clone();
            r.add_answer(Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, 1))));
            let _ = sock.send_to(&r.to_vec().unwrap(), peer).await;
        }
    });
    (addr, task)
}

#[tokio::test]
async fn other_names_are_forwarded_to_the_upstream() {
    let (up, task) = fake_upstream().await;
    let s = start(vec![up], Duration::from_secs(2)).await;
    for m in [
        ask_udp(s.addr, "example.com.", RecordType::A).await,
        ask_tcp(s.addr, "example.com.", RecordType::A).await,
    ] {
        assert_eq!(m.metadata.id, 4242);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(texts(&m.answers), ["example.com. A 192.0.2.1"]);
        assert!(!m.metadata.authoritative, "forwarded answers are not ours");
    }
    task.abort();
}

/// An upstream whose UDP answers are always truncated (TC, no records) and whose TCP
/// answers carry 100 records, as for a large answer.
async fn truncating_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
    let full = |q: &Message| {
        let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
        r.add_queries(q.queries.clone());
        for i in 0..100u8 {
            r.add_answer(Record::from_rdata(
                q.queries[0].name().clone(),
                60,
                RData::A(A::new(192, 0, 2, i)),
            ));
        }
        r
    };
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                Ok((n, peer)) = udp.recv_from(&mut buf) => {
                    let q = Message::from_vec(&buf[..n]).unwrap();
                    let _ = udp.send_to(&full(&q).truncate().to_vec().unwrap(), peer).await;
                }
                Ok((mut s, _)) = tcp.accept() => {
                    let len = s.read_u16().await.unwrap();
                    let mut q = vec![0u8; usize::from(len)];
                    s.read_exact(&mut q).await.unwrap();
                    let r = full(&Message::from_vec(&q).unwrap()).to_vec().unwrap();
                    s.write_all(&(r.len() as u16).to_be_bytes()).await.unwrap();
                    s.write_all(&r).await.unwrap();
                }
            }
        }
    });
    (addr, task)
}

#[tokio::test]
async fn tcp_clients_get_whole_answers_that_upstream_truncates_over_udp() {
    let (up, task) = truncating_upstream().await;
    let s = start(vec![up], Duration::from_secs(2)).await;
    let udp = ask_udp(s.addr, "big.example.", RecordType::A).await;
    assert!(
        udp.metadata.truncation,
        "udp clients see the truncation and retry over tcp"
    );
    let tcp = ask_tcp(s.addr, "big.example.", RecordType::A).await;
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 100);
    task.abort();
}

#[tokio::test]
async fn external_names_are_followed_through_the_upstream() {
    let (up, task) = fake_upstream().await;
    let s = start(vec![up], Duration::from_secs(2)).await;
    let m = ask_udp(s.addr, "ext.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        texts(&m.answers),
        [
            "ext.shop.svc.cluster.local. CNAME example.org.",
            "example.org. A 192.0.2.1"
        ]
    );
    task.abort();
}

#[tokio::test]
async fn a_silent_upstream_gives_servfail_within_the_timeout() {
    // Bound but never read: queries to it go unanswered.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let s = start(
        vec![silent.local_addr().unwrap()],
        Duration::from_millis(300),
    )
    .await;
    let t0 = Instant::now();
    let m = ask_udp(s.addr, "example.com.", RecordType::A).await;
    let took = t0.elapsed();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "took {took:?}"
    );
    // Cluster names stay fast while a forward is pending.
    let t0 = Instant::now();
    let pending = tokio::spawn(ask_udp(s.addr, "example.net.", RecordType::A));
    let m = ask_udp(s.addr, "web.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.answers.len(), 1);
    assert!(
        t0.elapsed() < Duration::from_millis(200),
        "cluster answer waited for the forward"
    );
    assert_eq!(
        pending.await.unwrap().metadata.response_code,
        ResponseCode::ServFail
    );
}

#[tokio::test]
async fn no_upstream_at_all_gives_servfail_at_once() {
    let s = start(vec![], Duration::from_secs(2)).await;
    let t0 = Instant::now();
    let m = ask_tcp(s.addr, "example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "took {:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn garbage_gets_servfail_and_the_server_keeps_serving() {
    let s = start(vec![], Duration::from_millis(200)).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut junk = vec![0x12, 0x34];
    junk.extend([0xff; 30]);
    sock.send_to(&junk, s.addr).await.unwrap();
    let mut buf = vec![0u8; 512];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(
        ask_udp(s.addr, "web.shop.svc.cluster.local.", RecordType::A)
            .await
            .answers
            .len(),
        1
    );
}
