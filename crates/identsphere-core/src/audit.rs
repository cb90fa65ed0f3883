//! Audit events (API.md §6).
//!
//! Metadata can hold opaque identifiers only: [`AuditValue`] has no variant
//! that could carry an email address, a name, a token or a code, so personal
//! data and secrets cannot reach the audit log by construction.
use crate::{
    ids::{
        ApiKeyId, AuditEventId, ClientId, ClientUserId, InvitationId, MachineTokenId, OrgId,
        PasskeyId, SessionId, UserId,
    },
    permissions::RoleName,
};
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

macro_rules! actions {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// What happened.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $(
                #[doc = $name]
                $variant,
            )*
        }

        impl AuditAction {
            /// Every action.
            pub const ALL: &'static [AuditAction] = &[$(Self::$variant),*];

            /// The stable dotted name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// Parses a dotted name.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

actions! {
    UserSignedUp => "user.signed_up",
    EmailVerified => "user.email_verified",
    LoginSucceeded => "user.login.succeeded",
    LoginFailed => "user.login.failed",
    PasswordChanged => "user.password_changed",
    PasswordReset => "user.password_reset",
    EmailChanged => "user.email_changed",
    EmailChangeCancelled => "user.email_change_cancelled",
    AccountClaimed => "user.account_claimed",
    SessionRevoked => "session.revoked",
    RefreshTokenReused => "refresh_token.reused",
    OrganizationCreated => "organization.created",
    OrganizationUpdated => "organization.updated",
    OrganizationDeleted => "organization.deleted",
    OrganizationSwitched => "organization.switched",
    MemberAdded => "member.added",
    MemberRoleChanged => "member.role_changed",
    MemberRemoved => "member.removed",
    RoleCreated => "role.created",
    RoleUpdated => "role.updated",
    RoleDeleted => "role.deleted",
    InvitationCreated => "invitation.created",
    InvitationRevoked => "invitation.revoked",
    InvitationAccepted => "invitation.accepted",
    ApiKeyCreated => "api_key.created",
    ApiKeyRevoked => "api_key.revoked",
    RateLimitExceeded => "rate_limit.exceeded",
    UserLockedOut => "user.locked_out",
    MfaEnabled => "mfa.enabled",
    MfaDisabled => "mfa.disabled",
    MfaFailed => "mfa.failed",
    MfaRecoveryCodeUsed => "mfa.recovery_code_used",
    MfaRecoveryCodesRegenerated => "mfa.recovery_codes_regenerated",
    StepUp => "user.step_up",
    PasskeyRegistered => "passkey.registered",
    PasskeyDeleted => "passkey.deleted",
    ClientCreated => "client.created",
    ClientKeyRotated => "client.key_rotated",
    ClientDeleted => "client.deleted",
    ClientUserCreated => "client_user.created",
    ClientUserDeleted => "client_user.deleted",
    MachineTokenIssued => "machine_token.issued",
    MachineTokenRefused => "machine_token.refused",
    MachineTokenRevoked => "machine_token.revoked",
    MasterAuthFailed => "master.auth_failed",
}

/// An opaque value that metadata may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditValue {
    /// A user id.
    User(UserId),
    /// A session id.
    Session(SessionId),
    /// An organization id.
    Org(OrgId),
    /// A role name (validated: no personal data fits in one).
    Role(RoleName),
    /// An invitation id.
    Invitation(InvitationId),
    /// An API key id (never the key).
    ApiKey(ApiKeyId),
    /// A passkey id (never the credential).
    Passkey(PasskeyId),
    /// A machine client id (never its key).
    Client(ClientId),
    /// A machine user id (never its identifier, which a client may fill
    /// with personal data, nor its secret).
    ClientUser(ClientUserId),
    /// A machine token id (its `jti`, never the token).
    MachineToken(MachineTokenId),
    /// A count.
    Count(u64),
    /// A setting's new value (e.g. `require_mfa`).
    Flag(bool),
    /// A rate limit's name.
    Limit(crate::rate_limit::LimitKind),
    /// Why something happened, from a fixed list in the code (never input).
    Reason(&'static str),
}

impl AuditValue {
    /// The value as stored.
    pub fn to_text(&self) -> String {
        match self {
            Self::User(id) => id.to_string(),
            Self::Session(id) => id.to_string(),
            Self::Org(id) => id.to_string(),
            Self::Role(r) => r.to_string(),
            Self::Invitation(id) => id.to_string(),
            Self::ApiKey(id) => id.to_string(),
            Self::Passkey(id) => id.to_string(),
            Self::Client(id) => id.to_string(),
            Self::ClientUser(id) => id.to_string(),
            Self::MachineToken(id) => id.to_string(),
            Self::Count(n) => n.to_string(),
            Self::Flag(b) => b.to_string(),
            Self::Limit(k) => k.as_str().to_owned(),
            Self::Reason(r) => (*r).to_owned(),
        }
    }
}

impl Serialize for AuditValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Count(n) => s.serialize_u64(*n),
            Self::Flag(b) => s.serialize_bool(*b),
            other => s.serialize_str(&other.to_text()),
        }
    }
}

/// Event metadata: fixed keys chosen in code, opaque values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AuditMetadata(BTreeMap<&'static str, AuditValue>);

impl AuditMetadata {
    /// Adds an entry.
    pub fn with(mut self, key: &'static str, value: AuditValue) -> Self {
        self.0.insert(key, value);
        self
    }

    /// As a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    /// Id.
    pub id: AuditEventId,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// What.
    pub action: AuditAction,
    /// Who did it (none for anonymous attempts).
    pub actor_id: Option<UserId>,
    /// In which organization.
    pub org_id: Option<OrgId>,
    /// What it was done to.
    pub target_id: Option<AuditValue>,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Opaque details.
    pub metadata: AuditMetadata,
}

/// A stored event. It names users by id only and outlives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Id (time-ordered).
    pub id: AuditEventId,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// Dotted action name.
    pub action: String,
    /// Who.
    pub actor_id: Option<UserId>,
    /// Organization.
    pub org_id: Option<OrgId>,
    /// Target.
    pub target_id: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Details.
    pub metadata: serde_json::Value,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this organization's events.
    pub org_id: Option<OrgId>,
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only this actor.
    pub actor_id: Option<UserId>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_roundtrip() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(*a));
        }
        assert_eq!(AuditAction::LoginSucceeded.as_str(), "user.login.succeeded");
        assert_eq!(AuditAction::parse("nope"), None);
    }

    #[test]
    fn metadata_serialises_ids_only() {
        let user = UserId::new();
        let m = AuditMetadata::default()
            .with("user_id", AuditValue::User(user))
            .with("role", AuditValue::Role(RoleName::builtin("admin")))
            .with("count", AuditValue::Count(3))
            .with("require_mfa", AuditValue::Flag(true));
        assert_eq!(
            m.to_json(),
            serde_json::json!({ "user_id": user.to_string(), "role": "admin", "count": 3, "require_mfa": true })
        );
    }
}
