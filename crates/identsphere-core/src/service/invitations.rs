//! Invitations: a one-time, hashed, 7-day link that adds its holder to an
//! organization, creating the account when the email has none.
use super::{accounts::clean_name, Caller, Identity, IssuedTokens, Principal, RequestMeta};
use crate::{
    audit::{AuditAction, AuditMetadata, AuditValue},
    error::{CoreError, Result},
    ids::{InvitationId, OrgId},
    mail::templates,
    permissions::RoleName,
    secret::{random_token, TokenHash},
    store::{
        Invitation, InvitationAcceptor, NewInvitation, NewUser, PageRequest, StoreError, User,
    },
    Email,
};
use chrono::Duration;
use secrecy::SecretString;

const INVITATION_TTL_DAYS: i64 = 7;

/// Input of [`Identity::accept_invitation`].
#[derive(Debug)]
pub struct AcceptInvitation {
    /// The token from the emailed link.
    pub token: String,
    /// The password of the new account (required when the email has none).
    pub password: Option<SecretString>,
    /// The name of the new account.
    pub name: Option<String>,
}

/// What accepting an invitation did.
#[derive(Debug)]
pub struct AcceptedInvitation {
    /// The invitation, now accepted.
    pub invitation: Invitation,
    /// The member.
    pub user: User,
    /// A new session, when the account was created by accepting.
    pub tokens: Option<IssuedTokens>,
}

impl Identity {
    /// Invites `email` into `org` with `role` (`invitations:manage`) and mails
    /// the link. An earlier pending invitation for the same address stops working.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden` (a role above the caller's), `Validation`,
    /// `Conflict` (already a member).
    pub async fn invite(
        &self,
        caller: &Caller,
        org: OrgId,
        email: &str,
        role: &str,
        meta: &RequestMeta,
    ) -> Result<Invitation> {
        let access = self.authorize(caller, org, "invitations:manage").await?;
        let email = Email::parse(email).map_err(|m| CoreError::field("email", m))?;
        let role = RoleName::parse(role).map_err(|m| CoreError::field("role", m))?;
        let granted = self.permissions_of_role(org, &role).await?;
        if role.as_str() == RoleName::OWNER {
            access.require_owner()?;
        }
        access.require_all(&granted)?;
        let organization = self.store.get_org(org).await?.ok_or(CoreError::NotFound)?;
        if let Some(user) = self.store.find_user_by_email(&email).await? {
            if self.store.get_membership(org, user.id).await?.is_some() {
                return Err(CoreError::Conflict(
                    "this address already belongs to a member".into(),
                ));
            }
        }
        let token = random_token("");
        let now = self.clock.now();
        let invitation = self
            .store
            .create_invitation(&NewInvitation {
                id: InvitationId::new(),
                org_id: org,
                email: email.clone(),
                role,
                hash: TokenHash::of(&token),
                invited_by: caller.user_id(),
                created_at: now,
                expires_at: now + Duration::days(INVITATION_TTL_DAYS),
            })
            .await?;
        let mut link = self.config.link("accept-invitation");
        link.query_pairs_mut().append_pair("token", &token);
        self.send_later(templates::invitation(
            &email,
            &organization.name,
            link.as_str(),
        ));
        tracing::info!(org.id = %org, invitation.id = %invitation.id, "invitation sent");
        self.audit_in(
            Some(org),
            AuditAction::InvitationCreated,
            Some(caller.user_id()),
            Some(AuditValue::Invitation(invitation.id)),
            meta,
            caller
                .audit_metadata()
                .with("role", AuditValue::Role(invitation.role.clone())),
        )
        .await;
        Ok(invitation)
    }

    /// Pending (and expired, not yet cleaned) invitations (`invitations:manage`).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`.
    pub async fn list_invitations(
        &self,
        caller: &Caller,
        org: OrgId,
        page: PageRequest<InvitationId>,
    ) -> Result<Vec<Invitation>> {
        self.authorize(caller, org, "invitations:manage").await?;
        Ok(self.store.list_invitations(org, page).await?)
    }

    /// Revokes a pending invitation (`invitations:manage`).
    ///
    /// # Errors
    /// `NotFound` (unknown, another organization's, accepted or revoked), `Forbidden`.
    pub async fn revoke_invitation(
        &self,
        caller: &Caller,
        org: OrgId,
        id: InvitationId,
        meta: &RequestMeta,
    ) -> Result<()> {
        self.authorize(caller, org, "invitations:manage").await?;
        if !self
            .store
            .revoke_invitation(org, id, self.clock.now())
            .await?
        {
            return Err(CoreError::NotFound);
        }
        self.audit_in(
            Some(org),
            AuditAction::InvitationRevoked,
            Some(caller.user_id()),
            Some(AuditValue::Invitation(id)),
            meta,
            caller.audit_metadata(),
        )
        .await;
        Ok(())
    }

