//! The worker: one task per instance that claims due jobs and runs them.
//!
//! It wakes at once when this instance enqueues ([`super::JobQueue`]) and
//! polls for the jobs of other instances. Jobs of a batch run concurrently,
//! up to [`JobSettings::concurrency`]; a handler that panics counts as a
//! failed attempt, not a dead worker. On shutdown it claims nothing more,
//! lets the running jobs finish (for [`JobSettings::shutdown_grace`] at most)
//! and stops; what it had not started stays in the store for the next claimer.
use super::{backoff::retry_delay, JobError, JobHandler, JobQueue, JobSettings};
use crate::{
    ids::LeaseId,
    store::{ClaimedJob, JobCounts},
};
use futures::{FutureExt, StreamExt};
use std::{
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};
use tokio::{sync::watch, task::JoinHandle};

/// How often the pending and dead gauges are refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(15);
/// How often dead jobs past their retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Whether the worker runs, for `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Claiming and running jobs.
    Running,
    /// Told to stop; finishing the jobs it runs.
    Stopping,
    /// Stopped (shut down, or its task ended).
    Stopped,
}

impl WorkerState {
    /// `running`, `stopping` or `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
        }
    }
}

struct Shared {
    queue: JobQueue,
    handler: Arc<dyn JobHandler>,
    settings: JobSettings,
    state: AtomicU8,
}

/// This instance's job worker. Dropping it stops the task at once; call
/// [`JobWorker::shutdown`] to stop cleanly.
pub struct JobWorker {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for JobWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobWorker")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Drop for JobWorker {
    fn drop(&mut self) {
        if let Some(task) = self.take_task() {
            task.abort();
        }
    }
}

impl JobWorker {
    /// Starts the worker on the current Tokio runtime.
    pub fn start(queue: JobQueue, handler: Arc<dyn JobHandler>, settings: JobSettings) -> Self {
        let shared = Arc::new(Shared {
            queue,
            handler,
            settings,
            state: AtomicU8::new(WorkerState::Running as u8),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(shared.clone(), stopped));
        Self {
            shared,
            stop,
            task: Mutex::new(Some(task)),
        }
    }

    /// Whether the worker runs.
    pub fn state(&self) -> WorkerState {
        match self.shared.state.load(Ordering::SeqCst) {
            0 => WorkerState::Running,
            1 => WorkerState::Stopping,
            _ => WorkerState::Stopped,
        }
    }

    /// Pending and dead jobs by kind, from the store.
    ///
    /// # Errors
    /// A store failure.
    pub async fn counts(&self) -> crate::store::StoreResult<Vec<JobCounts>> {
        self.shared.queue.store().jobs().count_jobs().await
    }

    /// Stops claiming, waits for the running jobs (up to the grace), then
    /// stops. Later calls return at once.
    pub async fn shutdown(&self) {
        self.shared
            .state
            .store(WorkerState::Stopping as u8, Ordering::SeqCst);
        let _ = self.stop.send(true);
        if let Some(mut task) = self.take_task() {
            let grace = self.shared.settings.shutdown_grace;
            if tokio::time::timeout(grace, &mut task).await.is_err() {
                tracing::warn!(
                    "jobs still running after {grace:?}; abandoned (their leases run out and they are retried)"
                );
                task.abort();
            }
        }
        self.shared
            .state
            .store(WorkerState::Stopped as u8, Ordering::SeqCst);
    }

    fn take_task(&self) -> Option<JoinHandle<()>> {
        self.task.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut last_gauges: Option<Instant> = None;
    let mut last_purge: Option<Instant> = None;
    while !*stop.borrow() {
        // Drain what is due, batch after batch.
        while !*stop.borrow() {
            match claim(&shared).await {
                Ok(batch) if batch.is_empty() => break,
                Ok(batch) => run_batch(&shared, batch).await,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming jobs failed; trying again at the next poll");
                    break;
                }
            }
        }
        if last_gauges.is_none_or(|t| t.elapsed() >= GAUGE_EVERY) {
            last_gauges = Some(Instant::now());
            refresh_gauges(&shared).await;
        }
        if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
            last_purge = Some(Instant::now());
            purge(&shared).await;
        }
        tokio::select! {
            _ = stop.changed() => {}
            () = shared.queue.wake.notified() => {}
            () = tokio::time::sleep(shared.settings.poll_interval) => {}
        }
    }
    shared
        .state
        .store(WorkerState::Stopped as u8, Ordering::SeqCst);
}

