//! Signing keys: one HS256 secret, or stored, rotatable RS256/EdDSA key pairs
//! published in the JWKS.
use super::Expiring;
use crate::{
    error::{CoreError, Result},
    store::{KeyStore, SigningKeyRecord},
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::{collections::HashMap, str::FromStr, sync::RwLock};

/// The access-token signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlg {
    /// HMAC-SHA256 with the server secret.
    Hs256,
    /// RSA 2048 PKCS#1 v1.5 with SHA-256.
    Rs256,
    /// Ed25519.
    EdDsa,
}

impl JwtAlg {
    fn algorithm(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::Rs256 => Algorithm::RS256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
        }
    }
}

impl FromStr for JwtAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "HS256" => Ok(Self::Hs256),
            "RS256" => Ok(Self::Rs256),
            "EdDSA" => Ok(Self::EdDsa),
            other => Err(format!(
                "unsupported algorithm {other:?}: use HS256, RS256 or EdDSA"
            )),
        }
    }
}

/// The server secret: the HS256 key, and the root of internal sub-keys.
#[derive(Clone)]
pub struct SigningSecret(SecretString);

impl SigningSecret {
    /// Fewest bytes accepted (RFC 7518 §3.2: the key must be at least the hash size).
    pub const MIN_BYTES: usize = 32;

    /// Wraps a secret, refusing one shorter than [`Self::MIN_BYTES`].
    ///
    /// # Errors
    /// A message naming the rule.
    pub fn new(secret: SecretString) -> Result<Self, String> {
        if secret.expose_secret().len() < Self::MIN_BYTES {
            return Err(format!("must be at least {} bytes", Self::MIN_BYTES));
        }
        Ok(Self(secret))
    }

    /// The secret's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.0.expose_secret().as_bytes()
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

struct Verifier {
    key: DecodingKey,
    jwk: Option<Value>,
}

struct Keys {
    signing: (Option<String>, EncodingKey),
    verifying: HashMap<Option<String>, Verifier>,
    loaded_at: DateTime<Utc>,
}

/// The keys in use: signs with the newest, validates with every published one.
pub struct KeyRing {
    alg: JwtAlg,
    issuer: String,
    audience: String,
    /// How long retired keys stay published: the access-token lifetime.
    publish_for: Duration,
    keys: RwLock<Keys>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn internal(e: impl std::fmt::Display) -> CoreError {
    CoreError::Internal(e.to_string())
}

impl KeyRing {
    /// An HS256 ring around the server secret.
    pub fn hs256(secret: &SigningSecret, issuer: &str, audience: &str, now: DateTime<Utc>) -> Self {
        let mut verifying = HashMap::new();
        verifying.insert(
            None,
            Verifier {
                key: DecodingKey::from_secret(secret.bytes()),
                jwk: None,
            },
        );
        Self {
            alg: JwtAlg::Hs256,
            issuer: issuer.into(),
            audience: audience.into(),
            publish_for: Duration::zero(),
            keys: RwLock::new(Keys {
                signing: (None, EncodingKey::from_secret(secret.bytes())),
                verifying,
                loaded_at: now,
            }),
        }
    }

    /// An asymmetric ring backed by `store`; generates the first key when the
    /// store has none for `alg`.
    ///
    /// # Errors
    /// Store failures and unusable key material.
    pub async fn asymmetric(
        alg: JwtAlg,
        store: &dyn KeyStore,
        issuer: &str,
        audience: &str,
        publish_for: Duration,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        if alg == JwtAlg::Hs256 {
            return Err(internal("HS256 is not an asymmetric algorithm"));
        }
        let records = store.list_signing_keys().await?;
        if !records
            .iter()
            .any(|k| k.alg == alg.as_str() && k.retired_at.is_none())
        {
            store.insert_signing_key(&generate_key(alg, now)?).await?;
        }
        let keys = load(alg, &store.list_signing_keys().await?, publish_for, now)?;
        Ok(Self {
            alg,
            issuer: issuer.into(),
            audience: audience.into(),
            publish_for,
            keys: RwLock::new(keys),
        })
    }

    /// Re-reads the keys from `store` (another instance may have rotated them).
    ///
    /// # Errors
    /// Store failures and unusable key material.
    pub async fn reload(&self, store: &dyn KeyStore, now: DateTime<Utc>) -> Result<()> {
        if self.alg == JwtAlg::Hs256 {
            return Ok(());
        }
        let keys = load(
            self.alg,
            &store.list_signing_keys().await?,
            self.publish_for,
            now,
        )?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        Ok(())
    }

