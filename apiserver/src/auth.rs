//! Bearer-token authentication and the node join credentials.
//!
//! Every request needs `Authorization: Bearer <token>`; anything else is 401. Kept in
//! the data dir (mode 0600), created on first start:
//! - `admin.token`: the admin (group `system:masters`).
//! - `join.secret`: what `skiff agent --token` carries to join; it can only call the
//!   join endpoint.
//! - `node-tokens.json`: one credential per joined node (user `system:node:<name>`,
//!   group `system:nodes`), which the authorizer limits to that node's own objects.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rand::Rng;

use crate::tls::{write_private, TlsError};

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }

    /// The node name of a `system:node:<name>` user.
    pub fn node_name(&self) -> Option<&str> {
        if self.groups.iter().any(|g| g == "system:nodes") {
            self.name.strip_prefix("system:node:")
        } else {
            None
        }
    }
}

/// A joined node's record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeCredential {
    pub token: String,
    pub pod_cidr: String,
}

/// The tokens the server accepts.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    tokens: HashMap<String, User>,
    join_secret: String,
    nodes: BTreeMap<String, NodeCredential>,
    nodes_file: PathBuf,
}

/// 32 random bytes, hex encoded.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn load_or_create(path: &Path) -> Result<String, TlsError> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        _ => {
            let t = new_token();
            write_private(path, &t)?;
            Ok(t)
        }
    }
}

fn node_user(name: &str) -> User {
    User {
        name: format!("system:node:{name}"),
        groups: vec!["system:nodes".into(), "system:authenticated".into()],
    }
}

impl Authenticator {
    /// Loads (or creates) the admin token, the join secret and the node credentials.
    pub fn load(dir: &Path) -> Result<(Authenticator, String), TlsError> {
        let token = load_or_create(&dir.join("admin.token"))?;
        let join_secret = load_or_create(&dir.join("join.secret"))?;
        let nodes_file = dir.join("node-tokens.json");
        let nodes: BTreeMap<String, NodeCredential> = std::fs::read_to_string(&nodes_file)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let mut a = Authenticator {
            join_secret,
            nodes_file,
            ..Default::default()
        };
        a.add(
            &token,
            User {
                name: "skiff-admin".into(),
                groups: vec!["system:masters".into(), "system:authenticated".into()],
            },
        );
        for (name, cred) in nodes.clone() {
            a.add(&cred.token, node_user(&name));
        }
        a.nodes = nodes;
        Ok((a, token))
    }

    pub fn add(&mut self, token: &str, user: User) {
        self.tokens.insert(token.to_string(), user);
    }

    /// The user behind an `Authorization` header value, if any.
    pub fn authenticate(&self, header: Option<&str>) -> Option<&User> {
        let token = bearer(header)?;
        // Compare against every token in constant time per token, so timing does not
        // reveal a prefix.
        self.tokens
            .iter()
            .find_map(|(t, u)| constant_eq(t.as_bytes(), token.as_bytes()).then_some(u))
    }

    pub fn is_join_secret(&self, header: Option<&str>) -> bool {
        bearer(header).is_some_and(|t| constant_eq(t.as_bytes(), self.join_secret.as_bytes()))
    }

    pub fn join_secret(&self) -> &str {
        &self.join_secret
    }

    pub fn node(&self, name: &str) -> Option<&NodeCredential> {
        self.nodes.get(name)
    }

    pub fn pod_cidrs(&self) -> Vec<String> {
        self.nodes.values().map(|n| n.pod_cidr.clone()).collect()
    }

    /// Issues and persists a credential for a new node.
    pub fn issue_node(&mut self, name: &str, pod_cidr: &str) -> Result<NodeCredential, TlsError> {
        let cred = NodeCredential {
            token: new_token(),
            pod_cidr: pod_cidr.to_string(),
        };
        self.nodes.insert(name.to_string(), cred.clone());
        self.save()?;
        self.add(&cred.token, node_user(name));
        Ok(cred)
    }

    /// Forgets a node's credential (when its Node object is deleted).
    pub fn revoke_node(&mut self, name: &str) -> Result<(), TlsError> {
        if let Some(cred) = self.nodes.remove(name) {
            self.tokens.remove(&cred.token);
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> Result<(), TlsError> {
        write_private(
            &self.nodes_file,
            &serde_json::to_string_pretty(&self.nodes).expect("serialise"),
        )
    }
}

fn bearer(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_token_is_kept_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (a, t) = Authenticator::load(dir.path()).unwrap();
        let (_, t2) = Authenticator::load(dir.path()).unwrap();
        assert_eq!(t, t2);
        assert_eq!(t.len(), 64);
        assert!(a
            .authenticate(Some(&format!("Bearer {t}")))
            .unwrap()
            .is_admin());
        assert!(a.authenticate(Some("Bearer nope")).is_none());
        assert!(a.authenticate(Some(&format!("Basic {t}"))).is_none());
        assert!(a.authenticate(None).is_none());
        // The join secret is not a login.
        let js = a.join_secret().to_string();
        assert!(a.authenticate(Some(&format!("Bearer {js}"))).is_none());
        assert!(a.is_join_secret(Some(&format!("Bearer {js}"))));
    }

    #[test]
    fn node_credentials_persist_and_can_be_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let (mut a, _) = Authenticator::load(dir.path()).unwrap();
        let cred = a.issue_node("n1", "10.244.1.0/24").unwrap();
        let (b, _) = Authenticator::load(dir.path()).unwrap();
        let u = b
            .authenticate(Some(&format!("Bearer {}", cred.token)))
            .unwrap();
        assert_eq!(u.node_name(), Some("n1"));
        assert!(!u.is_admin());
        assert_eq!(b.node("n1").unwrap().pod_cidr, "10.244.1.0/24");
        a.revoke_node("n1").unwrap();
        assert!(a
            .authenticate(Some(&format!("Bearer {}", cred.token)))
            .is_none());
        let (c, _) = Authenticator::load(dir.path()).unwrap();
        assert!(c.node("n1").is_none());
    }
}
