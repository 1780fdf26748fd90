//! The server's certificates: a CA generated on first start and kept in the data dir,
//! and a serving certificate signed by it for every name and address the server
//! answers on.
//!
//! The serving certificate is re-issued at every start (cheap), so adding an address
//! needs no manual step; the CA stays, so kubeconfigs and agents that pinned it keep
//! working.
//!
//! The same CA signs each kubelet's serving certificate ([`CaSigner`]), as upstream's
//! kubelet serving-certificate bootstrap does: subject `system:node:<name>` in
//! organization `system:nodes`, SANs the node's name and addresses. The API server then
//! verifies the kubelet it dials for logs and exec against this CA
//! ([`kubelet_client_config`]).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot {action} {path}: {source}")]
    File {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("tls configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("{path} is not a usable PEM key: {reason}")]
    BadKey { path: String, reason: String },
}

/// The PEM material the server and its kubeconfig need.
pub struct TlsMaterial {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// Signs kubelet serving certificates with the same CA.
    pub signer: CaSigner,
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "skiff-ca");
    dn.push(DnType::OrganizationName, "skiff");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    // Fixed validity window so the CA parameters can be rebuilt identically from the key.
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 1, 1);
    p
}

pub(crate) fn write_private(path: &Path, data: &str) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|source| TlsError::File {
            action: "write",
            path: tmp.display().to_string(),
            source,
        })?;
    f.write_all(data.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|source| TlsError::File {
            action: "write",
            path: tmp.display().to_string(),
            source,
        })?;
    std::fs::rename(&tmp, path).map_err(|source| TlsError::File {
        action: "rename",
        path: path.display().to_string(),
        source,
    })
}

/// Loads the CA from `dir` (creating it on first start) and issues a serving
/// certificate for `names` and `ips`.
pub fn ensure(dir: &Path, names: &[String], ips: &[IpAddr]) -> Result<TlsMaterial, TlsError> {
    let ca_key_path = dir.join("ca.key");
    let ca_crt_path = dir.join("ca.crt");
    let ca_key = if ca_key_path.exists() {
        let pem = std::fs::read_to_string(&ca_key_path).map_err(|source| TlsError::File {
            action: "read",
            path: ca_key_path.display().to_string(),
            source,
        })?;
        KeyPair::from_pem(&pem).map_err(|e| TlsError::BadKey {
            path: ca_key_path.display().to_string(),
            reason: e.to_string(),
        })?
    } else {
        let key = KeyPair::generate()?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        key
    };
    let params = ca_params();
    let ca_pem = if ca_crt_path.exists() {
        std::fs::read_to_string(&ca_crt_path).map_err(|source| TlsError::File {
            action: "read",
            path: ca_crt_path.display().to_string(),
            source,
        })?
    } else {
        let pem = params.self_signed(&ca_key)?.pem();
        write_private(&ca_crt_path, &pem)?;
        pem
    };
    let signer = CaSigner {
        ca_pem: ca_pem.clone(),
        ca_key_pem: ca_key.serialize_pem(),
    };
    let issuer = Issuer::new(params, ca_key);

    let mut sp = CertificateParams::new(names.to_vec())?;
    for ip in ips {
        sp.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "skiff-apiserver");
    sp.distinguished_name = dn;
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    sp.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate()?;
    let cert = sp.signed_by(&key, &issuer)?;
    Ok(TlsMaterial {
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        signer,
    })
}

/// Why a kubelet's certificate request was refused (the handler turns it into a 400).
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the public key is not a PEM SubjectPublicKeyInfo this server can use: {0}")]
    BadPublicKey(String),
    #[error("{0:?} is neither an IP address nor this node's name {1:?}; a kubelet's serving certificate may only name its own node and addresses")]
    ForeignName(String, String),
    #[error("signing failed: {0}")]
    Sign(#[from] rcgen::Error),
}

/// How long a kubelet serving certificate is valid. The agent asks for a fresh one at
/// every start, so this only bounds how long a stolen key stays useful.
const KUBELET_CERT_DAYS: u64 = 365;

/// The cluster CA's key, for signing kubelet serving certificates.
#[derive(Clone)]
pub struct CaSigner {
    ca_pem: String,
    ca_key_pem: String,
}

impl std::fmt::Debug for CaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("CaSigner").finish_non_exhaustive()
    }
}

