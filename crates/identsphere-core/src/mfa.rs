//! Second factors: TOTP (RFC 6238) codes, the sealing of TOTP secrets at
//! rest, and recovery codes.
//!
//! The TOTP arithmetic is `totp-rs`'s; this module only fixes the parameters
//! (SHA-1, 6 digits, 30 s, ±1 step) and reports *which* time step a code
//! matched, so that the store can refuse a step that was already used.
use crate::{
    error::{CoreError, Result},
    ids::UserId,
    secret::{constant_time_eq, TokenHash},
};
use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Nonce,
};
use rand::{rngs::OsRng, RngCore};
use totp_rs::{Algorithm, TOTP};

/// Length of a time step in seconds.
pub const TOTP_STEP_SECS: i64 = 30;
/// Digits of a code.
pub const TOTP_DIGITS: usize = 6;
/// Bytes of a new TOTP secret (160 bits, RFC 4226's recommendation).
pub const TOTP_SECRET_LEN: usize = 20;
/// Recovery codes issued at a time.
pub const RECOVERY_CODE_COUNT: usize = 10;

const NONCE_LEN: usize = 12;

fn totp(secret: &[u8]) -> Result<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        TOTP_DIGITS,
        1,
        TOTP_STEP_SECS as u64,
        secret.to_vec(),
    )
    .map_err(|e| CoreError::Internal(format!("TOTP parameters: {e}")))
}

/// A fresh random TOTP secret.
pub fn new_totp_secret() -> Vec<u8> {
    let mut secret = vec![0u8; TOTP_SECRET_LEN];
    OsRng.fill_bytes(&mut secret);
    secret
}

/// The secret as authenticator apps take it: base32 without padding.
pub fn totp_secret_base32(secret: &[u8]) -> Result<String> {
    Ok(totp(secret)?.get_secret_base32())
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> Result<String> {
    let b32 = totp_secret_base32(secret)?;
    let enc = |s: &str| {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    Ok(format!(
        "otpauth://totp/{}:{}?secret={b32}&issuer={}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECS}",
        enc(issuer),
        enc(account),
        enc(issuer),
    ))
}

/// The time step of a Unix time.
pub fn time_step(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(TOTP_STEP_SECS)
}

/// The step (current, previous or next) whose code is `code`, if any.
/// Every candidate is computed and compared in constant time.
pub fn matching_step(secret: &[u8], code: &str, unix_secs: i64) -> Result<Option<i64>> {
    let code = code.trim();
    if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let totp = totp(secret)?;
    let now = time_step(unix_secs);
    let mut found = None;
    for step in [now - 1, now, now + 1] {
        let Ok(at) = u64::try_from(step * TOTP_STEP_SECS) else {
            continue;
        };
        if constant_time_eq(&totp.generate(at), code) && found.is_none() {
            found = Some(step);
        }
    }
    Ok(found)
}

/// Seals TOTP secrets at rest with AES-256-GCM under a sub-key of the server
/// secret. The user id is the associated data, so a sealed secret copied to
/// another user's row does not open.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A box keyed by `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// `nonce ‖ ciphertext ‖ tag`.
    pub fn seal(&self, user: UserId, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: user.0.as_bytes(),
                },
            )
            .map_err(|_| CoreError::Internal("sealing a TOTP secret failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`SecretBox::seal`] produced for the same user.
    ///
    /// # Errors
    /// `Internal` when the data was tampered with or sealed under another key.
    pub fn open(&self, user: UserId, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return Err(CoreError::Internal("sealed TOTP secret too short".into()));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: user.0.as_bytes(),
                },
            )
            .map_err(|_| {
                CoreError::Internal("a TOTP secret does not open with this server secret".into())
            })
    }
}

/// Ten fresh recovery codes (`xxxxx-xxxxx`, 50 random bits each) and their hashes.
pub fn new_recovery_codes() -> (Vec<String>, Vec<TokenHash>) {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let codes: Vec<String> = (0..RECOVERY_CODE_COUNT)
        .map(|_| {
            let mut bytes = [0u8; 10];
            OsRng.fill_bytes(&mut bytes);
            let chars: String = bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
                .collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect();
    let hashes = codes.iter().map(|c| recovery_code_hash(c)).collect();
    (codes, hashes)
}

/// The hash a recovery code is stored under: case, spaces and dashes are
/// not significant, so a code typed back slightly differently still matches.
pub fn recovery_code_hash(code: &str) -> TokenHash {
    let normalised: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    TokenHash::of(&format!("recovery:{normalised}"))
}

/// An opaque handle of a pending MFA login (`mfa_…`).
pub fn new_mfa_token() -> String {
    crate::secret::random_token("mfa_")
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 Appendix B, SHA-1 rows (8-digit values; the 6-digit code is
    // their last six digits, as truncation is modulo 10^digits).
    const RFC_SECRET: &[u8] = b"12345678901234567890";
    const VECTORS: &[(i64, &str)] = &[
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn rfc6238_vectors_match_their_step() {
        for (t, code8) in VECTORS {
            let code = &code8[2..];
            assert_eq!(
                matching_step(RFC_SECRET, code, *t).unwrap(),
                Some(time_step(*t)),
                "t = {t}"
            );
        }
    }

    #[test]
    fn neighbouring_steps_match_and_farther_ones_do_not() {
        let (t, code8) = VECTORS[3];
        let code = &code8[2..];
        assert_eq!(
            matching_step(RFC_SECRET, code, t + 30).unwrap(),
            Some(time_step(t))
        );
        assert_eq!(
            matching_step(RFC_SECRET, code, t - 30).unwrap(),
            Some(time_step(t))
        );
        assert_eq!(matching_step(RFC_SECRET, code, t + 90).unwrap(), None);
        assert_eq!(matching_step(RFC_SECRET, "12345", t).unwrap(), None);
        assert_eq!(matching_step(RFC_SECRET, "abcdef", t).unwrap(), None);
    }

    #[test]
    fn sealed_secrets_open_only_for_their_user_and_key() {
        let b = SecretBox::new(&[7; 32]);
        let (ann, bob) = (UserId::new(), UserId::new());
        let sealed = b.seal(ann, b"secret").unwrap();
        assert_eq!(b.open(ann, &sealed).unwrap(), b"secret");
        assert!(b.open(bob, &sealed).is_err());
        assert!(SecretBox::new(&[8; 32]).open(ann, &sealed).is_err());
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalised() {
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
        let unique: std::collections::HashSet<_> = hashes.iter().map(|h| h.0).collect();
        assert_eq!(unique.len(), RECOVERY_CODE_COUNT);
        let typed = codes[0].to_uppercase().replace('-', " ");
        assert_eq!(recovery_code_hash(&typed), hashes[0]);
    }

    #[test]
    fn otpauth_uri_names_the_parameters() {
        let uri = otpauth_uri(RFC_SECRET, "Example Co", "ann@example.com").unwrap();
        assert!(uri.starts_with("otpauth://totp/Example%20Co:ann%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"));
        assert!(uri.contains("algorithm=SHA1&digits=6&period=30"));
    }
}
