//! Opaque secrets handed to clients (refresh tokens, link tokens) and their hashes.
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use rand::{rngs::OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::fmt;

/// SHA-256 of an opaque token: what the store keeps instead of the token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hashes a token as presented by a client.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time equality, for comparing a presented secret's hash with a stored one.
    pub fn ct_eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// 32 bytes from the OS CSPRNG, base64url without padding, behind `prefix`.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What lists show of a secret to tell it from its siblings: its kind's
/// `prefix` and six characters, far too few to guess the rest from.
pub fn shown_prefix(secret: &str, prefix: &str) -> String {
    secret.chars().take(prefix.chars().count() + 6).collect()
}

/// Keyed derivation of a token from another one (HMAC-SHA256).
///
/// Used for the refresh-token chain: the successor of a token is derived from
/// it under a server key, so that a retired token presented again inside the
/// reuse grace yields the *same* successor without the server ever storing a
/// usable token. Without the server key, a stolen token reveals nothing about
/// its successors.
pub fn derive_token(key: &[u8; 32], prefix: &str, from: &str) -> String {
    format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(hmac_sha256(key, &[from.as_bytes()]))
    )
}

/// A labelled sub-key of the server secret, so one secret never serves two purposes.
pub fn subkey(secret: &[u8], label: &str) -> [u8; 32] {
    hmac_sha256(secret, &[b"identsphere/v1/", label.as_bytes()])
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time comparison of two strings (CSRF tokens and the like).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_show_the_kind_and_six_characters() {
        let key = random_token("isck_");
        assert_eq!(shown_prefix(&key, "isck_"), key[..11]);
        assert_eq!(shown_prefix("isk_ab", "isk_"), "isk_ab");
    }

    #[test]
    fn random_tokens_are_unique_and_prefixed() {
        let a = random_token("rt_");
        let b = random_token("rt_");
        assert_ne!(a, b);
        assert!(a.starts_with("rt_"));
        assert_eq!(a.len(), 3 + 43);
    }

    #[test]
    fn derivation_is_deterministic_and_keyed() {
        let k1 = [1u8; 32];
        let k2 = [2u8; 32];
        assert_eq!(derive_token(&k1, "rt_", "x"), derive_token(&k1, "rt_", "x"));
        assert_ne!(derive_token(&k1, "rt_", "x"), derive_token(&k2, "rt_", "x"));
        assert_ne!(derive_token(&k1, "rt_", "x"), derive_token(&k1, "rt_", "y"));
    }

    #[test]
    fn hash_differs_from_successor() {
        let k = [7u8; 32];
        let t = random_token("rt_");
        let succ = derive_token(&k, "rt_", &t);
        assert_ne!(TokenHash::of(&t), TokenHash::of(&succ));
    }

    #[test]
    fn ct_eq() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