impl CaSigner {
    /// The CA certificate (PEM) the signed certificates chain to.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A serving certificate for the kubelet of `node` over `public_key_pem` (the
    /// kubelet keeps its private key). `names` may hold IP addresses and the node's own
    /// name; anything else is refused, so a node can never get a certificate another
    /// node's name would verify against. The subject is always
    /// `CN=system:node:<node>, O=system:nodes`, whatever the caller asked.
    pub fn sign_kubelet_serving(
        &self,
        node: &str,
        public_key_pem: &str,
        names: &[String],
    ) -> Result<String, SignError> {
        let public = rcgen::SubjectPublicKeyInfo::from_pem(public_key_pem)
            .map_err(|e| SignError::BadPublicKey(e.to_string()))?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("system:node:{node}"));
        dn.push(DnType::OrganizationName, "system:nodes");
        p.distinguished_name = dn;
        p.subject_alt_names
            .push(SanType::DnsName(node.try_into().map_err(SignError::Sign)?));
        for n in names {
            match n.parse::<IpAddr>() {
                Ok(ip) => {
                    if !p.subject_alt_names.contains(&SanType::IpAddress(ip)) {
                        p.subject_alt_names.push(SanType::IpAddress(ip));
                    }
                }
                Err(_) if n == node => {}
                Err(_) => return Err(SignError::ForeignName(n.clone(), node.to_string())),
            }
        }
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        // Valid from yesterday: tolerates clocks that are a little apart.
        let day = |d: chrono::NaiveDate| {
            use chrono::Datelike;
            rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
        };
        let today = chrono::Utc::now().date_naive();
        p.not_before = day(today - chrono::Days::new(1));
        p.not_after = day(today + chrono::Days::new(KUBELET_CERT_DAYS));
        let ca_key = KeyPair::from_pem(&self.ca_key_pem)?;
        let issuer = Issuer::new(ca_params(), ca_key);
        Ok(p.signed_by(&public, &issuer)?.pem())
    }
}

/// The TLS client config the API server uses to dial the kubelet of `node` at `ip`:
/// the certificate must chain to the cluster CA `ca_pem` and name both the address
/// dialled and the node (only that node's credential can obtain such a certificate,
/// see [`CaSigner::sign_kubelet_serving`]).
pub fn kubelet_client_config(
    ca_pem: &str,
    node: &str,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        let cert = cert.map_err(|source| TlsError::File {
            action: "parse",
            path: "the cluster CA certificate".into(),
            source,
        })?;
        roots.add(cert)?;
    }
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
    let node_name = rustls::pki_types::ServerName::try_from(node.to_string()).map_err(|_| {
        TlsError::Rustls(rustls::Error::General(format!(
            "node name {node:?} is not a DNS name a certificate can carry"
        )))
    })?;
    let verifier = Arc::new(KubeletVerifier { webpki, node_name });
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Checks a kubelet's certificate twice with webpki: once for the address dialled
/// (chain, validity, serverAuth usage, IP SAN) and once for the node's name.
#[derive(Debug)]
struct KubeletVerifier {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    node_name: rustls::pki_types::ServerName<'static>,
}

