//! Request and response bodies. Store records are never serialised directly.
use chrono::{DateTime, Utc};
use identsphere_core::{
    audit::AuditEvent,
    service::IssuedTokens,
    store::{ApiKey, Invitation, Member, Organization, PasskeyRecord, Role, Session, User},
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

mod clients;

pub use clients::*;

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
    /// Email address, folded before use: trimmed, NFKC, lower case, domain in
    /// its IDNA ASCII form; quoted local parts and invisible or text-direction
    /// characters are refused (docs/security.md, "Addresses and names").
    pub email: String,
    /// Password (10–128 characters).
    #[schema(format = Password)]
    pub password: String,
    /// Display name, 1–200 characters, no control, invisible or text-direction characters.
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

/// Verification of an address from its emailed link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailBody {
    /// The `token` query parameter of the link.
    pub token: String,
    /// Needed unless the request comes from the browser that signed up
    /// (its `identsphere_signup` cookie): the account's password, chosen
    /// now. Whatever was set up on the account before its address was
    /// proven (sessions, second factors, passkeys, API keys) is removed.
    #[schema(format = Password)]
    pub password: Option<String>,
}

/// A pending email change.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingEmailChangeResponse {
    /// The address awaiting confirmation.
    pub new_email: String,
    /// When the change was requested.
    pub requested_at: chrono::DateTime<chrono::Utc>,
    /// When its link stops working.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// An email address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailBody {
    /// Email address, folded before use: trimmed, NFKC, lower case, domain in
    /// its IDNA ASCII form; quoted local parts and invisible or text-direction
    /// characters are refused (docs/security.md, "Addresses and names").
    pub email: String,
}

/// Sign-in request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// Email address, folded before use: trimmed, NFKC, lower case, domain in
    /// its IDNA ASCII form; quoted local parts and invisible or text-direction
    /// characters are refused (docs/security.md, "Addresses and names").
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
    /// The new address, folded as at sign-up.
    pub new_email: String,
    /// The current password.
    #[schema(format = Password)]
    pub password: String,
}

/// Profile change; absent fields stay as they are, `null` clears.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeBody {
    /// Display name, 1–200 characters, no control, invisible or text-direction characters.
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
    /// The active organization (chosen with switch-organization), if any.
    pub organization: Option<OrganizationRef>,
    /// The caller's role in it.
    pub role: Option<String>,
    /// Permission strings in the active organization: hints for the
    /// interface, enforced again by the server on every request.
    pub capabilities: Vec<String>,
    /// The active organization requires MFA and this session was not signed
    /// in with a second factor: `role` is `null` and `capabilities` empty
    /// until the user signs in with one (or enrolls one and steps up with a code).
    pub mfa_required: bool,
}

/// An organization, briefly.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationRef {
    /// Opaque id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether members must sign in with a second factor to act in it.
    pub require_mfa: bool,
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

/// A page request: `?limit=&cursor=` (API.md §2).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–100 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The store's page request; a malformed cursor is a validation error.
    pub(crate) fn page<C: std::str::FromStr>(
        &self,
    ) -> Result<identsphere_core::store::PageRequest<C>, identsphere_core::CoreError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=100).contains(&limit) {
            return Err(identsphere_core::CoreError::field("limit", "must be 1–100"));
        }
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(c.parse().map_err(|_| {
                identsphere_core::CoreError::field("cursor", "not a cursor from this list")
            })?),
        };
        Ok(identsphere_core::store::PageRequest { after, limit })
    }
}

impl<T: ToSchema> Page<T> {
    /// A page of `items`; the cursor is the last item's id when the page is full.
    pub(crate) fn of<R>(
        records: Vec<R>,
        limit: u32,
        cursor: impl Fn(&R) -> String,
        item: impl Fn(R) -> T,
    ) -> Self {
        let next_cursor = if records.len() >= limit as usize {
            records.last().map(cursor)
        } else {
            None
        };
        Self {
            items: records.into_iter().map(item).collect(),
            next_cursor,
        }
    }
}

