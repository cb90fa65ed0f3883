//! [`Validator`]: checks an access token's signature against the issuer's
//! JWKS and its claims against the configuration.
use crate::{
    algorithm::Algorithm,
    claims::Claims,
    error::{BuildError, ValidationError},
    jwks::{CachePolicy, KeyCache},
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::{Map, Value};
use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use url::Url;

/// Tokens longer than this are refused unread (IdentSphere's are under 1 KiB).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Validates IdentSphere access tokens offline, with the issuer's public keys.
///
/// Cheap to clone (the key cache is shared by all clones); build one per
/// issuer and audience and keep it in the app's state.
///
/// A validation checks, in this order: the token's shape; `alg` (one of the
/// accepted asymmetric algorithms, never `none` or `HS*`); `kid` (required);
/// the key with that `kid` in the JWKS, which must fit `alg` (key type,
/// curve, and the JWK's own `alg` if set); the signature; the presence of
/// every claim of [`Claims`]; then `iss`, `aud`, `exp` and `nbf` (if present).
#[derive(Clone)]
pub struct Validator {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    keys: KeyCache,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("jwks_url", &self.inner.keys.url().as_str())
            .field("algorithms", &self.inner.algorithms)
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// Starts configuring a validator for tokens from `issuer` (the server's
    /// public URL, e.g. `https://auth.example.com`; a trailing `/` is ignored,
    /// as the server never puts one in `iss`) meant for `audience` (the
    /// server's `IDENTSPHERE_AUDIENCE`, `identsphere` by default).
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> ValidatorBuilder {
        ValidatorBuilder {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: None,
            policy: CachePolicy {
                ttl: ValidatorBuilder::DEFAULT_CACHE_TTL,
                refetch_cooldown: ValidatorBuilder::DEFAULT_REFETCH_COOLDOWN,
                max_stale: ValidatorBuilder::DEFAULT_MAX_STALE,
                error_backoff: ValidatorBuilder::DEFAULT_ERROR_BACKOFF,
            },
            algorithms: Algorithm::DEFAULT.to_vec(),
            leeway: Duration::ZERO,
            client: None,
        }
    }

    /// The expected `iss`.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The expected `aud`.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// Where the keys come from.
    pub fn jwks_url(&self) -> &str {
        self.inner.keys.url().as_str()
    }

    /// Validates `token` (the compact JWS, without `Bearer `) and returns its claims.
    ///
    /// The first call fetches the JWKS; later calls use the cache (see
    /// [`ValidatorBuilder`] for when it is refreshed).
    ///
    /// # Errors
    /// A [`ValidationError`] naming the first rule the token breaks, or
    /// [`ValidationError::JwksUnavailable`] when the keys cannot be fetched
    /// and no usable cached copy exists.
    pub async fn validate(&self, token: &str) -> Result<Claims, ValidationError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.validate_at(token, now).await
    }

    async fn validate_at(&self, token: &str, now: i64) -> Result<Claims, ValidationError> {
        let jws = Jws::parse(token)?;
        let alg = Algorithm::from_name(&jws.header.alg)
            .filter(|a| self.inner.algorithms.contains(a))
            .ok_or(ValidationError::DisallowedAlgorithm)?;
        let kid = jws
            .header
            .kid
            .as_deref()
            .ok_or(ValidationError::MissingKeyId)?;
        let set = self.inner.keys.keys_for(kid).await?;
        let candidates = set.get(kid).ok_or(ValidationError::UnknownKey)?;
        let mut fitting = candidates.iter().filter(|k| k.fits(alg)).peekable();
        if fitting.peek().is_none() {
            // The key exists but is of another type: an algorithm-confusion attempt.
            return Err(ValidationError::DisallowedAlgorithm);
        }
        let verified = fitting.any(|key| {
            jsonwebtoken::crypto::verify(
                jws.signature,
                jws.signing_input.as_bytes(),
                &key.decoding,
                alg.jsonwebtoken(),
            )
            .unwrap_or(false)
        });
        if !verified {
            return Err(ValidationError::BadSignature);
        }
        let payload: Map<String, Value> = decode_json(jws.payload)
            .map_err(|()| ValidationError::Malformed("payload is not a base64url JSON object"))?;
        self.check_claims(payload, now)
    }

    fn check_claims(
        &self,
        payload: Map<String, Value>,
        now: i64,
    ) -> Result<Claims, ValidationError> {
        if let Some(missing) = Claims::REQUIRED
            .into_iter()
            .find(|c| payload.get(*c).is_none_or(Value::is_null))
        {
            return Err(ValidationError::MissingClaim(missing));
        }
        let leeway = i64::try_from(self.inner.leeway.as_secs()).unwrap_or(i64::MAX);
        if payload.get("iss").and_then(Value::as_str) != Some(&self.inner.issuer) {
            return Err(ValidationError::WrongIssuer);
        }
        // IdentSphere's `aud` is one string; a list is not an IdentSphere token.
        match payload.get("aud") {
            Some(Value::String(a)) if *a == self.inner.audience => {}
            Some(Value::String(_)) => return Err(ValidationError::WrongAudience),
            _ => return Err(ValidationError::InvalidClaim("aud".into())),
        }
        let exp = numeric_date(&payload, "exp")?.ok_or(ValidationError::MissingClaim("exp"))?;
        // RFC 7519 §4.1.4: not accepted *on or after* exp, as the server does.
        if exp <= now.saturating_sub(leeway) {
            return Err(ValidationError::Expired);
        }
        if let Some(nbf) = numeric_date(&payload, "nbf")? {
            if nbf > now.saturating_add(leeway) {
                return Err(ValidationError::NotYetValid);
            }
        }
        serde_path_to_error::deserialize(Value::Object(payload)).map_err(|e| {
            // The path names a field of `Claims` (never a value from the token).
            ValidationError::InvalidClaim(e.path().to_string())
        })
    }
}

