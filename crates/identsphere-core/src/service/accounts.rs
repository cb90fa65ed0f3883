//! Sign-up, email verification, passwords, email change and profile.
use super::{
    account_jobs,
    limits::{account_key, by_ip},
    Identity, LimitSubject, Link, Principal, RequestMeta,
};
use crate::{
    audit::{AuditAction, AuditMetadata, AuditValue},
    error::{CoreError, Result},
    ids::UserId,
    mail::templates,
    rate_limit::LimitKind,
    secret::random_token,
    secret::TokenHash,
    store::{
        ApiKey, ApiKeyOwner, PageRequest, PendingLink, SessionSelector, StoreError, TokenPurpose,
        User, UserPatch,
    },
    text::label,
    Email,
};
use secrecy::SecretString;

/// Input of [`Identity::signup`].
#[derive(Debug)]
pub struct SignupRequest {
    /// Address, unparsed.
    pub email: String,
    /// Chosen password.
    pub password: SecretString,
    /// Display name.
    pub name: Option<String>,
}

/// Input of [`Identity::request_email_change`].
#[derive(Debug)]
pub struct EmailChangeRequest {
    /// The address to move to, unparsed.
    pub new_email: String,
    /// The current password.
    pub password: SecretString,
}

/// Trims a display name; an empty one is no name. See [`label`] for the rules.
pub(crate) fn clean_name(name: Option<String>) -> Result<Option<String>> {
    match name.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(_) => label("name", name.as_deref().unwrap_or_default(), 200).map(Some),
    }
}

fn parse_email(field: &str, raw: &str) -> Result<Email> {
    Email::parse(raw).map_err(|m| CoreError::field(field, m))
}

impl Identity {
    /// Creates an account and emails a verification link. Returns the
    /// sign-up proof: a secret for the browser to keep (a cookie), whose
    /// hash the link remembers. Only that browser may finish verification
    /// with the password chosen here; anyone else holding the link must
    /// choose the password anew ([`Identity::verify_email`]), so a password
    /// chosen by someone who does not read the mailbox never becomes live.
    ///
    /// A taken address gets the same answer (and the same hashing work, and
    /// a proof that proves nothing); its owner is told by mail instead: a
    /// link to finish the account when it was never verified, a note
    /// otherwise. Sign-up never reveals who is registered.
    ///
    /// # Errors
    /// `Validation` for bad input; `RateLimited` per client address and per
    /// target address (each sign-up mails its owner).
    pub async fn signup(&self, req: SignupRequest, meta: &RequestMeta) -> Result<String> {
        if let Some(ip) = by_ip(meta) {
            self.check_limit(LimitKind::SignupIp, ip, None, meta)
                .await?;
        }
        let email = parse_email("email", &req.email);
        let password = self.config.password_policy.check("password", &req.password);
        let name = clean_name(req.name);
        let mut errors = Vec::new();
        for e in [
            email.as_ref().err(),
            password.as_ref().err(),
            name.as_ref().err(),
        ]
        .into_iter()
        .flatten()
        {
            if let CoreError::Validation(list) = e {
                errors.extend(list.iter().cloned());
            }
        }
        if !errors.is_empty() {
            return Err(CoreError::Validation(errors));
        }
        let (email, name) = (email?, name?);
        let account = LimitSubject::Address(email.as_str());
        self.check_limit(LimitKind::SignupAccount, account, None, meta)
            .await?;
        let hash = self.hasher.hash(&req.password).await?;
        let proof = random_token("");
        // Whether the address is taken is found out by the job, after the answer.
        let job = account_jobs::Signup {
            user_id: UserId::new(),
            email,
            name,
            password_hash: hash,
            proof_hash: TokenHash::of(&proof).0,
            requested_at: self.clock.now(),
            client: meta.into(),
        };
        self.jobs.enqueue(account_jobs::SIGNUP, &job).await?;
        Ok(proof)
    }

