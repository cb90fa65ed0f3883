//! Passkeys and WebAuthn ceremonies on SQLite. Taking a ceremony is one
//! `DELETE … RETURNING`: racing finishes queue on the write lock and only the
//! first gets the state.
use crate::{backend, rows::*, SqliteStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use identsphere_core::{ids::*, store::*};

#[derive(sqlx::FromRow)]
struct PasskeyRow {
    id: uuid::Uuid,
    user_id: uuid::Uuid,
    credential_id: Vec<u8>,
    credential: String,
    name: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl TryFrom<PasskeyRow> for PasskeyRecord {
    type Error = StoreError;
    fn try_from(r: PasskeyRow) -> StoreResult<Self> {
        Ok(Self {
            id: PasskeyId(r.id),
            user_id: UserId(r.user_id),
            credential_id: r.credential_id,
            credential: r.credential,
            name: r.name,
            created_at: time(r.created_at)?,
            last_used_at: r.last_used_at.map(time).transpose()?,
        })
    }
}

#[async_trait]
impl PasskeyStore for SqliteStore {
    async fn create_passkey(&self, p: &NewPasskey) -> StoreResult<PasskeyRecord> {
        let row: PasskeyRow = sqlx::query_as(
            "INSERT INTO passkeys (id, user_id, credential_id, credential, name, created_at)
             VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(p.id.0)
        .bind(p.user_id.0)
        .bind(&p.credential_id)
        .bind(&p.credential)
        .bind(&p.name)
        .bind(millis(p.created_at))
        .fetch_one(&self.writer)
        .await
        .map_err(backend)?;
        row.try_into()
    }

    async fn list_passkeys(&self, user: UserId) -> StoreResult<Vec<PasskeyRecord>> {
        let rows: Vec<PasskeyRow> =
            sqlx::query_as("SELECT * FROM passkeys WHERE user_id = ? ORDER BY id")
                .bind(user.0)
                .fetch_all(&self.reader)
                .await
                .map_err(backend)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn find_passkey_by_credential(
        &self,
        credential_id: &[u8],
    ) -> StoreResult<Option<PasskeyRecord>> {
        let row: Option<PasskeyRow> =
            sqlx::query_as("SELECT * FROM passkeys WHERE credential_id = ?")
                .bind(credential_id)
                .fetch_optional(&self.reader)
                .await
                .map_err(backend)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn rename_passkey(
        &self,
        user: UserId,
        id: PasskeyId,
        name: &str,
    ) -> StoreResult<Option<PasskeyRecord>> {
        let row: Option<PasskeyRow> =
            sqlx::query_as("UPDATE passkeys SET name = ? WHERE id = ? AND user_id = ? RETURNING *")
                .bind(name)
                .bind(id.0)
                .bind(user.0)
                .fetch_optional(&self.writer)
                .await
                .map_err(backend)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn delete_passkey(&self, user: UserId, id: PasskeyId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM passkeys WHERE id = ? AND user_id = ?")
            .bind(id.0)
            .bind(user.0)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_passkey_use(
        &self,
        id: PasskeyId,
        credential: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE passkeys SET credential = COALESCE(?, credential), last_used_at = ? WHERE id = ?",
        )
        .bind(credential)
        .bind(millis(now))
        .bind(id.0)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn create_webauthn_ceremony(&self, c: &NewWebauthnCeremony) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at <= ?")
            .bind(millis(c.created_at))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO webauthn_ceremonies (id, kind, user_id, state, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(c.id.0)
        .bind(c.kind.as_str())
        .bind(c.user_id.map(|u| u.0))
        .bind(&c.state)
        .bind(millis(c.created_at))
        .bind(millis(c.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn take_webauthn_ceremony(
        &self,
        id: CeremonyId,
        kind: CeremonyKind,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<WebauthnCeremony>> {
        // Deleted even when expired: a late finish has nothing to come back to.
        let row: Option<(Option<uuid::Uuid>, String, i64)> = sqlx::query_as(
            "DELETE FROM webauthn_ceremonies WHERE id = ? AND kind = ?
             RETURNING user_id, state, expires_at",
        )
        .bind(id.0)
        .bind(kind.as_str())
        .fetch_optional(&self.writer)
        .await
        .map_err(backend)?;
        Ok(row
            .filter(|(_, _, expires)| *expires > millis(now))
            .map(|(user, state, _)| WebauthnCeremony {
                user_id: user.map(UserId),
                state,
            }))
    }
}