/// An integer NumericDate claim, if present.
fn numeric_date(
    payload: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, ValidationError> {
    match payload.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| ValidationError::InvalidClaim(name.into())),
    }
}

/// The parts of a compact JWS (RFC 7515 §7.1), header decoded, signature checked for shape.
struct Jws<'a> {
    header: Header,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    /// Critical extensions we would have to understand (RFC 7515 §4.1.11): we understand none.
    crit: Option<Value>,
}

impl<'a> Jws<'a> {
    fn parse(token: &'a str) -> Result<Self, ValidationError> {
        use ValidationError::Malformed;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Malformed("longer than 16 KiB"));
        }
        let shape = || Malformed("not three dot-separated parts");
        let (signing_input, signature) = token.rsplit_once('.').ok_or_else(shape)?;
        let (header, payload) = signing_input.split_once('.').ok_or_else(shape)?;
        if payload.contains('.') {
            return Err(shape());
        }
        let header: Header =
            decode_json(header).map_err(|()| Malformed("header is not base64url JSON"))?;
        if header.crit.is_some() {
            return Err(Malformed("unsupported critical header"));
        }
        if signature.is_empty() || URL_SAFE_NO_PAD.decode(signature).is_err() {
            return Err(Malformed("signature is not base64url"));
        }
        Ok(Self {
            header,
            signing_input,
            payload,
            signature,
        })
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, ()> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| ())?;
    serde_json::from_slice(&bytes).map_err(|_| ())
}

/// Configures a [`Validator`]; made by [`Validator::builder`].
///
/// # Caching
///
/// The JWKS is fetched on first use and cached for [`Self::cache_ttl`]
/// (default 5 minutes); the next validation after that refetches it.
/// Concurrent validations share one fetch. A token whose `kid` is not in the
/// cached set triggers one immediate refetch, at most once per
/// [`Self::refetch_cooldown`] (default 30 s), so a rotated-in key is picked up
/// at once while made-up `kid`s cannot make the app hammer the server.
///
/// When a refetch fails, the expired set keeps being used for up to
/// [`Self::max_stale`] (default 1 hour) past its TTL (stale-if-error), and no
/// new attempt is made for [`Self::error_backoff`] (default 5 s). Without a
/// usable set, validation fails with [`ValidationError::JwksUnavailable`].
#[derive(Debug)]
#[must_use]
pub struct ValidatorBuilder {
    issuer: String,
    audience: String,
    jwks_url: Option<String>,
    policy: CachePolicy,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    client: Option<reqwest::Client>,
}

impl ValidatorBuilder {
    /// Default [`Self::cache_ttl`]: 5 minutes (the server's JWKS says `max-age=300`).
    pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
    /// Default [`Self::refetch_cooldown`]: 30 seconds.
    pub const DEFAULT_REFETCH_COOLDOWN: Duration = Duration::from_secs(30);
    /// Default [`Self::max_stale`]: 1 hour.
    pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(3600);
    /// Default [`Self::error_backoff`]: 5 seconds.
    pub const DEFAULT_ERROR_BACKOFF: Duration = Duration::from_secs(5);

