//! What an instance knows without a database round trip per request: which
//! sessions are revoked, and the users it read recently.
//!
//! Both stay exact through the store's change feed (PostgreSQL LISTEN/NOTIFY):
//! changes made here are applied at once, changes made by other instances
//! arrive through the feed. While the feed is down nothing here can be
//! trusted, so lookups go to the database until the feed is back and the
//! revocations have been re-read. See docs/revocation.md.
//!
//! - **Revocations:** the ids of sessions revoked within the last access-token
//!   lifetime (older ones no longer matter: their access tokens have expired).
//! - **Users:** rows read for `GET /v1/users/me` and `/v1/session`, kept for
//!   [`USER_TTL`] at most and forgotten the moment the row changes anywhere.
use crate::{
    clock::Clock,
    error::Result,
    ids::{SessionId, UserId},
    store::{Change, Store, User},
};
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
};
use tokio::task::JoinHandle;

/// How long a cached user is served at most. The change feed makes the cache
/// exact; this bounds the damage of a feed that stalls without dropping.
pub const USER_TTL: Duration = Duration::seconds(30);

/// How many users an instance caches at most (about 200 bytes each).
const USER_CAPACITY: usize = 10_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Users {
    rows: HashMap<UserId, (User, DateTime<Utc>)>,
    /// Bumped by every change: a row read before a change must not be
    /// remembered after it, so a read remembers only if this has not moved.
    epoch: u64,
}

struct Shared {
    revoked: Mutex<HashMap<SessionId, DateTime<Utc>>>,
    users: Mutex<Users>,
    /// True while the cache is known to hold every relevant change.
    trusted: AtomicBool,
    retain: Duration,
}

impl Shared {
    fn insert_revoked(&self, ids: impl IntoIterator<Item = SessionId>, now: DateTime<Utc>) {
        let mut map = lock(&self.revoked);
        for id in ids {
            map.insert(id, now);
        }
        if map.len() > 1024 {
            let horizon = now - self.retain;
            map.retain(|_, at| *at > horizon);
        }
    }

    fn forget_user(&self, id: UserId) {
        let mut users = lock(&self.users);
        users.epoch += 1;
        users.rows.remove(&id);
    }

    fn forget_users(&self) {
        let mut users = lock(&self.users);
        users.epoch += 1;
        users.rows.clear();
    }

    fn apply(&self, change: Change, now: DateTime<Utc>) {
        match change {
            Change::SessionRevoked(id) => self.insert_revoked([id], now),
            Change::UserChanged(id) => self.forget_user(id),
        }
    }
}

/// The live cache of one server instance.
pub struct LiveCache {
    shared: Arc<Shared>,
    store: Arc<dyn Store>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LiveCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCache")
            .field("trusted", &self.trusted())
            .finish_non_exhaustive()
    }
}

impl Drop for LiveCache {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl LiveCache {
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
            users: Mutex::new(Users {
                rows: HashMap::new(),
                epoch: 0,
            }),
            trusted: AtomicBool::new(false),
            retain,
        });
        // Subscribe first, then read: a revocation in between is seen by both, never by neither.
        let feed = store.change_feed().await?;
        let now = clock.now();
        shared.insert_revoked(store.revoked_since(now - retain).await?, now);
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
    pub fn record_revoked(&self, ids: impl IntoIterator<Item = SessionId>, now: DateTime<Utc>) {
        self.shared.insert_revoked(ids, now);
    }

    /// Forgets a user this instance has just changed (or tried to: an
    /// unneeded forget only costs a read). Other instances hear of it from the
    /// feed.
    pub fn forget_user(&self, id: UserId) {
        self.shared.forget_user(id);
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
        if lock(&self.shared.revoked).contains_key(&id) {
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

    /// A user without its password hash (which is never cached), from the
    /// cache when it holds a current copy, else from the store.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn user(&self, id: UserId, now: DateTime<Utc>) -> Result<Option<User>> {
        let epoch = {
            let users = lock(&self.shared.users);
            if self.trusted() {
                if let Some((user, read_at)) = users.rows.get(&id) {
                    if now - *read_at < USER_TTL {
                        return Ok(Some(user.clone()));
                    }
                }
            }
            users.epoch
        };
        let user = self.store.get_user(id).await?.map(|user| User {
            password_hash: None,
            ..user
        });
        if let Some(user) = &user {
            let mut users = lock(&self.shared.users);
            // Unchanged epoch: no change (and no feed outage) since the read began.
            if users.epoch == epoch && self.trusted() {
                if users.rows.len() >= USER_CAPACITY {
                    users.rows.retain(|_, (_, at)| now - *at < USER_TTL);
                }
                if users.rows.len() < USER_CAPACITY {
                    users.rows.insert(id, (user.clone(), now));
                }
            }
        }
        Ok(user)
    }
}

async fn follow(
    mut feed: futures::stream::BoxStream<'static, Change>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    shared: Arc<Shared>,
) {
    let mut backoff = std::time::Duration::from_millis(100);
    loop {
        while let Some(change) = feed.next().await {
            shared.apply(change, clock.now());
        }
        shared.trusted.store(false, Ordering::SeqCst);
        shared.forget_users();
        tracing::warn!("change feed interrupted; reading sessions and users from the database until it is back");
        // Resubscribe first, then re-read: a change between the two is seen by both, none by neither.
        loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
            let Ok(Some(next)) = store.change_feed().await else {
                continue;
            };
            let now = clock.now();
            let Ok(ids) = store.revoked_since(now - shared.retain).await else {
                continue;
            };
            shared.insert_revoked(ids, now);
            // Rows read during the outage may predate a change the feed never told us about.
            shared.forget_users();
            shared.trusted.store(true, Ordering::SeqCst);
            tracing::info!("change feed restored");
            feed = next;
            backoff = std::time::Duration::from_millis(100);
            break;
        }
    }
}
