//! Second factors on PostgreSQL. Each acceptance is one conditional UPDATE:
//! racing requests serialise on the row lock, and the losers find the
//! condition false once the winner commits.
use crate::{backend, PostgresStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use identsphere_core::{ids::*, secret::TokenHash, store::*};

#[derive(sqlx::FromRow)]
struct TotpRow {
    user_id: uuid::Uuid,
    sealed_secret: Vec<u8>,
    created_at: DateTime<Utc>,
    confirmed_at: Option<DateTime<Utc>>,
    last_step: Option<i64>,
}

async fn insert_codes(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    user: UserId,
    codes: &[TokenHash],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user.0)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    let hashes: Vec<Vec<u8>> = codes.iter().map(|c| c.as_bytes().to_vec()).collect();
    sqlx::query(
        "INSERT INTO recovery_codes (user_id, code_hash, created_at)
         SELECT $1, h, $3 FROM UNNEST($2::bytea[]) AS h",
    )
    .bind(user.0)
    .bind(hashes)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl MfaStore for PostgresStore {
    async fn begin_totp_enrollment(
        &self,
        user: UserId,
        sealed_secret: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO totp_authenticators (user_id, sealed_secret, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE
               SET sealed_secret = EXCLUDED.sealed_secret, created_at = EXCLUDED.created_at, last_step = NULL
               WHERE totp_authenticators.confirmed_at IS NULL",
        )
        .bind(user.0)
        .bind(sealed_secret)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_totp(&self, user: UserId) -> StoreResult<Option<TotpRecord>> {
        let row: Option<TotpRow> =
            sqlx::query_as("SELECT * FROM totp_authenticators WHERE user_id = $1")
                .bind(user.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(row.map(|r| TotpRecord {
            user_id: UserId(r.user_id),
            sealed_secret: r.sealed_secret,
            created_at: r.created_at,
            confirmed_at: r.confirmed_at,
            last_step: r.last_step,
        }))
    }

    async fn confirm_totp(
        &self,
        user: UserId,
        step: i64,
        recovery_codes: &[TokenHash],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let done = sqlx::query(
            "UPDATE totp_authenticators SET confirmed_at = $1, last_step = $2
             WHERE user_id = $3 AND confirmed_at IS NULL AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(now)
        .bind(step)
        .bind(user.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        insert_codes(&mut tx, user, recovery_codes, now).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn use_totp_step(&self, user: UserId, step: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE totp_authenticators SET last_step = $1
             WHERE user_id = $2 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(user.0)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        codes: &[TokenHash],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        insert_codes(&mut tx, user, codes, now).await?;
        tx.commit().await.map_err(backend)
    }

    async fn consume_recovery_code(
        &self,
        user: UserId,
        code: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(user.0)
        .bind(code.as_bytes())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_recovery_codes(&self, user: UserId) -> StoreResult<u32> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user.0)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn delete_mfa(&self, user: UserId) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let done: Option<(Option<DateTime<Utc>>,)> = sqlx::query_as(
            "DELETE FROM totp_authenticators WHERE user_id = $1 RETURNING confirmed_at",
        )
        .bind(user.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        for table in ["recovery_codes", "mfa_challenges"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(user.0)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(done.and_then(|(c,)| c).is_some())
    }

    async fn end_mfa_challenges(&self, user: UserId, now: DateTime<Utc>) -> StoreResult<u64> {
        let ended = sqlx::query(
            "DELETE FROM mfa_challenges WHERE user_id = $1 AND expires_at > $2 AND consumed_at IS NULL",
        )
        .bind(user.0)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(ended.rows_affected())
    }

    async fn create_mfa_challenge(&self, c: &NewMfaChallenge) -> StoreResult<()> {
        sqlx::query("DELETE FROM mfa_challenges WHERE expires_at <= $1")
            .bind(c.created_at)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO mfa_challenges (token_hash, user_id, created_at, expires_at, attempts_left)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(c.hash.as_bytes())
        .bind(c.user_id.0)
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(i32::try_from(c.attempts_left).unwrap_or(i32::MAX))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn find_mfa_challenge(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<MfaChallenge>> {
        let row: Option<(uuid::Uuid, i32, DateTime<Utc>)> = sqlx::query_as(
            "SELECT user_id, attempts_left, expires_at FROM mfa_challenges
             WHERE token_hash = $1 AND consumed_at IS NULL AND attempts_left > 0 AND expires_at > $2",
        )
        .bind(hash.as_bytes())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.map(|(user, left, expires_at)| MfaChallenge {
            user_id: UserId(user),
            attempts_left: u32::try_from(left).unwrap_or(0),
            expires_at,
        }))
    }

    async fn charge_mfa_attempt(&self, hash: &TokenHash, now: DateTime<Utc>) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE mfa_challenges SET attempts_left = attempts_left - 1
             WHERE token_hash = $1 AND consumed_at IS NULL AND attempts_left > 0 AND expires_at > $2",
        )
        .bind(hash.as_bytes())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn consume_mfa_challenge(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE mfa_challenges SET consumed_at = $1
             WHERE token_hash = $2 AND consumed_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(hash.as_bytes())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}
