//! Row types and conversions; private to this backend.
use chrono::{DateTime, Utc};
use identsphere_core::{ids::*, store::*, Email};

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
