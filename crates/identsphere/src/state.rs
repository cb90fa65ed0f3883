//! State shared by every handler.
use crate::{config::AuthServiceConfig, cookies::CookieSettings};
use identsphere_core::{jobs::JobWorker, service::Identity};
use std::sync::Arc;

/// What handlers and extractors reach through `FromRef`.
#[derive(Clone, Debug)]
pub struct AppState {
    pub(crate) identity: Arc<Identity>,
    /// This instance's job worker, running `identity`'s jobs.
    pub(crate) worker: Arc<JobWorker>,
    pub(crate) cookies: CookieSettings,
    pub(crate) max_json_body: usize,
    pub(crate) timeouts: crate::timeouts::Timeouts,
}

impl AppState {
    pub(crate) fn new(
        identity: Arc<Identity>,
        worker: Arc<JobWorker>,
        config: &AuthServiceConfig,
        csrf_key: [u8; 32],
    ) -> Self {
        Self {
            identity,
            worker,
            cookies: CookieSettings {
                secure: config.cookies_secure,
                csrf_key,
            },
            max_json_body: config.max_json_body,
            timeouts: crate::timeouts::Timeouts {
                request: config.request_timeout,
                body_read: config.body_read_timeout,
            },
        }
    }

    /// The domain service.
    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }

    /// This instance's job worker.
    pub fn job_worker(&self) -> &Arc<JobWorker> {
        &self.worker
    }
}
