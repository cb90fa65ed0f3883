//! Sign-in, token refresh, and session management.
use super::{
    limits::{account_key, by_ip},
    mfa::amr_has_mfa,
    Caller, Identity, LimitSubject, Principal, RequestMeta, REFRESH_PREFIX,
};
use crate::{
    audit::{AuditAction, AuditMetadata, AuditValue},
    error::{CoreError, Result},
    ids::{OrgId, SessionId, UserId},
    password::check_size,
    rate_limit::LimitKind,
    secret::{derive_token, TokenHash},
    store::{NewSession, RotateOutcome, Session, SessionSelector, User},
    tokens::AccessClaims,
    Email,
};
use secrecy::SecretString;

/// Input of [`Identity::login`].
#[derive(Debug)]
pub struct LoginRequest {
    /// Address, unparsed.
    pub email: String,
    /// Password.
    pub password: SecretString,
    /// The browser's device cookie, if it sent one ([`Identity::device_cookie`]).
    pub device: Option<String>,
}

/// What a correct password leads to.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Signed in: the user and the session's tokens.
    SignedIn(Box<(User, IssuedTokens)>),
    /// The account has a second factor: finish with [`Identity::verify_mfa`].
    MfaRequired {
        /// Opaque handle of the pending login (shown once, stored hashed).
        mfa_token: String,
        /// The second factors the account accepts (`totp`, `recovery_code`).
        methods: Vec<&'static str>,
    },
}

/// A fresh access and refresh token pair for a session.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    /// Signed JWT.
    pub access_token: String,
    /// Access-token lifetime in seconds.
    pub expires_in: i64,
    /// Opaque refresh token.
    pub refresh_token: String,
    /// Refresh-token lifetime in seconds.
    pub refresh_expires_in: i64,
    /// The session.
    pub session: Session,
}

