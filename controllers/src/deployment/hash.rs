//! The `pod-template-hash`: the suffix of a Deployment's ReplicaSet names
//! (`web-5d4c6b8f7`) and the label that keeps the pods of different ReplicaSets of one
//! Deployment apart.
//!
//! Upstream hashes the template with 32-bit FNV-1a, appends the collision count, and
//! writes the decimal value of the hash in a "safe" alphabet without vowels (so a hash
//! never spells a word) and without characters that look alike. skiff hashes the
//! template's JSON rather than Go's printed struct, so its values differ from a real
//! cluster's, but they have the same form and the same properties: stable for one
//! template, different when anything in it changes.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// The label carrying the hash on ReplicaSets, their selectors and their pods.
pub const LABEL: &str = "pod-template-hash";

/// Upstream's `rand.SafeEncodeString` alphabet.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// 32-bit FNV-1a.
pub fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Maps every byte of `s` into the safe alphabet.
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

/// The hash of `template` (ignoring any `pod-template-hash` label already on it) and the
/// Deployment's `status.collisionCount`.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(LABEL);
    }
    // Serializing a typed struct is deterministic: fields in declaration order, maps
    // (BTreeMap) sorted.
    let mut bytes = serde_json::to_vec(&t).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&(c as u32).to_le_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicaset::fixtures::template;

    #[test]
    fn fnv32a_matches_reference_vectors() {
        // Published FNV-1a 32-bit test vectors.
        let cases: &[(&[u8], u32)] = &[
            (b"", 0x811c9dc5),
            (b"a", 0xe40c292c),
            (b"foobar", 0xbf9cf968),
        ];
        for (input, want) in cases {
            assert_eq!(fnv32a(input), *want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn safe_encoding_uses_only_the_safe_alphabet() {
        // Digits map onto ten letters, which is why real hashes look like `5d4c6b8f7`.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
        let h = pod_template_hash(&template("nginx:1"), None);
        assert!(!h.is_empty() && h.len() <= 10, "{h}");
        assert!(h.bytes().all(|b| ALPHABET.contains(&b)), "{h}");
    }

    #[test]
    fn hash_is_stable_and_sensitive_to_changes() {
        let a = pod_template_hash(&template("nginx:1"), None);
        assert_eq!(a, pod_template_hash(&template("nginx:1"), None));
        assert_ne!(a, pod_template_hash(&template("nginx:2"), None));
        assert_ne!(a, pod_template_hash(&template("nginx:1"), Some(1)));
        // The hash label itself does not change the hash (a ReplicaSet's template
        // hashes like its Deployment's).
        let mut labeled = template("nginx:1");
        labeled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(LABEL.into(), a.clone());
        assert_eq!(a, pod_template_hash(&labeled, None));
    }
}