    /// Whether the ring was loaded long enough ago to be worth reloading when an unknown `kid` shows up.
    pub fn stale(&self, now: DateTime<Utc>, after: Duration) -> bool {
        self.alg != JwtAlg::Hs256
            && now
                - self
                    .keys
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .loaded_at
                > after
    }

    /// Makes a new key the signing key; earlier keys stay published for the
    /// access-token lifetime, then are deleted.
    ///
    /// # Errors
    /// Store failures, or an HS256 ring (rotate the secret instead).
    pub async fn rotate(&self, store: &dyn KeyStore, now: DateTime<Utc>) -> Result<String> {
        if self.alg == JwtAlg::Hs256 {
            return Err(internal(
                "HS256 keys are rotated by changing IDENTSPHERE_JWT_SECRET",
            ));
        }
        let key = generate_key(self.alg, now)?;
        store.insert_signing_key(&key).await?;
        store.retire_signing_keys_except(&key.kid, now).await?;
        store
            .delete_signing_keys_retired_before(now - self.publish_for - Duration::minutes(1))
            .await?;
        self.reload(store, now).await?;
        Ok(key.kid)
    }

    /// The signing algorithm.
    pub fn alg(&self) -> JwtAlg {
        self.alg
    }

    /// Signs `claims`.
    ///
    /// # Errors
    /// Only when the key is unusable.
    pub fn sign<C: serde::Serialize>(&self, claims: &C) -> Result<String> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let mut header = Header::new(self.alg.algorithm());
        header.kid = keys.signing.0.clone();
        encode(&header, claims, &keys.signing.1).map_err(internal)
    }

