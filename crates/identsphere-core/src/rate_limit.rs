//! Rate limits (SECURITY.md rule 15): a budget per IP and per account for each
//! guessable or abusable operation, decided by GCRA (the generic cell rate
//! algorithm). A budget is one timestamp per key, the "theoretical arrival
//! time" (TAT), so the in-process and the Redis limiter store the same thing
//! and agree on every decision.
//!
//! Keys reaching a limiter are opaque: the service derives them with an HMAC
//! under a server sub-key (see [`crate::service::Identity::check_limit`]), so
//! neither an email address nor an IP ever becomes a key in Redis or a log.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::Mutex,
    time::Duration,
};

/// One budget: `burst` requests at once, then one more every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests allowed back to back from a full budget (at least 1).
    pub burst: u32,
    /// Time for one request to come back into the budget (at least 1 ms).
    pub interval: Duration,
}

impl Limit {
    /// `rate` requests per `period` on average, `burst` at once.
    pub fn per(rate: u32, period: Duration, burst: u32) -> Self {
        Self {
            burst: burst.max(1),
            interval: (period / rate.max(1)).max(Duration::from_millis(1)),
        }
    }

    /// `rate` per minute, `burst` at once.
    pub fn per_minute(rate: u32, burst: u32) -> Self {
        Self::per(rate, Duration::from_secs(60), burst)
    }

    /// `rate` per hour, `burst` at once.
    pub fn per_hour(rate: u32, burst: u32) -> Self {
        Self::per(rate, Duration::from_secs(3600), burst)
    }

    /// The interval in milliseconds.
    pub fn interval_ms(&self) -> i64 {
        i64::try_from(self.interval.as_millis()).unwrap_or(i64::MAX / 4)
    }

    /// How long a key must be kept: until its budget is full again.
    pub fn window_ms(&self) -> i64 {
        self.interval_ms().saturating_mul(i64::from(self.burst))
    }

    /// Parses `RATE/UNIT` or `RATE/UNIT,BURST`, where UNIT is `s`, `min`, `h`
    /// or `d` (e.g. `20/min,10`). Without a burst, the burst is the rate.
    ///
    /// # Errors
    /// A message saying the expected form.
    pub fn parse(s: &str) -> Result<Self, String> {
        let expected =
            || format!("expected RATE/UNIT[,BURST] like 20/min,10 (UNIT: s, min, h, d), got {s:?}");
        let (rate, rest) = s.trim().split_once('/').ok_or_else(expected)?;
        let (unit, burst) = match rest.split_once(',') {
            Some((u, b)) => (u.trim(), Some(b.trim())),
            None => (rest.trim(), None),
        };
        let rate: u32 = rate.trim().parse().map_err(|_| expected())?;
        let period = match unit {
            "s" | "sec" => 1,
            "m" | "min" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err(expected()),
        };
        let burst: u32 = match burst {
            Some(b) => b.parse().map_err(|_| expected())?,
            None => rate,
        };
        if rate == 0 || burst == 0 {
            return Err(format!("rate and burst must be at least 1, got {s:?}"));
        }
        Ok(Self::per(rate, Duration::from_secs(period), burst))
    }
}

/// A limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request fits the budget (and, for a check, was counted).
    pub allowed: bool,
    /// When refused: how long until one request fits again.
    pub retry_after: Duration,
}

impl Decision {
    /// Retry-After in whole seconds, rounded up and at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        if self.retry_after.subsec_nanos() > 0 || secs == 0 {
            secs + 1
        } else {
            secs
        }
    }
}

/// GCRA on a stored TAT (milliseconds since the epoch). Returns the decision
/// and, when allowed, the TAT to store. The same arithmetic is written in Lua
/// for Redis (`identsphere::rate_limit`).
///
/// There is deliberately no "peek": a budget looked at before the work and
/// charged after it lets requests sent together all pass the look. Callers
/// charge first and give back ([`gcra_refund`]) when the attempt succeeded.
pub fn gcra(tat: Option<i64>, limit: &Limit, now_ms: i64) -> (Decision, Option<i64>) {
    let interval = limit.interval_ms();
    let tat = tat.unwrap_or(now_ms).max(now_ms);
    let new_tat = tat.saturating_add(interval);
    let allow_at = new_tat.saturating_sub(limit.window_ms());
    if now_ms < allow_at {
        let wait = u64::try_from(allow_at - now_ms).unwrap_or(0);
        return (
            Decision {
                allowed: false,
                retry_after: Duration::from_millis(wait),
            },
            None,
        );
    }
    let allowed = Decision {
        allowed: true,
        retry_after: Duration::ZERO,
    };
    (allowed, Some(new_tat))
}

