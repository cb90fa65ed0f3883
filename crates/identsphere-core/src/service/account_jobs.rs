//! What sign-up, forgot-password and resend-verification do for an address,
//! run as jobs after the answer.
//!
//! The requests do the same work whatever the address (limits, validation,
//! sign-up's hash, one job INSERT) and answer; everything that depends on
//! whether the address has an account happens here, where its time cannot
//! be read off the answer. docs/security.md, "Address enumeration by timing".
//!
//! Jobs run at least once, so each is safe to run again: a sign-up job
//! carries the new account's id and recognises the account it created on an
//! earlier attempt; a link job issues a fresh link, replacing the previous.
use super::{Identity, Link, RequestMeta};
use crate::{
    audit::{AuditAction, AuditMetadata, AuditValue},
    error::Result,
    ids::UserId,
    jobs::JobError,
    mail::templates,
    secret::TokenHash,
    store::{NewUser, StoreError, TokenPurpose},
    Email,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Creates an account, or tells the address's owner it already has one.
pub(super) const SIGNUP: &str = "account.signup";
/// Mails a password-reset link if the address has an account.
pub(super) const RESET_LINK: &str = "account.reset_link";
/// Mails a fresh verification link if the address has an unverified account.
pub(super) const VERIFICATION_LINK: &str = "account.verification_link";

/// The request's client, for the audit event the job writes.
#[derive(Serialize, Deserialize)]
pub(super) struct Client {
    ip: Option<String>,
    user_agent: Option<String>,
}

impl From<&RequestMeta> for Client {
    fn from(m: &RequestMeta) -> Self {
        Self {
            ip: m.ip.clone(),
            user_agent: m.user_agent.clone(),
        }
    }
}

impl From<Client> for RequestMeta {
    fn from(c: Client) -> Self {
        Self {
            ip: c.ip,
            user_agent: c.user_agent,
        }
    }
}

/// A sign-up's payload: the password only as its Argon2id hash.
#[derive(Serialize, Deserialize)]
pub(super) struct Signup {
    pub(super) user_id: UserId,
    pub(super) email: Email,
    pub(super) name: Option<String>,
    pub(super) password_hash: String,
    /// SHA-256 of the sign-up proof the browser keeps (see [`Identity::signup`]).
    pub(super) proof_hash: [u8; 32],
    pub(super) requested_at: DateTime<Utc>,
    pub(super) client: Client,
}

/// A link request's payload.
#[derive(Serialize, Deserialize)]
pub(super) struct LinkRequest {
    pub(super) email: Email,
    pub(super) client: Client,
}

impl Identity {
    /// Runs one of this module's jobs; `None` when `kind` is not one of them.
    pub(super) async fn run_account_job(
        &self,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Option<std::result::Result<(), JobError>> {
        let outcome = match kind {
            SIGNUP => match decode::<Signup>(payload) {
                Ok(job) => self.finish_signup(job).await,
                Err(e) => return Some(Err(e)),
            },
            RESET_LINK => match decode::<LinkRequest>(payload) {
                Ok(job) => self.mail_reset_link(job).await,
                Err(e) => return Some(Err(e)),
            },
            VERIFICATION_LINK => match decode::<LinkRequest>(payload) {
                Ok(job) => self.mail_verification_link(job).await,
                Err(e) => return Some(Err(e)),
            },
            _ => return None,
        };
        Some(outcome.map_err(JobError::from))
    }

    async fn finish_signup(&self, job: Signup) -> Result<()> {
        let meta = RequestMeta::from(job.client);
        let new = NewUser {
            id: job.user_id,
            email: job.email.clone(),
            name: job.name,
            email_verified: false,
            password_hash: Some(job.password_hash),
            created_at: job.requested_at,
        };
        let user = match self.store.create_user(&new).await {
            Ok(user) => user,
            Err(StoreError::Conflict { .. }) => {
                match self.store.find_user_by_email(&job.email).await? {
                    // Created by an earlier attempt of this job, which failed after.
                    Some(user) if user.id == job.user_id => user,
                    // Never verified: whoever signed up first proved nothing.
                    // The mailbox's owner may finish it with a password of
                    // their own (the link carries no proof).
                    Some(user) if !user.email_verified => {
                        let link = self.plain_verification_link(&user).await?;
                        self.send_later(templates::finish_signup(&user.email, &link));
                        return Ok(());
                    }
                    _ => {
                        let login = self.config.link("login");
                        self.send_later(templates::already_registered(&job.email, login.as_str()));
                        return Ok(());
                    }
                }
            }
            Err(e) => return Err(e.into()),
        };
        let link = self
            .issue_link(
                &user,
                TokenPurpose::VerifyEmail,
                Link::SignUp(TokenHash(job.proof_hash)),
                "verify-email",
            )
            .await?;
        self.send_later(templates::verify_email(&user.email, &link));
        tracing::info!(user.id = %user.id, "user signed up");
        self.audit(
            AuditAction::UserSignedUp,
            Some(user.id),
            Some(AuditValue::User(user.id)),
            &meta,
            AuditMetadata::default(),
        )
        .await;
        Ok(())
    }

    async fn mail_reset_link(&self, job: LinkRequest) -> Result<()> {
        if let Some(user) = self.store.find_user_by_email(&job.email).await? {
            let link = self
                .issue_link(
                    &user,
                    TokenPurpose::ResetPassword,
                    Link::Plain,
                    "reset-password",
                )
                .await?;
            self.send_later(templates::reset_password(&user.email, &link));
        }
        Ok(())
    }

    async fn mail_verification_link(&self, job: LinkRequest) -> Result<()> {
        if let Some(user) = self.store.find_user_by_email(&job.email).await? {
            if !user.email_verified {
                let link = self.plain_verification_link(&user).await?;
                self.send_later(templates::verify_email(&user.email, &link));
            }
        }
        Ok(())
    }
}

/// A payload this version cannot read will not become readable: give up.
/// serde's message is left out: it may quote the value (an address).
fn decode<T: serde::de::DeserializeOwned>(
    payload: &serde_json::Value,
) -> std::result::Result<T, JobError> {
    T::deserialize(payload).map_err(|_| JobError::Permanent("malformed payload".into()))
}