impl rustls::client::danger::ServerCertVerifier for KubeletVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            &self.node_name,
            ocsp,
            now,
        )?;
        // The names alone would also match the API server's own certificate when a node
        // shares the server's host name; the subject is what only a node's request gets.
        let want = format!("system:node:{}", self.node_name.to_str());
        let subject_ok = x509_parser::parse_x509_certificate(end_entity)
            .ok()
            .is_some_and(|(_, cert)| {
                let subject = cert.subject();
                let cn = subject
                    .iter_common_name()
                    .next()
                    .and_then(|a| a.as_str().ok());
                let in_nodes = subject
                    .iter_organization()
                    .any(|a| a.as_str().ok() == Some("system:nodes"));
                cn == Some(want.as_str()) && in_nodes
            });
        if !subject_ok {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(
                    std::io::Error::other(format!(
                        "the certificate's subject is not {want} in organization system:nodes"
                    )),
                ))),
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A rustls server config offering HTTP/2 and HTTP/1.1.
pub fn server_config(m: &TlsMaterial) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut m.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::File {
            action: "parse",
            path: "serving certificate".into(),
            source,
        })?;
    let key = rustls_pemfile::private_key(&mut m.key_pem.as_bytes())
        .map_err(|source| TlsError::File {
            action: "parse",
            path: "serving key".into(),
            source,
        })?
        .ok_or_else(|| TlsError::BadKey {
            path: "serving key".into(),
            reason: "no key in PEM".into(),
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The IPv4/IPv6 addresses configured on this host's interfaces (in the current network
/// namespace), read from /proc so no extra tool is needed.
pub fn local_addresses() -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = vec![IpAddr::from([127, 0, 0, 1]), "::1".parse().expect("ip")];
    // /proc/net/fib_trie lists local addresses as "|-- A.B.C.D" followed by "/32 host LOCAL".
    if let Ok(text) = std::fs::read_to_string("/proc/net/fib_trie") {
        let mut last: Option<IpAddr> = None;
        for line in text.lines() {
            let t = line.trim_start_matches([' ', '|', '-', '+', '`']).trim();
            if let Ok(ip) = t.parse::<IpAddr>() {
                last = Some(ip);
            } else if t.contains("/32 host LOCAL") {
                if let Some(ip) = last {
                    if !out.contains(&ip) {
                        out.push(ip);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_is_kept_and_serving_cert_is_reissued() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure(
            dir.path(),
            &["localhost".into()],
            &[IpAddr::from([127, 0, 0, 1])],
        )
        .unwrap();
        let b = ensure(dir.path(), &["localhost".into()], &[]).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_ne!(a.cert_pem, b.cert_pem);
        let mode = std::fs::metadata(dir.path().join("ca.key")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        server_config(&b).unwrap();
    }

    /// A TLS handshake between `client` and a server presenting `cert_pem`, as if the
    /// client dialled `ip`; the client's error on failure.
    async fn handshake(
        client: Arc<rustls::ClientConfig>,
        cert_pem: &str,
        key_pem: &str,
        ip: IpAddr,
    ) -> Result<(), std::io::Error> {
        let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .unwrap()
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let srv = tokio::spawn(async move { acceptor.accept(b).await.map(|_| ()) });
        let out = tokio_rustls::TlsConnector::from(client)
            .connect(rustls::pki_types::ServerName::IpAddress(ip.into()), a)
            .await
            .map(|_| ());
        srv.abort();
        out
    }

    fn is_bad_cert(e: &std::io::Error) -> bool {
        e.get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)))
    }

    /// A kubelet key pair and a certificate for it signed by `signer`.
    fn kubelet_cert(signer: &CaSigner, node: &str, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = signer
            .sign_kubelet_serving(node, &key.public_key_pem(), &names)
            .unwrap();
        (cert, key.serialize_pem())
    }

    #[tokio::test]
    async fn kubelet_certificates_verify_only_from_the_cluster_ca_for_that_node_and_address() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let cluster = ensure(d1.path(), &["localhost".into()], &[]).unwrap();
        let other = ensure(d2.path(), &["localhost".into()], &[]).unwrap();
        let ip: IpAddr = "172.30.0.11".parse().unwrap();
        let client = |node: &str| kubelet_client_config(&cluster.ca_pem, node).unwrap();

        let (cert, key) = kubelet_cert(&cluster.signer, "node1", &["172.30.0.11", "node1"]);
        handshake(client("node1"), &cert, &key, ip)
            .await
            .expect("a cluster-signed certificate for this node and address verifies");

        // Signed by another CA: refused.
        let (cert2, key2) = kubelet_cert(&other.signer, "node1", &["172.30.0.11"]);
        let e = handshake(client("node1"), &cert2, &key2, ip)
            .await
            .unwrap_err();
        assert!(is_bad_cert(&e), "{e}");

        // Self-signed, as a kubelet without a cluster certificate serves: refused.
        let own =
            rcgen::generate_simple_self_signed(vec!["172.30.0.11".into(), "node1".into()]).unwrap();
        let e = handshake(
            client("node1"),
            &own.cert.pem(),
            &own.signing_key.serialize_pem(),
            ip,
        )
        .await
        .unwrap_err();
        assert!(is_bad_cert(&e), "{e}");

        // Another node's certificate at this node's address: refused.
        let (cert3, key3) = kubelet_cert(&cluster.signer, "node2", &["172.30.0.11"]);
        let e = handshake(client("node1"), &cert3, &key3, ip)
            .await
            .unwrap_err();
        assert!(is_bad_cert(&e), "{e}");

        // The right node but dialled at an address the certificate does not name.
        let e = handshake(client("node1"), &cert, &key, "172.30.0.12".parse().unwrap())
            .await
            .unwrap_err();
        assert!(is_bad_cert(&e), "{e}");

        // The API server's own serving certificate is not a kubelet's, even when it
        // names the node and its address.
        let api = ensure(d1.path(), &["node1".into()], &[ip]).unwrap();
        let e = handshake(client("node1"), &api.cert_pem, &api.key_pem, ip)
            .await
            .unwrap_err();
        assert!(is_bad_cert(&e), "{e}");
        assert!(e.to_string().contains("system:node:node1"), "{e}");
    }

    #[test]
    fn kubelet_certificates_name_only_their_node_and_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let m = ensure(dir.path(), &["localhost".into()], &[]).unwrap();
        let key = KeyPair::generate().unwrap();
        let e = m
            .signer
            .sign_kubelet_serving("node1", &key.public_key_pem(), &["node2".into()])
            .unwrap_err();
        assert!(matches!(e, SignError::ForeignName(..)), "{e}");
        assert!(e.to_string().contains("node2"), "{e}");
        let e = m
            .signer
            .sign_kubelet_serving("node1", "not a key", &[])
            .unwrap_err();
        assert!(matches!(e, SignError::BadPublicKey(_)), "{e}");
    }

    #[test]
    fn local_addresses_include_loopback() {
        assert!(local_addresses().contains(&IpAddr::from([127, 0, 0, 1])));
    }
}
