//! Durable jobs on SQLite. Claims are writes, so they queue on the one writer
//! connection: two claimers can never take the same row, and the claim is a
//! single `UPDATE … RETURNING` over the due rows.
use crate::{backend, rows::*, SqliteStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use identsphere_core::{ids::*, store::*};

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: uuid::Uuid,
    kind: String,
    payload: String,
    run_at: i64,
    attempts: i64,
    lease_id: uuid::Uuid,
    locked_until: i64,
    created_at: i64,
}

impl TryFrom<ClaimedRow> for ClaimedJob {
    type Error = StoreError;
    fn try_from(r: ClaimedRow) -> StoreResult<Self> {
        Ok(Self {
            id: JobId(r.id),
            kind: r.kind,
            payload: serde_json::from_str(&r.payload)
                .map_err(|e| StoreError::Backend(Box::new(e)))?,
            run_at: time(r.run_at)?,
            attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
            lease: LeaseId(r.lease_id),
            locked_until: time(r.locked_until)?,
            created_at: time(r.created_at)?,
        })
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue_job(&self, job: &NewJob) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO jobs (id, kind, payload, run_at, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(job.id.0)
        .bind(&job.kind)
        .bind(job.payload.to_string())
        .bind(millis(job.run_at))
        .bind(millis(job.created_at))
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn claim_jobs(
        &self,
        lease: LeaseId,
        now: DateTime<Utc>,
        locked_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedJob>> {
        let now = millis(now);
        let mut rows = sqlx::query_as::<_, ClaimedRow>(
            "UPDATE jobs SET lease_id = ?, locked_until = ?, attempts = attempts + 1
             WHERE id IN (
                 SELECT id FROM jobs
                 WHERE dead_at IS NULL AND run_at <= ? AND (locked_until IS NULL OR locked_until <= ?)
                 ORDER BY run_at, id LIMIT ?)
             RETURNING id, kind, payload, run_at, attempts, lease_id, locked_until, created_at",
        )
        .bind(lease.0)
        .bind(millis(locked_until))
        .bind(now)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
        .await
        .map_err(backend)?;
        // RETURNING follows no ORDER BY: put the batch back in due order.
        rows.sort_by_key(|r| (r.run_at, r.id));
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn complete_job(&self, id: JobId, lease: LeaseId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM jobs WHERE id = ? AND lease_id = ?")
            .bind(id.0)
            .bind(lease.0)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn fail_job(
        &self,
        id: JobId,
        lease: LeaseId,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let dead_at = retry_at.is_none().then_some(millis(now));
        let done = sqlx::query(
            "UPDATE jobs SET lease_id = NULL, locked_until = NULL, last_error = ?,
                 run_at = COALESCE(?, run_at), dead_at = ?
             WHERE id = ? AND lease_id = ?",
        )
        .bind(error)
        .bind(retry_at.map(millis))
        .bind(dead_at)
        .bind(id.0)
        .bind(lease.0)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_jobs(&self) -> StoreResult<Vec<JobCounts>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT kind,
                    SUM(CASE WHEN dead_at IS NULL THEN 1 ELSE 0 END),
                    SUM(CASE WHEN dead_at IS NULL THEN 0 ELSE 1 END)
             FROM jobs GROUP BY kind ORDER BY kind",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(kind, pending, dead)| JobCounts {
                kind,
                pending: u64::try_from(pending).unwrap_or(0),
                dead: u64::try_from(dead).unwrap_or(0),
            })
            .collect())
    }

    async fn list_dead_jobs(&self, limit: u32) -> StoreResult<Vec<DeadJob>> {
        let rows: Vec<(uuid::Uuid, String, i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT id, kind, attempts, last_error, dead_at FROM jobs
             WHERE dead_at IS NOT NULL ORDER BY dead_at DESC, id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.into_iter()
            .map(|(id, kind, attempts, last_error, dead_at)| {
                Ok(DeadJob {
                    id: JobId(id),
                    kind,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    last_error,
                    dead_at: time(dead_at)?,
                })
            })
            .collect()
    }

    async fn purge_dead_jobs(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM jobs WHERE dead_at < ?")
            .bind(millis(before))
            .execute(&self.writer)
            .await
            .map_err(backend)?
            .rows_affected())
    }
}