async fn claim(shared: &Shared) -> crate::store::StoreResult<Vec<ClaimedJob>> {
    let now = shared.queue.clock().now();
    shared
        .queue
        .store()
        .jobs()
        .claim_jobs(
            LeaseId::new(),
            now,
            now + shared.settings.lease,
            shared.settings.batch,
        )
        .await
}

async fn run_batch(shared: &Shared, batch: Vec<ClaimedJob>) {
    futures::stream::iter(batch)
        .for_each_concurrent(shared.settings.concurrency.max(1), |job| {
            run_one(shared, job)
        })
        .await;
}

async fn run_one(shared: &Shared, job: ClaimedJob) {
    let jobs = shared.queue.store().jobs();
    let outcome = if job.attempts > shared.settings.max_attempts {
        // Its last attempt never reported back: the instance running it died.
        Err(JobError::Permanent(
            "the lease of its last attempt ran out".into(),
        ))
    } else {
        AssertUnwindSafe(shared.handler.run(&job.kind, &job.payload))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(JobError::Retry("the handler panicked".into())))
    };
    let kind = job.kind.clone();
    let result = match outcome {
        Ok(()) => {
            metrics::counter!("identsphere_jobs_total", "kind" => kind, "outcome" => "completed")
                .increment(1);
            jobs.complete_job(job.id, job.lease).await
        }
        Err(e) => {
            let now = shared.queue.clock().now();
            let give_up =
                matches!(e, JobError::Permanent(_)) || job.attempts >= shared.settings.max_attempts;
            let retry_at = (!give_up).then(|| {
                now + retry_delay(
                    job.attempts,
                    shared.settings.backoff_base,
                    shared.settings.backoff_max,
                    &mut rand::thread_rng(),
                )
            });
            let message = e.to_string();
            if give_up {
                tracing::error!(job.id = %job.id, job.kind = %job.kind, attempts = job.attempts, error = %message, "job dead-lettered");
                metrics::counter!("identsphere_jobs_total", "kind" => kind, "outcome" => "dead")
                    .increment(1);
            } else {
                tracing::warn!(job.id = %job.id, job.kind = %job.kind, attempts = job.attempts, error = %message, "job failed; will retry");
                metrics::counter!("identsphere_jobs_total", "kind" => kind, "outcome" => "retried")
                    .increment(1);
            }
            jobs.fail_job(job.id, job.lease, &message, retry_at, now)
                .await
        }
    };
    match result {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(job.id = %job.id, job.kind = %job.kind, "job outlived its lease; another claimer has it")
        }
        Err(e) => {
            tracing::warn!(job.id = %job.id, error = %e, "recording a job's outcome failed; its lease will run out and it runs again")
        }
    }
}

async fn refresh_gauges(shared: &Shared) {
    match shared.queue.store().jobs().count_jobs().await {
        Ok(counts) => {
            for c in counts {
                metrics::gauge!("identsphere_jobs_pending", "kind" => c.kind.clone())
                    .set(c.pending as f64);
                metrics::gauge!("identsphere_jobs_dead", "kind" => c.kind).set(c.dead as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "counting jobs failed"),
    }
}

async fn purge(shared: &Shared) {
    let before = shared.queue.clock().now() - shared.settings.dead_retention;
    match shared.queue.store().jobs().purge_dead_jobs(before).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(purged = n, "dead jobs past their retention deleted"),
        Err(e) => tracing::warn!(error = %e, "purging dead jobs failed"),
    }
}
