//! Access tokens (JWT): claims, keys, signing and validation.
mod keys;

pub use keys::{JwtAlg, KeyRing, SigningSecret};

use serde::{Deserialize, Serialize};

/// The claims of an access token (API.md §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: the public URL.
    pub iss: String,
    /// Subject: the user id.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time.
    pub iat: i64,
    /// Unique token id.
    pub jti: String,
    /// Session id.
    pub sid: String,
    /// Active organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// Role in the active organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_role: Option<String>,
    /// Authentication methods (RFC 8176).
    #[serde(default)]
    pub amr: Vec<String>,
    /// Time of the last full authentication.
    pub auth_time: i64,
    /// The real actor under impersonation (RFC 8693).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
}

/// Claims with an expiry: every token this server signs.
pub trait Expiring {
    /// Expiry, seconds since the epoch.
    fn exp(&self) -> i64;
}

impl Expiring for AccessClaims {
    fn exp(&self) -> i64 {
        self.exp
    }
}

/// The claims of a machine token (`POST /v1/tokens`). It has no `sid`, so
/// session validators (the server's and `identsphere-jwt`) refuse it; the
/// server accepts it only while its record (`jti`) exists, unrevoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineClaims {
    /// Issuer: the public URL.
    pub iss: String,
    /// Subject: the machine user's id.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time.
    pub iat: i64,
    /// The token's id: its record in the store.
    pub jti: String,
    /// The machine user's client.
    pub client_id: String,
}

impl Expiring for MachineClaims {
    fn exp(&self) -> i64 {
        self.exp
    }
}

/// RFC 8693 `act` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The acting user.
    pub sub: String,
}