/// Gives back one request that [`gcra`] counted: the TAT moves back by one
/// interval. `None` when nothing is owed any more (the key can be dropped:
/// its budget is full). The inverse of a consuming check, whatever happened
/// in between, so reservations taken and returned concurrently add up.
pub fn gcra_refund(tat: Option<i64>, limit: &Limit, now_ms: i64) -> Option<i64> {
    let back = tat?.saturating_sub(limit.interval_ms());
    (back > now_ms).then_some(back)
}

/// Where budgets live. Implementations must be safe under concurrent calls
/// for the same key (the check and the update are one atomic step).
#[async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug {
    /// Counts one request against `key`'s budget if it fits.
    async fn check(&self, key: &str, limit: &Limit, now: DateTime<Utc>) -> Decision;

    /// Gives back one request that [`Self::check`] counted (an attempt
    /// reserved before the work it guards, which then succeeded).
    async fn refund(&self, key: &str, limit: &Limit, now: DateTime<Utc>);

    /// Where the budgets are kept now (`in_process`, `redis`, or
    /// `in_process (redis unreachable)`), for readiness.
    fn backend(&self) -> &'static str;

    /// Rechecks a shared store that was unreachable, so readiness shows its
    /// return without waiting for traffic. Nothing to do by default.
    async fn probe(&self) {}
}

const SHARDS: usize = 16;
/// Bounded memory: past this many keys in a shard, the expired ones are
/// swept, and if the shard is still full the key closest to expiry goes.
const MAX_KEYS_PER_SHARD: usize = 16_384;

/// Budgets in this process: sharded maps of key → (TAT, expiry).
#[derive(Debug)]
pub struct InProcessLimiter {
    shards: Vec<Mutex<HashMap<String, Entry>>>,
    hasher: RandomState,
    max_keys_per_shard: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    tat: i64,
    expires: i64,
}

impl Default for InProcessLimiter {
    fn default() -> Self {
        Self::with_capacity(MAX_KEYS_PER_SHARD * SHARDS)
    }
}

impl InProcessLimiter {
    /// A limiter keeping at most about `max_keys` budgets.
    pub fn with_capacity(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            max_keys_per_shard: (max_keys / SHARDS).max(1),
        }
    }

    /// How many budgets are held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Whether no budget is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn decide(&self, key: &str, limit: &Limit, now: DateTime<Utc>) -> Decision {
        let now_ms = now.timestamp_millis();
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        let tat = map.get(key).filter(|e| e.expires > now_ms).map(|e| e.tat);
        let (decision, new_tat) = gcra(tat, limit, now_ms);
        if let Some(tat) = new_tat {
            if !map.contains_key(key) && map.len() >= self.max_keys_per_shard {
                map.retain(|_, e| e.expires > now_ms);
                if map.len() >= self.max_keys_per_shard {
                    // A budget nearest to full is the least useful to remember.
                    if let Some(victim) = map
                        .iter()
                        .min_by_key(|(_, e)| e.expires)
                        .map(|(k, _)| k.clone())
                    {
                        map.remove(&victim);
                    }
                }
            }
            // The budget is full again once the TAT is a whole window behind `now`.
            let expires = tat;
            map.insert(key.to_owned(), Entry { tat, expires });
        }
        decision
    }
}

#[async_trait]
impl RateLimiter for InProcessLimiter {
    async fn check(&self, key: &str, limit: &Limit, now: DateTime<Utc>) -> Decision {
        self.decide(key, limit, now)
    }

