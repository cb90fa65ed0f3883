//! Bodies of the client API: clients, machine users and machine tokens.
use chrono::{DateTime, Utc};
use identsphere_core::{
    service::IssuedMachineToken,
    store::{Client, ClientUser, MachineToken},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A new client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientBody {
    /// Label, 1–100 characters, no control, invisible or text-direction characters.
    pub name: String,
}

/// A client (never its key).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientResponse {
    /// Opaque id.
    pub client_id: String,
    /// Label.
    pub name: String,
    /// The current key's first characters, to tell keys apart.
    pub key_prefix: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When the key was last replaced.
    pub key_rotated_at: Option<DateTime<Utc>>,
}

impl From<Client> for ClientResponse {
    fn from(c: Client) -> Self {
        Self {
            client_id: c.id.to_string(),
            name: c.name,
            key_prefix: c.key_prefix,
            created_at: c.created_at,
            key_rotated_at: c.key_rotated_at,
        }
    }
}

/// A client with its key, shown in this response only.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientKeyResponse {
    /// The client.
    #[serde(flatten)]
    pub client: ClientResponse,
    /// The client's key (`isck_…`), sent as `x-api-key`: store it now, it is not shown again.
    pub api_key: String,
}

/// A new machine user.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientUserBody {
    /// What it signs in with: 1–128 characters without spaces, control,
    /// invisible or text-direction characters, unique within the client and
    /// compared exactly (never folded). Defaults to its `user_id`.
    pub identifier: Option<String>,
}

/// A machine user (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientUserResponse {
    /// Opaque id: the `sub` of its tokens.
    pub user_id: String,
    /// What it signs in with.
    pub identifier: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<ClientUser> for ClientUserResponse {
    fn from(u: ClientUser) -> Self {
        Self {
            user_id: u.id.to_string(),
            identifier: u.identifier,
            created_at: u.created_at,
        }
    }
}

/// A machine user with its secret, shown in this response only.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClientUserResponse {
    /// The user.
    #[serde(flatten)]
    pub user: ClientUserResponse,
    /// Its secret (`iscs_…`): store it now, it is not shown again.
    pub secret: String,
}

/// A machine user's credentials, exchanged for a token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineTokenBody {
    /// The user's identifier.
    pub identifier: String,
    /// The user's secret.
    #[schema(format = Password)]
    pub secret: String,
    /// Lifetime in seconds, 60–2592000 (the default: 30 days).
    pub expires_in: Option<i64>,
}

/// A machine token, shown in this response only.
#[derive(Debug, Serialize, ToSchema)]
pub struct MachineTokenResponse {
    /// The token's id (also its `jti`), for `DELETE /v1/tokens/{id}`.
    pub id: String,
    /// The token, a JWT, sent as `Authorization: Bearer`. Valid until it
    /// expires, is revoked, or its user or client is deleted; the server
    /// checks its record on every use, so validate it with the server
    /// (`POST /v1/tokens/introspect`, or the library's `Machine` extractor),
    /// not with a JWKS alone.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// The machine user it acts for.
    pub user_id: String,
}

impl From<IssuedMachineToken> for MachineTokenResponse {
    fn from(t: IssuedMachineToken) -> Self {
        Self {
            id: t.token.id.to_string(),
            access_token: t.access_token,
            token_type: "Bearer",
            expires_in: (t.token.expires_at - t.token.created_at).num_seconds(),
            expires_at: t.token.expires_at,
            user_id: t.token.user_id.to_string(),
        }
    }
}

/// A token to check.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntrospectBody {
    /// The machine token.
    pub token: String,
}

/// What a client may learn of a token, in RFC 7662's names. An inactive
/// token (invalid, expired, revoked, deleted, or another client's) is
/// `{"active": false}` and nothing more.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct IntrospectionResponse {
    /// Whether the token is valid now.
    pub active: bool,
    /// The token's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The machine user's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The machine user's identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Issue time, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Expiry, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// `Bearer` when active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
}

impl From<Option<MachineToken>> for IntrospectionResponse {
    fn from(token: Option<MachineToken>) -> Self {
        let Some(t) = token else {
            return Self::default();
        };
        Self {
            active: true,
            jti: Some(t.id.to_string()),
            sub: Some(t.user_id.to_string()),
            username: Some(t.identifier),
            client_id: Some(t.client_id.to_string()),
            iat: Some(t.created_at.timestamp()),
            exp: Some(t.expires_at.timestamp()),
            token_type: Some("Bearer"),
        }
    }
}
