//! Second factors: TOTP enrollment, MFA logins, recovery codes, and step-up
//! (re-authentication for sensitive operations).
use super::{limits::by_ip, Caller, Identity, IssuedTokens, LimitSubject, Principal, RequestMeta};
use crate::{
    audit::{AuditAction, AuditFilter, AuditMetadata, AuditValue},
    error::{CoreError, Result},
    ids::UserId,
    mail::templates,
    mfa::{
        matching_step, new_mfa_token, new_recovery_codes, new_totp_secret, otpauth_uri,
        recovery_code_hash, totp_secret_base32, SecretBox,
    },
    rate_limit::LimitKind,
    rate_limit::{Limit, RateLimiter},
    secret::TokenHash,
    store::PageRequest,
    store::{NewMfaChallenge, User},
};
use chrono::Duration;
use secrecy::{ExposeSecret, SecretString};

/// How long a pending MFA login lives.
const MFA_CHALLENGE_TTL_MINUTES: i64 = 5;
/// Wrong codes a pending MFA login survives.
const MFA_CHALLENGE_ATTEMPTS: u32 = 3;
/// Longest code or recovery code we bother to look at.
const MAX_CODE_LEN: usize = 64;

/// A started TOTP enrollment: what the user copies into an authenticator app.
pub struct TotpEnrollment {
    /// The secret in base32.
    pub secret: String,
    /// The `otpauth://` URI (for a QR code).
    pub otpauth_uri: String,
}

impl std::fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrollment(..)")
    }
}

/// A second-factor proof.
pub enum MfaProof {
    /// A TOTP code.
    Code(SecretString),
    /// A recovery code.
    RecoveryCode(SecretString),
    /// The account password (step-up only).
    Password(SecretString),
    /// A passkey's answer to a login ceremony (step-up only).
    Passkey {
        /// The ceremony started at `/v1/auth/passkeys/login/start`.
        ceremony: crate::ids::CeremonyId,
        /// The `PublicKeyCredential` as JSON.
        assertion: serde_json::Value,
    },
}

impl std::fmt::Debug for MfaProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Code(_) => "MfaProof::Code(..)",
            Self::RecoveryCode(_) => "MfaProof::RecoveryCode(..)",
            Self::Password(_) => "MfaProof::Password(..)",
            Self::Passkey { .. } => "MfaProof::Passkey(..)",
        })
    }
}

fn short(code: &SecretString) -> Option<&str> {
    let code = code.expose_secret();
    (code.len() <= MAX_CODE_LEN).then_some(code)
}

/// `amr` values in a stable order, without duplicates.
fn merge_amr(current: &[String], add: &[&str]) -> Vec<String> {
    let mut amr: Vec<String> = current.to_vec();
    for a in add {
        if !amr.iter().any(|x| x == a) {
            amr.push((*a).to_owned());
        }
    }
    let has = |v: &str| amr.iter().any(|x| x == v);
    if has("pwd") && has("otp") && !has("mfa") {
        amr.push("mfa".into());
    }
    amr
}

/// Whether an `amr` shows a second factor. Only `mfa` counts, whatever the
/// methods: [`merge_amr`] adds it once two factors are present, MFA logins
/// set it, and passkey logins will set it too.
pub(crate) fn amr_has_mfa(amr: &[String]) -> bool {
    amr.iter().any(|m| m == "mfa")
}

impl Identity {
    fn secret_box(&self) -> SecretBox {
        SecretBox::new(&self.config.totp_key)
    }