impl Identity {
    /// Signs in with email and password and opens a session; returns the user
    /// and its tokens, or an MFA challenge when the account has a second factor.
    ///
    /// # Errors
    /// `InvalidCredentials` (unknown address and wrong password alike, after the
    /// same hashing work), `EmailNotVerified` when verification is required.
    pub async fn login(&self, req: LoginRequest, meta: &RequestMeta) -> Result<LoginOutcome> {
        check_size("password", &req.password)?;
        // Every attempt counts per address before any hashing work.
        if let Some(ip) = by_ip(meta) {
            self.check_limit(LimitKind::LoginIp, ip, None, meta).await?;
        }
        // A malformed address cannot have an account: answer as for any unknown one.
        let user = match Email::parse(&req.email) {
            Ok(email) => self.store.find_user_by_email(&email).await?,
            Err(_) => None,
        };
        let user_id = user.as_ref().map(|u| u.id);
        // Failures are limited per account (known or not, so a 429 tells
        // nothing) and per account and client address: one address alone
        // cannot lock an account out. A browser that signed in to this
        // account before (its device cookie) has a budget of its own
        // instead, so failures from elsewhere do not lock its owner out.
        let account = account_key(&req.email);
        let budgets: Vec<(LimitKind, LimitSubject<'_>)> =
            match self.trusted_device(&account, req.device.as_deref()) {
                Some(nonce) => vec![(LimitKind::LoginFailuresDevice, LimitSubject::Device(nonce))],
                None => meta
                    .ip
                    .as_deref()
                    .map(|ip| {
                        (
                            LimitKind::LoginFailuresAccountIp,
                            LimitSubject::AddressIp(&account, ip),
                        )
                    })
                    .into_iter()
                    .chain([(
                        LimitKind::LoginFailuresAccount,
                        LimitSubject::Address(&account),
                    )])
                    .collect(),
            };
        // The attempt is counted as a failure before the hash is checked and
        // given back if the password was right: requests sent together
        // cannot all pass a check that none of them has paid for yet.
        let reservation = match self.reserve(&budgets, user_id, meta).await {
            Ok(r) => r,
            Err(e) => {
                metrics::counter!("identsphere_logins_total", "outcome" => "locked_out")
                    .increment(1);
                return Err(e);
            }
        };
        if !self.check_password(user.as_ref(), &req.password).await? {
            metrics::counter!("identsphere_logins_total", "outcome" => "failed").increment(1);
            tracing::info!(user.id = user_id.map(|u| u.to_string()), "login failed");
            // The actor is known only when the address has an account; the address itself is never recorded.
            let target = user_id.map(AuditValue::User);
            self.audit(
                AuditAction::LoginFailed,
                user_id,
                target,
                meta,
                AuditMetadata::default(),
            )
            .await;
            return Err(CoreError::InvalidCredentials);
        }
        self.release(reservation).await;
        let Some(user) = user else {
            return Err(CoreError::InvalidCredentials);
        };
        if self.config.require_email_verification && !user.email_verified {
            return Err(CoreError::EmailNotVerified);
        }
        if self.has_mfa(user.id).await? {
            let mfa_token = self.start_mfa_challenge(&user).await?;
            tracing::info!(user.id = %user.id, "password accepted; second factor required");
            return Ok(LoginOutcome::MfaRequired {
                mfa_token,
                methods: vec!["totp", "recovery_code"],
            });
        }
        let issued = self.open_session(&user, vec!["pwd".into()], meta).await?;
        metrics::counter!("identsphere_logins_total", "outcome" => "succeeded").increment(1);
        tracing::info!(user.id = %user.id, session.id = %issued.session.id, "login succeeded");
        let target = Some(AuditValue::Session(issued.session.id));
        self.audit(
            AuditAction::LoginSucceeded,
            Some(user.id),
            target,
            meta,
            AuditMetadata::default(),
        )
        .await;
        Ok(LoginOutcome::SignedIn(Box::new((user, issued))))
    }

    /// Re-confirms a signed-in user's password (step-up, MFA changes, email
    /// and password changes). Wrong passwords count against the same
    /// per-account failure budget as logins: a stolen access token is not a
    /// way around the lockout.
    ///
    /// # Errors
    /// `InvalidCredentials`; `RateLimited` while the account is locked out.
    pub(super) async fn confirm_password(
        &self,
        principal: &Principal,
        field: &str,
        password: &SecretString,
        meta: &RequestMeta,
    ) -> Result<User> {
        check_size(field, password)?;
        let user = self.current_user(principal).await?;
        if let Some(ip) = by_ip(meta) {
            self.check_limit(LimitKind::PasswordConfirmIp, ip, Some(user.id), meta)
                .await?;
        }
        let account = account_key(user.email.as_str());
        let budget = [(
            LimitKind::LoginFailuresAccount,
            LimitSubject::Address(&account),
        )];
        let reservation = self.reserve(&budget, Some(user.id), meta).await?;
        if !self.check_password(Some(&user), password).await? {
            tracing::info!(user.id = %user.id, "password re-confirmation failed");
            return Err(CoreError::InvalidCredentials);
        }
        self.release(reservation).await;
        Ok(user)
    }

    /// Checks `password` against `user`'s stored hash (against a dummy hash when
    /// there is no user or no password, for the same work). Once it matched, a
    /// legacy hash (an imported bcrypt, scrypt or PBKDF2 one) or a weaker Argon2
    /// one is replaced by an Argon2id hash with the current parameters, in the
    /// same request.
    pub(super) async fn check_password(
        &self,
        user: Option<&User>,
        password: &SecretString,
    ) -> Result<bool> {
        let stored = user.and_then(|u| u.password_hash.as_deref());
        let verified = self.hasher.verify_detailed(password, stored).await?;
        if let (true, true, Some(user), Some(old)) =
            (verified.matches, verified.needs_rehash, user, stored)
        {
            self.upgrade_password_hash(user, old, password).await;
        }
        Ok(verified.matches)
    }

    /// A failed upgrade is logged, not returned: the password was right, and the
    /// next login tries again. Neither hash is ever logged, only the old scheme.
    async fn upgrade_password_hash(&self, user: &User, old: &str, password: &SecretString) {
        let scheme = crate::password::identify(old).map_or("unknown", |s| s.as_str());
        let new = match self.hasher.hash(password).await {
            Ok(new) => new,
            Err(e) => {
                tracing::warn!(user.id = %user.id, error = %e, "rehashing a password failed");
                return;
            }
        };
        let replaced = self
            .store
            .replace_password_hash(user.id, old, &new, self.clock.now())
            .await;
        self.live.forget_user(user.id);
        match replaced {
            Ok(true) => {
                tracing::info!(user.id = %user.id, from = scheme, "password hash upgraded to argon2id");
            }
            // The password changed while this login was checking the old one.
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(user.id = %user.id, error = %e, "storing an upgraded password hash failed");
            }
        }
    }

