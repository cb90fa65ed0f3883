//! Row types and conversions; private to this backend.
use chrono::{DateTime, Utc};
use identsphere_core::{ids::*, store::*, Email};

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Backend(format!("timestamp out of range: {ms}").into()))
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: uuid::Uuid,
    email: String,
    name: Option<String>,
    email_verified: bool,
    password_hash: Option<String>,
    created_at: i64,
    updated_at: i64,
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
            created_at: time(r.created_at)?,
            updated_at: time(r.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: uuid::Uuid,
    user_id: uuid::Uuid,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    ip: Option<String>,
    user_agent: Option<String>,
    auth_time: i64,
    amr: String,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> StoreResult<Self> {
        Ok(Session {
            id: SessionId(r.id),
            user_id: UserId(r.user_id),
            created_at: time(r.created_at)?,
            last_seen_at: time(r.last_seen_at)?,
            expires_at: time(r.expires_at)?,
            revoked_at: r.revoked_at.map(time).transpose()?,
            ip: r.ip,
            user_agent: r.user_agent,
            auth_time: time(r.auth_time)?,
            amr: r.amr.split_whitespace().map(str::to_owned).collect(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    kid: String,
    alg: String,
    private_der: Vec<u8>,
    public_jwk: String,
    created_at: i64,
    retired_at: Option<i64>,
}

impl TryFrom<KeyRow> for SigningKeyRecord {
    type Error = StoreError;
    fn try_from(r: KeyRow) -> StoreResult<Self> {
        Ok(SigningKeyRecord {
            kid: r.kid,
            alg: r.alg,
            private_der: r.private_der,
            public_jwk: r.public_jwk,
            created_at: time(r.created_at)?,
            retired_at: r.retired_at.map(time).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: uuid::Uuid,
    occurred_at: i64,
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
            occurred_at: time(r.occurred_at)?,
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
