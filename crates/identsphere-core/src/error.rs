//! The outcomes that the API distinguishes. The HTTP layer maps each variant to a
//! status and a stable `code` with an exhaustive match.
use crate::store::StoreError;
use serde::Serialize;

/// Result with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The request field, e.g. `email`.
    pub field: String,
    /// What is wrong with it, safe to show to the user.
    pub message: String,
}

impl FieldError {
    /// A new field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a domain operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Wrong email or password (never says which).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// The password was right but the address is not verified yet.
    #[error("email address not verified")]
    EmailNotVerified,
    /// No valid credential came with the request.
    #[error("authentication required")]
    Unauthorized,
    /// A retired refresh token came back after the reuse grace; the session is revoked.
    #[error("refresh token reused; the session has been revoked")]
    RefreshTokenReused,
    /// A wrong (or already used) second-factor code.
    #[error("invalid verification code")]
    InvalidMfaCode,
    /// An MFA login token is unknown, expired, used, or spent its attempts: sign in again.
    #[error("the MFA login is invalid or has expired; sign in again")]
    InvalidMfaToken,
    /// A passkey assertion was not accepted: unknown credential, failed
    /// verification, or a used or expired ceremony.
    #[error("the passkey was not accepted")]
    PasskeyRejected,
    /// The server is not configured for this feature; the message says how.
    #[error("{0}")]
    NotConfigured(String),
    /// The organization requires a second factor, and the session was not
    /// signed in with one; the message says how to get there.
    #[error("{0}")]
    MfaRequired(String),
    /// The operation needs an authentication newer than the session's (step-up).
    #[error("this operation needs a recent authentication; step up and retry")]
    StepUpRequired,
    /// A one-time link token is unknown, used or expired.
    #[error("the link is invalid or has expired")]
    InvalidLinkToken,
    /// Input failed validation.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// Authenticated but not allowed; the message says what is missing.
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist (or belongs to someone else).
    #[error("not found")]
    NotFound,
    /// The change conflicts with existing state.
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts.
    #[error("too many requests")]
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// The store failed.
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    /// Anything else that is our fault (hashing pool gone, key material broken, ...).
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// A validation error on one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }
}
