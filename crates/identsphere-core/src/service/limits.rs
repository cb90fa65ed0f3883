//! Rate-limit checks for the service's operations (SECURITY.md rule 15).
//!
//! Keys are HMACs under a server sub-key of the limit's name and its subject,
//! so a limiter (and Redis) sees neither addresses nor emails. Account limits
//! are keyed by the normalised address whether or not it has an account: a
//! 429 says nothing about who is registered.
use super::{Identity, RequestMeta};
use crate::{
    audit::{AuditAction, AuditMetadata, AuditValue},
    error::{CoreError, Result},
    ids::UserId,
    rate_limit::{Decision, Limit, LimitKind, RateLimiter},
    secret::derive_token,
};

/// Whose budget a check is against.
#[derive(Debug, Clone, Copy)]
pub enum LimitSubject<'a> {
    /// A client address.
    Ip(&'a str),
    /// An account by its normalised address (or, for a malformed one, its
    /// trimmed lower-cased text), registered or not.
    Address(&'a str),
    /// An account by address, from one client address.
    AddressIp(&'a str, &'a str),
    /// An account by id (MFA, once the user is known).
    User(UserId),
}

/// What a denied check records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hit {
    Exceeded,
    LockedOut,
}

/// How often one budget's refusals are audited (per instance): a flood of
/// refused requests must not become a flood of audit rows.
const AUDIT_EVERY: Limit = Limit {
    burst: 1,
    interval: std::time::Duration::from_secs(60),
};

/// The trimmed, lower-cased text used for account limits of any address.
pub(crate) fn account_key(raw: &str) -> String {
    match crate::Email::parse(raw) {
        Ok(email) => email.as_str().to_owned(),
        Err(_) => raw.trim().to_lowercase(),
    }
}

impl Identity {
    fn limit_key(&self, kind: LimitKind, subject: LimitSubject<'_>) -> String {
        let text = match subject {
            LimitSubject::Ip(ip) => format!("ip\0{ip}"),
            LimitSubject::Address(a) => format!("addr\0{a}"),
            LimitSubject::AddressIp(a, ip) => format!("addr-ip\0{a}\0{ip}"),
            LimitSubject::User(id) => format!("user\0{id}"),
        };
        let key = derive_token(
            &self.config.limit_key,
            "",
            &format!("{}\0{text}", kind.as_str()),
        );
        format!("{}:{key}", kind.as_str())
    }

    /// Counts one request against `kind`'s budget for `subject`.
    ///
    /// For other services' checks too (MFA verification calls it with
    /// [`LimitKind::MfaVerifyIp`] and [`LimitKind::MfaVerifyAccount`]).
    /// A check by IP passes when the transport gave no address.
    ///
    /// # Errors
    /// `RateLimited` with the seconds to wait; the refusal is counted in
    /// `identsphere_rate_limited_total{limit}` and audited as `rate_limit.exceeded`.
    pub async fn check_limit(
        &self,
        kind: LimitKind,
        subject: LimitSubject<'_>,
        actor: Option<UserId>,
        meta: &RequestMeta,
    ) -> Result<()> {
        let Some(decision) = self.decide(kind, subject, true).await else {
            return Ok(());
        };
        self.enforce(kind, subject, decision, Hit::Exceeded, actor, meta)
            .await
    }

    /// Whether `kind`'s budget for `subject` has room, without counting:
    /// for budgets that count failures only ([`Self::record_limited_failure`]).
    ///
    /// # Errors
    /// `RateLimited`, counted and audited as by [`Self::check_limit`]
    /// (`user.locked_out` for the login-failure kinds).
    pub async fn peek_limit(
        &self,
        kind: LimitKind,
        subject: LimitSubject<'_>,
        actor: Option<UserId>,
        meta: &RequestMeta,
    ) -> Result<()> {
        let Some(decision) = self.decide(kind, subject, false).await else {
            return Ok(());
        };
        let hit = match kind {
            LimitKind::LoginFailuresAccount | LimitKind::LoginFailuresAccountIp => Hit::LockedOut,
            _ => Hit::Exceeded,
        };
        self.enforce(kind, subject, decision, hit, actor, meta)
            .await
    }

    /// Counts a failure against a failures-only budget. A failure that no
    /// longer fits is not an error here: the next [`Self::peek_limit`] refuses.
    pub async fn record_limited_failure(&self, kind: LimitKind, subject: LimitSubject<'_>) {
        self.decide(kind, subject, true).await;
    }

    /// `None` when limits are off or the check has no subject.
    async fn decide(
        &self,
        kind: LimitKind,
        subject: LimitSubject<'_>,
        consume: bool,
    ) -> Option<Decision> {
        if !self.config.rate_limits.enabled {
            return None;
        }
        let limit = self.config.rate_limits.get(kind);
        let key = self.limit_key(kind, subject);
        let now = self.clock.now();
        Some(if consume {
            self.limiter.check(&key, &limit, now).await
        } else {
            self.limiter.peek(&key, &limit, now).await
        })
    }

    async fn enforce(
        &self,
        kind: LimitKind,
        subject: LimitSubject<'_>,
        decision: Decision,
        hit: Hit,
        actor: Option<UserId>,
        meta: &RequestMeta,
    ) -> Result<()> {
        if decision.allowed {
            return Ok(());
        }
        metrics::counter!("identsphere_rate_limited_total", "limit" => kind.as_str()).increment(1);
        let action = match hit {
            Hit::Exceeded => AuditAction::RateLimitExceeded,
            Hit::LockedOut => {
                metrics::counter!("identsphere_lockouts_total").increment(1);
                AuditAction::UserLockedOut
            }
        };
        tracing::warn!(
            limit = kind.as_str(),
            user.id = actor.map(|u| u.to_string()),
            retry_after_secs = decision.retry_after_secs(),
            "rate limit reached"
        );
        let key = self.limit_key(kind, subject);
        let first = self
            .audit_throttle
            .check(&key, &AUDIT_EVERY, self.clock.now())
            .await;
        if first.allowed {
            let metadata = AuditMetadata::default()
                .with("limit", AuditValue::Limit(kind))
                .with(
                    "retry_after_secs",
                    AuditValue::Count(decision.retry_after_secs()),
                );
            self.audit(action, actor, actor.map(AuditValue::User), meta, metadata)
                .await;
        }
        Err(CoreError::RateLimited {
            retry_after_secs: decision.retry_after_secs(),
        })
    }
}

/// Shorthand: the IP subject when the transport gave one.
pub(crate) fn by_ip(meta: &RequestMeta) -> Option<LimitSubject<'_>> {
    meta.ip.as_deref().map(LimitSubject::Ip)
}