    /// Marks the address behind a verification link as verified.
    ///
    /// The link proves control of the mailbox, not who chose the password.
    /// When `proof` is the secret of the browser that signed up (and the
    /// link was issued for that sign-up), the account goes live as it is.
    /// Otherwise the caller must send `password`: it becomes the account's
    /// password, and whatever was set up before the address was proven
    /// (sessions, second factors, passkeys, API keys) is removed
    /// ([`Identity::claim_account`]). Without either, nothing is consumed.
    ///
    /// # Errors
    /// `InvalidLinkToken` for an unknown, used or expired link;
    /// `Validation` (`password`) when a password is needed or too weak.
    pub async fn verify_email(
        &self,
        token: &str,
        proof: Option<&str>,
        password: Option<&SecretString>,
        meta: &RequestMeta,
    ) -> Result<User> {
        let hash = TokenHash::of(token);
        let link = self
            .store
            .find_one_time_token(&hash, TokenPurpose::VerifyEmail, self.clock.now())
            .await?
            .ok_or(CoreError::InvalidLinkToken)?;
        let proven = match (proof, link.proof) {
            (Some(presented), Some(stored)) => TokenHash::of(presented).ct_eq(&stored),
            _ => false,
        };
        let new_hash = match (proven, password) {
            (true, _) => None,
            (false, Some(password)) => {
                self.config.password_policy.check("password", password)?;
                Some(self.hasher.hash(password).await?)
            }
            (false, None) => {
                return Err(CoreError::field(
                    "password",
                    "choose a password to finish: this link was not opened in the browser \
                     that signed up",
                ))
            }
        };
        let consumed = self
            .store
            .consume_one_time_token(&hash, TokenPurpose::VerifyEmail, self.clock.now())
            .await?
            .ok_or(CoreError::InvalidLinkToken)?;
        let (user, claimed) = match new_hash {
            None => {
                let patch = UserPatch {
                    email_verified: Some(true),
                    ..Default::default()
                };
                let user = self
                    .write_user(consumed.user_id, &patch, self.clock.now())
                    .await?;
                (user, false)
            }
            Some(new_hash) => {
                let before = self
                    .store
                    .get_user(consumed.user_id)
                    .await?
                    .ok_or(CoreError::InvalidLinkToken)?;
                // An address proven before (by a reset link, say) has
                // nothing left to claim: the password given here changes nothing.
                if before.email_verified {
                    (before, false)
                } else {
                    (self.claim_account(before.id, new_hash, meta).await?, true)
                }
            }
        };
        tracing::info!(user.id = %user.id, "email verified");
        self.audit(
            AuditAction::EmailVerified,
            Some(user.id),
            Some(AuditValue::User(user.id)),
            meta,
            AuditMetadata::default().with("password_set", AuditValue::Flag(claimed)),
        )
        .await;
        Ok(user)
    }

    /// Hands an account to whoever just proved control of its address for
    /// the first time: `password_hash` becomes its password, the address
    /// counts as verified, and everything set up before that proof ends:
    /// sessions, pending links and MFA logins, the authenticator and
    /// recovery codes, passkeys and API keys. An account pre-registered with
    /// someone else's address (pre-hijacking) thus brings its maker nothing.
    pub(super) async fn claim_account(
        &self,
        user: UserId,
        password_hash: String,
        meta: &RequestMeta,
    ) -> Result<User> {
        let now = self.clock.now();
        let revoked = self
            .store
            .revoke_sessions(user, SessionSelector::All, now)
            .await?;
        self.live.record_revoked(revoked.iter().copied(), now);
        self.store.end_one_time_tokens(user, None, now).await?;
        self.store.end_mfa_challenges(user, now).await?;
        let mfa_removed = self.store.delete_mfa(user).await?;
        let mut removed = u64::from(mfa_removed);
        for passkey in self.store.list_passkeys(user).await? {
            removed += u64::from(self.store.delete_passkey(user, passkey.id).await?);
        }
        for key in self.all_api_keys(user).await? {
            removed += u64::from(self.store.revoke_api_key(key.id, now).await?);
        }
        let patch = UserPatch {
            password_hash: Some(password_hash),
            email_verified: Some(true),
            ..Default::default()
        };
        let claimed = self.write_user(user, &patch, now).await?;
        tracing::warn!(
            user.id = %user,
            sessions_revoked = revoked.len(),
            credentials_removed = removed,
            "account claimed by the owner of its address; earlier credentials removed"
        );
        self.audit(
            AuditAction::AccountClaimed,
            Some(user),
            Some(AuditValue::User(user)),
            meta,
            AuditMetadata::default()
                .with("sessions_revoked", AuditValue::Count(revoked.len() as u64))
                .with("credentials_removed", AuditValue::Count(removed)),
        )
        .await;
        Ok(claimed)
    }

