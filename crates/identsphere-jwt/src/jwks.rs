//! The JWK Set: parsing it into verification keys, and the cache that
//! fetches it lazily, refreshes it after a TTL, refetches (rate-limited) for
//! an unknown `kid`, and keeps serving a stale copy for a while when the
//! server cannot be reached.
use crate::{
    algorithm::{Algorithm, KeyKind},
    error::{JwksError, ValidationError},
};
use jsonwebtoken::{
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse},
    DecodingKey,
};
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant},
};
use url::Url;

/// A JWKS larger than this is refused rather than read (a real one is a few KiB).
const MAX_JWKS_BYTES: usize = 1 << 20;

/// One public key from the set.
pub(crate) struct Key {
    kind: KeyKind,
    /// The JWK's own `alg`, when it names one.
    alg: Option<Algorithm>,
    pub(crate) decoding: DecodingKey,
}

impl Key {
    /// Whether this key may verify a token signed with `alg`: the key type and
    /// curve must fit the algorithm, and so must the JWK's `alg` if it has one.
    pub(crate) fn fits(&self, alg: Algorithm) -> bool {
        self.kind == alg.key_kind() && self.alg.is_none_or(|a| a == alg)
    }

    /// Parses one JWK; `None` for anything not usable to verify signatures
    /// (symmetric keys, encryption keys, unknown types, curves or `alg`s, no `kid`).
    fn parse(value: serde_json::Value) -> Option<(String, Self)> {
        let jwk: Jwk = serde_json::from_value(value).ok()?;
        let kid = jwk.common.key_id.clone()?;
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            return None;
        }
        if jwk
            .common
            .key_operations
            .as_ref()
            .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
        {
            return None;
        }
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyKind::Rsa,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => KeyKind::P256,
                EllipticCurve::P384 => KeyKind::P384,
                _ => return None,
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                KeyKind::Ed25519
            }
            // Symmetric ("oct") keys never belong in a public key set.
            AlgorithmParameters::OctetKeyPair(_) | AlgorithmParameters::OctetKey(_) => return None,
        };
        // A JWK `alg` we do not support (HS256, RSA-OAEP, …) rules the key out.
        let alg = match jwk.common.key_algorithm {
            Some(a) => Some(Algorithm::from_name(&a.to_string())?),
            None => None,
        };
        let decoding = DecodingKey::from_jwk(&jwk).ok()?;
        Some((
            kid,
            Self {
                kind,
                alg,
                decoding,
            },
        ))
    }
}

/// One fetched set of keys, by `kid`.
pub(crate) struct KeySet {
    keys: HashMap<String, Vec<Key>>,
    fetched_at: Instant,
}

impl KeySet {
    /// Parses a JWK Set document, skipping the keys it cannot use (RFC 7517 §5).
    fn parse(body: &[u8]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Raw {
            keys: Vec<serde_json::Value>,
        }
        let raw: Raw = serde_json::from_slice(body)
            .map_err(|e| format!("not a JWK Set ({{\"keys\": [...]}}): {e}"))?;
        let mut keys: HashMap<String, Vec<Key>> = HashMap::new();
        for (kid, key) in raw.keys.into_iter().filter_map(Key::parse) {
            keys.entry(kid).or_default().push(key);
        }
        Ok(Self {
            keys,
            fetched_at: Instant::now(),
        })
    }

    /// The keys published under `kid` (usually one).
    pub(crate) fn get(&self, kid: &str) -> Option<&[Key]> {
        self.keys.get(kid).map(Vec::as_slice)
    }

    fn age(&self) -> Duration {
        self.fetched_at.elapsed()
    }
}

/// Cache timings; see the builder's methods of the same names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CachePolicy {
    pub(crate) ttl: Duration,
    pub(crate) refetch_cooldown: Duration,
    pub(crate) max_stale: Duration,
    pub(crate) error_backoff: Duration,
}

