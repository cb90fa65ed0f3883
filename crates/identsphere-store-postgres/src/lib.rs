//! IdentSphere storage on PostgreSQL: the production store, shared by many instances.
//!
//! Every one-time consumption starts with a conditional `UPDATE`: concurrent
//! consumers of one row queue on its row lock, and all but the first find the
//! condition false once it commits. Session revocations are announced with
//! `NOTIFY` so every instance's revocation cache learns of them at once.
#![deny(missing_docs)]

mod clients;
mod jobs;
mod mfa;
mod orgs;
mod passkeys;
mod rows;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use futures::stream::{BoxStream, StreamExt};
use identsphere_core::{
    audit::{AuditEvent, AuditFilter, AuditValue, NewAuditEvent},
    ids::*,
    secret::TokenHash,
    store::*,
    Email,
};
use rows::*;
use sqlx::{
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
    PgPool,
};
use std::str::FromStr;

/// A [`Store`] on a PostgreSQL database file.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

fn backend(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            constraint: db.constraint().unwrap_or("unique").to_owned(),
        },
        sqlx::Error::RowNotFound => StoreError::NotFound,
        other => StoreError::Backend(Box::new(other)),
    }
}

impl PostgresStore {
    /// Connects to a `postgres://` URL.
    ///
    /// # Errors
    /// A malformed URL or an unreachable server.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(backend)?;
        Self::connect_with(options, max_connections).await
    }

    /// Connects to a `postgres://` URL and keeps every table in `schema`,
    /// creating the schema if needed (hosts that share a database; tests).
    ///
    /// # Errors
    /// A malformed URL or schema name, or an unreachable server.
    pub async fn connect_in_schema(
        url: &str,
        schema: &str,
        max_connections: u32,
    ) -> StoreResult<Self> {
        use sqlx::Connection;
        check_schema_name(schema)?;
        let options = PgConnectOptions::from_str(url).map_err(backend)?;
        let mut conn = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(backend)?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(&mut conn)
            .await
            .map_err(backend)?;
        conn.close().await.map_err(backend)?;
        Self::connect_with(options.options([("search_path", schema)]), max_connections).await
    }

    /// Drops `schema` and everything in it.
    ///
    /// # Errors
    /// A malformed URL or schema name, or an unreachable server.
    pub async fn drop_schema(url: &str, schema: &str) -> StoreResult<()> {
        use sqlx::Connection;
        check_schema_name(schema)?;
        let options = PgConnectOptions::from_str(url).map_err(backend)?;
        let mut conn = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(backend)?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&mut conn)
            .await
            .map_err(backend)?;
        conn.close().await.map_err(backend)
    }

    async fn connect_with(options: PgConnectOptions, max_connections: u32) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(backend)?;
        Ok(Self { pool })
    }

    /// Terminates every connection listening for revocations (fault injection
    /// for tests and drills); their owners reconnect and re-read revocations.
    ///
    /// # Errors
    /// Database failures.
    pub async fn terminate_listeners(&self) -> StoreResult<Vec<bool>> {
        sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn check_schema_name(schema: &str) -> StoreResult<()> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Backend(
            format!("invalid schema name {schema:?}: use a-z, 0-9 and _").into(),
        ))
    }
}

/// The NOTIFY channel that carries revoked session ids.
pub const REVOCATION_CHANNEL: &str = "identsphere_revocations";

/// The NOTIFY channel that carries the ids of updated or deleted users (sent
/// by a trigger on `users`, migration 000007).
pub const USER_CHANGE_CHANNEL: &str = "identsphere_user_changes";