/// An organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationResponse {
    /// Opaque id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether members must be signed in with a second factor (`amr` holding
    /// `mfa`) to act in it; sessions without one get 403 `mfa_required` on its
    /// routes. API keys are not affected.
    pub require_mfa: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The caller's role in it.
    pub role: String,
}

impl OrganizationResponse {
    pub(crate) fn new(o: Organization, role: &identsphere_core::permissions::RoleName) -> Self {
        Self {
            id: o.id.to_string(),
            name: o.name,
            require_mfa: o.require_mfa,
            created_at: o.created_at,
            updated_at: o.updated_at,
            role: role.to_string(),
        }
    }
}

/// Create an organization.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationBody {
    /// Display name, 1–100 characters, no control, invisible or text-direction characters.
    pub name: String,
}

/// Change an organization: any of the fields, at least one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganizationBody {
    /// New display name, 1–100 characters, no control, invisible or text-direction characters.
    pub name: Option<String>,
    /// Require members to sign in with a second factor. Setting it needs a
    /// sign-in newer than 5 minutes; turning it on needs this session to be
    /// signed in with a second factor.
    pub require_mfa: Option<bool>,
}

/// A member (API.md §2).
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberResponse {
    /// The user.
    pub user_id: String,
    /// Email address.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// Role.
    pub role: String,
    /// When the user joined.
    pub joined_at: DateTime<Utc>,
}

impl From<Member> for MemberResponse {
    fn from(m: Member) -> Self {
        Self {
            user_id: m.user_id.to_string(),
            email: m.email.to_string(),
            name: m.name,
            role: m.role.to_string(),
            joined_at: m.joined_at,
        }
    }
}

/// A membership after a role change.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipResponse {
    /// The organization.
    pub org_id: String,
    /// The user.
    pub user_id: String,
    /// The new role.
    pub role: String,
    /// When the user joined.
    pub joined_at: DateTime<Utc>,
}

/// A role assignment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// A built-in role (`owner`, `admin`, `member`) or a custom role's name.
    pub role: String,
}

/// A role (API.md §2).
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleResponse {
    /// Name.
    pub name: String,
    /// Permission names.
    pub permissions: Vec<String>,
    /// Whether it is `owner`, `admin` or `member`.
    pub built_in: bool,
}

impl RoleResponse {
    pub(crate) fn new(r: Role, built_in: bool) -> Self {
        Self {
            name: r.name.to_string(),
            permissions: r.permissions.iter().map(ToString::to_string).collect(),
            built_in,
        }
    }
}

/// A new custom role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleBody {
    /// Name: 1–64 characters of a-z, 0-9, `_` and `-`.
    pub name: String,
    /// Permission names from the catalogue or registered `app:*` names.
    pub permissions: Vec<String>,
}

/// A custom role's new permissions.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoleBody {
    /// Permission names (replace the current ones).
    pub permissions: Vec<String>,
}

/// An invitation request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationBody {
    /// Who to invite, folded as at sign-up.
    pub email: String,
    /// The role they get on accepting.
    pub role: String,
}

/// An invitation.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationResponse {
    /// Opaque id.
    pub id: String,
    /// The organization.
    pub org_id: String,
    /// Who is invited.
    pub email: String,
    /// The role they get.
    pub role: String,
    /// `pending` or `expired`.
    pub status: &'static str,
    /// Who invited them.
    pub invited_by: Option<String>,
    /// Sent at.
    pub created_at: DateTime<Utc>,
    /// Expires at (7 days after sending).
    pub expires_at: DateTime<Utc>,
}

impl InvitationResponse {
    pub(crate) fn new(i: Invitation, now: DateTime<Utc>) -> Self {
        Self {
            status: if i.is_pending(now) {
                "pending"
            } else {
                "expired"
            },
            id: i.id.to_string(),
            org_id: i.org_id.to_string(),
            email: i.email.to_string(),
            role: i.role.to_string(),
            invited_by: i.invited_by.map(|u| u.to_string()),
            created_at: i.created_at,
            expires_at: i.expires_at,
        }
    }
}