    async fn refund(&self, key: &str, limit: &Limit, now: DateTime<Utc>) {
        let now_ms = now.timestamp_millis();
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        let tat = map.get(key).filter(|e| e.expires > now_ms).map(|e| e.tat);
        match gcra_refund(tat, limit, now_ms) {
            Some(tat) => {
                map.insert(key.to_owned(), Entry { tat, expires: tat });
            }
            None => {
                map.remove(key);
            }
        }
    }

    fn backend(&self) -> &'static str {
        "in_process"
    }
}

/// Which budget a check is against. The `*Ip` kinds are keyed by client
/// address (an IPv6 client by its /64), the `*Account` kinds by the
/// normalised email address (whether or not it has an account, so limits
/// never tell) or the user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitKind {
    /// Every login attempt from one address.
    LoginIp,
    /// Failed logins for one account from one address.
    LoginFailuresAccountIp,
    /// Failed logins for one account from anywhere (lockout-style slow-down).
    LoginFailuresAccount,
    /// Sign-ups from one address.
    SignupIp,
    /// Reset-link requests from one address.
    PasswordForgotIp,
    /// Reset-link requests for one address.
    PasswordForgotAccount,
    /// Password resets (link redemptions) from one address.
    PasswordResetIp,
    /// Verification resends from one address.
    VerificationResendIp,
    /// Verification resends for one address.
    VerificationResendAccount,
    /// MFA code checks from one address.
    MfaVerifyIp,
    /// MFA code checks for one user.
    MfaVerifyAccount,
    /// Failed master-credential checks from one address (the client API's
    /// Basic auth: a guessed password must not get many tries).
    MasterFailuresIp,
    /// Failed logins from one browser that signed in to the account before
    /// (its device cookie): it keeps this budget of its own instead of the
    /// account's, so failures from elsewhere do not lock its owner out.
    LoginFailuresDevice,
    /// Password re-confirmations (step-up, MFA and email changes) from one
    /// address: a stolen access token is not a free password oracle.
    PasswordConfirmIp,
    /// Sign-ups for one address: each one mails its owner.
    SignupAccount,
}

impl LimitKind {
    /// Every kind.
    pub const ALL: &'static [LimitKind] = &[
        Self::LoginIp,
        Self::LoginFailuresAccountIp,
        Self::LoginFailuresAccount,
        Self::SignupIp,
        Self::PasswordForgotIp,
        Self::PasswordForgotAccount,
        Self::PasswordResetIp,
        Self::VerificationResendIp,
        Self::VerificationResendAccount,
        Self::MfaVerifyIp,
        Self::MfaVerifyAccount,
        Self::MasterFailuresIp,
        Self::LoginFailuresDevice,
        Self::PasswordConfirmIp,
        Self::SignupAccount,
    ];

    /// The stable name: in configuration, metrics labels and audit metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginIp => "login_ip",
            Self::LoginFailuresAccountIp => "login_failures_account_ip",
            Self::LoginFailuresAccount => "login_failures_account",
            Self::SignupIp => "signup_ip",
            Self::PasswordForgotIp => "password_forgot_ip",
            Self::PasswordForgotAccount => "password_forgot_account",
            Self::PasswordResetIp => "password_reset_ip",
            Self::VerificationResendIp => "verification_resend_ip",
            Self::VerificationResendAccount => "verification_resend_account",
            Self::MfaVerifyIp => "mfa_verify_ip",
            Self::MfaVerifyAccount => "mfa_verify_account",
            Self::MasterFailuresIp => "master_failures_ip",
            Self::LoginFailuresDevice => "login_failures_device",
            Self::PasswordConfirmIp => "password_confirm_ip",
            Self::SignupAccount => "signup_account",
        }
    }

    /// Parses a name given by [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == name)
    }

    /// The documented default budget.
    pub fn default_limit(self) -> Limit {
        match self {
            Self::LoginIp => Limit::per_minute(20, 10),
            Self::LoginFailuresAccountIp => Limit::per_minute(1, 5),
            Self::LoginFailuresAccount => Limit::per_minute(1, 10),
            Self::SignupIp => Limit::per_hour(20, 10),
            Self::PasswordForgotIp => Limit::per_hour(20, 10),
            Self::PasswordForgotAccount => Limit::per_hour(3, 3),
            Self::PasswordResetIp => Limit::per_minute(10, 10),
            Self::VerificationResendIp => Limit::per_hour(20, 10),
            Self::VerificationResendAccount => Limit::per_hour(3, 3),
            Self::MfaVerifyIp => Limit::per_minute(20, 10),
            Self::MfaVerifyAccount => Limit::per_minute(5, 5),
            Self::MasterFailuresIp => Limit::per_minute(1, 5),
            Self::LoginFailuresDevice => Limit::per_minute(1, 10),
            Self::PasswordConfirmIp => Limit::per_minute(10, 10),
            Self::SignupAccount => Limit::per_hour(3, 3),
        }
    }
}