    /// Validates signature, algorithm, `iss`, `aud` and `exp` (against `now`),
    /// and that the token has every claim of `C`: an access token lacks a
    /// machine token's `client_id`, a machine token an access token's `sid`,
    /// so neither passes for the other.
    ///
    /// # Errors
    /// `Unauthorized` for any invalid token; `Internal` never.
    pub fn verify<C: serde::de::DeserializeOwned + Expiring>(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<C> {
        let header = decode_header(token).map_err(|_| CoreError::Unauthorized)?;
        // No algorithm switching: a token must use exactly the configured algorithm.
        if header.alg != self.alg.algorithm() {
            return Err(CoreError::Unauthorized);
        }
        let kid = if self.alg == JwtAlg::Hs256 {
            None
        } else {
            Some(header.kid.ok_or(CoreError::Unauthorized)?)
        };
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let verifier = keys.verifying.get(&kid).ok_or(CoreError::Unauthorized)?;
        let mut validation = Validation::new(self.alg.algorithm());
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked against the injected clock below.
        validation.validate_exp = false;
        let data =
            decode::<C>(token, &verifier.key, &validation).map_err(|_| CoreError::Unauthorized)?;
        if data.claims.exp() <= now.timestamp() {
            return Err(CoreError::Unauthorized);
        }
        Ok(data.claims)
    }

    /// Whether a token names a `kid` this ring does not know (worth a reload).
    pub fn unknown_kid(&self, token: &str) -> bool {
        let Ok(header) = decode_header(token) else {
            return false;
        };
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        self.alg != JwtAlg::Hs256
            && header.kid.is_some()
            && !keys.verifying.contains_key(&header.kid)
    }

    /// The public keys as a JWK Set (empty for HS256, whose key is secret).
    pub fn jwks(&self) -> Value {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<&Value> = keys
            .verifying
            .values()
            .filter_map(|v| v.jwk.as_ref())
            .collect();
        list.sort_by_key(|v| v["kid"].as_str().map(str::to_owned));
        json!({ "keys": list })
    }
}

fn load(
    alg: JwtAlg,
    records: &[SigningKeyRecord],
    publish_for: Duration,
    now: DateTime<Utc>,
) -> Result<Keys> {
    let mine: Vec<&SigningKeyRecord> = records.iter().filter(|k| k.alg == alg.as_str()).collect();
    let active = mine
        .iter()
        .filter(|k| k.retired_at.is_none())
        .max_by_key(|k| k.created_at)
        .ok_or_else(|| internal("no active signing key"))?;
    let signing = match alg {
        JwtAlg::Rs256 => EncodingKey::from_rsa_der(&active.private_der),
        JwtAlg::EdDsa => EncodingKey::from_ed_der(&active.private_der),
        JwtAlg::Hs256 => return Err(internal("HS256 keys are not stored")),
    };
    let mut verifying = HashMap::new();
    for k in mine
        .iter()
        .filter(|k| k.retired_at.is_none_or(|r| r + publish_for > now))
    {
        let jwk: Value = serde_json::from_str(&k.public_jwk).map_err(internal)?;
        let field = |name: &str| {
            jwk[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| internal("malformed stored JWK"))
        };
        let key = match alg {
            JwtAlg::Rs256 => {
                DecodingKey::from_rsa_components(&field("n")?, &field("e")?).map_err(internal)?
            }
            _ => DecodingKey::from_ed_components(&field("x")?).map_err(internal)?,
        };
        verifying.insert(
            Some(k.kid.clone()),
            Verifier {
                key,
                jwk: Some(jwk),
            },
        );
    }
    Ok(Keys {
        signing: (Some(active.kid.clone()), signing),
        verifying,
        loaded_at: now,
    })
}

/// Generates a fresh key pair for `alg`.
fn generate_key(alg: JwtAlg, now: DateTime<Utc>) -> Result<SigningKeyRecord> {
    let kid = uuid::Uuid::now_v7().simple().to_string();
    let (private_der, jwk) = match alg {
        JwtAlg::Rs256 => {
            use rsa::{pkcs1::EncodeRsaPrivateKey, traits::PublicKeyParts};
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(internal)?;
            let der = key.to_pkcs1_der().map_err(internal)?.as_bytes().to_vec();
            let jwk = json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
            });
            (der, jwk)
        }
        JwtAlg::EdDsa => {
            use ring::signature::{Ed25519KeyPair, KeyPair};
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .map_err(internal)?;
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(internal)?;
            let jwk = json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            });
            (pkcs8.as_ref().to_vec(), jwk)
        }
        JwtAlg::Hs256 => return Err(internal("HS256 keys are not generated")),
    };
    Ok(SigningKeyRecord {
        kid,
        alg: alg.as_str().into(),
        private_der,
        public_jwk: jwk.to_string(),
        created_at: now,
        retired_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::AccessClaims;

    fn claims(now: DateTime<Utc>) -> AccessClaims {
        AccessClaims {
            iss: "http://localhost:8080".into(),
            sub: "u1".into(),
            aud: "identsphere".into(),
            exp: now.timestamp() + 900,
            iat: now.timestamp(),
            jti: "j".into(),
            sid: "s".into(),
            org_id: None,
            org_role: None,
            amr: vec!["pwd".into()],
            auth_time: now.timestamp(),
            act: None,
        }
    }

    fn ring(now: DateTime<Utc>) -> KeyRing {
        let secret = SigningSecret::new(SecretString::from("x".repeat(32))).unwrap();
        KeyRing::hs256(&secret, "http://localhost:8080", "identsphere", now)
    }

    #[test]
    fn short_secret_refused() {
        assert!(SigningSecret::new(SecretString::from("x".repeat(31))).is_err());
    }

    #[test]
    fn sign_verify_roundtrip_and_expiry() {
        let now = Utc::now();
        let r = ring(now);
        let t = r.sign(&claims(now)).unwrap();
        assert_eq!(r.verify::<AccessClaims>(&t, now).unwrap(), claims(now));
        assert!(r
            .verify::<AccessClaims>(&t, now + Duration::seconds(900))
            .is_err());
    }

    #[test]
    fn wrong_audience_issuer_or_alg_refused() {
        let now = Utc::now();
        let r = ring(now);
        let mut c = claims(now);
        c.aud = "other".into();
        assert!(r.verify::<AccessClaims>(&r.sign(&c).unwrap(), now).is_err());
        let mut c = claims(now);
        c.iss = "http://evil".into();
        assert!(r.verify::<AccessClaims>(&r.sign(&c).unwrap(), now).is_err());
        // alg=none
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(now)).unwrap());
        assert!(r
            .verify::<AccessClaims>(&format!("{header}.{body}."), now)
            .is_err());
        // HS384 with the same secret
        let t = encode(
            &Header::new(Algorithm::HS384),
            &claims(now),
            &EncodingKey::from_secret(&[b'x'; 32]),
        )
        .unwrap();
        assert!(r.verify::<AccessClaims>(&t, now).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_strings_never_verify(s in ".{0,300}") {
            let now = Utc::now();
            proptest::prop_assert!(ring(now).verify::<AccessClaims>(&s, now).is_err());
        }

        #[test]
        fn tampered_tokens_never_verify(pos in 0usize..1000, byte in 0u8..=255) {
            let now = Utc::now();
            let r = ring(now);
            let t = r.sign(&claims(now)).unwrap();
            let mut bytes = t.into_bytes();
            let i = pos % bytes.len();
            if bytes[i] != byte {
                bytes[i] = byte;
                let tampered = String::from_utf8_lossy(&bytes).into_owned();
                // Base64 has a few equivalent encodings of the last character, so a
                // change may decode to the same bytes; such a token is still valid.
                if let Ok(c) = r.verify::<AccessClaims>(&tampered, now) {
                    proptest::prop_assert_eq!(c, claims(now));
                }
            }
        }
    }
}
