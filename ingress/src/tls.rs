//! TLS termination: certificates from `kubernetes.io/tls` Secrets named in the
//! Ingresses' `spec.tls`, chosen per connection by SNI.
//!
//! The certificates live in an immutable [`CertStore`] that the watch layer rebuilds
//! and swaps in whenever an Ingress or Secret changes, so a rotated Secret is served
//! from the next handshake on, without a restart and without touching open
//! connections. Handshakes whose name has no certificate get a self-signed fallback
//! certificate, as ingress-nginx's "fake certificate" does, so that clients see a
//! certificate error rather than a reset connection.
//!
//! Only TLS 1.2 and 1.3 are offered; ALPN offers `h2` and `http/1.1`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("secret {0}: not found; create a kubernetes.io/tls secret with tls.crt and tls.key")]
    SecretMissing(String),
    #[error("secret {0}: missing {1}")]
    FieldMissing(String, &'static str),
    #[error("secret {0}: tls.crt holds no PEM certificate")]
    NoCertificate(String),
    #[error("secret {0}: tls.key holds no PEM private key")]
    NoKey(String),
    #[error("secret {0}: unsupported or malformed private key: {1}")]
    BadKey(String, String),
    #[error("secret {0}: malformed PEM: {1}")]
    Pem(String, std::io::Error),
    #[error("generating the fallback certificate failed: {0}")]
    Fallback(String),
    #[error("building the TLS server config failed: {0}")]
    Config(#[from] rustls::Error),
}

/// Parses a PEM chain and key into a signing-ready certificate. `what` names the
/// source in errors.
pub fn certified_key_from_pem(
    what: &str,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let certs = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(what.into(), e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(what.into()));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| TlsError::Pem(what.into(), e))?
        .ok_or_else(|| TlsError::NoKey(what.into()))?;
    let key = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| TlsError::BadKey(what.into(), e.to_string()))?;
    Ok(CertifiedKey::new(certs, key))
}

/// A self-signed certificate for handshakes nothing else matches.
pub fn fallback_certificate() -> Result<Arc<CertifiedKey>, TlsError> {
    let generated = rcgen::generate_simple_self_signed(vec!["skiff-ingress.invalid".to_string()])
        .map_err(|e| TlsError::Fallback(e.to_string()))?;
    let key = generated.signing_key.serialize_pem();
    certified_key_from_pem("fallback", generated.cert.pem().as_bytes(), key.as_bytes())
        .map(Arc::new)
}

/// Parsed certificates, cached by Secret and resourceVersion so that rebuilding the
/// store on every endpoint change does not re-parse every key.
#[derive(Default)]
pub struct CertCache {
    parsed: HashMap<(String, String), Arc<CertifiedKey>>,
}

/// Host name -> certificate, immutable; rebuilt and swapped on change.
#[derive(Default)]
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// From a `spec.tls` entry without hosts.
    default: Option<Arc<CertifiedKey>>,
    /// Problems found while building, for logging.
    pub warnings: Vec<String>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .field("default", &self.default.is_some())
            .finish()
    }
}

impl CertStore {
    /// The certificate for an SNI name (already lower-case), if one is configured.
    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let found = sni.and_then(|name| {
            self.exact.get(name).or_else(|| {
                name.split_once('.')
                    .filter(|(l, _)| !l.is_empty())
                    .and_then(|(_, rest)| self.wildcard.get(rest))
            })
        });
        found.or(self.default.as_ref()).cloned()
    }

    /// Whether any certificate is configured for this exact host name.
    pub fn has_host(&self, host: &str) -> bool {
        self.exact.contains_key(host)
    }
}

fn secret_certificate(
    key: &str,
    secret: Option<&Secret>,
    cache: &CertCache,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let secret = secret.ok_or_else(|| TlsError::SecretMissing(key.into()))?;
    let rv = secret.metadata.resource_version.clone().unwrap_or_default();
    if let Some(parsed) = cache.parsed.get(&(key.to_string(), rv)) {
        return Ok(parsed.clone());
    }
    let data = secret.data.as_ref();
    let crt = data
        .and_then(|d| d.get("tls.crt"))
        .ok_or_else(|| TlsError::FieldMissing(key.into(), "tls.crt"))?;
    let pkey = data
        .and_then(|d| d.get("tls.key"))
        .ok_or_else(|| TlsError::FieldMissing(key.into(), "tls.key"))?;
    certified_key_from_pem(key, &crt.0, &pkey.0).map(Arc::new)
}