    /// Where to fetch the keys; defaults to `{issuer}/.well-known/jwks.json`.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// How long a fetched JWKS is used before it is fetched again (default 5 min).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.policy.ttl = ttl;
        self
    }

    /// The least time between two refetches forced by unknown `kid`s
    /// (default 30 s). Until it has passed, further unknown `kid`s are
    /// refused with [`ValidationError::UnknownKey`] without a fetch.
    pub fn refetch_cooldown(mut self, cooldown: Duration) -> Self {
        self.policy.refetch_cooldown = cooldown;
        self
    }

    /// How long past its TTL a cached JWKS may still be used while refetches
    /// fail (default 1 hour; zero turns stale-if-error off).
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.policy.max_stale = max_stale;
        self
    }

    /// How long after a failed fetch no new one is tried (default 5 s);
    /// meanwhile validations use the stale set or fail at once.
    pub fn error_backoff(mut self, backoff: Duration) -> Self {
        self.policy.error_backoff = backoff;
        self
    }

    /// The accepted algorithms (default [`Algorithm::DEFAULT`]: RS256, EdDSA,
    /// ES256). Narrow it to the one your server uses for defence in depth.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default zero: the server and
    /// the app are expected to run NTP; the server sets no `nbf`).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The HTTP client for fetching the JWKS (proxy, extra root certificates,
    /// timeouts). The default has a 10 s timeout and a 5 s connect timeout.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Checks the configuration and builds the validator. Fetches nothing.
    ///
    /// # Errors
    /// An empty issuer, audience or algorithm list, a zero TTL, a JWKS URL that
    /// is not http(s), or a default HTTP client that cannot be built.
    pub fn build(self) -> Result<Validator, BuildError> {
        let issuer = self.issuer.trim_end_matches('/').to_owned();
        if issuer.is_empty() {
            return Err(BuildError::EmptyIssuer);
        }
        if self.audience.is_empty() {
            return Err(BuildError::EmptyAudience);
        }
        if self.algorithms.is_empty() {
            return Err(BuildError::NoAlgorithms);
        }
        if self.policy.ttl.is_zero() {
            return Err(BuildError::ZeroTtl);
        }
        let url = self
            .jwks_url
            .unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json"));
        let jwks_url = match Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
            Ok(_) => {
                return Err(BuildError::JwksUrl {
                    url,
                    reason: "needs an http or https scheme and a host".into(),
                })
            }
            Err(e) => {
                return Err(BuildError::JwksUrl {
                    url,
                    reason: e.to_string(),
                })
            }
        };
        let client = match self.client {
            Some(c) => c,
            None => reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .connect_timeout(Duration::from_secs(5))
                .user_agent(concat!("identsphere-jwt/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(BuildError::HttpClient)?,
        };
        Ok(Validator {
            inner: Arc::new(Inner {
                issuer,
                audience: self.audience,
                algorithms: self.algorithms,
                leeway: self.leeway,
                keys: KeyCache::new(jwks_url, client, self.policy),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validator() -> Validator {
        Validator::builder("https://auth.example.com/", "identsphere")
            .jwks_url("http://127.0.0.1:9/jwks.json")
            .leeway(Duration::from_secs(5))
            .build()
            .unwrap()
    }

    fn claims() -> Map<String, Value> {
        let Value::Object(m) = json!({
            "iss": "https://auth.example.com", "sub": "u1", "aud": "identsphere",
            "exp": 1_000, "iat": 100, "jti": "j", "sid": "s", "auth_time": 100,
            "amr": ["pwd"],
        }) else {
            unreachable!()
        };
        m
    }

    fn with(key: &str, value: Value) -> Map<String, Value> {
        let mut c = claims();
        c.insert(key.into(), value);
        c
    }

    #[test]
    fn builder_defaults_and_refusals() {
        let v = validator();
        assert_eq!(v.issuer(), "https://auth.example.com");
        let v = Validator::builder("https://auth.example.com/", "x")
            .build()
            .unwrap();
        assert_eq!(
            v.jwks_url(),
            "https://auth.example.com/.well-known/jwks.json"
        );
        let b = || Validator::builder("https://a.example", "x");
        assert!(matches!(
            Validator::builder("", "x").build(),
            Err(BuildError::EmptyIssuer)
        ));
        assert!(matches!(
            Validator::builder("https://a", "").build(),
            Err(BuildError::EmptyAudience)
        ));
        assert!(matches!(
            b().algorithms([]).build(),
            Err(BuildError::NoAlgorithms)
        ));
        assert!(matches!(
            b().cache_ttl(Duration::ZERO).build(),
            Err(BuildError::ZeroTtl)
        ));
        assert!(matches!(
            b().jwks_url("file:///etc/passwd").build(),
            Err(BuildError::JwksUrl { .. })
        ));
        assert!(matches!(
            Validator::builder("auth.example.com", "x").build(),
            Err(BuildError::JwksUrl { .. })
        ));
    }

    #[test]
    fn claims_checks_in_order() {
        let v = validator();
        let c = v.check_claims(claims(), 500).unwrap();
        assert_eq!(
            (c.sub.as_str(), c.sid.as_str(), c.amr.as_slice()),
            ("u1", "s", &["pwd".to_owned()][..])
        );
        for missing in Claims::REQUIRED {
            let mut c = claims();
            c.remove(missing);
            assert!(
                matches!(v.check_claims(c, 500), Err(ValidationError::MissingClaim(m)) if m == missing),
                "{missing}"
            );
        }
        assert!(matches!(
            v.check_claims(with("sid", Value::Null), 500),
            Err(ValidationError::MissingClaim("sid"))
        ));
        assert!(matches!(
            v.check_claims(with("iss", json!("https://evil")), 500),
            Err(ValidationError::WrongIssuer)
        ));
        assert!(matches!(
            v.check_claims(with("aud", json!("other")), 500),
            Err(ValidationError::WrongAudience)
        ));
        let invalid = |key: &str, value: Value| match v.check_claims(with(key, value), 500) {
            Err(ValidationError::InvalidClaim(c)) => c,
            other => panic!("{key}: {other:?}"),
        };
        assert_eq!(invalid("aud", json!(["identsphere"])), "aud");
        assert_eq!(invalid("exp", json!("1000")), "exp");
        assert_eq!(invalid("nbf", json!(1.5)), "nbf");
        assert_eq!(invalid("sid", json!(5)), "sid");
        assert_eq!(invalid("amr", json!("pwd")), "amr");
        assert_eq!(invalid("act", json!({ "sub": 1 })), "act.sub");
    }

    #[test]
    fn expiry_and_not_before_honour_the_leeway() {
        let v = validator(); // leeway 5 s, exp 1000
        assert!(v.check_claims(claims(), 1_004).is_ok());
        assert!(matches!(
            v.check_claims(claims(), 1_005),
            Err(ValidationError::Expired)
        ));
        let strict = Validator::builder("https://auth.example.com", "identsphere")
            .build()
            .unwrap();
        assert!(strict.check_claims(claims(), 999).is_ok());
        assert!(matches!(
            strict.check_claims(claims(), 1_000),
            Err(ValidationError::Expired)
        ));
        assert!(v.check_claims(with("nbf", json!(505)), 500).is_ok());
        assert!(matches!(
            v.check_claims(with("nbf", json!(506)), 500),
            Err(ValidationError::NotYetValid)
        ));
    }

    #[test]
    fn malformed_tokens() {
        for (token, why) in [
            ("", "not three dot-separated parts"),
            ("a.b", "not three dot-separated parts"),
            ("a.b.c.d", "not three dot-separated parts"),
            ("!!.e30.c2ln", "header is not base64url JSON"),
            ("e30.e30.c2ln", "header is not base64url JSON"), // {} has no alg
            ("eyJhbGciOiJSUzI1NiJ9.e30.", "signature is not base64url"),
            ("eyJhbGciOiJSUzI1NiJ9.e30.***", "signature is not base64url"),
        ] {
            assert!(
                matches!(Jws::parse(token), Err(ValidationError::Malformed(w)) if w == why),
                "{token}"
            );
        }
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert!(matches!(
            Jws::parse(&long),
            Err(ValidationError::Malformed(_))
        ));
        let crit = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k","crit":["exp"]}"#);
        assert!(matches!(
            Jws::parse(&format!("{crit}.e30.c2ln")),
            Err(ValidationError::Malformed("unsupported critical header"))
        ));
    }

    #[tokio::test]
    async fn algorithm_and_kid_are_checked_before_any_fetch() {
        // The JWKS URL is unreachable: these must fail without trying it.
        let v = validator();
        let token = |header: &str| format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header));
        for header in [
            r#"{"alg":"none","kid":"k"}"#,
            r#"{"alg":"HS256","kid":"k"}"#,
            r#"{"alg":"rs256","kid":"k"}"#,
            r#"{"alg":"PS256","kid":"k"}"#, // supported, but not in the default list
        ] {
            assert!(
                matches!(
                    v.validate(&token(header)).await,
                    Err(ValidationError::DisallowedAlgorithm)
                ),
                "{header}"
            );
        }
        assert!(matches!(
            v.validate(&token(r#"{"alg":"RS256"}"#)).await,
            Err(ValidationError::MissingKeyId)
        ));
    }
}
