//! IdentSphere storage on SQLite: the embedded default, for one process.
//!
//! Times are stored as Unix milliseconds.
//!
//! One writer, readers in parallel. SQLite allows one writer at a time; when
//! several connections try to write, the losers get `SQLITE_BUSY` and the busy
//! handler sleeps them in steps of up to 100 ms, which made the tail latency of
//! write-heavy requests (refresh rotation) tens of milliseconds. So every write
//! (single statements, transactions that write, migrations) goes through a pool
//! of exactly one connection: writers queue in-process on that pool, first come
//! first served, and nobody sleeps. Pure reads use a separate pool of read-only
//! connections; in WAL mode they read the last committed state and never wait
//! for the writer. A write sent to the reader pool fails (`SQLITE_READONLY`)
//! instead of quietly contending. `busy_timeout` stays as a backstop for
//! another process (a backup, `sqlite3` at the shell) holding the file.
//!
//! Every one-time consumption starts with its write, and runs on the writer, so
//! concurrent consumers queue instead of racing.
//!
//! Checkpoints run beside the writer ([`checkpoint`]), so no request waits for
//! the WAL to be copied back and synced.
#![deny(missing_docs)]

mod checkpoint;
mod clients;
mod jobs;
mod mfa;
mod orgs;
mod passkeys;
mod rows;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use futures::stream::BoxStream;
use identsphere_core::{
    audit::{AuditEvent, AuditFilter, AuditValue, NewAuditEvent},
    ids::*,
    secret::TokenHash,
    store::*,
    Email,
};
use rows::*;
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    SqlitePool,
};
use std::{str::FromStr, sync::Arc};

/// A [`Store`] on a SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// The only connection that writes (see the crate docs).
    writer: SqlitePool,
    /// Read-only connections for queries that write nothing.
    reader: SqlitePool,
    /// Stops the background checkpointer when the last clone is dropped.
    _checkpointer: Option<Arc<checkpoint::Checkpointer>>,
}