/// Bookkeeping of fetch attempts, only touched under the fetch lock.
#[derive(Default)]
struct FetchState {
    /// When the last refetch forced by an unknown `kid` started.
    last_forced: Option<Instant>,
    /// The last failed attempt, cleared by a success.
    last_error: Option<(Instant, JwksError)>,
}

/// The lazily fetched, shared JWKS.
pub(crate) struct KeyCache {
    url: Url,
    client: reqwest::Client,
    policy: CachePolicy,
    current: RwLock<Option<Arc<KeySet>>>,
    /// Fetch attempts started, so a caller that waited on the lock can tell
    /// that someone else tried (and failed) meanwhile.
    attempts: AtomicU64,
    /// Held for the whole of a fetch: concurrent callers wait for one fetch
    /// instead of each starting their own.
    fetch: tokio::sync::Mutex<FetchState>,
}

impl KeyCache {
    pub(crate) fn new(url: Url, client: reqwest::Client, policy: CachePolicy) -> Self {
        Self {
            url,
            client,
            policy,
            current: RwLock::new(None),
            attempts: AtomicU64::new(0),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        }
    }

    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    fn snapshot(&self) -> Option<Arc<KeySet>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn fresh(&self, set: &KeySet) -> bool {
        set.age() < self.policy.ttl
    }

    fn usable_stale(&self, set: &KeySet) -> bool {
        set.age() <= self.policy.ttl.saturating_add(self.policy.max_stale)
    }

    /// A key set that holds `kid`.
    ///
    /// Uses the cached set while it is fresh; fetches when there is none or it
    /// is older than the TTL; and refetches once for an unknown `kid` unless
    /// the set is already newer than this call or a forced refetch happened
    /// within the cooldown.
    pub(crate) async fn keys_for(&self, kid: &str) -> Result<Arc<KeySet>, ValidationError> {
        let started = Instant::now();
        let attempts = self.attempts.load(Ordering::Acquire);
        let set = match self.snapshot() {
            Some(set) if self.fresh(&set) => set,
            seen => self.refresh_expired(seen, attempts).await?,
        };
        if set.get(kid).is_some() || set.fetched_at >= started {
            return Ok(set);
        }
        let attempts = self.attempts.load(Ordering::Acquire);
        self.refetch_for_unknown_kid(set, attempts).await
    }

    /// Replaces a missing or expired set. When a still-usable stale set exists
    /// and another caller is already fetching, answers with the stale set
    /// instead of waiting; when the fetch fails, answers with it too
    /// (stale-if-error, for at most `max_stale` past the TTL).
    async fn refresh_expired(
        &self,
        seen: Option<Arc<KeySet>>,
        attempts: u64,
    ) -> Result<Arc<KeySet>, ValidationError> {
        let stale = seen.filter(|s| self.usable_stale(s));
        let mut state = match &stale {
            Some(stale) => match self.fetch.try_lock() {
                Ok(state) => state,
                Err(_) => return Ok(stale.clone()),
            },
            None => self.fetch.lock().await,
        };
        let current = self.snapshot();
        if let Some(current) = current.filter(|c| self.fresh(c)) {
            return Ok(current); // fetched by someone else while we waited
        }
        let failed = |state: &FetchState| match &stale {
            Some(stale) => Ok(stale.clone()),
            None => Err(unavailable(state, &self.url)),
        };
        if self.attempts.load(Ordering::Acquire) != attempts || self.backing_off(&state) {
            return failed(&state);
        }
        match self.fetch_locked(&mut state).await {
            Some(set) => Ok(set),
            None => failed(&state),
        }
    }

    /// Refetches because a token names a `kid` the set lacks: at most once per
    /// `refetch_cooldown`, so tokens with made-up `kid`s cannot make the app
    /// hammer the key server.
    async fn refetch_for_unknown_kid(
        &self,
        seen: Arc<KeySet>,
        attempts: u64,
    ) -> Result<Arc<KeySet>, ValidationError> {
        let mut state = self.fetch.lock().await;
        if let Some(current) = self.snapshot().filter(|c| !Arc::ptr_eq(c, &seen)) {
            return Ok(current); // someone else fetched while we waited
        }
        if self.attempts.load(Ordering::Acquire) != attempts || self.backing_off(&state) {
            return Err(unavailable(&state, &self.url));
        }
        let now = Instant::now();
        if state
            .last_forced
            .is_some_and(|at| now.duration_since(at) < self.policy.refetch_cooldown)
        {
            return Ok(seen);
        }
        state.last_forced = Some(now);
        self.fetch_locked(&mut state)
            .await
            .ok_or_else(|| unavailable(&state, &self.url))
    }

