//! Passkeys and WebAuthn ceremonies on PostgreSQL. Taking a ceremony is one
//! `DELETE … RETURNING`: racing finishes serialise on the row lock and only
//! the first gets the state.
use crate::{backend, PostgresStore};
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
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
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
            created_at: r.created_at,
            last_used_at: r.last_used_at,
        })
    }
}

#[async_trait]
impl PasskeyStore for PostgresStore {
    async fn create_passkey(&self, p: &NewPasskey) -> StoreResult<PasskeyRecord> {
        let row: PasskeyRow = sqlx::query_as(
            "INSERT INTO passkeys (id, user_id, credential_id, credential, name, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        )
        .bind(p.id.0)
        .bind(p.user_id.0)
        .bind(&p.credential_id)
        .bind(&p.credential)
        .bind(&p.name)
        .bind(p.created_at)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        row.try_into()
    }

    async fn list_passkeys(&self, user: UserId) -> StoreResult<Vec<PasskeyRecord>> {
        let rows: Vec<PasskeyRow> =
            sqlx::query_as("SELECT * FROM passkeys WHERE user_id = $1 ORDER BY id")
                .bind(user.0)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn find_passkey_by_credential(
        &self,
        credential_id: &[u8],
    ) -> StoreResult<Option<PasskeyRecord>> {
        let row: Option<PasskeyRow> =
            sqlx::query_as("SELECT * FROM passkeys WHERE credential_id = $1")
                .bind(credential_id)
                .fetch_optional(&self.pool)
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
        let row: Option<PasskeyRow> = sqlx::query_as(
            "UPDATE passkeys SET name = $1 WHERE id = $2 AND user_id = $3 RETURNING *",
        )
        .bind(name)
        .bind(id.0)
        .bind(user.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn delete_passkey(&self, user: UserId, id: PasskeyId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND user_id = $2")
            .bind(id.0)
            .bind(user.0)
            .execute(&self.pool)
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
            "UPDATE passkeys SET credential = COALESCE($1::text, credential), last_used_at = $2 WHERE id = $3",
        )
        .bind(credential)
        .bind(now)
        .bind(id.0)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn create_webauthn_ceremony(&self, c: &NewWebauthnCeremony) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at <= $1")
            .bind(c.created_at)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO webauthn_ceremonies (id, kind, user_id, state, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(c.id.0)
        .bind(c.kind.as_str())
        .bind(c.user_id.map(|u| u.0))
        .bind(&c.state)
        .bind(c.created_at)
        .bind(c.expires_at)
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
        let row: Option<(Option<uuid::Uuid>, String, DateTime<Utc>)> = sqlx::query_as(
            "DELETE FROM webauthn_ceremonies WHERE id = $1 AND kind = $2
             RETURNING user_id, state, expires_at",
        )
        .bind(id.0)
        .bind(kind.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row
            .filter(|(_, _, expires)| *expires > now)
            .map(|(user, state, _)| WebauthnCeremony {
                user_id: user.map(UserId),
                state,
            }))
    }
}