    async fn still_pending(&self, hash: &TokenHash) -> Result<bool> {
        let now = self.clock.now();
        Ok(self
            .store
            .find_invitation(hash)
            .await?
            .is_some_and(|i| i.is_pending(now)))
    }

    /// Accepts an invitation. The link proves control of the invited address:
    /// when it has no account, one is created (verified) with the given
    /// password and signed in; when it has one, the caller must be signed in
    /// as that account.
    ///
    /// # Errors
    /// `InvalidLinkToken` (unknown, used, revoked or expired), `Unauthorized`
    /// (the address has an account and the caller is not signed in as it),
    /// `Validation` (password for a new account).
    pub async fn accept_invitation(
        &self,
        req: AcceptInvitation,
        signed_in: Option<&Principal>,
        meta: &RequestMeta,
    ) -> Result<AcceptedInvitation> {
        if req.token.is_empty() || req.token.len() > 128 {
            return Err(CoreError::InvalidLinkToken);
        }
        let hash = TokenHash::of(&req.token);
        let now = self.clock.now();
        let invitation = match self.store.find_invitation(&hash).await? {
            Some(i) if i.is_pending(now) => i,
            _ => return Err(CoreError::InvalidLinkToken),
        };
        // An invitation sent before the current folding rules names its
        // address in the old form: the account is found or made by the new one.
        let email = invitation.email.clone().refold();
        let acceptor = match self.store.find_user_by_email(&email).await? {
            Some(existing) => match signed_in {
                Some(p) if p.user_id == existing.id => InvitationAcceptor::Existing(existing.id),
                // A concurrent accept may have just created this account: then
                // the link is used, and that is the answer.
                _ if !self.still_pending(&hash).await? => return Err(CoreError::InvalidLinkToken),
                None => return Err(CoreError::Unauthorized),
                Some(_) => {
                    return Err(CoreError::Forbidden(
                        "the invitation is for another account: sign in as the invited address"
                            .into(),
                    ))
                }
            },
            None => {
                let Some(password) = req.password.as_ref() else {
                    return Err(CoreError::field(
                        "password",
                        "required to create the account",
                    ));
                };
                self.config.password_policy.check("password", password)?;
                let name = clean_name(req.name)?;
                InvitationAcceptor::New(NewUser {
                    id: Default::default(),
                    email,
                    name,
                    // The link was mailed to this address.
                    email_verified: true,
                    password_hash: Some(self.hasher.hash(password).await?),
                    created_at: now,
                })
            }
        };
        let accepted = match self
            .store
            .accept_invitation(&hash, &invitation.email, &acceptor, self.clock.now())
            .await
        {
            Ok(Some(accepted)) => accepted,
            Ok(None) => return Err(CoreError::InvalidLinkToken),
            // The address got an account between the check and the insert.
            Err(StoreError::Conflict { .. }) => {
                return Err(CoreError::Conflict(
                    "this address now has an account: sign in as it and accept again".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        let (invitation, user_id) = accepted;
        let user = self
            .store
            .get_user(user_id)
            .await?
            .ok_or(CoreError::Unauthorized)?;
        let created = matches!(acceptor, InvitationAcceptor::New(_));
        if created {
            self.audit(
                AuditAction::UserSignedUp,
                Some(user.id),
                Some(AuditValue::User(user.id)),
                meta,
                AuditMetadata::default(),
            )
            .await;
        }
        tracing::info!(org.id = %invitation.org_id, user.id = %user.id, "invitation accepted");
        self.audit_in(
            Some(invitation.org_id),
            AuditAction::InvitationAccepted,
            Some(user.id),
            Some(AuditValue::Invitation(invitation.id)),
            meta,
            AuditMetadata::default(),
        )
        .await;
        self.audit_in(
            Some(invitation.org_id),
            AuditAction::MemberAdded,
            Some(user.id),
            Some(AuditValue::User(user.id)),
            meta,
            AuditMetadata::default().with("role", AuditValue::Role(invitation.role.clone())),
        )
        .await;
        let tokens = if created {
            Some(self.open_session(&user, vec!["pwd".into()], meta).await?)
        } else {
            None
        };
        Ok(AcceptedInvitation {
            invitation,
            user,
            tokens,
        })
    }
}
