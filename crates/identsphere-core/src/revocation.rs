//! Which sessions are revoked, known without a database round trip per request.
//!
//! Every instance keeps the ids of sessions revoked within the last access-token
//! lifetime (older revocations no longer matter: their access tokens have
//! expired). Revocations made here are recorded at once; revocations made by
//! other instances arrive through the store's feed (PostgreSQL LISTEN/NOTIFY).
//! While the feed is down the cache cannot be trusted, so lookups fall back to
//! the database until the feed is back and the cache has been re-read. See
//! docs/revocation.md.
use crate::{clock::Clock, error::Result, ids::SessionId, store::Store};
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};
use tokio::task::JoinHandle;

struct Shared {
    revoked: Mutex<HashMap<SessionId, DateTime<Utc>>>,
    /// True while the cache is known to hold every relevant revocation.
    trusted: AtomicBool,
    retain: Duration,
}

impl Shared {
    fn insert_all(&self, ids: impl IntoIterator<Item = SessionId>, now: DateTime<Utc>) {
        let mut map = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            map.insert(id, now);
        }
        if map.len() > 1024 {
            let horizon = now - self.retain;
            map.retain(|_, at| *at > horizon);
        }
    }
}

/// The revocation cache of one server instance.
pub struct RevocationCache {
    shared: Arc<Shared>,
    store: Arc<dyn Store>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RevocationCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationCache")
            .field("trusted", &self.shared.trusted.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Drop for RevocationCache {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl RevocationCache {
    /// Loads recent revocations and, when the store has a feed, follows it.
    ///
    /// # Errors
    /// When the store cannot be read at start.
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        retain: Duration,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            revoked: Mutex::new(HashMap::new()),
            trusted: AtomicBool::new(false),
            retain,
        });
        let feed = store.revocation_feed().await?;
        let now = clock.now();
        shared.insert_all(store.revoked_since(now - retain).await?, now);
        shared.trusted.store(true, Ordering::SeqCst);
        let task =
            feed.map(|feed| tokio::spawn(follow(feed, store.clone(), clock, shared.clone())));
        Ok(Self {
            shared,
            store,
            task,
        })
    }

    /// Records revocations made by this instance (effective here at once).
    pub fn record(&self, ids: impl IntoIterator<Item = SessionId>, now: DateTime<Utc>) {
        self.shared.insert_all(ids, now);
    }

    /// Whether the cache currently answers on its own (false while the feed is down).
    pub fn trusted(&self) -> bool {
        self.shared.trusted.load(Ordering::SeqCst)
    }

    /// Whether `id` has been revoked.
    ///
    /// # Errors
    /// Only while the cache is untrusted and the database cannot be read.
    pub async fn is_revoked(&self, id: SessionId) -> Result<bool> {
        if self.revoked_locally(id) {
            return Ok(true);
        }
        if self.trusted() {
            return Ok(false);
        }
        Ok(self
            .store
            .get_session(id)
            .await?
            .is_none_or(|s| s.revoked_at.is_some()))
    }

    fn revoked_locally(&self, id: SessionId) -> bool {
        self.shared
            .revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id)
    }
}

async fn follow(
    mut feed: futures::stream::BoxStream<'static, SessionId>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    shared: Arc<Shared>,
) {
    let mut backoff = std::time::Duration::from_millis(100);
    loop {
        while let Some(id) = feed.next().await {
            shared.insert_all([id], clock.now());
        }
        shared.trusted.store(false, Ordering::SeqCst);
        tracing::warn!(
            "revocation feed interrupted; checking sessions in the database until it is back"
        );
        // Resubscribe first, then re-read: a revocation between the two is seen by both, none by neither.
        loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
            let Ok(Some(next)) = store.revocation_feed().await else {
                continue;
            };
            let now = clock.now();
            let Ok(ids) = store.revoked_since(now - shared.retain).await else {
                continue;
            };
            shared.insert_all(ids, now);
            shared.trusted.store(true, Ordering::SeqCst);
            tracing::info!("revocation feed restored");
            feed = next;
            backoff = std::time::Duration::from_millis(100);
            break;
        }
    }
}
