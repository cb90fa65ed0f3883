//! Request and response bodies. Store records are never serialised directly.
use chrono::{DateTime, Utc};
use identsphere_core::{
    service::IssuedTokens,
    store::{Session, User},
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// A user (API.md §2).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    /// Opaque id.
    pub id: String,
    /// Email address.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// Whether the address is verified.
    pub email_verified: bool,
    /// Creation time (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserResponse {
    fn from(u: User) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email.to_string(),
            name: u.name,
            email_verified: u.email_verified,
            created_at: u.created_at,
        }
    }
}

/// A session (API.md §2).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// Opaque id.
    pub id: String,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Last sign-in or refresh.
    pub last_seen_at: DateTime<Utc>,
    /// Client address at sign-in.
    pub ip: Option<String>,
    /// Client user agent at sign-in.
    pub user_agent: Option<String>,
    /// Whether this is the session making the request.
    pub current: bool,
}

impl SessionResponse {
    pub(crate) fn new(s: Session, current: identsphere_core::SessionId) -> Self {
        Self {
            current: s.id == current,
            id: s.id.to_string(),
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            ip: s.ip,
            user_agent: s.user_agent,
        }
    }
}

/// A page of a list (API.md §2).
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor of the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Sign-up request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupBody {
    /// Email address.
    pub email: String,
    /// Password (10–128 characters).
    #[schema(format = Password)]
    pub password: String,
    /// Display name.
    pub name: Option<String>,
}

/// Answer to requests that must not reveal whether an address is registered.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Always `"accepted"`.
    pub status: &'static str,
    /// What happens next.
    pub message: &'static str,
}

impl Accepted {
    pub(crate) fn new(message: &'static str) -> Self {
        Self {
            status: "accepted",
            message,
        }
    }
}

/// A one-time token from an emailed link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// The `token` query parameter of the link.
    pub token: String,
}

/// An email address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailBody {
    /// Email address.
    pub email: String,
}

/// Sign-in request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// Email address.
    pub email: String,
    /// Password.
    #[schema(format = Password)]
    pub password: String,
}

/// Successful sign-in: the token pair, plus the user.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The tokens.
    #[serde(flatten)]
    pub tokens: TokenPairResponse,
    /// The user.
    pub user: UserResponse,
}

impl LoginResponse {
    pub(crate) fn new(t: IssuedTokens, user: User) -> Self {
        Self {
            tokens: t.into(),
            user: user.into(),
        }
    }
}

/// Refresh request; without a body the `identsphere_refresh` cookie is used.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    /// Refresh token, for clients that do not use cookies.
    pub refresh_token: Option<String>,
}

/// A new token pair.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPairResponse {
    /// `"ok"`.
    pub status: &'static str,
    /// Access token (JWT).
    pub access_token: String,
    /// The successor refresh token.
    pub refresh_token: String,
    /// `"Bearer"`.
    pub token_type: &'static str,
    /// Access-token lifetime in seconds.
    pub expires_in: i64,
    /// The session.
    pub session_id: String,
}

impl From<IssuedTokens> for TokenPairResponse {
    fn from(t: IssuedTokens) -> Self {
        Self {
            status: "ok",
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
            session_id: t.session.id.to_string(),
        }
    }
}

/// Password reset.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordBody {
    /// The token of the emailed link.
    pub token: String,
    /// The new password.
    #[schema(format = Password)]
    pub new_password: String,
}

/// Password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    /// The current password.
    #[schema(format = Password)]
    pub current_password: String,
    /// The new password.
    #[schema(format = Password)]
    pub new_password: String,
}

/// Email change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmailBody {
    /// The new address.
    pub new_email: String,
    /// The current password.
    #[schema(format = Password)]
    pub password: String,
}

/// Profile change; absent fields stay as they are, `null` clears.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeBody {
    /// Display name.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Result of "log out everywhere else".
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedCount {
    /// How many sessions were revoked.
    pub revoked: usize,
}

/// `GET /v1/session`: what the front end needs to render.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    /// The user.
    pub user: UserResponse,
    /// The active organization (none yet).
    #[schema(value_type = Option<Object>)]
    pub organization: Option<serde_json::Value>,
    /// The role in it.
    pub role: Option<String>,
    /// Permission strings: hints for the interface, enforced again by the server.
    pub capabilities: Vec<String>,
}

/// Health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    pub status: &'static str,
    /// Per-component details (readiness).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub checks: Option<serde_json::Value>,
}