    /// Whether the user has a confirmed authenticator.
    pub(super) async fn has_mfa(&self, user: UserId) -> Result<bool> {
        Ok(self
            .store
            .get_totp(user)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some()))
    }

    /// Whether the user can sign in with a second factor: a confirmed
    /// authenticator or a passkey.
    pub(super) async fn has_second_factor(&self, user: UserId) -> Result<bool> {
        Ok(self.has_mfa(user).await? || !self.store.list_passkeys(user).await?.is_empty())
    }

    /// Whether the user has MFA on, and how many unused recovery codes remain.
    ///
    /// # Errors
    /// Store failures.
    pub async fn mfa_status(&self, principal: &Principal) -> Result<(bool, u32)> {
        let enabled = self.has_mfa(principal.user_id).await?;
        let left = if enabled {
            self.store.count_recovery_codes(principal.user_id).await?
        } else {
            0
        };
        Ok((enabled, left))
    }

    pub(super) async fn start_mfa_challenge(&self, user: &User) -> Result<String> {
        let token = new_mfa_token();
        let now = self.clock.now();
        self.store
            .create_mfa_challenge(&NewMfaChallenge {
                hash: TokenHash::of(&token),
                user_id: user.id,
                created_at: now,
                expires_at: now + Duration::minutes(MFA_CHALLENGE_TTL_MINUTES),
                attempts_left: MFA_CHALLENGE_ATTEMPTS,
            })
            .await?;
        Ok(token)
    }

    /// Accepts a TOTP code of the user's confirmed authenticator, at most once
    /// per time step (the store's conditional update decides races).
    async fn accept_totp(&self, user: UserId, code: &SecretString) -> Result<bool> {
        let Some(code) = short(code) else {
            return Ok(false);
        };
        let Some(totp) = self.store.get_totp(user).await? else {
            return Ok(false);
        };
        if totp.confirmed_at.is_none() {
            return Ok(false);
        }
        let secret = self.secret_box().open(user, &totp.sealed_secret)?;
        match matching_step(&secret, code, self.clock.now().timestamp())? {
            Some(step) => Ok(self.store.use_totp_step(user, step).await?),
            None => Ok(false),
        }
    }

    /// Counts one code check against the account's budget, before the code
    /// is looked at: a refusal says nothing about the code and spends none of
    /// it (the right code still works once the budget refills).
    ///
    /// Every check counts, not only wrong ones. A budget of failures would be
    /// peeked before the check and charged after it, so parallel guesses
    /// would all pass the peek; counting first is one atomic step in the
    /// limiter, which bounds guesses per account however many MFA tokens,
    /// addresses or connections they come from. A person signing in needs one
    /// or two checks, well inside the budget.
    async fn check_mfa_account_budget(&self, user: UserId, meta: &RequestMeta) -> Result<()> {
        self.check_limit(
            LimitKind::MfaVerifyAccount,
            LimitSubject::User(user),
            Some(user),
            meta,
        )
        .await
    }

    /// Records a refused code in `identsphere_mfa_failures_total{flow, method}`
    /// and in the audit log (by user id only, never the code).
    async fn mfa_code_refused(
        &self,
        user: UserId,
        flow: &'static str,
        method: &'static str,
        meta: &RequestMeta,
    ) {
        metrics::counter!("identsphere_mfa_failures_total", "flow" => flow, "method" => method)
            .increment(1);
        tracing::info!(user.id = %user, flow, method, "second factor refused");
        self.audit(
            AuditAction::MfaFailed,
            Some(user),
            Some(AuditValue::User(user)),
            meta,
            AuditMetadata::default(),
        )
        .await;
        if flow == "login" {
            if let Err(e) = self.warn_of_mfa_attempts(user).await {
                tracing::warn!(user.id = %user, error = %e, "checking for repeated MFA failures failed");
            }
        }
    }

    /// Mails the owner when wrong codes keep coming after a right password
    /// (three within 15 minutes): someone knows the password. At most one
    /// such mail an hour per user and instance. Counted from the audit log,
    /// so failures through every instance add up.
    async fn warn_of_mfa_attempts(&self, user: UserId) -> Result<()> {
        const THRESHOLD: u32 = 3;
        let now = self.clock.now();
        let filter = AuditFilter {
            action: Some(AuditAction::MfaFailed),
            actor_id: Some(user),
            since: Some(now - Duration::minutes(15)),
            ..Default::default()
        };
        let page = PageRequest {
            after: None,
            limit: THRESHOLD,
        };
        if self.store.list_audit(&filter, page).await?.len() < THRESHOLD as usize {
            return Ok(());
        }
        let once_an_hour = Limit::per_hour(1, 1);
        let key = format!("mfa-attempts-mail\0{user}");
        if !self
            .audit_throttle
            .check(&key, &once_an_hour, now)
            .await
            .allowed
        {
            return Ok(());
        }
        if let Some(account) = self.store.get_user(user).await? {
            let reset = self.config.link("forgot-password");
            self.send_later(templates::mfa_attempts(&account.email, reset.as_str()));
            tracing::warn!(user.id = %user, "repeated MFA failures: the owner is warned by mail");
        }
        Ok(())
    }

    /// Completes a login that answered `mfa_required`.
    ///
    /// Every attempt counts against the client address's budget
    /// (`mfa_verify_ip`), and every code checked against the account's
    /// (`mfa_verify_account`), which holds across MFA tokens: new logins do
    /// not buy more guesses.
    ///
    /// # Errors
    /// `InvalidMfaToken` for an unknown, expired, used or exhausted MFA token
    /// (three wrong codes end it); `InvalidMfaCode` for a wrong, reused or
    /// used-up code; `Validation` for a password proof; `RateLimited` when a
    /// budget is spent.
    pub async fn verify_mfa(
        &self,
        mfa_token: &str,
        proof: MfaProof,
        meta: &RequestMeta,
    ) -> Result<(User, IssuedTokens)> {
        if let Some(ip) = by_ip(meta) {
            self.check_limit(LimitKind::MfaVerifyIp, ip, None, meta)
                .await?;
        }
        if mfa_token.is_empty() || mfa_token.len() > 256 {
            return Err(CoreError::InvalidMfaToken);
        }
        let hash = TokenHash::of(mfa_token);
        let challenge = self
            .store
            .find_mfa_challenge(&hash, self.clock.now())
            .await?
            .ok_or(CoreError::InvalidMfaToken)?;
        let user = self
            .store
            .get_user(challenge.user_id)
            .await?
            .ok_or(CoreError::InvalidMfaToken)?;
        self.check_mfa_account_budget(user.id, meta).await?;
        let (amr, recovery) = match &proof {
            MfaProof::Code(_) => (vec!["pwd", "otp", "mfa"], false),
            MfaProof::RecoveryCode(_) => (vec!["pwd", "mfa"], true),
            MfaProof::Password(_) | MfaProof::Passkey { .. } => {
                return Err(CoreError::field("code", "send a code or a recovery code"))
            }
        };
        // The attempt is paid for before the code is looked at: racing
        // guesses cannot together try more than the token's three.
        if !self
            .store
            .charge_mfa_attempt(&hash, self.clock.now())
            .await?
        {
            return Err(CoreError::InvalidMfaToken);
        }
        let accepted = match &proof {
            MfaProof::Code(code) => self.accept_totp(user.id, code).await?,
            MfaProof::RecoveryCode(code) => match short(code) {
                Some(code) => {
                    self.store
                        .consume_recovery_code(user.id, &recovery_code_hash(code), self.clock.now())
                        .await?
                }
                None => false,
            },
            MfaProof::Password(_) | MfaProof::Passkey { .. } => false,
        };
        if !accepted {
            let method = if recovery { "recovery_code" } else { "totp" };
            self.mfa_code_refused(user.id, "login", method, meta).await;
            return Err(CoreError::InvalidMfaCode);
        }
        if !self
            .store
            .consume_mfa_challenge(&hash, self.clock.now())
            .await?
        {
            return Err(CoreError::InvalidMfaToken);
        }
        let amr = amr.into_iter().map(str::to_owned).collect();
        let issued = self.open_session(&user, amr, meta).await?;
        tracing::info!(user.id = %user.id, session.id = %issued.session.id, "login succeeded with a second factor");
        if recovery {
            let left = self.store.count_recovery_codes(user.id).await?;
            self.audit(
                AuditAction::MfaRecoveryCodeUsed,
                Some(user.id),
                Some(AuditValue::User(user.id)),
                meta,
                AuditMetadata::default().with("remaining", AuditValue::Count(left.into())),
            )
            .await;
        }
        self.audit(
            AuditAction::LoginSucceeded,
            Some(user.id),
            Some(AuditValue::Session(issued.session.id)),
            meta,
            AuditMetadata::default(),
        )
        .await;
        Ok((user, issued))
    }

    /// Starts (or restarts) a TOTP enrollment. Needs a recent authentication.
    ///
    /// # Errors
    /// `StepUpRequired`; `Conflict` when MFA is already on.
    pub async fn enroll_totp(&self, principal: &Principal) -> Result<TotpEnrollment> {
        self.require_recent_auth(principal).await?;
        let user = self.current_user(principal).await?;
        let secret = new_totp_secret();
        let sealed = self.secret_box().seal(user.id, &secret)?;
        if !self
            .store
            .begin_totp_enrollment(user.id, &sealed, self.clock.now())
            .await?
        {
            return Err(CoreError::Conflict(
                "MFA is already enabled; disable it first".into(),
            ));
        }
        let issuer = self
            .config
            .public_url
            .host_str()
            .unwrap_or("IdentSphere")
            .to_owned();
        Ok(TotpEnrollment {
            secret: totp_secret_base32(&secret)?,
            otpauth_uri: otpauth_uri(&secret, &issuer, user.email.as_str())?,
        })
    }

    /// Confirms an enrollment with a first code and returns the ten recovery
    /// codes (shown once; only their hashes are kept).
    ///
    /// # Errors
    /// `InvalidMfaCode` for a wrong code; `Conflict` without a pending enrollment.
    pub async fn confirm_totp(
        &self,
        principal: &Principal,
        code: &SecretString,
        meta: &RequestMeta,
    ) -> Result<Vec<String>> {
        let user = principal.user_id;
        let totp = match self.store.get_totp(user).await? {
            Some(t) if t.confirmed_at.is_none() => t,
            _ => {
                return Err(CoreError::Conflict(
                    "no pending enrollment; start one with /v1/auth/mfa/totp/enroll".into(),
                ))
            }
        };
        let secret = self.secret_box().open(user, &totp.sealed_secret)?;
        let step = match short(code) {
            Some(code) => matching_step(&secret, code, self.clock.now().timestamp())?,
            None => None,
        }
        .ok_or(CoreError::InvalidMfaCode)?;
        let (codes, hashes) = new_recovery_codes();
        if !self
            .store
            .confirm_totp(user, step, &hashes, self.clock.now())
            .await?
        {
            return Err(CoreError::InvalidMfaCode);
        }
        tracing::info!(user.id = %user, "MFA enabled");
        self.audit(
            AuditAction::MfaEnabled,
            Some(user),
            Some(AuditValue::User(user)),
            meta,
            AuditMetadata::default(),
        )
        .await;
        Ok(codes)
    }

    /// Turns MFA off: removes the authenticator and the recovery codes.
    /// Needs the password and a recent authentication.
    ///
    /// # Errors
    /// `StepUpRequired`, `InvalidCredentials`, `Conflict` when MFA is off.
    pub async fn disable_mfa(
        &self,
        principal: &Principal,
        password: &SecretString,
        meta: &RequestMeta,
    ) -> Result<()> {
        self.require_recent_auth(principal).await?;
        let user = self
            .confirm_password(principal, "password", password, meta)
            .await?;
        if !self.store.delete_mfa(user.id).await? {
            return Err(CoreError::Conflict("MFA is not enabled".into()));
        }
        tracing::info!(user.id = %user.id, "MFA disabled");
        self.audit(
            AuditAction::MfaDisabled,
            Some(user.id),
            Some(AuditValue::User(user.id)),
            meta,
            AuditMetadata::default(),
        )
        .await;
        Ok(())
    }

    /// Replaces the recovery codes with ten new ones (shown once).
    /// Needs the password and a recent authentication.
    ///
    /// # Errors
    /// `StepUpRequired`, `InvalidCredentials`, `Conflict` when MFA is off.
    pub async fn regenerate_recovery_codes(
        &self,
        principal: &Principal,
        password: &SecretString,
        meta: &RequestMeta,
    ) -> Result<Vec<String>> {
        self.require_recent_auth(principal).await?;
        let user = self
            .confirm_password(principal, "password", password, meta)
            .await?;
        if !self.has_mfa(user.id).await? {
            return Err(CoreError::Conflict("MFA is not enabled".into()));
        }
        let (codes, hashes) = new_recovery_codes();
        self.store
            .replace_recovery_codes(user.id, &hashes, self.clock.now())
            .await?;
        tracing::info!(user.id = %user.id, "recovery codes regenerated");
        self.audit(
            AuditAction::MfaRecoveryCodesRegenerated,
            Some(user.id),
            Some(AuditValue::User(user.id)),
            meta,
            AuditMetadata::default(),
        )
        .await;
        Ok(codes)
    }

    /// Re-authenticates the current session with the password, a TOTP code
    /// or a passkey: sets a fresh `auth_time`, adds the methods to `amr`,
    /// and issues a new pair (the session's other refresh tokens stay valid).
    ///
    /// On an account with a second factor the password alone is refused:
    /// otherwise whoever learnt the password and holds a session could step
    /// up and then turn the second factor off.
    ///
    /// # Errors
    /// `InvalidCredentials` (password), `InvalidMfaCode` (code),
    /// `PasskeyRejected` (passkey), `Validation` (a password on an account
    /// with a second factor); `Unauthorized` when the session has ended.
    pub async fn step_up(
        &self,
        principal: &Principal,
        proof: MfaProof,
        meta: &RequestMeta,
    ) -> Result<IssuedTokens> {
        let methods: &[&str] = match proof {
            MfaProof::Password(password) => {
                if self.has_second_factor(principal.user_id).await? {
                    return Err(CoreError::field(
                        "code",
                        "this account has a second factor: step up with a code from your \
                         authenticator app or with a passkey",
                    ));
                }
                self.confirm_password(principal, "password", &password, meta)
                    .await?;
                &["pwd"]
            }
            MfaProof::Passkey {
                ceremony,
                assertion,
            } => {
                let (_, user) = self
                    .verify_passkey_assertion(ceremony, assertion, meta)
                    .await?;
                if user.id != principal.user_id {
                    return Err(CoreError::PasskeyRejected);
                }
                &super::passkeys::PASSKEY_AMR
            }
            MfaProof::Code(code) => {
                // The same budgets as an MFA login: a stolen access token
                // must not become an unlimited code oracle.
                if let Some(ip) = by_ip(meta) {
                    self.check_limit(LimitKind::MfaVerifyIp, ip, Some(principal.user_id), meta)
                        .await?;
                }
                self.check_mfa_account_budget(principal.user_id, meta)
                    .await?;
                if !self.accept_totp(principal.user_id, &code).await? {
                    self.mfa_code_refused(principal.user_id, "step_up", "totp", meta)
                        .await;
                    return Err(CoreError::InvalidMfaCode);
                }
                &["otp"]
            }
            MfaProof::RecoveryCode(_) => {
                return Err(CoreError::field("code", "send a password or a code"))
            }
        };
        let session = self
            .store
            .get_session(principal.session_id)
            .await?
            .ok_or(CoreError::Unauthorized)?;
        let now = self.clock.now();
        let amr = merge_amr(&session.amr, methods);
        let (refresh_token, refresh) = self.new_refresh_token(now);
        let session = self
            .store
            .reauthenticate_session(principal.session_id, now, &amr, &refresh, now)
            .await?
            .ok_or(CoreError::Unauthorized)?;
        tracing::info!(user.id = %principal.user_id, session.id = %session.id, "stepped up");
        self.audit(
            AuditAction::StepUp,
            Some(principal.user_id),
            Some(AuditValue::Session(session.id)),
            meta,
            AuditMetadata::default(),
        )
        .await;
        self.issue(session, refresh_token).await
    }

    /// Refuses unless the caller's session authenticated within the last
    /// `step_up_max_age` (five minutes by default) and, on an account with a
    /// second factor, with that factor: a password alone does not open what
    /// the second factor guards. The session row is authoritative, not the
    /// token's claims: a step-up counts at once for every token of the session.
    ///
    /// # Errors
    /// `StepUpRequired`; `Unauthorized` when the session is gone.
    pub async fn require_recent_auth(&self, principal: &Principal) -> Result<()> {
        let session = self
            .store
            .get_session(principal.session_id)
            .await?
            .ok_or(CoreError::Unauthorized)?;
        if self.clock.now() - session.auth_time > self.config.step_up_max_age {
            return Err(CoreError::StepUpRequired);
        }
        if !amr_has_mfa(&session.amr) && self.has_second_factor(principal.user_id).await? {
            return Err(CoreError::StepUpRequired);
        }
        Ok(())
    }

    /// [`Identity::require_recent_auth`] for a session caller. API keys
    /// authenticate anew on every request and have nothing to step up.
    pub(super) async fn require_recent_auth_of(&self, caller: &Caller) -> Result<()> {
        match caller {
            Caller::Session(principal) => self.require_recent_auth(principal).await,
            Caller::ApiKey(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::merge_amr;

    #[test]
    fn amr_gains_methods_once_and_mfa_with_two_factors() {
        let pwd = vec!["pwd".to_owned()];
        assert_eq!(merge_amr(&pwd, &["pwd"]), ["pwd"]);
        assert_eq!(merge_amr(&pwd, &["otp"]), ["pwd", "otp", "mfa"]);
        let full = merge_amr(&pwd, &["otp"]);
        assert_eq!(merge_amr(&full, &["otp"]), ["pwd", "otp", "mfa"]);
    }
}
