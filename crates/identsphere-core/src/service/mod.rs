//! The operations behind the API, free of HTTP and SQL.
mod account_jobs;
mod accounts;
mod api_keys;
mod clients;
mod devices;
mod invitations;
mod jobs;
mod limits;
mod mfa;
mod orgs;
mod passkeys;
mod sessions;

pub(crate) use accounts::clean_name;
pub use accounts::{EmailChangeRequest, SignupRequest};
pub use api_keys::{NewApiKeyRequest, API_KEY_PREFIX};
pub use clients::{
    IssuedMachineToken, MasterCredentials, CLIENT_KEY_PREFIX, CLIENT_SECRET_PREFIX,
    MACHINE_TOKEN_TTL,
};
pub use invitations::{AcceptInvitation, AcceptedInvitation};
pub use limits::LimitSubject;
pub use mfa::{MfaProof, TotpEnrollment};
pub use orgs::{ActiveOrg, Caller, OrgAccess, SessionOrganization};
pub use passkeys::{CeremonyStart, MAX_PASSKEYS};
pub use sessions::{IssuedTokens, LoginOutcome, LoginRequest};

use crate::{
    audit::{AuditAction, AuditMetadata, AuditValue, NewAuditEvent},
    clock::Clock,
    error::{CoreError, Result},
    ids::{OrgId, SessionId, UserId},
    jobs::JobQueue,
    live_cache::LiveCache,
    mail::{Mail, Mailer},
    passkeys::RelyingParty,
    password::{PasswordHasher, PasswordPolicy},
    rate_limit::{InProcessLimiter, RateLimiter, RateLimits},
    secret::{random_token, TokenHash},
    store::{NewOneTimeToken, NewRefreshToken, Store, StoreResult, TokenPurpose, User, UserPatch},
    tokens::{AccessClaims, KeyRing},
};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;
use url::Url;

/// Settings of the domain layer, already validated by the caller.
#[derive(Clone)]
pub struct IdentityConfig {
    /// Public base URL: `iss` and base of emailed links.
    pub public_url: Url,
    /// `aud` of access tokens.
    pub audience: String,
    /// Access-token lifetime.
    pub access_ttl: Duration,
    /// Refresh-token (and idle session) lifetime.
    pub refresh_ttl: Duration,
    /// How long a retired refresh token still yields its successor.
    pub refresh_grace: Duration,
    /// How recent a sign-in or step-up must be for sensitive operations.
    pub step_up_max_age: Duration,
    /// Refuse password login until the email is verified.
    pub require_email_verification: bool,
    /// Rules for new passwords.
    pub password_policy: PasswordPolicy,
    /// Key for deriving refresh-token successors (a sub-key of the server secret).
    pub refresh_key: [u8; 32],
    /// Key sealing TOTP secrets at rest (a sub-key of the server secret).
    pub totp_key: [u8; 32],
    /// The host application's permissions (`app:*`), granted to owners and
    /// admins and usable in custom roles and API-key scopes.
    pub app_permissions: Vec<crate::permissions::Permission>,
    /// Whether API keys may have the scope `*` (all of the owner's permissions).
    pub allow_wildcard_api_key_scope: bool,
    /// Rate limits: on or off, and the budget of each kind.
    pub rate_limits: RateLimits,
    /// Key for deriving rate-limit keys (a sub-key of the server secret), so
    /// no address or email reaches a limiter's storage.
    pub limit_key: [u8; 32],
    /// Where passkeys may be used.
    pub passkeys: crate::passkeys::PasskeySettings,
    /// The client API's Basic credentials; `None` turns that API off.
    pub master: Option<MasterCredentials>,
}

impl std::fmt::Debug for IdentityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityConfig")
            .field("public_url", &self.public_url.as_str())
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("refresh_grace", &self.refresh_grace)
            .field("rate_limits", &self.rate_limits)
            .finish_non_exhaustive()
    }
}

impl IdentityConfig {
    /// The `iss` value: the public URL without a trailing slash.
    pub fn issuer(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_owned()
    }

