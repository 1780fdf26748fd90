//! Joining a node to a server, kubeadm/k3s style.
//!
//! The join token is `skiff1.<sha256 of the server's CA certificate PEM>.<secret>`. The
//! agent fetches `/cacerts` without trusting anything, checks the hash (so a wrong
//! `--server` or a man in the middle is refused before any secret is sent), then sends
//! the secret over TLS verified against that CA and receives a credential of its own
//! (`system:node:<name>`, limited to its own objects) and a podCIDR. The result is
//! saved as a kubeconfig, so a restarted agent does not join again.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("the join token is malformed: expected skiff1.<ca-hash>.<secret> as `skiff server` printed it")]
    BadToken,
    #[error("cannot reach the server at {server}: {reason}; check --server and that the server is running")]
    Unreachable { server: String, reason: String },
    #[error("the server at {server} presents a CA whose hash is {got}, but the token expects {want}: refusing to join (wrong --server, or someone in between)")]
    CaMismatch {
        server: String,
        got: String,
        want: String,
    },
    #[error("the server refused the join: {0}")]
    Refused(String),
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
}

/// The three parts of a join token.
#[derive(Debug, PartialEq, Eq)]
pub struct Token {
    pub ca_hash: String,
    pub secret: String,
}

pub fn make_token(ca_pem: &str, secret: &str) -> String {
    format!("skiff1.{}.{secret}", ca_hash(ca_pem))
}

pub fn ca_hash(ca_pem: &str) -> String {
    Sha256::digest(ca_pem.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn parse_token(t: &str) -> Result<Token, JoinError> {
    let mut parts = t.trim().splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("skiff1"), Some(h), Some(s))
            if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) && !s.is_empty() =>
        {
            Ok(Token {
                ca_hash: h.to_ascii_lowercase(),
                secret: s.to_string(),
            })
        }
        _ => Err(JoinError::BadToken),
    }
}

/// What a join produced.
#[derive(Debug, Clone)]
pub struct Joined {
    pub kubeconfig: PathBuf,
    pub pod_cidr: String,
}

fn unreachable(server: &str) -> impl Fn(&dyn std::fmt::Display) -> JoinError + '_ {
    move |e| JoinError::Unreachable {
        server: server.to_string(),
        reason: e.to_string(),
    }
}

/// Joins (or, when `data_dir` already holds this node's kubeconfig, reuses it).
pub async fn join(
    server: &str,
    token: &str,
    node_name: &str,
    data_dir: &Path,
) -> Result<Joined, JoinError> {
    let kc_path = data_dir.join("node.kubeconfig");
    let cidr_path = data_dir.join("pod-cidr");
    if let (Ok(_), Ok(cidr)) = (
        std::fs::metadata(&kc_path),
        std::fs::read_to_string(&cidr_path),
    ) {
        return Ok(Joined {
            kubeconfig: kc_path,
            pod_cidr: cidr.trim().to_string(),
        });
    }
    let t = parse_token(token)?;
    let url: http::Uri = server
        .parse()
        .map_err(|e: http::uri::InvalidUri| unreachable(server)(&e))?;

    // 1. The CA, fetched without trusting it, checked against the token.
    let mut insecure = kube::Config::new(url.clone());
    insecure.accept_invalid_certs = true;
    let client = kube::Client::try_from(insecure).map_err(|e| unreachable(server)(&e))?;
    let ca_pem = client
        .request_text(
            http::Request::get("/cacerts")
                .body(Vec::new())
                .expect("request"),
        )
        .await
        .map_err(|e| unreachable(server)(&e))?;
    let got = ca_hash(&ca_pem);
    if got != t.ca_hash {
        return Err(JoinError::CaMismatch {
            server: server.into(),
            got,
            want: t.ca_hash,
        });
    }

    // 2. The secret, sent only to a server proven to hold that CA.
    let der: Vec<Vec<u8>> = rustls_pemfile::certs(&mut ca_pem.as_bytes())
        .filter_map(Result::ok)
        .map(|c| c.to_vec())
        .collect();
    let mut cfg = kube::Config::new(url);
    cfg.root_cert = Some(der);
    cfg.auth_info.token = Some(t.secret.clone().into());
    let client = kube::Client::try_from(cfg).map_err(|e| unreachable(server)(&e))?;
    let body = serde_json::to_vec(&serde_json::json!({"nodeName": node_name})).expect("json");
    let req = http::Request::post("/skiff/v1/join")
        .header("content-type", "application/json")
        .body(body)
        .expect("request");
    let answer: Value = client.request(req).await.map_err(|e| match e {
        kube::Error::Api(s) => JoinError::Refused(s.message),
        other => unreachable(server)(&other),
    })?;
    let node_token = answer["token"]
        .as_str()
        .ok_or_else(|| JoinError::Refused("no token in the answer".into()))?;
    let pod_cidr = answer["podCIDR"]
        .as_str()
        .ok_or_else(|| JoinError::Refused("no podCIDR in the answer".into()))?;

    // 3. Saved for restarts.
    let write = |p: &Path, text: &str| -> Result<(), JoinError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(data_dir)
            .and_then(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(p)
            })
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| JoinError::Write {
                path: p.display().to_string(),
                reason: e.to_string(),
            })
    };
    let user = format!("system:node:{node_name}");
    write(
        &kc_path,
        &skiff_apiserver::kubeconfig::render("skiff", server, &ca_pem, &user, node_token),
    )?;
    write(&cidr_path, pod_cidr)?;
    tracing::info!(node = node_name, pod_cidr, "joined");
    Ok(Joined {
        kubeconfig: kc_path,
        pod_cidr: pod_cidr.to_string(),
    })
}

/// The local address this machine uses to reach `server_ip`: the right node address
/// even with several interfaces (a NAT interface first, as on Vagrant, must not win).
pub fn source_address_for(server_ip: std::net::IpAddr) -> Option<std::net::Ipv4Addr> {
    let out = std::process::Command::new("ip")
        .args(["route", "get", &server_ip.to_string()])
        .output()
        .ok()?;
    parse_route_get_src(&String::from_utf8_lossy(&out.stdout))
}

/// The `src` of `ip route get` output.
pub fn parse_route_get_src(text: &str) -> Option<std::net::Ipv4Addr> {
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "src" {
            return words.next()?.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let tok = make_token("PEM", "s3cret");
        let t = parse_token(&tok).unwrap();
        assert_eq!(t.ca_hash, ca_hash("PEM"));
        assert_eq!(t.secret, "s3cret");
        for bad in [
            "",
            "skiff1.abc.def",
            "skiff2.0000000000000000000000000000000000000000000000000000000000000000.x",
            "nope",
        ] {
            assert!(parse_token(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn route_get_source_is_parsed() {
        let out = "10.0.2.15 via 192.168.56.1 dev eth1 src 192.168.56.11 uid 0 \n    cache \n";
        assert_eq!(
            parse_route_get_src(out),
            Some("192.168.56.11".parse().unwrap())
        );
        assert_eq!(parse_route_get_src("local 127.0.0.1 dev lo"), None);
    }
}