    pub(super) async fn open_session(
        &self,
        user: &User,
        amr: Vec<String>,
        meta: &RequestMeta,
    ) -> Result<IssuedTokens> {
        let now = self.clock.now();
        let (refresh_token, refresh) = self.new_refresh_token(now);
        let session = NewSession {
            id: SessionId::new(),
            user_id: user.id,
            created_at: now,
            expires_at: now + self.config.refresh_ttl,
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            auth_time: now,
            amr,
        };
        let session = self.store.create_session(&session, &refresh).await?;
        self.refresh_keys_if_stale().await;
        self.issue(session, refresh_token).await
    }

    /// Signs an access token for `session`. The organization claims come from
    /// the membership as it is now: a role change shows at the next refresh,
    /// and a removed member's tokens lose the organization. So do the tokens
    /// of a session without a second factor once its organization requires
    /// one: apps that validate tokens offline must not see a standing that
    /// the server would refuse.
    pub(super) async fn issue(
        &self,
        session: Session,
        refresh_token: String,
    ) -> Result<IssuedTokens> {
        let membership = match session.org_id {
            Some(org) => self
                .store
                .get_membership(org, session.user_id)
                .await?
                .filter(|m| !m.org_require_mfa || amr_has_mfa(&session.amr)),
            None => None,
        };
        let now = self.clock.now();
        let claims = AccessClaims {
            iss: self.config.issuer(),
            sub: session.user_id.to_string(),
            aud: self.config.audience.clone(),
            exp: (now + self.config.access_ttl).timestamp(),
            iat: now.timestamp(),
            jti: uuid::Uuid::now_v7().to_string(),
            sid: session.id.to_string(),
            org_id: membership.as_ref().map(|m| m.org_id.to_string()),
            org_role: membership.map(|m| m.role.to_string()),
            amr: session.amr.clone(),
            auth_time: session.auth_time.timestamp(),
            act: None,
        };
        Ok(IssuedTokens {
            access_token: self.sign(claims).await?,
            expires_in: self.config.access_ttl.num_seconds(),
            refresh_token,
            refresh_expires_in: self.config.refresh_ttl.num_seconds(),
            session,
        })
    }

    /// Exchanges a refresh token for a new pair, retiring it.
    ///
    /// The successor is derived from the presented token under a server key,
    /// so concurrent refreshes with one token (browser tabs) all receive the
    /// same successor while the store performs exactly one rotation.
    ///
    /// # Errors
    /// `Unauthorized` for an unknown or expired token or a dead session;
    /// `RefreshTokenReused` (and the session revoked) for reuse after the grace.
    pub async fn refresh(&self, presented: &str, meta: &RequestMeta) -> Result<IssuedTokens> {
        if presented.is_empty() || presented.len() > 256 {
            return Err(CoreError::Unauthorized);
        }
        let now = self.clock.now();
        let successor = derive_token(&self.config.refresh_key, REFRESH_PREFIX, presented);
        let new = self.refresh_record(&successor, now);
        match self
            .store
            .rotate_refresh_token(
                &TokenHash::of(presented),
                &new,
                self.config.refresh_grace,
                now,
            )
            .await?
        {
            RotateOutcome::Rotated(session) | RotateOutcome::WithinGrace(session) => {
                self.issue(session, successor).await
            }
            RotateOutcome::Reused {
                session_id,
                user_id,
            } => {
                self.live.record_revoked([session_id], now);
                tracing::warn!(user.id = %user_id, session.id = %session_id, "refresh token reused; session revoked");
                let target = Some(AuditValue::Session(session_id));
                self.audit(
                    AuditAction::RefreshTokenReused,
                    Some(user_id),
                    target,
                    meta,
                    AuditMetadata::default(),
                )
                .await;
                Err(CoreError::RefreshTokenReused)
            }
            RotateOutcome::Invalid => Err(CoreError::Unauthorized),
        }
    }