/// The rate-limit settings: on or off, and one budget per kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Off only for load tests on loopback.
    pub enabled: bool,
    limits: std::collections::BTreeMap<LimitKind, Limit>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            limits: LimitKind::ALL
                .iter()
                .map(|k| (*k, k.default_limit()))
                .collect(),
        }
    }
}

impl RateLimits {
    /// No limits at all.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// The budget of `kind`.
    pub fn get(&self, kind: LimitKind) -> Limit {
        self.limits
            .get(&kind)
            .copied()
            .unwrap_or_else(|| kind.default_limit())
    }

    /// Replaces the budget of `kind`.
    pub fn set(&mut self, kind: LimitKind, limit: Limit) -> &mut Self {
        self.limits.insert(kind, limit);
        self
    }
}

/// One behaviour suite for every [`RateLimiter`]: the in-process one runs it
/// in this crate, the Redis one in `identsphere`. Panics on the first failure.
pub mod conformance {
    use super::{Limit, RateLimiter};
    use chrono::{DateTime, Duration as Span, Utc};
    use std::time::Duration;

    /// Runs every case with keys under `prefix` (unique per run).
    pub async fn run(limiter: &dyn RateLimiter, prefix: &str) {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        burst_then_interval(limiter, &format!("{prefix}:a"), t0).await;
        keys_are_independent(limiter, &format!("{prefix}:c"), t0).await;
        concurrent_checks_never_overshoot(limiter, &format!("{prefix}:d"), t0).await;
        refunds_give_back_what_was_counted(limiter, &format!("{prefix}:e"), t0).await;
    }

    async fn refunds_give_back_what_was_counted(l: &dyn RateLimiter, key: &str, t0: DateTime<Utc>) {
        let limit = Limit::per_minute(1, 3);
        // Reserve the whole burst at once, give two back: two fit again.
        for _ in 0..3 {
            assert!(l.check(key, &limit, t0).await.allowed);
        }
        assert!(!l.check(key, &limit, t0).await.allowed);
        l.refund(key, &limit, t0).await;
        l.refund(key, &limit, t0).await;
        assert!(l.check(key, &limit, t0).await.allowed);
        assert!(l.check(key, &limit, t0).await.allowed);
        assert!(!l.check(key, &limit, t0).await.allowed);
        // A refund never makes a budget larger than full.
        let later = t0 + Span::hours(1);
        for _ in 0..5 {
            l.refund(key, &limit, later).await;
        }
        for i in 0..3 {
            assert!(l.check(key, &limit, later).await.allowed, "refilled {i}");
        }
        assert!(
            !l.check(key, &limit, later).await.allowed,
            "still the burst"
        );
        // Concurrent reservations and refunds add up.
        let fresh = format!("{key}:c");
        let limit = Limit::per_hour(1, 10);
        let taken = futures::future::join_all((0..30).map(|_| l.check(&fresh, &limit, t0))).await;
        assert_eq!(taken.iter().filter(|d| d.allowed).count(), 10);
        futures::future::join_all((0..4).map(|_| l.refund(&fresh, &limit, t0))).await;
        let again = futures::future::join_all((0..30).map(|_| l.check(&fresh, &limit, t0))).await;
        assert_eq!(again.iter().filter(|d| d.allowed).count(), 4);
    }

