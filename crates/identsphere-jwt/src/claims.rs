//! The claims of an IdentSphere access token (API.md §3).
use serde::{Deserialize, Serialize};

/// The claims of a validated IdentSphere access token.
///
/// [`crate::Validator::validate`] returns them; [`crate::RequireAuthLayer`]
/// puts them in the request extensions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: the server's public URL.
    pub iss: String,
    /// Subject: the user id.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: i64,
    /// Unique token id.
    pub jti: String,
    /// Session id. The server checks it against revocations; a validator that
    /// never calls the server cannot, so a revoked session's tokens stay
    /// valid here until they expire.
    pub sid: String,
    /// The active organization, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// The caller's role in the active organization, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_role: Option<String>,
    /// Authentication methods (RFC 8176), e.g. `pwd`, `otp`.
    #[serde(default)]
    pub amr: Vec<String>,
    /// Time of the last full authentication, seconds since the Unix epoch.
    pub auth_time: i64,
    /// The real actor under impersonation (RFC 8693).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
}

/// The RFC 8693 `act` claim: who is acting on behalf of [`Claims::sub`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The acting user (an administrator impersonating the subject).
    pub sub: String,
}

impl Claims {
    /// The claims a token must carry, whatever their order of checking.
    pub(crate) const REQUIRED: [&'static str; 8] =
        ["iss", "sub", "aud", "exp", "iat", "jti", "sid", "auth_time"];

    /// Whether an administrator is acting as the subject.
    pub fn is_impersonated(&self) -> bool {
        self.act.is_some()
    }
}
