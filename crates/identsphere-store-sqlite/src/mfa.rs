//! Second factors on SQLite. Each acceptance is one conditional UPDATE (or
//! a `BEGIN IMMEDIATE` transaction), so racing requests queue on the write
//! lock and at most one of them wins.
use crate::{backend, rows::*, SqliteStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use identsphere_core::{ids::*, secret::TokenHash, store::*};

#[derive(sqlx::FromRow)]
struct TotpRow {
    user_id: uuid::Uuid,
    sealed_secret: Vec<u8>,
    created_at: i64,
    confirmed_at: Option<i64>,
    last_step: Option<i64>,
}

async fn insert_codes(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    user: UserId,
    codes: &[TokenHash],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
        .bind(user.0)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    for code in codes {
        sqlx::query("INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)")
            .bind(user.0)
            .bind(code.as_bytes())
            .bind(millis(now))
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl MfaStore for SqliteStore {
    async fn begin_totp_enrollment(
        &self,
        user: UserId,
        sealed_secret: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO totp_authenticators (user_id, sealed_secret, created_at) VALUES (?, ?, ?)
             ON CONFLICT (user_id) DO UPDATE
               SET sealed_secret = excluded.sealed_secret, created_at = excluded.created_at, last_step = NULL
               WHERE totp_authenticators.confirmed_at IS NULL",
        )
        .bind(user.0)
        .bind(sealed_secret)
        .bind(millis(now))
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_totp(&self, user: UserId) -> StoreResult<Option<TotpRecord>> {
        let row: Option<TotpRow> =
            sqlx::query_as("SELECT * FROM totp_authenticators WHERE user_id = ?")
                .bind(user.0)
                .fetch_optional(&self.reader)
                .await
                .map_err(backend)?;
        row.map(|r| {
            Ok(TotpRecord {
                user_id: UserId(r.user_id),
                sealed_secret: r.sealed_secret,
                created_at: time(r.created_at)?,
                confirmed_at: r.confirmed_at.map(time).transpose()?,
                last_step: r.last_step,
            })
        })
        .transpose()
    }

    async fn confirm_totp(
        &self,
        user: UserId,
        step: i64,
        recovery_codes: &[TokenHash],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE totp_authenticators SET confirmed_at = ?, last_step = ?
             WHERE user_id = ? AND confirmed_at IS NULL AND (last_step IS NULL OR last_step < ?)",
        )
        .bind(millis(now))
        .bind(step)
        .bind(user.0)
        .bind(step)
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
            "UPDATE totp_authenticators SET last_step = ?
             WHERE user_id = ? AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < ?)",
        )
        .bind(step)
        .bind(user.0)
        .bind(step)
        .execute(&self.writer)
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
        let mut tx = self.write_tx().await?;
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
            "UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
        )
        .bind(millis(now))
        .bind(user.0)
        .bind(code.as_bytes())
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_recovery_codes(&self, user: UserId) -> StoreResult<u32> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL",
        )
        .bind(user.0)
        .fetch_one(&self.reader)
        .await
        .map_err(backend)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn delete_mfa(&self, user: UserId) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let done =
            sqlx::query("DELETE FROM totp_authenticators WHERE user_id = ? RETURNING confirmed_at")
                .bind(user.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let confirmed = done
            .map(|row| sqlx::Row::try_get::<Option<i64>, _>(&row, 0))
            .transpose()
            .map_err(backend)?
            .flatten()
            .is_some();
        for table in ["recovery_codes", "mfa_challenges"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = ?"))
                .bind(user.0)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(confirmed)
    }

    async fn end_mfa_challenges(&self, user: UserId, now: DateTime<Utc>) -> StoreResult<u64> {
        let ended = sqlx::query(
            "DELETE FROM mfa_challenges WHERE user_id = ? AND expires_at > ? AND consumed_at IS NULL",
        )
        .bind(user.0)
        .bind(millis(now))
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(ended.rows_affected())
    }

    async fn create_mfa_challenge(&self, c: &NewMfaChallenge) -> StoreResult<()> {
        sqlx::query("DELETE FROM mfa_challenges WHERE expires_at <= ?")
            .bind(millis(c.created_at))
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO mfa_challenges (token_hash, user_id, created_at, expires_at, attempts_left)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(c.hash.as_bytes())
        .bind(c.user_id.0)
        .bind(millis(c.created_at))
        .bind(millis(c.expires_at))
        .bind(i64::from(c.attempts_left))
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn find_mfa_challenge(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<MfaChallenge>> {
        let row: Option<(uuid::Uuid, i64, i64)> = sqlx::query_as(
            "SELECT user_id, attempts_left, expires_at FROM mfa_challenges
             WHERE token_hash = ? AND consumed_at IS NULL AND attempts_left > 0 AND expires_at > ?",
        )
        .bind(hash.as_bytes())
        .bind(millis(now))
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?;
        row.map(|(user, left, expires)| {
            Ok(MfaChallenge {
                user_id: UserId(user),
                attempts_left: u32::try_from(left).unwrap_or(0),
                expires_at: time(expires)?,
            })
        })
        .transpose()
    }

    async fn charge_mfa_attempt(&self, hash: &TokenHash, now: DateTime<Utc>) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE mfa_challenges SET attempts_left = attempts_left - 1
             WHERE token_hash = ? AND consumed_at IS NULL AND attempts_left > 0 AND expires_at > ?",
        )
        .bind(hash.as_bytes())
        .bind(millis(now))
        .execute(&self.writer)
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
            "UPDATE mfa_challenges SET consumed_at = ?
             WHERE token_hash = ? AND consumed_at IS NULL AND expires_at > ?",
        )
        .bind(millis(now))
        .bind(hash.as_bytes())
        .bind(millis(now))
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}
