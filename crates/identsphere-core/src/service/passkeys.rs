//! Passkeys: registering them on a signed-in account, signing in with one
//! (username-less), and managing them. The WebAuthn protocol is in
//! [`crate::passkeys`]; this module adds accounts, sessions, limits and audit.
use super::{limits::by_ip, Identity, IssuedTokens, Principal, RequestMeta};
use crate::{
    audit::{AuditAction, AuditMetadata, AuditValue},
    error::{CoreError, Result},
    ids::{CeremonyId, PasskeyId},
    passkeys::RelyingParty,
    rate_limit::LimitKind,
    store::{CeremonyKind, NewPasskey, NewWebauthnCeremony, PasskeyRecord, StoreError, User},
    text::label,
};
use chrono::Duration;
use serde_json::Value;

/// How long a started registration or login can be finished.
const CEREMONY_TTL_MINUTES: i64 = 5;
/// Passkeys one account may hold (they are cheap to list, but not free to store).
pub const MAX_PASSKEYS: usize = 20;
/// Longest passkey name.
const NAME_MAX: usize = 64;
/// `amr` of a passkey login (RFC 8176): a key held in an authenticator, with
/// user verification (PIN or biometric), which together are two factors.
pub(super) const PASSKEY_AMR: [&str; 3] = ["hwk", "user", "mfa"];

/// A started ceremony: the options for `navigator.credentials`, and the id
/// that the finish request names.
#[derive(Debug)]
pub struct CeremonyStart {
    /// Names the server-side state.
    pub ceremony_id: CeremonyId,
    /// WebAuthn options as JSON (`{publicKey: …}`).
    pub options: Value,
}

impl Identity {
    fn relying_party(&self) -> Result<&RelyingParty> {
        self.relying_party.as_ref().ok_or_else(|| {
            CoreError::NotConfigured(
                "passkeys need a domain name: set IDENTSPHERE_WEBAUTHN_RP_ID, \
                 or a public URL whose host is not an IP address"
                    .into(),
            )
        })
    }

    async fn start_ceremony(
        &self,
        kind: CeremonyKind,
        user: Option<&User>,
        options: Value,
        state: String,
    ) -> Result<CeremonyStart> {
        let now = self.clock.now();
        let id = CeremonyId::new();
        self.store
            .create_webauthn_ceremony(&NewWebauthnCeremony {
                id,
                kind,
                user_id: user.map(|u| u.id),
                state,
                created_at: now,
                expires_at: now + Duration::minutes(CEREMONY_TTL_MINUTES),
            })
            .await?;
        Ok(CeremonyStart {
            ceremony_id: id,
            options,
        })
    }

    /// Starts adding a passkey to the signed-in account. Adding a way to sign
    /// in is sensitive: it needs a recent authentication.
    ///
    /// # Errors
    /// `StepUpRequired`; `Conflict` at [`MAX_PASSKEYS`].
    pub async fn start_passkey_registration(&self, principal: &Principal) -> Result<CeremonyStart> {
        self.require_recent_auth(principal).await?;
        let rp = self.relying_party()?;
        let user = self.current_user(principal).await?;
        let existing = self.store.list_passkeys(user.id).await?;
        if existing.len() >= MAX_PASSKEYS {
            return Err(CoreError::Conflict(format!(
                "an account holds at most {MAX_PASSKEYS} passkeys; delete one first"
            )));
        }
        let email = user.email.as_str();
        let (options, state) = rp.start_registration(
            user.id.0,
            email,
            user.name.as_deref().unwrap_or(email),
            existing.into_iter().map(|p| p.credential_id).collect(),
        )?;
        self.start_ceremony(CeremonyKind::Registration, Some(&user), options, state)
            .await
    }