    /// Every active API key the user created (personal and organizations').
    async fn all_api_keys(&self, user: UserId) -> Result<Vec<ApiKey>> {
        let mut keys = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_api_keys(
                    ApiKeyOwner::Creator(user),
                    PageRequest { after, limit: 100 },
                )
                .await?;
            after = page.last().map(|k| k.id);
            let done = page.len() < 100;
            keys.extend(page);
            if done {
                return Ok(keys);
            }
        }
    }

    /// What can sign in to the account or act for it besides the password.
    async fn credentials_held(&self, user: UserId) -> Result<templates::Credentials> {
        Ok(templates::Credentials {
            totp: self.has_mfa(user).await?,
            passkeys: self
                .store
                .list_passkeys(user)
                .await?
                .into_iter()
                .map(|p| p.name)
                .collect(),
            api_keys: self
                .all_api_keys(user)
                .await?
                .into_iter()
                .map(|k| k.name)
                .collect(),
        })
    }

    /// After a password reset or change: ends what the old password could
    /// still lead to (pending links of every kind, MFA logins it started)
    /// and mails the owner the list of what else holds access.
    async fn password_replaced(&self, user: &User, reset: bool) -> Result<u64> {
        let now = self.clock.now();
        let links = self.store.end_one_time_tokens(user.id, None, now).await?;
        let challenges = self.store.end_mfa_challenges(user.id, now).await?;
        let held = self.credentials_held(user.id).await?;
        let review = self.config.link("account/security");
        self.send_later(templates::password_replaced(
            &user.email,
            reset,
            &held,
            review.as_str(),
        ));
        Ok(links + challenges)
    }

    /// Sends a fresh verification link if the address belongs to an unverified account.
    ///
    /// # Errors
    /// `Validation` for a malformed address; silence otherwise.
    pub async fn resend_verification(&self, email: &str, meta: &RequestMeta) -> Result<()> {
        self.limit_link_request(
            LimitKind::VerificationResendIp,
            LimitKind::VerificationResendAccount,
            email,
            meta,
        )
        .await?;
        let email = parse_email("email", email)?;
        let job = account_jobs::LinkRequest {
            email,
            client: meta.into(),
        };
        self.jobs
            .enqueue(account_jobs::VERIFICATION_LINK, &job)
            .await?;
        Ok(())
    }

    /// A verification link that carries no sign-up proof: whoever opens it
    /// chooses the password ([`Identity::verify_email`]).
    pub(super) async fn plain_verification_link(&self, user: &User) -> Result<String> {
        self.issue_link(user, TokenPurpose::VerifyEmail, Link::Plain, "verify-email")
            .await
    }

    /// Limits a request that mails a link, per client address and per
    /// target address (registered or not, so the answer never tells).
    async fn limit_link_request(
        &self,
        per_ip: LimitKind,
        per_account: LimitKind,
        email: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        if let Some(ip) = by_ip(meta) {
            self.check_limit(per_ip, ip, None, meta).await?;
        }
        let account = account_key(email);
        self.check_limit(per_account, LimitSubject::Address(&account), None, meta)
            .await
    }

    /// Emails a reset link if the address has an account.
    ///
    /// # Errors
    /// `Validation` for a malformed address; silence otherwise.
    pub async fn forgot_password(&self, email: &str, meta: &RequestMeta) -> Result<()> {
        self.limit_link_request(
            LimitKind::PasswordForgotIp,
            LimitKind::PasswordForgotAccount,
            email,
            meta,
        )
        .await?;
        let email = parse_email("email", email)?;
        let job = account_jobs::LinkRequest {
            email,
            client: meta.into(),
        };
        self.jobs.enqueue(account_jobs::RESET_LINK, &job).await?;
        Ok(())
    }

    /// Sets a new password from a reset link and revokes every session.
    ///
    /// The password is checked and hashed before the link is consumed, so a
    /// password the policy refuses does not burn the link.
    ///
    /// # Errors
    /// `Validation` for a weak password, `InvalidLinkToken` for a bad link.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &SecretString,
        meta: &RequestMeta,
    ) -> Result<()> {
        if let Some(ip) = by_ip(meta) {
            self.check_limit(LimitKind::PasswordResetIp, ip, None, meta)
                .await?;
        }
        self.config
            .password_policy
            .check("new_password", new_password)?;
        let hash = self.hasher.hash(new_password).await?;
        let now = self.clock.now();
        let consumed = self
            .store
            .consume_one_time_token(&TokenHash::of(token), TokenPurpose::ResetPassword, now)
            .await?
            .ok_or(CoreError::InvalidLinkToken)?;
        let before = self
            .store
            .get_user(consumed.user_id)
            .await?
            .ok_or(CoreError::InvalidLinkToken)?;
        // The link proves control of the mailbox. An address proven for the
        // first time claims the account: what was set up before is not the
        // mailbox owner's (pre-hijacking).
        if !before.email_verified {
            let user = self.claim_account(before.id, hash, meta).await?;
            self.password_replaced(&user, true).await?;
            return Ok(());
        }
        let patch = UserPatch {
            password_hash: Some(hash),
            ..Default::default()
        };
        let user = self.write_user(consumed.user_id, &patch, now).await?;
        let revoked = self
            .store
            .revoke_sessions(user.id, SessionSelector::All, now)
            .await?;
        let ended = self.password_replaced(&user, true).await?;
        let metadata = AuditMetadata::default()
            .with("sessions_revoked", AuditValue::Count(revoked.len() as u64))
            .with("links_ended", AuditValue::Count(ended));
        self.live.record_revoked(revoked, now);
        tracing::info!(user.id = %user.id, "password reset; all sessions revoked");
        let target = Some(AuditValue::User(user.id));
        self.audit(
            AuditAction::PasswordReset,
            Some(user.id),
            target,
            meta,
            metadata,
        )
        .await;
        Ok(())
    }

    /// Changes the password of a signed-in user and signs out their other sessions.
    ///
    /// # Errors
    /// `InvalidCredentials` for a wrong current password, `Validation` for a weak new one.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: &SecretString,
        new_password: &SecretString,
        meta: &RequestMeta,
    ) -> Result<()> {
        self.config
            .password_policy
            .check("new_password", new_password)?;
        let user = self
            .confirm_password(principal, "current_password", current, meta)
            .await?;
        let hash = self.hasher.hash(new_password).await?;
        let now = self.clock.now();
        let patch = UserPatch {
            password_hash: Some(hash),
            ..Default::default()
        };
        self.write_user(user.id, &patch, now).await?;
        let revoked = self
            .store
            .revoke_sessions(
                user.id,
                SessionSelector::AllExcept(principal.session_id),
                now,
            )
            .await?;
        let ended = self.password_replaced(&user, false).await?;
        let metadata = AuditMetadata::default()
            .with("sessions_revoked", AuditValue::Count(revoked.len() as u64))
            .with("links_ended", AuditValue::Count(ended));
        self.live.record_revoked(revoked, now);
        tracing::info!(user.id = %user.id, "password changed");
        let target = Some(AuditValue::User(user.id));
        self.audit(
            AuditAction::PasswordChanged,
            Some(user.id),
            target,
            meta,
            metadata,
        )
        .await;
        Ok(())
    }

    /// Starts an email change: checks the password and mails a confirmation
    /// link to the new address. A taken address gets the same answer and no mail.
    ///
    /// Needs a recent authentication (step-up).
    ///
    /// # Errors
    /// `StepUpRequired`, `InvalidCredentials`, or `Validation` for a malformed or unchanged address.
    pub async fn request_email_change(
        &self,
        principal: &Principal,
        req: EmailChangeRequest,
        meta: &RequestMeta,
    ) -> Result<()> {
        self.require_recent_auth(principal).await?;
        let new_email = parse_email("new_email", &req.new_email)?;
        let user = self
            .confirm_password(principal, "password", &req.password, meta)
            .await?;
        if new_email == user.email {
            return Err(CoreError::field("new_email", "is already your address"));
        }
        if self.store.find_user_by_email(&new_email).await?.is_none() {
            let link = self
                .issue_link(
                    &user,
                    TokenPurpose::ChangeEmail,
                    Link::EmailChange(new_email.clone()),
                    "confirm-email-change",
                )
                .await?;
            self.send_later(templates::confirm_email_change(&new_email, &link));
        }
        Ok(())
    }

    /// Completes an email change from its confirmation link and tells the old address.
    ///
    /// # Errors
    /// `InvalidLinkToken`, or `Conflict` when the address was taken meanwhile.
    pub async fn confirm_email_change(&self, token: &str, meta: &RequestMeta) -> Result<User> {
        let now = self.clock.now();
        let consumed = self
            .store
            .consume_one_time_token(&TokenHash::of(token), TokenPurpose::ChangeEmail, now)
            .await?
            .ok_or(CoreError::InvalidLinkToken)?;
        let new_email = consumed
            .new_email
            .ok_or_else(|| CoreError::Internal("email-change token without address".into()))?
            .refold();
        let old = self
            .store
            .get_user(consumed.user_id)
            .await?
            .ok_or(CoreError::InvalidLinkToken)?;
        let patch = UserPatch {
            email: Some(new_email),
            email_verified: Some(true),
            ..Default::default()
        };
        let user = match self.write_user(old.id, &patch, now).await {
            Err(StoreError::Conflict { .. }) => {
                return Err(CoreError::Conflict(
                    "that address is no longer available".into(),
                ))
            }
            other => other?,
        };
        // Links mailed to the old address (a reset, an older change) must
        // not outlive it, nor invitations: the old address is no longer
        // this account's, and an invitation to it would make a new account
        // for whoever holds that mailbox now.
        let ended = self.store.end_one_time_tokens(user.id, None, now).await?;
        let revoked = self.store.revoke_invitations_to(&old.email, now).await?;
        for invitation in &revoked {
            self.audit_in(
                Some(invitation.org_id),
                AuditAction::InvitationRevoked,
                Some(user.id),
                Some(AuditValue::Invitation(invitation.id)),
                meta,
                AuditMetadata::default().with("reason", AuditValue::Reason("email_changed")),
            )
            .await;
        }
        self.send_later(templates::email_changed(&old.email));
        tracing::info!(user.id = %user.id, "email changed");
        let target = Some(AuditValue::User(user.id));
        self.audit(
            AuditAction::EmailChanged,
            Some(user.id),
            target,
            meta,
            AuditMetadata::default()
                .with("links_ended", AuditValue::Count(ended))
                .with(
                    "invitations_revoked",
                    AuditValue::Count(revoked.len() as u64),
                ),
        )
        .await;
        Ok(user)
    }

    /// The caller's pending email change, if any.
    ///
    /// # Errors
    /// Store failures.
    pub async fn pending_email_change(&self, principal: &Principal) -> Result<Option<PendingLink>> {
        Ok(self
            .store
            .pending_link(
                principal.user_id,
                TokenPurpose::ChangeEmail,
                self.clock.now(),
            )
            .await?)
    }

    /// Cancels the caller's pending email change: its link stops working.
    ///
    /// # Errors
    /// `NotFound` when none is pending.
    pub async fn cancel_email_change(
        &self,
        principal: &Principal,
        meta: &RequestMeta,
    ) -> Result<()> {
        let ended = self
            .store
            .end_one_time_tokens(
                principal.user_id,
                Some(TokenPurpose::ChangeEmail),
                self.clock.now(),
            )
            .await?;
        if ended == 0 {
            return Err(CoreError::NotFound);
        }
        tracing::info!(user.id = %principal.user_id, "email change cancelled");
        self.audit(
            AuditAction::EmailChangeCancelled,
            Some(principal.user_id),
            Some(AuditValue::User(principal.user_id)),
            meta,
            AuditMetadata::default(),
        )
        .await;
        Ok(())
    }

    /// Updates the caller's profile.
    ///
    /// # Errors
    /// `Validation` for a bad name.
    pub async fn update_profile(&self, user: UserId, name: Option<Option<String>>) -> Result<User> {
        let name = match name {
            Some(n) => Some(clean_name(n)?),
            None => None,
        };
        let patch = UserPatch {
            name,
            ..Default::default()
        };
        match self.write_user(user, &patch, self.clock.now()).await {
            Err(StoreError::NotFound) => Err(CoreError::Unauthorized),
            other => Ok(other?),
        }
    }
}
