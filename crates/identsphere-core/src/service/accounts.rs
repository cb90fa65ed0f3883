//! Sign-up, email verification, passwords, email change and profile.
use super::{
    limits::{account_key, by_ip},
    Identity, LimitSubject, Principal, RequestMeta,
};
use crate::{
    audit::{AuditAction, AuditMetadata, AuditValue},
    error::{CoreError, Result},
    ids::UserId,
    mail::templates,
    rate_limit::LimitKind,
    secret::TokenHash,
    store::{NewUser, SessionSelector, StoreError, TokenPurpose, User, UserPatch},
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
    /// Creates an account and emails a verification link.
    ///
    /// A taken address gets the same answer (and the same hashing work); its
    /// owner is told by mail instead, so sign-up never reveals who is registered.
    ///
    /// # Errors
    /// `Validation` for bad input.
    pub async fn signup(&self, req: SignupRequest, meta: &RequestMeta) -> Result<()> {
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
        let hash = self.hasher.hash(&req.password).await?;
        let new = NewUser {
            id: Default::default(),
            email: email.clone(),
            name,
            email_verified: false,
            password_hash: Some(hash),
            created_at: self.clock.now(),
        };
        match self.store.create_user(&new).await {
            Ok(user) => {
                let link = self
                    .issue_link(&user, TokenPurpose::VerifyEmail, None, "verify-email")
                    .await?;
                self.send_later(templates::verify_email(&user.email, &link));
                tracing::info!(user.id = %user.id, "user signed up");
                let target = Some(AuditValue::User(user.id));
                self.audit(
                    AuditAction::UserSignedUp,
                    Some(user.id),
                    target,
                    meta,
                    AuditMetadata::default(),
                )
                .await;
            }
            Err(StoreError::Conflict { .. }) => {
                let login = self
                    .config
                    .public_url
                    .join("login")
                    .map_err(|e| CoreError::Internal(e.to_string()))?;
                self.send_later(templates::already_registered(&email, login.as_str()));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Marks the address behind a verification link as verified.
    ///
    /// # Errors
    /// `InvalidLinkToken` for an unknown, used or expired link.
    pub async fn verify_email(&self, token: &str, meta: &RequestMeta) -> Result<User> {
        let consumed = self
            .store
            .consume_one_time_token(
                &TokenHash::of(token),
                TokenPurpose::VerifyEmail,
                self.clock.now(),
            )
            .await?
            .ok_or(CoreError::InvalidLinkToken)?;
        let patch = UserPatch {
            email_verified: Some(true),
            ..Default::default()
        };
        let user = self
            .write_user(consumed.user_id, &patch, self.clock.now())
            .await?;
        tracing::info!(user.id = %user.id, "email verified");
        let target = Some(AuditValue::User(user.id));
        self.audit(
            AuditAction::EmailVerified,
            Some(user.id),
            target,
            meta,
            AuditMetadata::default(),
        )
        .await;
        Ok(user)
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
        if let Some(user) = self.store.find_user_by_email(&email).await? {
            if !user.email_verified {
                let link = self
                    .issue_link(&user, TokenPurpose::VerifyEmail, None, "verify-email")
                    .await?;
                self.send_later(templates::verify_email(&user.email, &link));
            }
        }
        Ok(())
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
        if let Some(user) = self.store.find_user_by_email(&email).await? {
            let link = self
                .issue_link(&user, TokenPurpose::ResetPassword, None, "reset-password")
                .await?;
            self.send_later(templates::reset_password(&user.email, &link));
        }
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
        // The link proves control of the mailbox, so the address counts as verified.
        let patch = UserPatch {
            password_hash: Some(hash),
            email_verified: Some(true),
            ..Default::default()
        };
        let user = self.write_user(consumed.user_id, &patch, now).await?;
        let revoked = self
            .store
            .revoke_sessions(user.id, SessionSelector::All, now)
            .await?;
        let metadata = AuditMetadata::default()
            .with("sessions_revoked", AuditValue::Count(revoked.len() as u64));
        self.live.record_revoked(revoked, now);
        self.send_later(templates::password_changed(&user.email));
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
        let metadata = AuditMetadata::default()
            .with("sessions_revoked", AuditValue::Count(revoked.len() as u64));
        self.live.record_revoked(revoked, now);
        self.send_later(templates::password_changed(&user.email));
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
                    Some(new_email.clone()),
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
        self.send_later(templates::email_changed(&old.email));
        tracing::info!(user.id = %user.id, "email changed");
        let target = Some(AuditValue::User(user.id));
        self.audit(
            AuditAction::EmailChanged,
            Some(user.id),
            target,
            meta,
            AuditMetadata::default(),
        )
        .await;
        Ok(user)
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