    /// Verifies the authenticator's answer and stores the passkey.
    ///
    /// # Errors
    /// `Validation` for an unknown, used or expired ceremony, a bad name, or a
    /// credential that does not verify; `Conflict` when the credential is
    /// registered already.
    pub async fn finish_passkey_registration(
        &self,
        principal: &Principal,
        ceremony: CeremonyId,
        credential: Value,
        name: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<PasskeyRecord> {
        let rp = self.relying_party()?;
        let name = label("name", name.unwrap_or("Passkey"), NAME_MAX)?;
        let now = self.clock.now();
        let ceremony = self
            .store
            .take_webauthn_ceremony(ceremony, CeremonyKind::Registration, now)
            .await?
            // Another user's ceremony is as good as none.
            .filter(|c| c.user_id == Some(principal.user_id))
            .ok_or_else(|| {
                CoreError::field(
                    "ceremony_id",
                    "unknown or expired; start the registration again",
                )
            })?;
        let verified = rp.finish_registration(credential, &ceremony.state)?;
        let passkey = match self
            .store
            .create_passkey(&NewPasskey {
                id: PasskeyId::new(),
                user_id: principal.user_id,
                credential_id: verified.credential_id,
                credential: verified.credential,
                name,
                created_at: now,
            })
            .await
        {
            Ok(p) => p,
            Err(StoreError::Conflict { .. }) => {
                return Err(CoreError::Conflict(
                    "this passkey is registered already".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(user.id = %principal.user_id, passkey.id = %passkey.id, "passkey registered");
        self.audit(
            AuditAction::PasskeyRegistered,
            Some(principal.user_id),
            Some(AuditValue::Passkey(passkey.id)),
            meta,
            AuditMetadata::default(),
        )
        .await;
        Ok(passkey)
    }

    /// Starts a username-less passkey login. With `conditional`, the options
    /// ask for the browser's autofill UI instead of a dialog.
    ///
    /// # Errors
    /// `RateLimited` (the login budget per client address).
    pub async fn start_passkey_login(
        &self,
        conditional: bool,
        meta: &RequestMeta,
    ) -> Result<CeremonyStart> {
        let rp = self.relying_party()?;
        if let Some(ip) = by_ip(meta) {
            self.check_limit(LimitKind::LoginIp, ip, None, meta).await?;
        }
        let (options, state) = rp.start_login(conditional)?;
        self.start_ceremony(CeremonyKind::Login, None, options, state)
            .await
    }

    /// Completes a passkey login: the assertion must answer this ceremony's
    /// challenge, be signed by a registered credential, name that
    /// credential's user, and carry user verification. Opens an MFA-strength
    /// session; a TOTP second factor is not asked for.
    ///
    /// # Errors
    /// `PasskeyRejected` for anything that does not verify, whatever the reason.
    pub async fn finish_passkey_login(
        &self,
        ceremony: CeremonyId,
        assertion: Value,
        meta: &RequestMeta,
    ) -> Result<(User, IssuedTokens)> {
        let (passkey, user) = self
            .verify_passkey_assertion(ceremony, assertion, meta)
            .await?;
        let amr = PASSKEY_AMR.iter().map(|m| (*m).to_owned()).collect();
        let issued = self.open_session(&user, amr, meta).await?;
        metrics::counter!("identsphere_logins_total", "outcome" => "succeeded").increment(1);
        tracing::info!(user.id = %user.id, session.id = %issued.session.id, "login with a passkey");
        self.audit(
            AuditAction::LoginSucceeded,
            Some(user.id),
            Some(AuditValue::Session(issued.session.id)),
            meta,
            AuditMetadata::default().with("passkey_id", AuditValue::Passkey(passkey.id)),
        )
        .await;
        Ok((user, issued))
    }

    /// Checks an assertion answering a login ceremony (for a login or a
    /// step-up) and records the passkey's use; refusals are audited as
    /// failed logins.
    ///
    /// # Errors
    /// `PasskeyRejected` for anything that does not verify, whatever the reason.
    pub(super) async fn verify_passkey_assertion(
        &self,
        ceremony: CeremonyId,
        assertion: Value,
        meta: &RequestMeta,
    ) -> Result<(PasskeyRecord, User)> {
        let rp = self.relying_party()?;
        let now = self.clock.now();
        let ceremony = self
            .store
            .take_webauthn_ceremony(ceremony, CeremonyKind::Login, now)
            .await?
            .ok_or(CoreError::PasskeyRejected)?;
        let assertion = match rp.identify(assertion) {
            Ok(a) => a,
            Err(e) => {
                self.passkey_login_failed(None, meta).await;
                return Err(e);
            }
        };
        let passkey = self
            .store
            .find_passkey_by_credential(&assertion.credential_id)
            .await?
            .filter(|p| p.user_id.0 == assertion.user);
        let Some(passkey) = passkey else {
            self.passkey_login_failed(None, meta).await;
            return Err(CoreError::PasskeyRejected);
        };
        let updated = match rp.finish_login(&assertion, &ceremony.state, &passkey.credential) {
            Ok(updated) => updated,
            Err(e) => {
                self.passkey_login_failed(Some(&passkey), meta).await;
                return Err(e);
            }
        };
        let user = self
            .store
            .get_user(passkey.user_id)
            .await?
            .ok_or(CoreError::PasskeyRejected)?;
        self.store
            .record_passkey_use(passkey.id, updated.as_deref(), now)
            .await?;
        Ok((passkey, user))
    }

    async fn passkey_login_failed(&self, passkey: Option<&PasskeyRecord>, meta: &RequestMeta) {
        metrics::counter!("identsphere_logins_total", "outcome" => "failed").increment(1);
        let user = passkey.map(|p| p.user_id);
        tracing::info!(
            user.id = user.map(|u| u.to_string()),
            "passkey login refused"
        );
        let metadata = match passkey {
            Some(p) => AuditMetadata::default().with("passkey_id", AuditValue::Passkey(p.id)),
            None => AuditMetadata::default(),
        };
        self.audit(
            AuditAction::LoginFailed,
            user,
            user.map(AuditValue::User),
            meta,
            metadata,
        )
        .await;
    }

    /// The signed-in user's passkeys.
    ///
    /// # Errors
    /// Store failures.
    pub async fn list_passkeys(&self, principal: &Principal) -> Result<Vec<PasskeyRecord>> {
        Ok(self.store.list_passkeys(principal.user_id).await?)
    }

    /// Renames one of the signed-in user's passkeys.
    ///
    /// # Errors
    /// `Validation` for a bad name; `NotFound` for another user's or no passkey.
    pub async fn rename_passkey(
        &self,
        principal: &Principal,
        id: PasskeyId,
        name: &str,
    ) -> Result<PasskeyRecord> {
        let name = label("name", name, NAME_MAX)?;
        self.store
            .rename_passkey(principal.user_id, id, &name)
            .await?
            .ok_or(CoreError::NotFound)
    }

    /// Deletes one of the signed-in user's passkeys. Removing a way to sign
    /// in is sensitive: it needs a recent authentication. Sessions opened with
    /// the passkey stay; revoke them from the session list.
    ///
    /// # Errors
    /// `StepUpRequired`; `NotFound` for another user's or no passkey.
    pub async fn delete_passkey(
        &self,
        principal: &Principal,
        id: PasskeyId,
        meta: &RequestMeta,
    ) -> Result<()> {
        self.require_recent_auth(principal).await?;
        if !self.store.delete_passkey(principal.user_id, id).await? {
            return Err(CoreError::NotFound);
        }
        tracing::info!(user.id = %principal.user_id, passkey.id = %id, "passkey deleted");
        self.audit(
            AuditAction::PasskeyDeleted,
            Some(principal.user_id),
            Some(AuditValue::Passkey(id)),
            meta,
            AuditMetadata::default(),
        )
        .await;
        Ok(())
    }
}