    /// `path` under the public URL, keeping any path prefix the URL has
    /// (`https://example.com/auth` + `verify-email` → `…/auth/verify-email`).
    pub fn link(&self, path: &str) -> Url {
        let mut base = self.public_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        base.join(path).unwrap_or(base)
    }
}

/// Who made a request, as far as the transport can tell.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent (truncated).
    pub user_agent: Option<String>,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user.
    pub user_id: UserId,
    /// The session the token belongs to.
    pub session_id: SessionId,
    /// The validated claims.
    pub claims: AccessClaims,
}

impl Principal {
    /// Whether the session was signed in with a second factor (`amr` holds
    /// `mfa`), for organizations that require one.
    ///
    /// Read from the signed token rather than the session row: `amr` only
    /// grows during a session (a step-up adds methods, nothing removes any),
    /// so a token never claims more than its session holds, and an older
    /// token claiming less fails closed until the client uses the new pair.
    /// It also costs no store read on organization requests.
    pub fn signed_in_with_mfa(&self) -> bool {
        mfa::amr_has_mfa(&self.claims.amr)
    }
}

/// Refresh tokens are recognisable in logs, leak scanners and support tickets.
pub const REFRESH_PREFIX: &str = "rt_";

/// What a one-time link carries besides its user and purpose.
#[derive(Debug)]
pub(crate) enum Link {
    /// Nothing more.
    Plain,
    /// The address an email change confirms.
    EmailChange(crate::Email),
    /// The hash of the signing-up browser's secret.
    SignUp(TokenHash),
}

const LINK_TTL_VERIFY: i64 = 24;
const LINK_TTL_RESET: i64 = 1;
const LINK_TTL_EMAIL_CHANGE: i64 = 24;

