//! Durable jobs: work that happens after the answer, survives a restart and
//! is shared by every instance on the database.
//!
//! A job is claimed with a lease: while the lease runs, no other claimer sees
//! it; when it runs out (the instance crashed or hung) the job is due again.
//! Every claim counts as an attempt, so a job that crashes its worker is
//! dead-lettered after the limit like one that fails cleanly.
use super::StoreResult;
use crate::ids::{JobId, LeaseId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A job to enqueue.
#[derive(Clone)]
pub struct NewJob {
    /// Id.
    pub id: JobId,
    /// What to do (`account.signup`, …); the worker dispatches on it.
    pub kind: String,
    /// The job's input. May hold personal data (addresses): never logged.
    pub payload: serde_json::Value,
    /// When it becomes due.
    pub run_at: DateTime<Utc>,
    /// Enqueue time.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for NewJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewJob")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("run_at", &self.run_at)
            .finish_non_exhaustive()
    }
}

/// A job as handed to the worker that claimed it.
#[derive(Clone, PartialEq)]
pub struct ClaimedJob {
    /// Id.
    pub id: JobId,
    /// What to do.
    pub kind: String,
    /// The job's input (see [`NewJob::payload`]).
    pub payload: serde_json::Value,
    /// When it became due (the delay since is the queue's lag).
    pub run_at: DateTime<Utc>,
    /// Claims so far, this one included.
    pub attempts: u32,
    /// This claim; needed to complete or fail the job.
    pub lease: LeaseId,
    /// When the lease runs out and the job is due again.
    pub locked_until: DateTime<Utc>,
    /// Enqueue time.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for ClaimedJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedJob")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("run_at", &self.run_at)
            .field("attempts", &self.attempts)
            .field("lease", &self.lease)
            .field("locked_until", &self.locked_until)
            .finish_non_exhaustive()
    }
}

/// How many jobs of one kind wait or are dead.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobCounts {
    /// The kind.
    pub kind: String,
    /// Not dead: due, scheduled for later, or running.
    pub pending: u64,
    /// Dead-lettered.
    pub dead: u64,
}

/// A dead-lettered job, for operators (its payload stays in the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadJob {
    /// Id.
    pub id: JobId,
    /// What it was to do.
    pub kind: String,
    /// Claims it had.
    pub attempts: u32,
    /// The last failure, as the worker described it (never the payload).
    pub last_error: Option<String>,
    /// When it was dead-lettered.
    pub dead_at: DateTime<Utc>,
}

/// The jobs table. Reached through [`super::Store::jobs`].
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a job; it is due at `run_at`.
    async fn enqueue_job(&self, job: &NewJob) -> StoreResult<()>;
    /// Claims up to `limit` due jobs (not dead, `run_at` reached, no live
    /// lease), oldest `run_at` first (and returned in that order): each gets the lease `lease` until
    /// `locked_until` and one more attempt. Concurrent claimers, in this
    /// process or another, never get the same job while its lease runs.
    async fn claim_jobs(
        &self,
        lease: LeaseId,
        now: DateTime<Utc>,
        locked_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedJob>>;
    /// Deletes a finished job; `false` when `lease` is no longer its lease
    /// (it ran out and another claimer took the job).
    async fn complete_job(&self, id: JobId, lease: LeaseId) -> StoreResult<bool>;
    /// Records a failure: the job is due again at `retry_at` without a
    /// lease, or, with `None`, dead-lettered at `now` (kept, never claimed
    /// again). `false` when `lease` is no longer its lease.
    async fn fail_job(
        &self,
        id: JobId,
        lease: LeaseId,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Pending and dead jobs by kind (kinds with neither are left out).
    async fn count_jobs(&self) -> StoreResult<Vec<JobCounts>>;
    /// Dead jobs, newest first, at most `limit`.
    async fn list_dead_jobs(&self, limit: u32) -> StoreResult<Vec<DeadJob>>;
    /// Deletes jobs dead-lettered before `before`, with their payloads.
    async fn purge_dead_jobs(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}