    async fn burst_then_interval(l: &dyn RateLimiter, key: &str, t0: DateTime<Utc>) {
        let limit = Limit::per_minute(6, 3);
        for i in 0..3 {
            assert!(l.check(key, &limit, t0).await.allowed, "burst request {i}");
        }
        let refused = l.check(key, &limit, t0).await;
        assert!(!refused.allowed, "past the burst");
        assert_eq!(refused.retry_after, Duration::from_secs(10));
        let refused = l.check(key, &limit, t0 + Span::seconds(4)).await;
        assert_eq!(
            refused.retry_after,
            Duration::from_secs(6),
            "refusals are not counted"
        );
        assert!(l.check(key, &limit, t0 + Span::seconds(10)).await.allowed);
        assert!(!l.check(key, &limit, t0 + Span::seconds(10)).await.allowed);
        let later = t0 + Span::minutes(10);
        for i in 0..3 {
            assert!(l.check(key, &limit, later).await.allowed, "refilled {i}");
        }
        assert!(
            !l.check(key, &limit, later).await.allowed,
            "never more than the burst"
        );
    }

    async fn keys_are_independent(l: &dyn RateLimiter, key: &str, t0: DateTime<Utc>) {
        let limit = Limit::per_hour(1, 1);
        assert!(l.check(&format!("{key}:1"), &limit, t0).await.allowed);
        assert!(!l.check(&format!("{key}:1"), &limit, t0).await.allowed);
        assert!(l.check(&format!("{key}:2"), &limit, t0).await.allowed);
    }

    async fn concurrent_checks_never_overshoot(l: &dyn RateLimiter, key: &str, t0: DateTime<Utc>) {
        let limit = Limit::per_hour(5, 5);
        let checks = (0..20).map(|_| l.check(key, &limit, t0));
        let allowed = futures::future::join_all(checks)
            .await
            .iter()
            .filter(|d| d.allowed)
            .count();
        assert_eq!(allowed, 5);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    fn start() -> ManualClock {
        ManualClock::new(DateTime::from_timestamp(1_800_000_000, 0).unwrap())
    }

    #[test]
    fn gcra_allows_a_burst_then_one_per_interval() {
        let limit = Limit::per_minute(6, 3); // one every 10 s, 3 at once
        let clock = start();
        let mut tat = None;
        let mut step = |clock: &ManualClock| {
            let (d, new) = gcra(tat, &limit, clock.now().timestamp_millis());
            if let Some(t) = new {
                tat = Some(t);
            }
            d
        };
        for _ in 0..3 {
            assert!(step(&clock).allowed);
        }
        let refused = step(&clock);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(10));
        assert_eq!(refused.retry_after_secs(), 10);
        clock.advance(chrono::Duration::seconds(9));
        let refused = step(&clock);
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        clock.advance(chrono::Duration::seconds(1));
        assert!(step(&clock).allowed);
        assert!(!step(&clock).allowed);
        // A quiet window refills the whole burst, and no more.
        clock.advance(chrono::Duration::seconds(300));
        for _ in 0..3 {
            assert!(step(&clock).allowed);
        }
        assert!(!step(&clock).allowed);
    }

    #[test]
    fn limits_parse() {
        assert_eq!(Limit::parse("20/min,10"), Ok(Limit::per_minute(20, 10)));
        assert_eq!(Limit::parse(" 3/h "), Ok(Limit::per_hour(3, 3)));
        assert_eq!(
            Limit::parse("2/s,5").unwrap().interval,
            Duration::from_millis(500)
        );
        for bad in ["", "20", "x/min", "20/week", "0/min", "5/min,0", "5/min,x"] {
            assert!(Limit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kinds_roundtrip() {
        for k in LimitKind::ALL {
            assert_eq!(LimitKind::parse(k.as_str()), Some(*k));
        }
    }

    #[tokio::test]
    async fn in_process_conformance() {
        conformance::run(&InProcessLimiter::default(), "t").await;
    }

    #[tokio::test]
    async fn in_process_memory_is_bounded() {
        let limiter = InProcessLimiter::with_capacity(SHARDS * 4);
        let limit = Limit::per_minute(1, 1);
        let now = start().now();
        for i in 0..1000 {
            assert!(limiter.check(&format!("k{i}"), &limit, now).await.allowed);
        }
        assert!(limiter.len() <= SHARDS * 4);
        // Expired budgets are forgotten: a later check starts afresh.
        let later = now + chrono::Duration::minutes(2);
        assert!(limiter.check("k999", &limit, later).await.allowed);
    }
}