/// Builds the store from the served Ingresses (oldest first: the oldest claim on a
/// host wins) and the Secrets.
pub fn build(
    ingresses: &[Arc<Ingress>],
    secrets: &[Arc<Secret>],
    cache: &mut CertCache,
) -> CertStore {
    let by_key: HashMap<String, &Secret> = secrets
        .iter()
        .filter_map(|s| {
            Some((
                format!(
                    "{}/{}",
                    s.metadata.namespace.as_deref()?,
                    s.metadata.name.as_deref()?
                ),
                &**s,
            ))
        })
        .collect();
    let mut store = CertStore::default();
    let mut fresh = HashMap::new();
    for ing in ingresses {
        let ns = ing.metadata.namespace.as_deref().unwrap_or("default");
        for tls in ing.spec.iter().flat_map(|s| s.tls.iter().flatten()) {
            let Some(name) = tls.secret_name.as_deref() else {
                continue;
            };
            let key = format!("{ns}/{name}");
            let secret = by_key.get(&key).copied();
            let cert = match secret_certificate(&key, secret, cache) {
                Ok(c) => c,
                Err(e) => {
                    store.warnings.push(format!(
                        "ingress {ns}/{}: {e}",
                        ing.metadata.name.as_deref().unwrap_or("")
                    ));
                    continue;
                }
            };
            if let Some(s) = secret {
                fresh.insert(
                    (
                        key.clone(),
                        s.metadata.resource_version.clone().unwrap_or_default(),
                    ),
                    cert.clone(),
                );
            }
            let hosts = tls.hosts.as_deref().unwrap_or_default();
            if hosts.is_empty() && store.default.is_none() {
                store.default = Some(cert.clone());
            }
            for host in hosts {
                let host = host.to_ascii_lowercase();
                let slot = match host.strip_prefix("*.") {
                    Some(rest) => store.wildcard.entry(rest.to_string()),
                    None => store.exact.entry(host),
                };
                slot.or_insert_with(|| cert.clone());
            }
        }
    }
    // Keep only what is in use, so rotated-away keys are dropped from memory.
    cache.parsed = fresh;
    store
}

/// rustls's per-handshake hook: picks the certificate by SNI from the current store.
pub struct SniResolver {
    store: Arc<ArcSwap<CertStore>>,
    fallback: Arc<CertifiedKey>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver").finish_non_exhaustive()
    }
}

impl SniResolver {
    pub fn new(store: Arc<ArcSwap<CertStore>>, fallback: Arc<CertifiedKey>) -> Self {
        SniResolver { store, fallback }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name().map(|s| s.to_ascii_lowercase());
        Some(
            self.store
                .load()
                .lookup(sni.as_deref())
                .unwrap_or_else(|| self.fallback.clone()),
        )
    }
}

/// The server configuration: TLS 1.2+, SNI resolver, ALPN h2 and http/1.1.
pub fn server_config(resolver: SniResolver) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ingress, tls_secret};
    use serde_json::json;

    fn pem_for(names: &[&str]) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    fn leaf(c: &CertifiedKey) -> Vec<u8> {
        c.cert[0].to_vec()
    }

    #[test]
    fn picks_certificates_by_exact_and_wildcard_sni() {
        let (a_crt, a_key) = pem_for(&["a.com"]);
        let (w_crt, w_key) = pem_for(&["*.b.com"]);
        let (d_crt, d_key) = pem_for(&["default"]);
        let ing = ingress(
            "default",
            "web",
            &[],
            json!({"tls": [
                {"hosts": ["a.com"], "secretName": "a"},
                {"hosts": ["*.b.com"], "secretName": "w"},
                {"secretName": "d"}
            ]}),
        );
        let secrets = vec![
            tls_secret("default", "a", &a_crt, &a_key),
            tls_secret("default", "w", &w_crt, &w_key),
            tls_secret("default", "d", &d_crt, &d_key),
        ];
        let mut cache = CertCache::default();
        let store = build(&[ing], &secrets, &mut cache);
        assert!(store.warnings.is_empty(), "{:?}", store.warnings);
        let a = leaf(&store.lookup(Some("a.com")).unwrap());
        let w = leaf(&store.lookup(Some("x.b.com")).unwrap());
        let d = leaf(&store.lookup(Some("other.org")).unwrap());
        assert_ne!(a, w);
        assert_ne!(a, d);
        assert_ne!(w, d);
        assert_eq!(
            leaf(&store.lookup(Some("y.x.b.com")).unwrap()),
            d,
            "wildcard covers one label only"
        );
        assert_eq!(leaf(&store.lookup(None).unwrap()), d);
        assert_eq!(cache.parsed.len(), 3);
    }

    #[test]
    fn bad_or_missing_secrets_are_warnings_not_failures() {
        let (crt, key) = pem_for(&["ok.com"]);
        let mut broken = (*tls_secret("default", "broken", "not pem", "nope")).clone();
        broken.metadata.resource_version = Some("1".into());
        let ing = ingress(
            "default",
            "web",
            &[],
            json!({"tls": [
                {"hosts": ["missing.com"], "secretName": "missing"},
                {"hosts": ["broken.com"], "secretName": "broken"},
                {"hosts": ["ok.com"], "secretName": "ok"}
            ]}),
        );
        let store = build(
            &[ing],
            &[Arc::new(broken), tls_secret("default", "ok", &crt, &key)],
            &mut CertCache::default(),
        );
        assert_eq!(store.warnings.len(), 2, "{:?}", store.warnings);
        assert!(
            store.warnings[0].contains("not found"),
            "{}",
            store.warnings[0]
        );
        assert!(
            store.warnings[1].contains("no PEM certificate"),
            "{}",
            store.warnings[1]
        );
        assert!(store.lookup(Some("ok.com")).is_some());
        assert!(store.lookup(Some("broken.com")).is_none());
    }

    #[test]
    fn secrets_from_another_namespace_are_not_used() {
        let (crt, key) = pem_for(&["a.com"]);
        let ing = ingress(
            "team-a",
            "web",
            &[],
            json!({"tls": [{"hosts": ["a.com"], "secretName": "cert"}]}),
        );
        let store = build(
            &[ing],
            &[tls_secret("team-b", "cert", &crt, &key)],
            &mut CertCache::default(),
        );
        assert!(store.lookup(Some("a.com")).is_none());
        assert_eq!(store.warnings.len(), 1);
    }
}