    fn backing_off(&self, state: &FetchState) -> bool {
        state
            .last_error
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < self.policy.error_backoff)
    }

    /// Fetches and installs a new set; on failure records the error and
    /// answers `None`. The caller holds the fetch lock.
    async fn fetch_locked(&self, state: &mut FetchState) -> Option<Arc<KeySet>> {
        self.attempts.fetch_add(1, Ordering::AcqRel);
        match self.fetch_set().await {
            Ok(set) => {
                let set = Arc::new(set);
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(set.clone());
                state.last_error = None;
                tracing::debug!(url = %self.url, "fetched the JWKS");
                Some(set)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not fetch the JWKS");
                state.last_error = Some((Instant::now(), e));
                None
            }
        }
    }

    async fn fetch_set(&self) -> Result<KeySet, JwksError> {
        let error = |e: &dyn std::fmt::Display| JwksError::new(&self.url, e);
        let mut response = self
            .client
            .get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| error(&e))?;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(error(&"response larger than 1 MiB"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| error(&e))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(error(&"response larger than 1 MiB"));
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::parse(&body).map_err(|e| error(&e))
    }
}

fn unavailable(state: &FetchState, url: &Url) -> ValidationError {
    ValidationError::JwksUnavailable(match &state.last_error {
        Some((_, e)) => e.clone(),
        None => JwksError::new(url, "no keys fetched yet"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn parse_keeps_signing_keys_and_skips_the_rest() {
        let body = json!({ "keys": [
            { "kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "ed", "alg": "EdDSA", "use": "sig" },
            { "kty": "OKP", "crv": "Ed25519", "x": ED_X },
            { "kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "enc", "use": "enc" },
            { "kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "signer", "key_ops": ["sign"] },
            { "kty": "oct", "k": "c2VjcmV0", "kid": "hmac" },
            { "kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "weird-alg", "alg": "RS1" },
            { "kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "oaep", "alg": "RSA-OAEP" },
            { "kty": "whatever", "kid": "unknown" },
        ]});
        let set = KeySet::parse(body.to_string().as_bytes()).unwrap();
        let kids: Vec<&str> = set.keys.keys().map(String::as_str).collect();
        assert_eq!(kids, ["ed"]);
        let ed = &set.get("ed").unwrap()[0];
        assert!(ed.fits(Algorithm::EdDsa));
        assert!(!ed.fits(Algorithm::Rs256));
        assert!(!ed.fits(Algorithm::Es256));
    }

    #[test]
    fn the_jwk_alg_must_match_the_token_alg() {
        let body = json!({ "keys": [
            { "kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "ps", "alg": "PS256" },
            { "kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "any" },
        ]});
        let set = KeySet::parse(body.to_string().as_bytes()).unwrap();
        let ps = &set.get("ps").unwrap()[0];
        assert!(ps.fits(Algorithm::Ps256));
        assert!(!ps.fits(Algorithm::Rs256));
        let any = &set.get("any").unwrap()[0];
        assert!(any.fits(Algorithm::Rs256) && any.fits(Algorithm::Ps512));
        assert!(!any.fits(Algorithm::EdDsa));
    }

    #[test]
    fn not_a_jwk_set_is_an_error() {
        assert!(KeySet::parse(b"[]").is_err());
        assert!(KeySet::parse(b"{\"keys\": 3}").is_err());
        assert!(KeySet::parse(b"<html>").is_err());
        assert!(KeySet::parse(b"{\"keys\": []}").is_ok());
    }
}