/// Announces revocations; delivered to listeners when the transaction commits.
async fn notify_revoked(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ids: &[uuid::Uuid],
) -> StoreResult<()> {
    if !ids.is_empty() {
        sqlx::query("SELECT pg_notify($1, id::text) FROM unnest($2::uuid[]) AS id")
            .bind(REVOCATION_CHANNEL)
            .bind(ids)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn jobs(&self) -> &dyn JobStore {
        self
    }

    async fn change_feed(&self) -> StoreResult<Option<BoxStream<'static, Change>>> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(backend)?;
        listener
            .listen_all([REVOCATION_CHANNEL, USER_CHANGE_CHANNEL])
            .await
            .map_err(backend)?;
        // `try_recv` answers `Ok(None)` when the connection drops: end the stream
        // then, so the caller knows notifications may have been lost.
        let stream = futures::stream::unfold(listener, |mut listener| async move {
            loop {
                let n = match listener.try_recv().await {
                    Ok(Some(n)) => n,
                    Ok(None) | Err(_) => return None,
                };
                let Ok(id) = n.payload().parse() else {
                    continue;
                };
                let change = if n.channel() == USER_CHANGE_CHANNEL {
                    Change::UserChanged(UserId(id))
                } else {
                    Change::SessionRevoked(SessionId(id))
                };
                return Some((change, listener));
            }
        });
        Ok(Some(stream.boxed()))
    }
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, u: &NewUser) -> StoreResult<User> {
        let ms = u.created_at;
        sqlx::query_as::<_, UserRow>(
            "INSERT INTO users (id, email, name, email_verified, password_hash, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
        )
        .bind(u.id.0)
        .bind(u.email.as_str())
        .bind(&u.name)
        .bind(u.email_verified)
        .bind(&u.password_hash)
        .bind(ms)
        .bind(ms)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?
        .try_into()
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>("SELECT * FROM users WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(TryInto::try_into)
            .transpose()
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>("SELECT * FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(TryInto::try_into)
            .transpose()
    }

    async fn users_with_unfolded_email(
        &self,
        after: Option<UserId>,
        limit: u32,
    ) -> StoreResult<Vec<User>> {
        sqlx::query_as::<_, UserRow>(
            "SELECT * FROM users WHERE (octet_length(email) <> char_length(email) OR strpos(email, '\"') > 0) AND ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
        )
        .bind(after.map(|a| a.0))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    async fn update_user(
        &self,
        id: UserId,
        p: &UserPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<User> {
        // COALESCE keeps unchanged columns; the name needs a flag because NULL is a valid new value.
        sqlx::query_as::<_, UserRow>(
            "UPDATE users SET
                name = CASE WHEN $1 THEN $2 ELSE name END,
                email = COALESCE($3, email),
                email_verified = COALESCE($4, email_verified),
                password_hash = COALESCE($5, password_hash),
                updated_at = $6
             WHERE id = $7 RETURNING *",
        )
        .bind(p.name.is_some())
        .bind(p.name.clone().flatten())
        .bind(p.email.as_ref().map(Email::as_str))
        .bind(p.email_verified)
        .bind(&p.password_hash)
        .bind(now)
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound)?
        .try_into()
    }

    async fn replace_password_hash(
        &self,
        id: UserId,
        expected: &str,
        new_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        // One conditional UPDATE: compare and replace cannot interleave with a password change.
        let done = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 AND password_hash = $4")
            .bind(new_hash)
            .bind(now)
            .bind(id.0)
            .bind(expected)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}

const SESSION_COLUMNS: &str =
    "s.id, s.user_id, s.created_at, s.last_seen_at, s.expires_at, s.revoked_at, s.ip, s.user_agent, s.auth_time, s.amr, s.org_id";

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create_session(&self, s: &NewSession, r: &NewRefreshToken) -> StoreResult<Session> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let row = sqlx::query_as::<_, SessionRow>(
            "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, ip, user_agent, auth_time, amr)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *",
        )
        .bind(s.id.0)
        .bind(s.user_id.0)
        .bind(s.created_at)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(&s.ip)
        .bind(&s.user_agent)
        .bind(s.auth_time)
        .bind(&s.amr)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        insert_refresh(&mut tx, s.id, r).await?;
        tx.commit().await.map_err(backend)?;
        row.try_into()
    }

    async fn get_session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        sqlx::query_as::<_, SessionRow>("SELECT * FROM sessions WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(TryInto::try_into)
            .transpose()
    }

    async fn find_session_by_refresh_token(
        &self,
        hash: &TokenHash,
    ) -> StoreResult<Option<Session>> {
        sqlx::query_as::<_, SessionRow>(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s JOIN refresh_tokens r ON r.session_id = s.id WHERE r.token_hash = $1"
        ))
        .bind(hash.as_bytes())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .map(TryInto::try_into)
        .transpose()
    }

    async fn list_active_sessions(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Session>> {
        sqlx::query_as::<_, SessionRow>(
            "SELECT * FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2
             ORDER BY created_at DESC, id DESC",
        )
        .bind(user.0)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
    }

    async fn revoke_sessions(
        &self,
        user: UserId,
        which: SessionSelector,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<SessionId>> {
        let (filter, id) = match which {
            SessionSelector::One(id) => ("AND id = $3", Some(id)),
            SessionSelector::AllExcept(id) => ("AND id <> $3", Some(id)),
            SessionSelector::All => ("", None),
        };
        let sql = format!("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL {filter} RETURNING id");
        let mut q = sqlx::query_scalar::<_, uuid::Uuid>(&sql)
            .bind(now)
            .bind(user.0);
        if let Some(id) = id {
            q = q.bind(id.0);
        }
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let ids = q.fetch_all(&mut *tx).await.map_err(backend)?;
        notify_revoked(&mut tx, &ids).await?;
        tx.commit().await.map_err(backend)?;
        Ok(ids.into_iter().map(SessionId).collect())
    }

    async fn revoked_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<SessionId>> {
        Ok(
            sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM sessions WHERE revoked_at >= $1")
                .bind(since)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?
                .into_iter()
                .map(SessionId)
                .collect(),
        )
    }

    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        successor: &NewRefreshToken,
        grace: Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<RotateOutcome> {
        // The common case is one statement, so one round trip and one commit:
        // retire the token if it and its session are live, extend the session,
        // insert the successor. Concurrent rotations of one token queue on its
        // row lock in the first UPDATE; after the winner commits, the losers
        // re-check `retired_at IS NULL`, match nothing and fall through to the
        // grace/reuse checks below. A session revoked between the two UPDATEs
        // fails the second one's re-check: no row, and the checks below call
        // it invalid.
        let rotated: Option<SessionRow> = sqlx::query_as(
            "WITH retired AS (
                 UPDATE refresh_tokens t SET retired_at = $1
                 FROM sessions s
                 WHERE t.token_hash = $2 AND t.retired_at IS NULL AND t.expires_at > $1
                   AND s.id = t.session_id AND s.revoked_at IS NULL AND s.expires_at > $1
                 RETURNING t.session_id
             ), extended AS (
                 UPDATE sessions SET last_seen_at = $1, expires_at = $3
                 FROM retired
                 WHERE sessions.id = retired.session_id
                   AND sessions.revoked_at IS NULL AND sessions.expires_at > $1
                 RETURNING sessions.*
             ), successor AS (
                 INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at)
                 SELECT $4, id, $5, $6, $3 FROM extended
             )
             SELECT * FROM extended",
        )
        .bind(now)
        .bind(presented.as_bytes())
        .bind(successor.expires_at)
        .bind(successor.id.0)
        .bind(successor.hash.as_bytes())
        .bind(successor.created_at)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        if let Some(session) = rotated {
            return Ok(RotateOutcome::Rotated(session.try_into()?));
        }
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let token: Option<(uuid::Uuid, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT session_id, retired_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(presented.as_bytes())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some((session_id, Some(retired_at))) = token else {
            return Ok(RotateOutcome::Invalid);
        };
        let session: Session =
            match sqlx::query_as::<_, SessionRow>("SELECT * FROM sessions WHERE id = $1")
                .bind(session_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?
            {
                Some(row) => row.try_into()?,
                None => return Ok(RotateOutcome::Invalid),
            };
        if !session.is_active(now) {
            return Ok(RotateOutcome::Invalid);
        }
        // A racer whose clock read came before the winner's sees `retired_at` in
        // its future; that is "just retired", but with no grace it is still reuse.
        if grace > Duration::zero() && now - retired_at < grace {
            return Ok(RotateOutcome::WithinGrace(session));
        }
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(session_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        notify_revoked(&mut tx, &[session_id]).await?;
        tx.commit().await.map_err(backend)?;
        Ok(RotateOutcome::Reused {
            session_id: session.id,
            user_id: session.user_id,
        })
    }

    async fn switch_session_org(
        &self,
        session: SessionId,
        org: Option<OrgId>,
        refresh: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Session>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let row: Option<SessionRow> = sqlx::query_as(
            "UPDATE sessions SET org_id = $1, last_seen_at = $2, expires_at = $3
             WHERE id = $4 AND revoked_at IS NULL AND expires_at > $2 RETURNING *",
        )
        .bind(org.map(|o| o.0))
        .bind(now)
        .bind(refresh.expires_at)
        .bind(session.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        insert_refresh(&mut tx, session, refresh).await?;
        tx.commit().await.map_err(backend)?;
        row.try_into().map(Some)
    }

    async fn reauthenticate_session(
        &self,
        session: SessionId,
        auth_time: DateTime<Utc>,
        amr: &[String],
        refresh: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Session>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let row: Option<SessionRow> = sqlx::query_as(
            "UPDATE sessions SET auth_time = $1, amr = $2, last_seen_at = $3, expires_at = $4
             WHERE id = $5 AND revoked_at IS NULL AND expires_at > $3 RETURNING *",
        )
        .bind(auth_time)
        .bind(amr)
        .bind(now)
        .bind(refresh.expires_at)
        .bind(session.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        insert_refresh(&mut tx, session, refresh).await?;
        tx.commit().await.map_err(backend)?;
        row.try_into().map(Some)
    }
}

async fn insert_refresh(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    session: SessionId,
    r: &NewRefreshToken,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(r.id.0)
    .bind(session.0)
    .bind(r.hash.as_bytes())
    .bind(r.created_at)
    .bind(r.expires_at)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl OneTimeTokenStore for PostgresStore {
    async fn replace_one_time_token(&self, t: &NewOneTimeToken) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("DELETE FROM one_time_tokens WHERE user_id = $1 AND purpose = $2")
            .bind(t.user_id.0)
            .bind(t.purpose.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO one_time_tokens (id, user_id, purpose, token_hash, new_email, proof_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(t.id.0)
        .bind(t.user_id.0)
        .bind(t.purpose.as_str())
        .bind(t.hash.as_bytes())
        .bind(t.new_email.as_ref().map(Email::as_str))
        .bind(t.proof.as_ref().map(|p| p.as_bytes().to_vec()))
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn consume_one_time_token(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConsumedToken>> {
        let row: Option<(uuid::Uuid, Option<String>)> = sqlx::query_as(
            "UPDATE one_time_tokens SET consumed_at = $1
             WHERE token_hash = $2 AND purpose = $3 AND consumed_at IS NULL AND expires_at > $4
             RETURNING user_id, new_email",
        )
        .bind(now)
        .bind(hash.as_bytes())
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.map(|(user_id, new_email)| ConsumedToken {
            user_id: UserId(user_id),
            new_email: new_email.map(Email::from_trusted),
        }))
    }

    async fn find_one_time_token(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<PendingLink>> {
        sqlx::query_as::<_, LinkRow>(
            "SELECT user_id, purpose, new_email, proof_hash, created_at, expires_at FROM one_time_tokens
             WHERE token_hash = $1 AND purpose = $2 AND consumed_at IS NULL AND expires_at > $3",
        )
        .bind(hash.as_bytes())
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .map(TryInto::try_into)
        .transpose()
    }

    async fn pending_link(
        &self,
        user: UserId,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<PendingLink>> {
        sqlx::query_as::<_, LinkRow>(
            "SELECT user_id, purpose, new_email, proof_hash, created_at, expires_at FROM one_time_tokens
             WHERE user_id = $1 AND purpose = $2 AND consumed_at IS NULL AND expires_at > $3
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(user.0)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .map(TryInto::try_into)
        .transpose()
    }

    async fn end_one_time_tokens(
        &self,
        user: UserId,
        purpose: Option<TokenPurpose>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        // Deleted rather than marked: an unused link is worth nothing once
        // ended, and consumed ones are not needed either.
        let ended: Vec<(DateTime<Utc>,)> = sqlx::query_as(
            "DELETE FROM one_time_tokens
             WHERE user_id = $1 AND ($2::text IS NULL OR purpose = $2) AND consumed_at IS NULL
             RETURNING expires_at",
        )
        .bind(user.0)
        .bind(purpose.map(TokenPurpose::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(ended.iter().filter(|(expires,)| *expires > now).count() as u64)
    }
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        sqlx::query_as::<_, KeyRow>("SELECT * FROM signing_keys ORDER BY created_at DESC")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    async fn insert_signing_key(&self, k: &SigningKeyRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_der, public_jwk, created_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(&k.private_der)
        .bind(&k.public_jwk)
        .bind(k.created_at)
        .bind(k.retired_at)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn retire_signing_keys_except(&self, keep: &str, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "UPDATE signing_keys SET retired_at = $1 WHERE kid <> $2 AND retired_at IS NULL",
        )
        .bind(now)
        .bind(keep)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn delete_signing_keys_retired_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        Ok(
            sqlx::query("DELETE FROM signing_keys WHERE retired_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await
                .map_err(backend)?
                .rows_affected(),
        )
    }
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(&self, e: &NewAuditEvent) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_events (id, occurred_at, action, actor_id, org_id, target_id, ip, user_agent, metadata)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
        )
        .bind(e.id.0)
        .bind(e.occurred_at)
        .bind(e.action.as_str())
        .bind(e.actor_id.map(|u| u.0))
        .bind(e.org_id.map(|o| o.0))
        .bind(e.target_id.as_ref().map(AuditValue::to_text))
        .bind(&e.ip)
        .bind(&e.user_agent)
        .bind(e.metadata.to_json().to_string())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn list_audit(
        &self,
        f: &AuditFilter,
        page: PageRequest<AuditEventId>,
    ) -> StoreResult<Vec<AuditEvent>> {
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new("SELECT id, occurred_at, action, actor_id, org_id, target_id, ip, user_agent, metadata::text AS metadata FROM audit_events WHERE TRUE");
        if let Some(org) = f.org_id {
            q.push(" AND org_id = ").push_bind(org.0);
        }
        if let Some(actor) = f.actor_id {
            q.push(" AND actor_id = ").push_bind(actor.0);
        }
        if let Some(action) = f.action {
            q.push(" AND action = ").push_bind(action.as_str());
        }
        if let Some(since) = f.since {
            q.push(" AND occurred_at >= ").push_bind(since);
        }
        if let Some(until) = f.until {
            q.push(" AND occurred_at < ").push_bind(until);
        }
        if let Some(after) = page.after {
            q.push(" AND id < ").push_bind(after.0);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(page.limit));
        q.build_query_as::<AuditRow>()
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }
}
