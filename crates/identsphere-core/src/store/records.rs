//! What stores keep and return. Secrets appear only as hashes.
use crate::{ids::*, secret::TokenHash, Email};
use chrono::{DateTime, Utc};

/// A user account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Normalised email.
    pub email: Email,
    /// Display name.
    pub name: Option<String>,
    /// Whether the email has been verified.
    pub email_verified: bool,
    /// Argon2id PHC string; `None` for accounts without a password.
    pub password_hash: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A user to insert.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Id.
    pub id: UserId,
    /// Normalised email.
    pub email: Email,
    /// Display name.
    pub name: Option<String>,
    /// Whether the email is already verified.
    pub email_verified: bool,
    /// Argon2id PHC string.
    pub password_hash: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A change to a user; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// New display name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// New email.
    pub email: Option<Email>,
    /// New verification state.
    pub email_verified: Option<bool>,
    /// New password hash.
    pub password_hash: Option<String>,
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Id.
    pub id: SessionId,
    /// Owner.
    pub user_id: UserId,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Last refresh or sign-in.
    pub last_seen_at: DateTime<Utc>,
    /// When the session ends unless refreshed.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Client address at sign-in.
    pub ip: Option<String>,
    /// Client user agent at sign-in.
    pub user_agent: Option<String>,
    /// Time of the last full authentication.
    pub auth_time: DateTime<Utc>,
    /// Authentication methods used (RFC 8176 values).
    pub amr: Vec<String>,
}

impl Session {
    /// Not revoked and not expired at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// A session to insert.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Id.
    pub id: SessionId,
    /// Owner.
    pub user_id: UserId,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Expiry unless refreshed.
    pub expires_at: DateTime<Utc>,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Time of authentication.
    pub auth_time: DateTime<Utc>,
    /// Methods used.
    pub amr: Vec<String>,
}

/// A refresh token to insert (its hash only); the store links it to its session.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    /// Id.
    pub id: RefreshTokenId,
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// Which of a user's sessions to revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSelector {
    /// Exactly this one.
    One(SessionId),
    /// All of them but this one ("log out everywhere else").
    AllExcept(SessionId),
    /// All of them.
    All,
}

/// The result of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// This call retired the token and stored the successor.
    Rotated(Session),
    /// The token was retired moments ago (within the grace): the caller may hand
    /// out the same successor again.
    WithinGrace(Session),
    /// The token was retired before the grace: the session has been revoked.
    Reused {
        /// The revoked session.
        session_id: SessionId,
        /// Its owner.
        user_id: UserId,
    },
    /// Unknown or expired token, or its session is revoked or expired.
    Invalid,
}

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Proves control of the account's email.
    VerifyEmail,
    /// Sets a new password.
    ResetPassword,
    /// Confirms a new email address.
    ChangeEmail,
}

impl TokenPurpose {
    /// Stable name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::ChangeEmail => "change_email",
        }
    }
}

/// A one-time token to store.
#[derive(Debug, Clone)]
pub struct NewOneTimeToken {
    /// Id.
    pub id: OneTimeTokenId,
    /// Whose it is.
    pub user_id: UserId,
    /// What it is for.
    pub purpose: TokenPurpose,
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// For [`TokenPurpose::ChangeEmail`]: the address being confirmed.
    pub new_email: Option<Email>,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// A token that has just been consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedToken {
    /// Whose it was.
    pub user_id: UserId,
    /// The address it confirms, for email changes.
    pub new_email: Option<Email>,
}

/// An asymmetric signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Key id (`kid`).
    pub kid: String,
    /// `RS256` or `EdDSA`.
    pub alg: String,
    /// Private key, DER (PKCS#1 for RSA, PKCS#8 for Ed25519).
    pub private_der: Vec<u8>,
    /// Public JWK as JSON.
    pub public_jwk: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it stopped signing; published until tokens it signed have expired.
    pub retired_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}
