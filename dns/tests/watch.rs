//! The whole DNS component in-process: skiff's API server on 127.0.0.1 port 0, `run()`
//! watching it, and queries over UDP on loopback. Services and EndpointSlices are
//! written through the `kube` client as the controllers would; the server is then
//! stopped to check that the last known records keep being served.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use serde_json::json;
use skiff_apiserver::testing::TestServer;
use skiff_dns::{run, DnsConfig};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// A loopback port free for both UDP and TCP right now (run() takes a fixed address).
fn free_port() -> u16 {
    for _ in 0..20 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port for udp and tcp");
}

/// (rcode, answer data) for `name`.
async fn ask(addr: SocketAddr, name: &str, qtype: RecordType) -> (ResponseCode, Vec<String>) {
    let mut q = Message::new(99, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&q.to_vec().unwrap(), addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => {
            let m = Message::from_vec(&buf[..n]).unwrap();
            (
                m.metadata.response_code,
                m.answers.iter().map(|r| r.data.to_string()).collect(),
            )
        }
        _ => (ResponseCode::Refused, vec!["no answer".into()]),
    }
}

async fn wait_for(
    addr: SocketAddr,
    name: &str,
    qtype: RecordType,
    want: (ResponseCode, Vec<String>),
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = ask(addr, name, qtype).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name} {qtype} = {want:?}; last {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_follow_the_api_and_survive_an_api_outage() {
    let mut server = TestServer::start().await;
    let client = server.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "shop"}})).unwrap(),
        )
        .await
        .expect("create namespace shop");
    let shop: Api<Service> = Api::namespaced(client.clone(), "shop");
    let default: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "shop");

    let web: Service = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}})).unwrap();
    let web = shop
        .create(&PostParams::default(), &web)
        .await
        .expect("create web");
    let web_ip = web
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("the API server allocates a cluster IP");
    let api: Service = serde_json::from_value(
        json!({"metadata": {"name": "api"}, "spec": {"ports": [{"port": 443}]}}),
    )
    .unwrap();
    let api = default
        .create(&PostParams::default(), &api)
        .await
        .expect("create api");
    let api_ip = api.spec.and_then(|s| s.cluster_ip).unwrap();

    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = DnsConfig {
        listen: addr,
        upstreams: Some(vec![]),
        ..DnsConfig::default()
    };
    let shutdown = CancellationToken::new();
    let dns = tokio::spawn(run(config, client.clone(), shutdown.clone()));

    wait_for(
        addr,
        "web.shop.svc.cluster.local.",
        RecordType::A,
        (ResponseCode::NoError, vec![web_ip.clone()]),
    )
    .await;
    wait_for(
        addr,
        "api.default.svc.cluster.local.",
        RecordType::A,
        (ResponseCode::NoError, vec![api_ip]),
    )
    .await;
    assert_eq!(
        ask(
            addr,
            "_http._tcp.web.shop.svc.cluster.local.",
            RecordType::SRV
        )
        .await,
        (
            ResponseCode::NoError,
            vec!["0 100 80 web.shop.svc.cluster.local.".to_string()]
        )
    );

    // A headless service: endpoints appear by name as the slice controller adds them.
    let db: Service = serde_json::from_value(json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}})).unwrap();
    shop.create(&PostParams::default(), &db)
        .await
        .expect("create db");
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "db-abc", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.1.5"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["10.244.2.6"], "conditions": {"ready": false}}
        ]
    }))
    .unwrap();
    slices
        .create(&PostParams::default(), &slice)
        .await
        .expect("create slice");
    wait_for(
        addr,
        "db-0.db.shop.svc.cluster.local.",
        RecordType::A,
        (ResponseCode::NoError, vec!["10.244.1.5".into()]),
    )
    .await;
    assert_eq!(
        ask(addr, "db.shop.svc.cluster.local.", RecordType::A).await,
        (ResponseCode::NoError, vec!["10.244.1.5".to_string()])
    );

    shop.delete("web", &DeleteParams::default())
        .await
        .expect("delete web");
    wait_for(
        addr,
        "web.shop.svc.cluster.local.",
        RecordType::A,
        (ResponseCode::NXDomain, vec![]),
    )
    .await;

    // The API server goes away: the last known records keep answering.
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ask(addr, "db-0.db.shop.svc.cluster.local.", RecordType::A).await,
        (ResponseCode::NoError, vec!["10.244.1.5".to_string()])
    );
    assert_eq!(
        ask(addr, "web.shop.svc.cluster.local.", RecordType::A)
            .await
            .0,
        ResponseCode::NXDomain
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), dns)
        .await
        .expect("dns stops")
        .unwrap()
        .expect("dns ran cleanly");
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let server = TestServer::start().await;
    let config = DnsConfig {
        listen: addr,
        upstreams: Some(vec![]),
        ..DnsConfig::default()
    };
    let err = run(config, server.client().await, CancellationToken::new())
        .await
        .expect_err("port in use");
    let text = err.to_string();
    assert!(
        text.contains(&addr.to_string()) && text.contains("port 53"),
        "{text}"
    );
}
