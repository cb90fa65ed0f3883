//! Durable jobs: work that runs after the answer, in this instance or another.
//!
//! A service enqueues a job ([`JobQueue::enqueue`], one INSERT) and answers; a
//! [`JobWorker`] claims due jobs with a lease, runs them through a
//! [`JobHandler`], and deletes them when done. A failed job is retried with
//! exponential backoff and jitter ([`backoff`]), and dead-lettered (kept,
//! marked dead, never run again) after [`JobSettings::max_attempts`]. The
//! store keeps the queue, so jobs survive a restart and any instance on the
//! database may run them.
//!
//! Payloads may hold personal data (addresses, names): they are never logged,
//! a finished job's row is deleted, and a dead job keeps its payload until it
//! is purged ([`JobSettings::dead_retention`]) so an operator can see what
//! failed. docs/security.md says why.
pub mod backoff;
mod worker;

pub use worker::{JobWorker, WorkerState};

use crate::{
    clock::Clock,
    ids::JobId,
    store::{NewJob, Store, StoreResult},
};
use async_trait::async_trait;
use chrono::Duration;
use std::sync::Arc;
use tokio::sync::Notify;

/// How jobs are claimed, retried and kept.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// How often the worker looks for jobs other instances enqueued (its
    /// own wake it at once).
    pub poll_interval: std::time::Duration,
    /// How long a claim holds a job; a job still running then may be taken
    /// by another claimer, so jobs must finish well within it.
    pub lease: Duration,
    /// Jobs claimed at once.
    pub batch: u32,
    /// Jobs of a batch run at the same time.
    pub concurrency: usize,
    /// Claims a job gets before it is dead-lettered.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub backoff_base: Duration,
    /// Longest delay between retries.
    pub backoff_max: Duration,
    /// How long dead jobs (and their payloads) are kept.
    pub dead_retention: Duration,
    /// How long shutdown waits for running jobs before abandoning them
    /// (their leases run out and they are retried).
    pub shutdown_grace: std::time::Duration,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            poll_interval: std::time::Duration::from_secs(1),
            lease: Duration::seconds(60),
            batch: 16,
            concurrency: 4,
            // 1+2+4+…+64 s: about two minutes of retries before a job is dead.
            max_attempts: 8,
            backoff_base: Duration::seconds(1),
            backoff_max: Duration::minutes(15),
            dead_retention: Duration::days(7),
            shutdown_grace: std::time::Duration::from_secs(10),
        }
    }
}

/// Why a job did not finish. The message goes to the log and the dead
/// letter: it must never contain the payload.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (a database or network failure).
    #[error("{0}")]
    Retry(String),
    /// Will fail the same way every time (unknown kind, malformed payload):
    /// dead-lettered at once.
    #[error("{0}")]
    Permanent(String),
}

impl From<crate::error::CoreError> for JobError {
    fn from(e: crate::error::CoreError) -> Self {
        Self::Retry(e.to_string())
    }
}

impl From<crate::store::StoreError> for JobError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Retry(e.to_string())
    }
}

/// Runs jobs by kind.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// Does the work of one job. Called at least once per job: a job whose
    /// lease runs out while it runs may run again elsewhere.
    ///
    /// # Errors
    /// [`JobError::Retry`] to try again later, [`JobError::Permanent`] to give up.
    async fn run(&self, kind: &str, payload: &serde_json::Value) -> Result<(), JobError>;
}

/// Where services put jobs.
#[derive(Clone)]
pub struct JobQueue {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Wakes this instance's worker at once.
    wake: Arc<Notify>,
}

impl std::fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobQueue").finish_non_exhaustive()
    }
}

impl JobQueue {
    /// A queue on `store`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Stores a job due now and wakes this instance's worker.
    ///
    /// # Errors
    /// A store failure: the job was not stored.
    pub async fn enqueue<T: serde::Serialize>(
        &self,
        kind: &str,
        payload: &T,
    ) -> StoreResult<JobId> {
        let payload = serde_json::to_value(payload)
            .map_err(|e| crate::store::StoreError::Backend(Box::new(e)))?;
        let now = self.clock.now();
        let job = NewJob {
            id: JobId::new(),
            kind: kind.to_owned(),
            payload,
            run_at: now,
            created_at: now,
        };
        self.store.jobs().enqueue_job(&job).await?;
        // A permit is kept when the worker is busy: it looks again right after.
        self.wake.notify_one();
        Ok(job.id)
    }

    /// The store holding the queue.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}
