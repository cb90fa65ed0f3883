//! Row types and conversions; private to this backend.
use chrono::{DateTime, Utc};
use identsphere_core::{
    ids::*,
    permissions::{Permission, Permissions, RoleName},
    store::*,
    Email,
};

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: uuid::Uuid,
    email: String,
    name: Option<String>,
    email_verified: bool,
    password_hash: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> StoreResult<Self> {
        Ok(User {
            id: UserId(r.id),
            email: Email::from_trusted(r.email),
            name: r.name,
            email_verified: r.email_verified,
            password_hash: r.password_hash,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: uuid::Uuid,
    user_id: uuid::Uuid,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    ip: Option<String>,
    user_agent: Option<String>,
    auth_time: DateTime<Utc>,
    amr: Vec<String>,
    org_id: Option<uuid::Uuid>,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> StoreResult<Self> {
        Ok(Session {
            id: SessionId(r.id),
            user_id: UserId(r.user_id),
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            ip: r.ip,
            user_agent: r.user_agent,
            auth_time: r.auth_time,
            amr: r.amr,
            org_id: r.org_id.map(OrgId),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    kid: String,
    alg: String,
    private_der: Vec<u8>,
    public_jwk: String,
    created_at: DateTime<Utc>,
    retired_at: Option<DateTime<Utc>>,
}

impl TryFrom<KeyRow> for SigningKeyRecord {
    type Error = StoreError;
    fn try_from(r: KeyRow) -> StoreResult<Self> {
        Ok(SigningKeyRecord {
            kid: r.kid,
            alg: r.alg,
            private_der: r.private_der,
            public_jwk: r.public_jwk,
            created_at: r.created_at,
            retired_at: r.retired_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: uuid::Uuid,
    occurred_at: DateTime<Utc>,
    action: String,
    actor_id: Option<uuid::Uuid>,
    org_id: Option<uuid::Uuid>,
    target_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    metadata: String,
}

impl TryFrom<AuditRow> for identsphere_core::audit::AuditEvent {
    type Error = StoreError;
    fn try_from(r: AuditRow) -> StoreResult<Self> {
        Ok(Self {
            id: AuditEventId(r.id),
            occurred_at: r.occurred_at,
            action: r.action,
            actor_id: r.actor_id.map(UserId),
            org_id: r.org_id.map(OrgId),
            target_id: r.target_id,
            ip: r.ip,
            user_agent: r.user_agent,
            metadata: serde_json::from_str(&r.metadata)
                .map_err(|e| StoreError::Backend(Box::new(e)))?,
        })
    }
}

fn role(name: String) -> StoreResult<RoleName> {
    RoleName::parse(&name)
        .map_err(|m| StoreError::Backend(format!("stored role {name:?}: {m}").into()))
}

pub(crate) fn permissions(s: &[String]) -> StoreResult<Permissions> {
    s.iter()
        .map(|p| {
            Permission::parse(p)
                .map_err(|m| StoreError::Backend(format!("stored permission: {m}").into()))
        })
        .collect()
}

pub(crate) fn permission_names(p: &Permissions) -> Vec<String> {
    p.iter().map(|p| p.as_str().to_owned()).collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct OrgRow {
    id: uuid::Uuid,
    name: String,
    require_mfa: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<OrgRow> for Organization {
    type Error = StoreError;
    fn try_from(r: OrgRow) -> StoreResult<Self> {
        Ok(Organization {
            id: OrgId(r.id),
            name: r.name,
            require_mfa: r.require_mfa,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OrgMembershipRow {
    #[sqlx(flatten)]
    org: OrgRow,
    role: String,
    joined_at: DateTime<Utc>,
}

impl TryFrom<OrgMembershipRow> for OrgMembership {
    type Error = StoreError;
    fn try_from(r: OrgMembershipRow) -> StoreResult<Self> {
        Ok(OrgMembership {
            org: r.org.try_into()?,
            role: role(r.role)?,
            joined_at: r.joined_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MembershipRow {
    org_id: uuid::Uuid,
    user_id: uuid::Uuid,
    role: String,
    joined_at: DateTime<Utc>,
    role_permissions: Option<Vec<String>>,
    org_require_mfa: bool,
}

impl TryFrom<MembershipRow> for Membership {
    type Error = StoreError;
    fn try_from(r: MembershipRow) -> StoreResult<Self> {
        Ok(Membership {
            org_id: OrgId(r.org_id),
            user_id: UserId(r.user_id),
            role: role(r.role)?,
            joined_at: r.joined_at,
            role_permissions: r.role_permissions.as_deref().map(permissions).transpose()?,
            org_require_mfa: r.org_require_mfa,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MemberRow {
    user_id: uuid::Uuid,
    email: String,
    name: Option<String>,
    role: String,
    joined_at: DateTime<Utc>,
}

impl TryFrom<MemberRow> for Member {
    type Error = StoreError;
    fn try_from(r: MemberRow) -> StoreResult<Self> {
        Ok(Member {
            user_id: UserId(r.user_id),
            email: Email::from_trusted(r.email),
            name: r.name,
            role: role(r.role)?,
            joined_at: r.joined_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RoleRow {
    name: String,
    permissions: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<RoleRow> for Role {
    type Error = StoreError;
    fn try_from(r: RoleRow) -> StoreResult<Self> {
        Ok(Role {
            name: role(r.name)?,
            permissions: permissions(&r.permissions)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct InvitationRow {
    id: uuid::Uuid,
    org_id: uuid::Uuid,
    email: String,
    role: String,
    invited_by: Option<uuid::Uuid>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    accepted_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<InvitationRow> for Invitation {
    type Error = StoreError;
    fn try_from(r: InvitationRow) -> StoreResult<Self> {
        Ok(Invitation {
            id: InvitationId(r.id),
            org_id: OrgId(r.org_id),
            email: Email::from_trusted(r.email),
            role: role(r.role)?,
            invited_by: r.invited_by.map(UserId),
            created_at: r.created_at,
            expires_at: r.expires_at,
            accepted_at: r.accepted_at,
            revoked_at: r.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: uuid::Uuid,
    user_id: uuid::Uuid,
    org_id: Option<uuid::Uuid>,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> StoreResult<Self> {
        Ok(ApiKey {
            id: ApiKeyId(r.id),
            user_id: UserId(r.user_id),
            org_id: r.org_id.map(OrgId),
            name: r.name,
            prefix: r.prefix,
            scopes: r.scopes,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LinkRow {
    user_id: uuid::Uuid,
    purpose: String,
    new_email: Option<String>,
    proof_hash: Option<Vec<u8>>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl TryFrom<LinkRow> for PendingLink {
    type Error = StoreError;
    fn try_from(r: LinkRow) -> StoreResult<Self> {
        let purpose = [
            TokenPurpose::VerifyEmail,
            TokenPurpose::ResetPassword,
            TokenPurpose::ChangeEmail,
        ]
        .into_iter()
        .find(|p| p.as_str() == r.purpose)
        .ok_or_else(|| {
            StoreError::Backend(format!("unknown link purpose {:?}", r.purpose).into())
        })?;
        let proof = match r.proof_hash {
            Some(bytes) => Some(identsphere_core::secret::TokenHash(
                bytes
                    .try_into()
                    .map_err(|_| StoreError::Backend("a proof hash is not 32 bytes".into()))?,
            )),
            None => None,
        };
        Ok(PendingLink {
            user_id: UserId(r.user_id),
            purpose,
            new_email: r.new_email.map(Email::from_trusted),
            proof,
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}
