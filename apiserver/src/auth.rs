//! Bearer-token authentication.
//!
//! Every request needs `Authorization: Bearer <token>`; anything else is 401. The admin
//! token is generated on first start and kept (mode 0600) in the data dir. Node
//! credentials with narrower rights come with the agent join flow.

use std::collections::HashMap;
use std::path::Path;

use rand::Rng;

use crate::tls::{write_private, TlsError};

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// The tokens the server accepts.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    tokens: HashMap<String, User>,
}

/// 32 random bytes, hex encoded.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Authenticator {
    /// Loads (or creates) the admin token in `dir/admin.token`.
    pub fn load(dir: &Path) -> Result<(Authenticator, String), TlsError> {
        let path = dir.join("admin.token");
        let token = match std::fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let t = new_token();
                write_private(&path, &t)?;
                t
            }
        };
        let mut a = Authenticator::default();
        a.add(&token, User { name: "skiff-admin".into(), groups: vec!["system:masters".into(), "system:authenticated".into()] });
        Ok((a, token))
    }

    pub fn add(&mut self, token: &str, user: User) {
        self.tokens.insert(token.to_string(), user);
    }

    /// The user behind an `Authorization` header value, if any.
    pub fn authenticate(&self, header: Option<&str>) -> Option<&User> {
        let h = header?;
        let (scheme, token) = h.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        // Compare against every token in constant time per token, so timing does not
        // reveal a prefix.
        let token = token.trim().as_bytes();
        self.tokens.iter().find_map(|(t, u)| constant_eq(t.as_bytes(), token).then_some(u))
    }
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
        assert_eq!(a.authenticate(Some(&format!("Bearer {t}"))).unwrap().name, "skiff-admin");
        assert!(a.authenticate(Some("Bearer nope")).is_none());
        assert!(a.authenticate(Some(&format!("Basic {t}"))).is_none());
        assert!(a.authenticate(None).is_none());
    }
}
