//! The jobs this service enqueues, run by the worker (see [`crate::jobs`]).
use super::Identity;
use crate::jobs::{JobError, JobHandler};
use async_trait::async_trait;

#[async_trait]
impl JobHandler for Identity {
    async fn run(&self, kind: &str, payload: &serde_json::Value) -> Result<(), JobError> {
        if let Some(outcome) = self.run_account_job(kind, payload).await {
            return outcome;
        }
        // Enqueued by a newer version of the server during a rolling
        // upgrade: retried, so that an upgraded instance takes it.
        Err(JobError::Retry(format!("unknown job kind {kind:?}")))
    }
}
