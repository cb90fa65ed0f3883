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
    /// A client address (an IPv6 one stands for its /64).
    Ip(&'a str),
    /// An account by its normalised address (or, for a malformed one, its
    /// trimmed lower-cased text), registered or not.
    Address(&'a str),
    /// An account by address, from one client address.
    AddressIp(&'a str, &'a str),
    /// An account by id (MFA, once the user is known).
    User(UserId),
    /// A browser by the nonce of its device cookie.
    Device(&'a str),
}

/// Attempts counted against failure budgets before the work they guard
/// (a password hash, a code check). Dropped as it is, the attempts stay
/// counted: the attempt failed. [`Identity::release`] gives them back when
/// it succeeded. Counting first is one atomic step in the limiter, so
/// requests sent together cannot all pass a check made before any of them
/// is counted.
#[must_use = "release the reservation when the attempt succeeds"]
#[derive(Debug, Default)]
pub(crate) struct Reservation {
    taken: Vec<(LimitKind, String)>,
}

/// How often one budget's refusals are audited (per instance): a flood of
/// refused requests must not become a flood of audit rows.
const AUDIT_EVERY: Limit = Limit {
    burst: 1,
    interval: std::time::Duration::from_secs(60),
};

/// A client address as budgets see it: an IPv6 client by its /64 (one
/// subscriber's network: a host there can pick any of 2^64 addresses),
/// anything else as it is.
pub(crate) fn client_network(ip: &str) -> std::borrow::Cow<'_, str> {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64").into()
        }
        Ok(std::net::IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or_else(|| ip.into(), |v4| v4.to_string().into()),
        _ => ip.into(),
    }
}

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
            LimitSubject::Ip(ip) => format!("ip\0{}", client_network(ip)),
            LimitSubject::Address(a) => format!("addr\0{a}"),
            LimitSubject::AddressIp(a, ip) => format!("addr-ip\0{a}\0{}", client_network(ip)),
            LimitSubject::User(id) => format!("user\0{id}"),
            LimitSubject::Device(nonce) => format!("device\0{nonce}"),
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
    /// `identsphere_rate_limited_total{limit}` and audited as
    /// `rate_limit.exceeded` (`user.locked_out` for the login-failure kinds).
    pub async fn check_limit(
        &self,
        kind: LimitKind,
        subject: LimitSubject<'_>,
        actor: Option<UserId>,
        meta: &RequestMeta,
    ) -> Result<()> {
        if !self.config.rate_limits.enabled {
            return Ok(());
        }
        let limit = self.config.rate_limits.get(kind);
        let key = self.limit_key(kind, subject);
        let decision = self.limiter.check(&key, &limit, self.clock.now()).await;
        self.enforce(kind, &key, decision, actor, meta).await
    }

    /// Counts one attempt against each of `budgets` (failure budgets: a
    /// lockout), before the work they guard. When one refuses, the attempts
    /// already counted are given back and the refusal is returned.
    ///
    /// # Errors
    /// `RateLimited`, as by [`Self::check_limit`].
    pub(crate) async fn reserve(
        &self,
        budgets: &[(LimitKind, LimitSubject<'_>)],
        actor: Option<UserId>,
        meta: &RequestMeta,
    ) -> Result<Reservation> {
        let mut reservation = Reservation::default();
        if !self.config.rate_limits.enabled {
            return Ok(reservation);
        }
        for &(kind, subject) in budgets {
            let limit = self.config.rate_limits.get(kind);
            let key = self.limit_key(kind, subject);
            let decision = self.limiter.check(&key, &limit, self.clock.now()).await;
            if let Err(e) = self.enforce(kind, &key, decision, actor, meta).await {
                self.release(reservation).await;
                return Err(e);
            }
            reservation.taken.push((kind, key));
        }
        Ok(reservation)
    }

    /// Gives back the attempts of a reservation whose attempt succeeded.
    pub(crate) async fn release(&self, reservation: Reservation) {
        let now = self.clock.now();
        for (kind, key) in reservation.taken {
            let limit = self.config.rate_limits.get(kind);
            self.limiter.refund(&key, &limit, now).await;
        }
    }

    async fn enforce(
        &self,
        kind: LimitKind,
        key: &str,
        decision: Decision,
        actor: Option<UserId>,
        meta: &RequestMeta,
    ) -> Result<()> {
        if decision.allowed {
            return Ok(());
        }
        metrics::counter!("identsphere_rate_limited_total", "limit" => kind.as_str()).increment(1);
        let action = match kind {
            LimitKind::LoginFailuresAccount
            | LimitKind::LoginFailuresAccountIp
            | LimitKind::LoginFailuresDevice => {
                metrics::counter!("identsphere_lockouts_total").increment(1);
                AuditAction::UserLockedOut
            }
            _ => AuditAction::RateLimitExceeded,
        };
        tracing::warn!(
            limit = kind.as_str(),
            user.id = actor.map(|u| u.to_string()),
            retry_after_secs = decision.retry_after_secs(),
            "rate limit reached"
        );
        let first = self
            .audit_throttle
            .check(key, &AUDIT_EVERY, self.clock.now())
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

#[cfg(test)]
mod tests {
    use super::client_network;

    #[test]
    fn ipv6_clients_are_budgeted_by_their_64() {
        assert_eq!(client_network("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(
            client_network("2001:db8:1:2:ffff::1"),
            client_network("2001:db8:1:2::9")
        );
        assert_ne!(
            client_network("2001:db8:1:2::1"),
            client_network("2001:db8:1:3::1")
        );
        assert_eq!(client_network("203.0.113.9"), "203.0.113.9");
        assert_eq!(client_network("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(client_network("not an address"), "not an address");
    }
}