fn backend(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            constraint: db
                .message()
                .rsplit(": ")
                .next()
                .unwrap_or("unique")
                .to_owned(),
        },
        sqlx::Error::RowNotFound => StoreError::NotFound,
        other => StoreError::Backend(Box::new(other)),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at a `sqlite://PATH` URL.
    ///
    /// # Errors
    /// A malformed URL or an unopenable file.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let base = SqliteConnectOptions::from_str(url)
            .map_err(backend)?
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        create_private(url, base.get_filename())?;
        let writer_options = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .pragma(
                "wal_autocheckpoint",
                checkpoint::WRITER_AUTOCHECKPOINT_PAGES,
            )
            .pragma("journal_size_limit", checkpoint::WAL_SIZE_LIMIT_BYTES);
        // The writer connects first: it creates the file and switches it to WAL,
        // which a read-only connection cannot do. It is never closed for being
        // idle or old, so the -wal and -shm files stay while the store lives.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(writer_options)
            .await
            .map_err(backend)?;
        // Readers run beside the writer only in WAL mode. An in-memory database
        // (`sqlite::memory:`, which sqlx opens with a shared cache) has no WAL:
        // there the writer's connection serves reads too.
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&writer)
            .await
            .map_err(backend)?;
        if !journal.eq_ignore_ascii_case("wal") {
            return Ok(Self {
                reader: writer.clone(),
                writer,
                _checkpointer: None,
            });
        }
        let checkpointer = checkpoint::Checkpointer::start(base.clone())
            .await
            .map_err(backend)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(base.read_only(true))
            .await
            .map_err(backend)?;
        Ok(Self {
            writer,
            reader,
            _checkpointer: Some(Arc::new(checkpointer)),
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations")
            .run(&self.writer)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn jobs(&self) -> &dyn JobStore {
        self
    }

    async fn change_feed(&self) -> StoreResult<Option<BoxStream<'static, Change>>> {
        // One process owns a SQLite file, so it makes (and hears of) every change.
        Ok(None)
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, u: &NewUser) -> StoreResult<User> {
        let ms = millis(u.created_at);
        sqlx::query_as::<_, UserRow>(
            "INSERT INTO users (id, email, name, email_verified, password_hash, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(u.id.0)
        .bind(u.email.as_str())
        .bind(&u.name)
        .bind(u.email_verified)
        .bind(&u.password_hash)
        .bind(ms)
        .bind(ms)
        .fetch_one(&self.writer)
        .await
        .map_err(backend)?
        .try_into()
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>("SELECT * FROM users WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?
            .map(TryInto::try_into)
            .transpose()
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>("SELECT * FROM users WHERE email = ?")
            .bind(email.as_str())
            .fetch_optional(&self.reader)
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
            "SELECT * FROM users WHERE (length(CAST(email AS BLOB)) <> length(email) OR instr(email, '\"') > 0) AND (? IS NULL OR id > ?) ORDER BY id LIMIT ?",
        )
        .bind(after.map(|a| a.0))
            .bind(after.map(|a| a.0))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
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
                name = CASE WHEN ? THEN ? ELSE name END,
                email = COALESCE(?, email),
                email_verified = COALESCE(?, email_verified),
                password_hash = COALESCE(?, password_hash),
                updated_at = ?
             WHERE id = ? RETURNING *",
        )
        .bind(p.name.is_some())
        .bind(p.name.clone().flatten())
        .bind(p.email.as_ref().map(Email::as_str))
        .bind(p.email_verified)
        .bind(&p.password_hash)
        .bind(millis(now))
        .bind(id.0)
        .fetch_optional(&self.writer)
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
        let done = sqlx::query(
            "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ? AND password_hash = ?",
        )
        .bind(new_hash)
        .bind(millis(now))
        .bind(id.0)
        .bind(expected)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}

const SESSION_COLUMNS: &str =
    "s.id, s.user_id, s.created_at, s.last_seen_at, s.expires_at, s.revoked_at, s.ip, s.user_agent, s.auth_time, s.amr, s.org_id";

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, s: &NewSession, r: &NewRefreshToken) -> StoreResult<Session> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let row = sqlx::query_as::<_, SessionRow>(
            "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, ip, user_agent, auth_time, amr)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(s.id.0)
        .bind(s.user_id.0)
        .bind(millis(s.created_at))
        .bind(millis(s.created_at))
        .bind(millis(s.expires_at))
        .bind(&s.ip)
        .bind(&s.user_agent)
        .bind(millis(s.auth_time))
        .bind(s.amr.join(" "))
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        insert_refresh(&mut tx, s.id, r).await?;
        tx.commit().await.map_err(backend)?;
        row.try_into()
    }

    async fn get_session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        sqlx::query_as::<_, SessionRow>("SELECT * FROM sessions WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.reader)
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
            "SELECT {SESSION_COLUMNS} FROM sessions s JOIN refresh_tokens r ON r.session_id = s.id WHERE r.token_hash = ?"
        ))
        .bind(hash.as_bytes())
        .fetch_optional(&self.reader)
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
            "SELECT * FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?
             ORDER BY created_at DESC, id DESC",
        )
        .bind(user.0)
        .bind(millis(now))
        .fetch_all(&self.reader)
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
            SessionSelector::One(id) => ("AND id = ?", Some(id)),
            SessionSelector::AllExcept(id) => ("AND id <> ?", Some(id)),
            SessionSelector::All => ("", None),
        };
        let sql = format!("UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL {filter} RETURNING id");
        let mut q = sqlx::query_scalar::<_, uuid::Uuid>(&sql)
            .bind(millis(now))
            .bind(user.0);
        if let Some(id) = id {
            q = q.bind(id.0);
        }
        Ok(q.fetch_all(&self.writer)
            .await
            .map_err(backend)?
            .into_iter()
            .map(SessionId)
            .collect())
    }

    async fn revoked_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<SessionId>> {
        Ok(
            sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM sessions WHERE revoked_at >= ?")
                .bind(millis(since))
                .fetch_all(&self.reader)
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
        let now_ms = millis(now);
        let mut tx = self.writer.begin().await.map_err(backend)?;
        // The write comes first so that this transaction holds SQLite's write lock
        // before it reads anything: concurrent rotations queue here.
        let retired: Option<uuid::Uuid> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET retired_at = ?
             WHERE token_hash = ? AND retired_at IS NULL AND expires_at > ? RETURNING session_id",
        )
        .bind(now_ms)
        .bind(presented.as_bytes())
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        if let Some(session_id) = retired {
            let session: Option<SessionRow> = sqlx::query_as(
                "UPDATE sessions SET last_seen_at = ?, expires_at = ?
                 WHERE id = ? AND revoked_at IS NULL AND expires_at > ? RETURNING *",
            )
            .bind(now_ms)
            .bind(millis(successor.expires_at))
            .bind(session_id)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            let Some(session) = session else {
                tx.rollback().await.map_err(backend)?;
                return Ok(RotateOutcome::Invalid);
            };
            insert_refresh(&mut tx, SessionId(session_id), successor).await?;
            tx.commit().await.map_err(backend)?;
            return Ok(RotateOutcome::Rotated(session.try_into()?));
        }
        let token: Option<(uuid::Uuid, Option<i64>)> = sqlx::query_as(
            "SELECT session_id, retired_at FROM refresh_tokens WHERE token_hash = ?",
        )
        .bind(presented.as_bytes())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some((session_id, Some(retired_at))) = token else {
            return Ok(RotateOutcome::Invalid);
        };
        let session: Session =
            match sqlx::query_as::<_, SessionRow>("SELECT * FROM sessions WHERE id = ?")
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
        if grace > Duration::zero() && now_ms - retired_at < grace.num_milliseconds() {
            return Ok(RotateOutcome::WithinGrace(session));
        }
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now_ms)
            .bind(session_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
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
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let row: Option<SessionRow> = sqlx::query_as(
            "UPDATE sessions SET org_id = ?, last_seen_at = ?, expires_at = ?
             WHERE id = ? AND revoked_at IS NULL AND expires_at > ? RETURNING *",
        )
        .bind(org.map(|o| o.0))
        .bind(millis(now))
        .bind(millis(refresh.expires_at))
        .bind(session.0)
        .bind(millis(now))
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
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let row: Option<SessionRow> = sqlx::query_as(
            "UPDATE sessions SET auth_time = ?, amr = ?, last_seen_at = ?, expires_at = ?
             WHERE id = ? AND revoked_at IS NULL AND expires_at > ? RETURNING *",
        )
        .bind(millis(auth_time))
        .bind(amr.join(" "))
        .bind(millis(now))
        .bind(millis(refresh.expires_at))
        .bind(session.0)
        .bind(millis(now))
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
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    session: SessionId,
    r: &NewRefreshToken,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(r.id.0)
    .bind(session.0)
    .bind(r.hash.as_bytes())
    .bind(millis(r.created_at))
    .bind(millis(r.expires_at))
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl OneTimeTokenStore for SqliteStore {
    async fn replace_one_time_token(&self, t: &NewOneTimeToken) -> StoreResult<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        sqlx::query("DELETE FROM one_time_tokens WHERE user_id = ? AND purpose = ?")
            .bind(t.user_id.0)
            .bind(t.purpose.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO one_time_tokens (id, user_id, purpose, token_hash, new_email, proof_hash, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(t.id.0)
        .bind(t.user_id.0)
        .bind(t.purpose.as_str())
        .bind(t.hash.as_bytes())
        .bind(t.new_email.as_ref().map(Email::as_str))
        .bind(t.proof.as_ref().map(|p| p.as_bytes().to_vec()))
        .bind(millis(t.created_at))
        .bind(millis(t.expires_at))
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
            "UPDATE one_time_tokens SET consumed_at = ?
             WHERE token_hash = ? AND purpose = ? AND consumed_at IS NULL AND expires_at > ?
             RETURNING user_id, new_email",
        )
        .bind(millis(now))
        .bind(hash.as_bytes())
        .bind(purpose.as_str())
        .bind(millis(now))
        .fetch_optional(&self.writer)
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
             WHERE token_hash = ? AND purpose = ? AND consumed_at IS NULL AND expires_at > ?",
        )
        .bind(hash.as_bytes())
        .bind(purpose.as_str())
        .bind(millis(now))
        .fetch_optional(&self.reader)
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
             WHERE user_id = ? AND purpose = ? AND consumed_at IS NULL AND expires_at > ?
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(user.0)
        .bind(purpose.as_str())
        .bind(millis(now))
        .fetch_optional(&self.reader)
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
        let ended: Vec<(i64,)> = sqlx::query_as(
            "DELETE FROM one_time_tokens
             WHERE user_id = ? AND (? IS NULL OR purpose = ?) AND consumed_at IS NULL
             RETURNING expires_at",
        )
        .bind(user.0)
        .bind(purpose.map(TokenPurpose::as_str))
        .bind(purpose.map(TokenPurpose::as_str))
        .fetch_all(&self.writer)
        .await
        .map_err(backend)?;
        let now = millis(now);
        Ok(ended.iter().filter(|(expires,)| *expires > now).count() as u64)
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        sqlx::query_as::<_, KeyRow>("SELECT * FROM signing_keys ORDER BY created_at DESC")
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    async fn insert_signing_key(&self, k: &SigningKeyRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_der, public_jwk, created_at, retired_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(&k.private_der)
        .bind(&k.public_jwk)
        .bind(millis(k.created_at))
        .bind(k.retired_at.map(millis))
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn retire_signing_keys_except(&self, keep: &str, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("UPDATE signing_keys SET retired_at = ? WHERE kid <> ? AND retired_at IS NULL")
            .bind(millis(now))
            .bind(keep)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn delete_signing_keys_retired_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM signing_keys WHERE retired_at < ?")
            .bind(millis(before))
            .execute(&self.writer)
            .await
            .map_err(backend)?
            .rows_affected())
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, e: &NewAuditEvent) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_events (id, occurred_at, action, actor_id, org_id, target_id, ip, user_agent, metadata)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(e.id.0)
        .bind(millis(e.occurred_at))
        .bind(e.action.as_str())
        .bind(e.actor_id.map(|u| u.0))
        .bind(e.org_id.map(|o| o.0))
        .bind(e.target_id.as_ref().map(AuditValue::to_text))
        .bind(&e.ip)
        .bind(&e.user_agent)
        .bind(e.metadata.to_json().to_string())
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn list_audit(
        &self,
        f: &AuditFilter,
        page: PageRequest<AuditEventId>,
    ) -> StoreResult<Vec<AuditEvent>> {
        let mut q =
            sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT * FROM audit_events WHERE TRUE");
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
            q.push(" AND occurred_at >= ").push_bind(millis(since));
        }
        if let Some(until) = f.until {
            q.push(" AND occurred_at < ").push_bind(millis(until));
        }
        if let Some(after) = page.after {
            q.push(" AND id < ").push_bind(after.0);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(page.limit));
        q.build_query_as::<AuditRow>()
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }
}

