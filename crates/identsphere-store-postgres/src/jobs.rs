//! Durable jobs on PostgreSQL, shared by every instance on the database.
//! A claim locks the due rows it picks with `FOR UPDATE SKIP LOCKED`:
//! concurrent claimers skip each other's rows instead of waiting on them, and
//! a row committed by another claimer meanwhile is re-checked and left out.
use crate::{backend, PostgresStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use identsphere_core::{ids::*, store::*};

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: uuid::Uuid,
    kind: String,
    payload: String,
    run_at: DateTime<Utc>,
    attempts: i32,
    lease_id: uuid::Uuid,
    locked_until: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

impl TryFrom<ClaimedRow> for ClaimedJob {
    type Error = StoreError;
    fn try_from(r: ClaimedRow) -> StoreResult<Self> {
        Ok(Self {
            id: JobId(r.id),
            kind: r.kind,
            payload: serde_json::from_str(&r.payload)
                .map_err(|e| StoreError::Backend(Box::new(e)))?,
            run_at: r.run_at,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            lease: LeaseId(r.lease_id),
            locked_until: r.locked_until,
            created_at: r.created_at,
        })
    }
}

#[async_trait]
impl JobStore for PostgresStore {
    async fn enqueue_job(&self, job: &NewJob) -> StoreResult<()> {
        // The payload travels as text and is cast: sqlx's JSON types stay out.
        sqlx::query(
            "INSERT INTO jobs (id, kind, payload, run_at, created_at)
             VALUES ($1, $2, $3::jsonb, $4, $5)",
        )
        .bind(job.id.0)
        .bind(&job.kind)
        .bind(job.payload.to_string())
        .bind(job.run_at)
        .bind(job.created_at)
        .execute(&self.pool)
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
        let mut rows = sqlx::query_as::<_, ClaimedRow>(
            "UPDATE jobs j SET lease_id = $1, locked_until = $2, attempts = j.attempts + 1
             FROM (
                 SELECT id FROM jobs
                 WHERE dead_at IS NULL AND run_at <= $3 AND (locked_until IS NULL OR locked_until <= $3)
                 ORDER BY run_at, id LIMIT $4
                 FOR UPDATE SKIP LOCKED
             ) due
             WHERE j.id = due.id
             RETURNING j.id, j.kind, j.payload::text AS payload, j.run_at, j.attempts, j.lease_id,
                       j.locked_until, j.created_at",
        )
        .bind(lease.0)
        .bind(locked_until)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        // RETURNING follows no ORDER BY: put the batch back in due order.
        rows.sort_by_key(|r| (r.run_at, r.id));
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn complete_job(&self, id: JobId, lease: LeaseId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM jobs WHERE id = $1 AND lease_id = $2")
            .bind(id.0)
            .bind(lease.0)
            .execute(&self.pool)
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
        let dead_at = retry_at.is_none().then_some(now);
        let done = sqlx::query(
            "UPDATE jobs SET lease_id = NULL, locked_until = NULL, last_error = $1,
                 run_at = COALESCE($2, run_at), dead_at = $3
             WHERE id = $4 AND lease_id = $5",
        )
        .bind(error)
        .bind(retry_at)
        .bind(dead_at)
        .bind(id.0)
        .bind(lease.0)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_jobs(&self) -> StoreResult<Vec<JobCounts>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT kind, COUNT(*) FILTER (WHERE dead_at IS NULL),
                    COUNT(*) FILTER (WHERE dead_at IS NOT NULL)
             FROM jobs GROUP BY kind ORDER BY kind",
        )
        .fetch_all(&self.pool)
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
        let rows: Vec<(uuid::Uuid, String, i32, Option<String>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, kind, attempts, last_error, dead_at FROM jobs
                 WHERE dead_at IS NOT NULL ORDER BY dead_at DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(id, kind, attempts, last_error, dead_at)| DeadJob {
                id: JobId(id),
                kind,
                attempts: u32::try_from(attempts).unwrap_or(0),
                last_error,
                dead_at,
            })
            .collect())
    }

    async fn purge_dead_jobs(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM jobs WHERE dead_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected())
    }
}