/// Accepting an invitation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationBody {
    /// The `token` query parameter of the emailed link.
    pub token: String,
    /// Password of the account to create (required when the address has none).
    #[schema(format = Password)]
    pub password: Option<String>,
    /// Name of the account to create (1–200 characters, no control, invisible or text-direction characters).
    pub name: Option<String>,
}

/// An accepted invitation.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedInvitationResponse {
    /// `"accepted"`.
    pub status: &'static str,
    /// The organization joined.
    pub organization_id: String,
    /// The role held there.
    pub role: String,
    /// The member.
    pub user: UserResponse,
    /// When accepting created the account: its first session (also set as cookies).
    pub tokens: Option<TokenPairResponse>,
}

/// Switching the active organization.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchOrganizationBody {
    /// The organization to make active; `null` for none.
    pub org_id: Option<String>,
}

/// A new API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyBody {
    /// Label, 1–100 characters, no control, invisible or text-direction characters.
    pub name: String,
    /// Non-empty list of permission names, plus `users:read`, `users:write`, `scim`
    /// (`*` only where the server allows it).
    pub scopes: Vec<String>,
    /// Optional expiry (RFC 3339), in the future and before the year 10000.
    pub expires_at: Option<DateTime<Utc>>,
    /// For an organization key: the organization (needs `api_keys:manage` there).
    pub org_id: Option<String>,
}

/// An API key (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyResponse {
    /// Opaque id.
    pub id: String,
    /// Label.
    pub name: String,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// The organization of an organization key.
    pub org_id: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for ApiKeyResponse {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes,
            org_id: k.org_id.map(|o| o.to_string()),
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// A key just created: the only response that ever holds its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKeyResponse {
    /// The key.
    #[serde(flatten)]
    pub api_key: ApiKeyResponse,
    /// The secret (`isk_…`): store it now, it is not shown again.
    pub key: String,
}

/// Audit-log filters (API.md §6) with the page.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Dotted action name, e.g. `member.role_changed`.
    pub action: Option<String>,
    /// Only events by this user.
    pub actor_id: Option<String>,
    /// At or after (RFC 3339), in the years 1970–9999.
    pub since: Option<DateTime<Utc>>,
    /// Before (RFC 3339), in the years 1970–9999.
    pub until: Option<DateTime<Utc>>,
    /// Items per page, 1–100 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// An audit event (API.md §6).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventResponse {
    /// Opaque, time-ordered id.
    pub id: String,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// Dotted action name.
    pub action: String,
    /// Who.
    pub actor_id: Option<String>,
    /// Organization.
    pub org_id: Option<String>,
    /// What it was done to.
    pub target_id: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Opaque ids only.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

impl From<AuditEvent> for AuditEventResponse {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id.to_string(),
            occurred_at: e.occurred_at,
            action: e.action,
            actor_id: e.actor_id.map(|u| u.to_string()),
            org_id: e.org_id.map(|o| o.to_string()),
            target_id: e.target_id,
            ip: e.ip,
            user_agent: e.user_agent,
            metadata: e.metadata,
        }
    }
}

/// The answer to a correct password when the account has a second factor.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaRequiredResponse {
    /// `"mfa_required"`.
    pub status: &'static str,
    /// Opaque handle for `POST /v1/auth/mfa/verify`; lives 5 minutes and
    /// dies after 3 wrong codes.
    pub mfa_token: String,
    /// Accepted second factors: `totp`, `recovery_code`.
    pub methods: Vec<&'static str>,
}

/// `POST /v1/auth/login` answers either shape (told apart by `status`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginAnswer {
    /// `status: "ok"`: signed in.
    SignedIn(LoginResponse),
    /// `status: "mfa_required"`: finish with `/v1/auth/mfa/verify`.
    MfaRequired(MfaRequiredResponse),
}