    /// Makes `org` the session's active organization (`None`: no organization)
    /// and issues a pair whose access token carries `org_id` and `org_role`.
    /// The session's other refresh tokens stay valid, so a tab refreshing at
    /// the same moment is not taken for token theft.
    ///
    /// # Errors
    /// `NotFound` for an organization the caller does not belong to;
    /// `MfaRequired` when it requires a second factor that the session lacks;
    /// `Unauthorized` when the session has ended.
    pub async fn switch_organization(
        &self,
        principal: &Principal,
        org: Option<OrgId>,
        meta: &RequestMeta,
    ) -> Result<IssuedTokens> {
        if let Some(org) = org {
            self.org_access(&Caller::Session(principal.clone()), org)
                .await?;
        }
        let now = self.clock.now();
        let (refresh_token, refresh) = self.new_refresh_token(now);
        let session = self
            .store
            .switch_session_org(principal.session_id, org, &refresh, now)
            .await?
            .ok_or(CoreError::Unauthorized)?;
        self.audit_in(
            org,
            AuditAction::OrganizationSwitched,
            Some(principal.user_id),
            Some(AuditValue::Session(session.id)),
            meta,
            AuditMetadata::default(),
        )
        .await;
        self.issue(session, refresh_token).await
    }

    /// The caller's live sessions, newest first.
    ///
    /// # Errors
    /// Store failures.
    pub async fn list_sessions(&self, principal: &Principal) -> Result<Vec<Session>> {
        Ok(self
            .store
            .list_active_sessions(principal.user_id, self.clock.now())
            .await?)
    }

    /// Revokes one of the caller's sessions (any other user's id answers `NotFound`).
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn revoke_session(
        &self,
        principal: &Principal,
        id: SessionId,
        meta: &RequestMeta,
    ) -> Result<()> {
        let revoked = self
            .revoke(principal.user_id, SessionSelector::One(id), meta)
            .await?;
        if revoked.is_empty() {
            return Err(CoreError::NotFound);
        }
        Ok(())
    }

    /// Revokes every session of the caller but the current one.
    ///
    /// # Errors
    /// Store failures.
    pub async fn revoke_other_sessions(
        &self,
        principal: &Principal,
        meta: &RequestMeta,
    ) -> Result<usize> {
        let which = SessionSelector::AllExcept(principal.session_id);
        Ok(self.revoke(principal.user_id, which, meta).await?.len())
    }

    /// Ends the caller's current session.
    ///
    /// # Errors
    /// Store failures.
    pub async fn logout(&self, principal: &Principal, meta: &RequestMeta) -> Result<()> {
        self.revoke(
            principal.user_id,
            SessionSelector::One(principal.session_id),
            meta,
        )
        .await?;
        Ok(())
    }

    /// The session a refresh token (live or retired) belongs to: for checks
    /// made before it is used (a cookie refresh's CSRF binding).
    ///
    /// # Errors
    /// Store failures; an unknown token is `None`.
    pub async fn session_of_refresh_token(&self, presented: &str) -> Result<Option<SessionId>> {
        if presented.is_empty() || presented.len() > 256 {
            return Ok(None);
        }
        Ok(self
            .store
            .find_session_by_refresh_token(&TokenHash::of(presented))
            .await?
            .map(|s| s.id))
    }

    /// Ends the session a refresh token belongs to (logout with only a refresh cookie).
    ///
    /// # Errors
    /// Store failures; an unknown token is not an error.
    pub async fn logout_by_refresh_token(&self, presented: &str, meta: &RequestMeta) -> Result<()> {
        if let Some(session) = self
            .store
            .find_session_by_refresh_token(&TokenHash::of(presented))
            .await?
        {
            self.revoke(session.user_id, SessionSelector::One(session.id), meta)
                .await?;
        }
        Ok(())
    }

    async fn revoke(
        &self,
        user: UserId,
        which: SessionSelector,
        meta: &RequestMeta,
    ) -> Result<Vec<SessionId>> {
        let now = self.clock.now();
        let revoked = self.store.revoke_sessions(user, which, now).await?;
        self.live.record_revoked(revoked.iter().copied(), now);
        for id in &revoked {
            tracing::info!(user.id = %user, session.id = %id, "session revoked");
            let target = Some(AuditValue::Session(*id));
            self.audit(
                AuditAction::SessionRevoked,
                Some(user),
                target,
                meta,
                AuditMetadata::default(),
            )
            .await;
        }
        Ok(revoked)
    }
}
