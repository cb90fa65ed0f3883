//! Rate-limit budgets shared by every instance through Redis, with the
//! in-process limiter standing in while Redis cannot be reached: a Redis
//! outage degrades the limits to per-instance ones, never the service.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use identsphere_core::rate_limit::{Decision, InProcessLimiter, Limit, RateLimiter};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

/// GCRA on one key, atomically: the same arithmetic as
/// [`identsphere_core::rate_limit::gcra`] (ARGV[4] = 1) and
/// [`identsphere_core::rate_limit::gcra_refund`] (2). The key holds the TAT
/// in milliseconds and expires when the budget is full again.
const GCRA: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local op = tonumber(ARGV[4])
local tat = now
local stored = redis.call('GET', KEYS[1])
if op == 2 then
  -- A refund: the TAT moves back one interval; a full budget needs no key.
  if stored then
    local back = tonumber(stored) - interval
    if back > now then
      redis.call('SET', KEYS[1], string.format('%d', back), 'PX', string.format('%d', back - now))
    else
      redis.call('DEL', KEYS[1])
    end
  end
  return {1, 0}
end
if stored then
  tat = math.max(tonumber(stored), now)
end
local new_tat = tat + interval
local allow_at = new_tat - window
if now < allow_at then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', new_tat - now))
return {1, 0}
";

/// After a Redis error, budgets stay in this process this long before Redis
/// is tried again, so an outage costs no latency per request.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_millis(500);

/// Budgets in Redis under `prefix`, falling back to this process.
pub struct RedisLimiter {
    redis: ConnectionManager,
    script: redis::Script,
    prefix: String,
    fallback: InProcessLimiter,
    up: AtomicBool,
    skip_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: not shown.
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .field("up", &self.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// Connects lazily to `url`, then checks once whether Redis answers
    /// (logging either way).
    ///
    /// # Errors
    /// A URL the Redis client cannot use.
    pub async fn connect(url: &str, prefix: String) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("{e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let redis =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|e| format!("{e}"))?;
        let limiter = Self {
            redis,
            script: redis::Script::new(GCRA),
            prefix,
            fallback: InProcessLimiter::default(),
            up: AtomicBool::new(true),
            skip_until: Mutex::new(None),
        };
        match limiter.ping().await {
            Ok(()) => tracing::info!("rate limits are shared through Redis"),
            Err(e) => limiter.failed(&e),
        }
        Ok(limiter)
    }

    async fn ping(&self) -> redis::RedisResult<()> {
        let mut conn = self.redis.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }

    fn failed(&self, error: &redis::RedisError) {
        if let Ok(mut until) = self.skip_until.lock() {
            *until = Some(Instant::now() + RETRY_AFTER_ERROR);
        }
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::error!(
                error = %error,
                "Redis is unreachable: rate limits are kept in this process until it answers again"
            );
        }
    }

    fn recovered(&self) {
        if let Ok(mut until) = self.skip_until.lock() {
            *until = None;
        }
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::warn!("Redis answers again: rate limits are shared again");
        }
    }

    fn skipping(&self) -> bool {
        match self.skip_until.lock() {
            Ok(until) => until.is_some_and(|t| Instant::now() < t),
            Err(_) => false,
        }
    }

    async fn decide(&self, key: &str, limit: &Limit, now: DateTime<Utc>, op: Op) -> Decision {
        if self.skipping() {
            return self.local(key, limit, now, op).await;
        }
        let mut conn = self.redis.clone();
        let mut invocation = self.script.key(format!("{}{key}", self.prefix));
        invocation
            .arg(now.timestamp_millis())
            .arg(limit.interval_ms())
            .arg(limit.window_ms())
            .arg(op as i64);
        let answer: redis::RedisResult<(i64, i64)> = invocation.invoke_async(&mut conn).await;
        match answer {
            Ok((allowed, wait_ms)) => {
                self.recovered();
                Decision {
                    allowed: allowed == 1,
                    retry_after: Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)),
                }
            }
            Err(e) => {
                self.failed(&e);
                self.local(key, limit, now, op).await
            }
        }
    }

    async fn local(&self, key: &str, limit: &Limit, now: DateTime<Utc>, op: Op) -> Decision {
        match op {
            Op::Check => self.fallback.check(key, limit, now).await,
            Op::Refund => {
                self.fallback.refund(key, limit, now).await;
                Decision {
                    allowed: true,
                    retry_after: Duration::ZERO,
                }
            }
        }
    }
}

/// What the script does with a key (its ARGV[4]).
#[derive(Debug, Clone, Copy)]
enum Op {
    Check = 1,
    Refund = 2,
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(&self, key: &str, limit: &Limit, now: DateTime<Utc>) -> Decision {
        self.decide(key, limit, now, Op::Check).await
    }

    async fn refund(&self, key: &str, limit: &Limit, now: DateTime<Utc>) {
        self.decide(key, limit, now, Op::Refund).await;
    }

    async fn probe(&self) {
        if !self.up.load(Ordering::Relaxed) {
            match self.ping().await {
                Ok(()) => self.recovered(),
                Err(e) => self.failed(&e),
            }
        }
    }

    fn backend(&self) -> &'static str {
        if self.up.load(Ordering::Relaxed) {
            "redis"
        } else {
            "in_process (redis unreachable)"
        }
    }
}