/// Second step of an MFA login: exactly one of `code` and `recovery_code`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaVerifyBody {
    /// The `mfa_token` of the login answer.
    pub mfa_token: String,
    /// A 6-digit TOTP code.
    pub code: Option<String>,
    /// One of the recovery codes.
    pub recovery_code: Option<String>,
}

/// A started TOTP enrollment.
#[derive(Serialize, ToSchema)]
pub struct TotpEnrollResponse {
    /// The secret in base32 (for typing into an authenticator app).
    pub secret: String,
    /// `otpauth://totp/…` (for a QR code).
    pub otpauth_uri: String,
}

/// A TOTP code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// 6 digits.
    pub code: String,
}

/// Recovery codes, shown this once.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesResponse {
    /// Ten single-use codes.
    pub recovery_codes: Vec<String>,
}

/// Password re-confirmation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// The current password.
    #[schema(format = Password)]
    pub password: String,
}

/// Step-up: exactly one of `password`, `code`, or a passkey (`ceremony_id`
/// and `credential`). On an account with a second factor (TOTP or a
/// passkey) the password alone is refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepUpBody {
    /// The current password.
    #[schema(format = Password)]
    pub password: Option<String>,
    /// A TOTP code.
    pub code: Option<String>,
    /// A ceremony from `POST /v1/auth/passkeys/login/start`.
    pub ceremony_id: Option<String>,
    /// The `PublicKeyCredential` from `navigator.credentials.get()`, as JSON,
    /// answering that ceremony with one of the caller's passkeys.
    #[schema(value_type = Option<Object>)]
    pub credential: Option<serde_json::Value>,
}

/// Whether MFA is on.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaStatusResponse {
    /// A confirmed authenticator guards sign-in.
    pub enabled: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
}

/// A started WebAuthn ceremony: pass `publicKey` to the browser
/// (`PublicKeyCredential.parseCreationOptionsFromJSON` or
/// `parseRequestOptionsFromJSON` turn its base64url strings into the
/// buffers `navigator.credentials` takes), then send the result to the
/// matching `finish` with `ceremony_id`. Valid for 5 minutes, once.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyCeremonyResponse {
    /// Names the server-side state of this ceremony.
    pub ceremony_id: String,
    /// `PublicKeyCredentialCreationOptions` or `…RequestOptions` (WebAuthn
    /// Level 2 JSON, binary values base64url-encoded).
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
    /// `"conditional"` when the login asked for the autofill UI: pass it to
    /// `navigator.credentials.get` as `mediation`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mediation: Option<String>,
}

/// The end of a passkey registration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyRegisterFinishBody {
    /// From the start answer.
    pub ceremony_id: String,
    /// The `PublicKeyCredential` from `navigator.credentials.create()`, as
    /// JSON (`credential.toJSON()`: `id`, `rawId`, `type`, `response` with
    /// `attestationObject` and `clientDataJSON` in base64url).
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
    /// A label (1–64 characters, no control, invisible or text-direction characters); `"Passkey"` when absent.
    pub name: Option<String>,
}

/// The end of a passkey login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyLoginFinishBody {
    /// From the start answer.
    pub ceremony_id: String,
    /// The `PublicKeyCredential` from `navigator.credentials.get()`, as JSON
    /// (`credential.toJSON()`; `response.userHandle` is required).
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// How a passkey login should be offered.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PasskeyLoginQuery {
    /// `conditional`: options for the browser's autofill UI (a passkey
    /// offered in the username field). Absent: a modal dialog.
    pub mediation: Option<String>,
}

/// A new name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    /// 1–64 characters, no control, invisible or text-direction characters.
    pub name: String,
}

/// A passkey of the caller (never its key material).
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyResponse {
    /// Opaque id.
    pub id: String,
    /// Label.
    pub name: String,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Last login with it.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<PasskeyRecord> for PasskeyResponse {
    fn from(p: PasskeyRecord) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}
