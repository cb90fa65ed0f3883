//! Why a token was refused, why the keys could not be fetched, and why a
//! validator could not be built. No message ever contains the token.
use std::fmt;

/// Why [`crate::Validator::validate`] refused a token.
///
/// Messages name the rule that failed and never repeat the token or any of
/// its contents, so they are safe to log and to send back to the caller.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// Not a compact JWS, or a part of it is not base64url JSON.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header has no `kid`. IdentSphere always names the signing key, so a
    /// token without one did not come from it.
    #[error("token header has no kid")]
    MissingKeyId,
    /// No key in the JWKS has the token's `kid`, even after a refetch (or a
    /// refetch was not allowed yet: see [`crate::ValidatorBuilder::refetch_cooldown`]).
    #[error("token is signed with an unknown key")]
    UnknownKey,
    /// The `alg` is not accepted (`none`, `HS256`, or not in the configured
    /// list), or does not fit the key named by `kid`.
    #[error("token algorithm is not allowed")]
    DisallowedAlgorithm,
    /// The signature does not verify with the key.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("token has the wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("token has the wrong audience")]
    WrongAudience,
    /// A claim every IdentSphere access token carries is absent.
    #[error("token lacks the required claim {0:?}")]
    MissingClaim(&'static str),
    /// A claim has the wrong type (for example a string `exp`, or a list `aud`).
    /// Holds the claim's name (a path such as `act.sub` when nested).
    #[error("token claim {0:?} has the wrong type")]
    InvalidClaim(String),
    /// The keys could not be fetched and no usable cached copy exists. The
    /// token may be fine: this is the server side's fault, not the caller's.
    #[error("signing keys unavailable: {0}")]
    JwksUnavailable(#[source] JwksError),
}

impl ValidationError {
    /// Whether the failure lies with the key server rather than the token
    /// ([`Self::JwksUnavailable`]): answer 503, not 401.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::JwksUnavailable(_))
    }
}

/// Why the JWKS could not be fetched or read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("GET {url}: {reason}")]
pub struct JwksError {
    url: String,
    reason: String,
}

impl JwksError {
    pub(crate) fn new(url: &url::Url, reason: impl fmt::Display) -> Self {
        Self {
            url: url.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The JWKS URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Why [`crate::ValidatorBuilder::build`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The issuer is empty.
    #[error("issuer must not be empty")]
    EmptyIssuer,
    /// The audience is empty.
    #[error("audience must not be empty")]
    EmptyAudience,
    /// The JWKS URL (given, or derived from the issuer) is not an http(s) URL.
    #[error("JWKS URL {url:?} is not an http(s) URL: {reason}")]
    JwksUrl {
        /// The URL as given or derived.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The list of accepted algorithms is empty.
    #[error("at least one algorithm must be accepted")]
    NoAlgorithms,
    /// The cache TTL is zero.
    #[error("cache_ttl must be greater than zero")]
    ZeroTtl,
    /// The default HTTP client could not be built.
    #[error("HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}
