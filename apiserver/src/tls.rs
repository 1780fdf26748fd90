//! The server's certificates: a CA generated on first start and kept in the data dir,
//! and a serving certificate signed by it for every name and address the server
//! answers on.
//!
//! The serving certificate is re-issued at every start (cheap), so adding an address
//! needs no manual step; the CA stays, so kubeconfigs and agents that pinned it keep
//! working.

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
    })
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

    #[test]
    fn local_addresses_include_loopback() {
        assert!(local_addresses().contains(&IpAddr::from([127, 0, 0, 1])));
    }
}