/// SQLite creates a database with mode 0644 (less the umask), and its -wal
/// and -shm files with the database's mode: readable by every local user,
/// while they hold password hashes, token hashes and personal data. Creating
/// the file first, empty and 0600, makes all three private. An existing
/// database keeps its mode (its owner chose it), with a warning if others
/// may read it.
fn create_private(url: &str, path: &std::path::Path) -> StoreResult<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let name = path.to_string_lossy();
    if url.contains("mode=memory") || name.is_empty() || name.starts_with("file:sqlx-in-memory-") {
        return Ok(());
    }
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path)
                .map_err(|e| StoreError::Backend(Box::new(e)))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    mode = format!("{:o}", mode & 0o777),
                    "the SQLite database is readable by other users; consider `chmod 600` on it \
                     and its -wal and -shm files"
                );
            }
            Ok(())
        }
        Err(e) => Err(StoreError::Backend(Box::new(e))),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // test setup fails loudly
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_see_the_writers_commits_and_refuse_to_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("new.db").display());
        let store = SqliteStore::connect(&url).await.expect("open");
        store.migrate().await.expect("migrate");
        let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&store.reader)
            .await
            .expect("read on a reader");
        assert!(migrations > 0);
        let err = sqlx::query("DELETE FROM users")
            .execute(&store.reader)
            .await
            .expect_err("a reader must not write");
        let code = err.as_database_error().and_then(|e| e.code());
        assert_eq!(code.as_deref(), Some("8"), "SQLITE_READONLY, got {err}");
    }

    #[tokio::test]
    async fn a_new_database_and_its_wal_and_shm_are_created_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("private.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("open");
        store.migrate().await.expect("migrate");
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{}{suffix}", path.display());
            let mode = std::fs::metadata(&file)
                .unwrap_or_else(|e| panic!("{file}: {e}"))
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        // In-memory databases touch no file.
        SqliteStore::connect("sqlite::memory:")
            .await
            .expect("memory");
        assert!(!std::path::Path::new("file:sqlx-in-memory-0").exists());
    }

    #[tokio::test]
    async fn in_memory_database_is_one_database() {
        let store = SqliteStore::connect("sqlite::memory:").await.expect("open");
        store.migrate().await.expect("migrate");
        store.ping().await.expect("ping");
        let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&store.reader)
            .await
            .expect("read");
        assert!(migrations > 0, "reads must see the migrated database");
    }
}