/// The identity service: accounts, sessions and tokens.
pub struct Identity {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    hasher: PasswordHasher,
    keys: Arc<KeyRing>,
    /// Bounds asymmetric signatures in flight to one per core.
    signing: Arc<tokio::sync::Semaphore>,
    live: LiveCache,
    mailer: Arc<dyn Mailer>,
    config: IdentityConfig,
    limiter: Arc<dyn RateLimiter>,
    /// Per-instance throttle of rate-limit audit events.
    audit_throttle: InProcessLimiter,
    /// The WebAuthn relying party; none when the public URL has no domain name.
    relying_party: Option<RelyingParty>,
    /// Work done after the answer (see [`crate::jobs`]).
    jobs: JobQueue,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Assembles the service from its parts.
    ///
    /// # Errors
    /// When the revocation cache cannot be loaded from the store.
    pub async fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hasher: PasswordHasher,
        keys: KeyRing,
        mailer: Arc<dyn Mailer>,
        config: IdentityConfig,
    ) -> Result<Self> {
        let relying_party = match RelyingParty::new(&config.public_url, &config.passkeys) {
            Ok(rp) => Some(rp),
            // Without settings of its own, a server on an IP address just has no passkeys.
            Err(e)
                if config.passkeys.rp_id.is_none() && config.passkeys.extra_origins.is_empty() =>
            {
                tracing::warn!(error = %e, "passkeys are off: the public URL's host is not a domain name");
                None
            }
            Err(e) => return Err(e),
        };
        let live = LiveCache::start(store.clone(), clock.clone(), config.access_ttl).await?;
        let jobs = JobQueue::new(store.clone(), clock.clone());
        Ok(Self {
            store,
            clock,
            hasher,
            keys: Arc::new(keys),
            signing: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            live,
            mailer,
            config,
            limiter: Arc::new(InProcessLimiter::default()),
            audit_throttle: InProcessLimiter::default(),
            relying_party,
            jobs,
        })
    }

    /// Keeps rate-limit budgets in `limiter` (shared ones, e.g. Redis)
    /// instead of this process.
    pub fn with_rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Where rate-limit budgets are kept.
    pub fn rate_limiter(&self) -> &Arc<dyn RateLimiter> {
        &self.limiter
    }

    /// The settings.
    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The signing keys.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The job queue; a [`crate::jobs::JobWorker`] running this service as
    /// its handler does the work.
    pub fn jobs(&self) -> &JobQueue {
        &self.jobs
    }

    /// What this instance knows of revocations and users without a round trip.
    pub fn live_cache(&self) -> &LiveCache {
        &self.live
    }

    /// Checks a token's signature, algorithm, `iss`, `aud`, `exp` and claims.
    ///
    /// # Errors
    /// `Unauthorized` for any invalid or expired token.
    pub(crate) async fn verify_signature<C>(&self, token: &str) -> Result<C>
    where
        C: serde::de::DeserializeOwned + crate::tokens::Expiring,
    {
        let now = self.clock.now();
        match self.keys.verify(token, now) {
            // Another instance may have rotated the keys since we loaded them.
            Err(CoreError::Unauthorized)
                if self.keys.unknown_kid(token) && self.keys.stale(now, Duration::seconds(10)) =>
            {
                self.keys.reload(self.store.as_ref(), now).await?;
                self.keys.verify(token, now)
            }
            other => other,
        }
    }

    /// Validates an access token and checks that its session is not revoked.
    ///
    /// # Errors
    /// `Unauthorized` for any invalid, expired or revoked token.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let claims: AccessClaims = self.verify_signature(token).await?;
        let session_id: SessionId = claims.sid.parse().map_err(|_| CoreError::Unauthorized)?;
        let user_id: UserId = claims.sub.parse().map_err(|_| CoreError::Unauthorized)?;
        if self.live.is_revoked(session_id).await? {
            return Err(CoreError::Unauthorized);
        }
        Ok(Principal {
            user_id,
            session_id,
            claims,
        })
    }

    /// The user behind a principal.
    ///
    /// # Errors
    /// `Unauthorized` when the account no longer exists.
    pub async fn current_user(&self, principal: &Principal) -> Result<User> {
        self.store
            .get_user(principal.user_id)
            .await?
            .ok_or(CoreError::Unauthorized)
    }

    /// Every user write goes through here, so that this instance's cache
    /// forgets the old row at once (other instances hear of it from the
    /// change feed). Forgets even when the write fails: that costs one read.
    pub(crate) async fn write_user(
        &self,
        id: UserId,
        patch: &UserPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<User> {
        let written = self.store.update_user(id, patch, now).await;
        self.live.forget_user(id);
        written
    }

    /// Appends an audit event outside any organization.
    pub(crate) async fn audit(
        &self,
        action: AuditAction,
        actor: Option<UserId>,
        target: Option<AuditValue>,
        meta: &RequestMeta,
        metadata: AuditMetadata,
    ) {
        self.audit_in(None, action, actor, target, meta, metadata)
            .await;
    }

    /// Appends an audit event. A failed write is logged, not returned: the
    /// action it records has already happened.
    pub(crate) async fn audit_in(
        &self,
        org: Option<OrgId>,
        action: AuditAction,
        actor: Option<UserId>,
        target: Option<AuditValue>,
        meta: &RequestMeta,
        metadata: AuditMetadata,
    ) {
        let event = NewAuditEvent {
            id: Default::default(),
            occurred_at: self.clock.now(),
            action,
            actor_id: actor,
            org_id: org,
            target_id: target,
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            metadata,
        };
        if let Err(e) = self.store.append_audit(&event).await {
            tracing::error!(action = action.as_str(), error = %e, "appending an audit event failed");
        }
    }

    /// Signs `claims` with the newest key. An RS256 signature costs about a
    /// millisecond of CPU (EdDSA tens of microseconds): asymmetric signing
    /// runs on the blocking pool, one signature per core at a time, so that
    /// it never holds up the async workers and the requests they serve.
    /// HS256 costs microseconds and is signed in place.
    pub(crate) async fn sign<C>(&self, claims: C) -> Result<String>
    where
        C: serde::Serialize + Send + 'static,
    {
        if self.keys.alg() == crate::tokens::JwtAlg::Hs256 {
            return self.keys.sign(&claims);
        }
        let permit = self
            .signing
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        let keys = self.keys.clone();
        // The permit goes with the signature: the next one starts as soon as
        // this one ends, not when a worker gets round to this task again.
        tokio::task::spawn_blocking(move || {
            let signed = keys.sign(&claims);
            drop(permit);
            signed
        })
        .await
        .map_err(|e| CoreError::Internal(e.to_string()))?
    }

    /// Signs with the newest key: another instance may have rotated the keys
    /// (checked at most once a minute; a failure keeps the current keys).
    async fn refresh_keys_if_stale(&self) {
        let now = self.clock.now();
        if self.keys.stale(now, Duration::seconds(60)) {
            if let Err(e) = self.keys.reload(self.store.as_ref(), now).await {
                tracing::warn!(error = %e, "reloading signing keys failed; keeping the current ones");
            }
        }
    }

    /// A new random refresh token and the record that stores its hash.
    fn new_refresh_token(&self, now: DateTime<Utc>) -> (String, NewRefreshToken) {
        let token = random_token(REFRESH_PREFIX);
        let record = self.refresh_record(&token, now);
        (token, record)
    }

    /// The record of refresh token `token` (new, or a derived successor).
    fn refresh_record(&self, token: &str, now: DateTime<Utc>) -> NewRefreshToken {
        NewRefreshToken {
            id: crate::ids::RefreshTokenId::new(),
            hash: TokenHash::of(token),
            created_at: now,
            expires_at: now + self.config.refresh_ttl,
        }
    }

    /// Sends mail in the background: the response must not wait for SMTP, and
    /// its timing must not tell whether a message was sent at all.
    fn send_later(&self, mail: Mail) {
        let mailer = self.mailer.clone();
        tokio::spawn(async move {
            let subject = mail.subject.clone();
            if let Err(e) = mailer.send(mail).await {
                tracing::error!(subject, error = %e, "sending mail failed");
            }
        });
    }

    /// Issues a one-time token for `user` and returns the emailed link.
    async fn issue_link(
        &self,
        user: &User,
        purpose: TokenPurpose,
        kind: Link,
        path: &str,
    ) -> Result<String> {
        let (new_email, proof) = match kind {
            Link::Plain => (None, None),
            Link::EmailChange(email) => (Some(email), None),
            Link::SignUp(proof) => (None, Some(proof)),
        };
        let token = random_token("");
        let now = self.clock.now();
        let hours = match purpose {
            TokenPurpose::VerifyEmail => LINK_TTL_VERIFY,
            TokenPurpose::ResetPassword => LINK_TTL_RESET,
            TokenPurpose::ChangeEmail => LINK_TTL_EMAIL_CHANGE,
        };
        self.store
            .replace_one_time_token(&NewOneTimeToken {
                id: Default::default(),
                user_id: user.id,
                purpose,
                hash: TokenHash::of(&token),
                new_email,
                proof,
                created_at: now,
                expires_at: now + Duration::hours(hours),
            })
            .await?;
        let mut url = self.config.link(path);
        url.query_pairs_mut().append_pair("token", &token);
        Ok(url.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> IdentityConfig {
        IdentityConfig {
            public_url: url.parse().unwrap(),
            audience: "a".into(),
            access_ttl: Duration::minutes(15),
            refresh_ttl: Duration::days(30),
            refresh_grace: Duration::seconds(10),
            step_up_max_age: Duration::seconds(300),
            require_email_verification: true,
            password_policy: PasswordPolicy::default(),
            refresh_key: [0; 32],
            totp_key: [0; 32],
            app_permissions: Vec::new(),
            allow_wildcard_api_key_scope: false,
            rate_limits: RateLimits::default(),
            limit_key: [0; 32],
            passkeys: Default::default(),
            master: None,
        }
    }

    #[test]
    fn links_keep_the_public_url_path() {
        assert_eq!(
            config("http://localhost:8080")
                .link("verify-email")
                .as_str(),
            "http://localhost:8080/verify-email"
        );
        assert_eq!(
            config("https://example.com/auth")
                .link("verify-email")
                .as_str(),
            "https://example.com/auth/verify-email"
        );
        assert_eq!(
            config("https://example.com/auth/").link("login").as_str(),
            "https://example.com/auth/login"
        );
        assert_eq!(
            config("https://example.com/auth/").issuer(),
            "https://example.com/auth"
        );
    }
}
