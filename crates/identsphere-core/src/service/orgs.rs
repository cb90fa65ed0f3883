//! Organizations, memberships and roles, and the authorization behind every
//! organization-scoped operation.
//!
//! Permissions are read from the caller's membership and role on each call,
//! never from a token: a role change or a removal takes effect at once.
//!
//! An organization may require MFA (`require_mfa`): then a session acts there
//! only when it was signed in with a second factor, and every resolution of
//! the caller's standing ([`Identity::org_access`], the active organization,
//! switching, and the organization claims of issued tokens) refuses or omits
//! it otherwise. Organization API keys are not held to it: they are machine
//! credentials, minted through the organization's own routes, with no sign-in
//! to strengthen. A personal key acts for its owner, so it acts there only
//! while its owner has a second factor enrolled: otherwise a member could
//! mint one from a password session and walk around the requirement.
use super::{Identity, Principal, RequestMeta};
use crate::{
    audit::{AuditAction, AuditEvent, AuditFilter, AuditMetadata, AuditValue},
    clock::check_client_time,
    error::{CoreError, Result},
    ids::{AuditEventId, OrgId, UserId},
    permissions::{builtin_permissions, Permission, Permissions, RoleName},
    store::{
        ApiKey, Member, MemberChange, Membership, NewOrganization, OrgMembership, OrgPatch,
        Organization, PageRequest, Role, RoleDeletion, StoreError, User,
    },
    text::label,
};

/// What a session without a second factor is told in an organization that
/// requires one.
const ORG_REQUIRES_MFA: &str = "this organization requires multi-factor authentication: \
     sign in with your second factor, or enroll one (POST /v1/auth/mfa/totp/enroll) \
     and step up with its code (POST /v1/auth/step-up)";

/// Who is calling: a signed-in session or an API key.
#[derive(Debug, Clone)]
pub enum Caller {
    /// An access token of a live session.
    Session(Principal),
    /// An active API key.
    ApiKey(ApiKey),
}

impl Caller {
    /// The user the caller acts for.
    pub fn user_id(&self) -> UserId {
        match self {
            Self::Session(p) => p.user_id,
            Self::ApiKey(k) => k.user_id,
        }
    }

    /// Refuses API keys whose scopes lack `scope`; sessions pass.
    ///
    /// # Errors
    /// `Forbidden`.
    pub fn require_scope(&self, scope: &str) -> Result<()> {
        match self {
            Self::Session(_) => Ok(()),
            Self::ApiKey(k) if k.scopes.iter().any(|s| s == scope || s == "*") => Ok(()),
            Self::ApiKey(_) => Err(CoreError::Forbidden(format!(
                "the API key lacks the scope {scope}"
            ))),
        }
    }

    /// The session behind the caller; API keys are refused.
    ///
    /// # Errors
    /// `Forbidden` for API keys.
    pub fn session(&self) -> Result<&Principal> {
        match self {
            Self::Session(p) => Ok(p),
            Self::ApiKey(_) => Err(CoreError::Forbidden(
                "this endpoint needs a signed-in session; API keys cannot use it".into(),
            )),
        }
    }

    /// Audit metadata naming the API key, when one was used.
    pub(crate) fn audit_metadata(&self) -> AuditMetadata {
        match self {
            Self::Session(_) => AuditMetadata::default(),
            Self::ApiKey(k) => {
                AuditMetadata::default().with("api_key_id", AuditValue::ApiKey(k.id))
            }
        }
    }
}

/// The caller's standing in one organization, resolved from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgAccess {
    /// The organization.
    pub org_id: OrgId,
    /// The caller's role there.
    pub role: RoleName,
    /// What the caller may do there: the role's permissions, narrowed to the
    /// key's scopes for API keys.
    pub permissions: Permissions,
}

impl OrgAccess {
    /// Whether the caller holds `permission`.
    pub fn allows(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p.as_str() == permission)
    }

    /// Refuses a caller without `permission`.
    ///
    /// # Errors
    /// `Forbidden`, naming the missing permission.
    pub fn require(&self, permission: &str) -> Result<()> {
        if self.allows(permission) {
            Ok(())
        } else {
            Err(CoreError::Forbidden(format!(
                "requires the permission {permission}"
            )))
        }
    }

    /// Owners only (and, for keys, with `org:manage`): deleting the
    /// organization and making or unmaking owners.
    pub(crate) fn require_owner(&self) -> Result<()> {
        if self.role.as_str() == RoleName::OWNER && self.allows("org:manage") {
            Ok(())
        } else {
            Err(CoreError::Forbidden("only an owner may do this".into()))
        }
    }

    /// Refuses to hand out more than the caller holds: roles, invitations and
    /// keys may only carry permissions the caller has. Owners hold every
    /// permission, so only their API keys (narrowed to their scopes) can fail.
    pub(crate) fn require_all(&self, wanted: &Permissions) -> Result<()> {
        match wanted.difference(&self.permissions).next() {
            None => Ok(()),
            Some(p) => Err(CoreError::Forbidden(format!(
                "cannot grant the permission {p}, which you do not have"
            ))),
        }
    }
}

/// The caller's standing in its active organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActiveOrg {
    /// No organization is active, or the membership has ended.
    None,
    /// The caller's standing there.
    Member(OrgAccess),
    /// The organization requires MFA and the session was not signed in with a
    /// second factor: it holds nothing there until it is.
    MfaRequired(OrgId),
}

/// The active organization of a session, for `GET /v1/session`.
#[derive(Debug, Clone)]
pub struct SessionOrganization {
    /// The organization.
    pub org: Organization,
    /// The caller's standing in it; `None` while the organization requires
    /// MFA that the session lacks.
    pub access: Option<OrgAccess>,
}

/// What a personal API key is told there when its owner has no second factor.
const ORG_REQUIRES_OWNER_MFA: &str = "this organization requires multi-factor authentication: \
     the owner of this personal API key must enroll a second factor (TOTP or a passkey)";

impl Identity {
    /// Refuses, in an organization that requires MFA, a session without a
    /// second factor and a personal key whose owner has none enrolled.
    async fn check_org_mfa(&self, caller: &Caller, membership: &Membership) -> Result<()> {
        if !membership.org_require_mfa {
            return Ok(());
        }
        match caller {
            Caller::Session(p) if !p.signed_in_with_mfa() => {
                Err(CoreError::MfaRequired(ORG_REQUIRES_MFA.into()))
            }
            Caller::ApiKey(key)
                if key.org_id.is_none() && !self.has_second_factor(key.user_id).await? =>
            {
                Err(CoreError::MfaRequired(ORG_REQUIRES_OWNER_MFA.into()))
            }
            Caller::Session(_) | Caller::ApiKey(_) => Ok(()),
        }
    }

    /// The permissions a role grants in an organization (empty for a custom
    /// role that has been deleted).
    fn role_permissions(&self, role: &RoleName, stored: Option<&Permissions>) -> Permissions {
        builtin_permissions(role, &self.config.app_permissions)
            .or_else(|| stored.cloned())
            .unwrap_or_default()
    }

    fn access_from(&self, caller: &Caller, m: &Membership) -> OrgAccess {
        let mut permissions = self.role_permissions(&m.role, m.role_permissions.as_ref());
        if let Caller::ApiKey(key) = caller {
            if !key.scopes.iter().any(|s| s == "*") {
                permissions.retain(|p| key.scopes.iter().any(|s| s == p.as_str()));
            }
        }
        OrgAccess {
            org_id: m.org_id,
            role: m.role.clone(),
            permissions,
        }
    }

    /// The caller's standing in `org`. Organizations the caller does not
    /// belong to (and, for organization keys, any other organization) answer
    /// `NotFound`, exactly like organizations that do not exist.
    ///
    /// # Errors
    /// `NotFound`; `MfaRequired` for a session without a second factor in an
    /// organization that requires one (members only: others get `NotFound`).
    pub async fn org_access(&self, caller: &Caller, org: OrgId) -> Result<OrgAccess> {
        if let Caller::ApiKey(ApiKey {
            org_id: Some(key_org),
            ..
        }) = caller
        {
            if *key_org != org {
                return Err(CoreError::NotFound);
            }
        }
        let membership = self
            .store
            .get_membership(org, caller.user_id())
            .await?
            .ok_or(CoreError::NotFound)?;
        self.check_org_mfa(caller, &membership).await?;
        Ok(self.access_from(caller, &membership))
    }

    /// Resolves the caller's standing and checks one permission.
    pub(super) async fn authorize(
        &self,
        caller: &Caller,
        org: OrgId,
        permission: &str,
    ) -> Result<OrgAccess> {
        let access = self.org_access(caller, org).await?;
        access.require(permission)?;
        Ok(access)
    }

    /// Creates an organization with the caller as its owner.
    ///
    /// # Errors
    /// `Validation` for a bad name; `Forbidden` for API keys.
    pub async fn create_org(
        &self,
        caller: &Caller,
        name: &str,
        meta: &RequestMeta,
    ) -> Result<Organization> {
        let principal = caller.session()?;
        let name = label("name", name, 100)?;
        let org = self
            .store
            .create_org(
                &NewOrganization {
                    id: OrgId::new(),
                    name,
                    created_at: self.clock.now(),
                },
                principal.user_id,
            )
            .await?;
        tracing::info!(org.id = %org.id, user.id = %principal.user_id, "organization created");
        self.audit_in(
            Some(org.id),
            AuditAction::OrganizationCreated,
            Some(principal.user_id),
            Some(AuditValue::Org(org.id)),
            meta,
            AuditMetadata::default(),
        )
        .await;
        Ok(org)
    }

    /// The caller's organizations with the caller's role in each. An
    /// organization key sees only its own organization.
    ///
    /// # Errors
    /// `Forbidden` for keys without `org:read`.
    pub async fn list_my_orgs(
        &self,
        caller: &Caller,
        page: PageRequest<OrgId>,
    ) -> Result<Vec<OrgMembership>> {
        caller.require_scope("org:read")?;
        let mut orgs = self.store.list_user_orgs(caller.user_id(), page).await?;
        if let Caller::ApiKey(ApiKey {
            org_id: Some(key_org),
            ..
        }) = caller
        {
            orgs.retain(|m| m.org.id == *key_org);
        }
        Ok(orgs)
    }

    /// One organization.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`.
    pub async fn get_org(&self, caller: &Caller, org: OrgId) -> Result<(Organization, OrgAccess)> {
        let access = self.authorize(caller, org, "org:read").await?;
        let org = self.store.get_org(org).await?.ok_or(CoreError::NotFound)?;
        Ok((org, access))
    }

    /// Renames an organization and sets whether it requires MFA (`org:manage`).
    ///
    /// Setting `require_mfa` (to either value) is sensitive: it decides how
    /// every member must sign in, so it needs a recent authentication. Turning
    /// it on also needs a session signed in with a second factor, or the
    /// caller would lock themselves out at once.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, `Validation` (bad name, empty patch),
    /// `MfaRequired`, `StepUpRequired`.
    pub async fn update_org(
        &self,
        caller: &Caller,
        org: OrgId,
        patch: &OrgPatch,
        meta: &RequestMeta,
    ) -> Result<(Organization, OrgAccess)> {
        let access = self.authorize(caller, org, "org:manage").await?;
        if patch.is_empty() {
            return Err(CoreError::field(
                "body",
                "nothing to change: send name, require_mfa or both",
            ));
        }
        let patch = OrgPatch {
            name: patch
                .name
                .as_deref()
                .map(|n| label("name", n, 100))
                .transpose()?,
            require_mfa: patch.require_mfa,
        };
        if let Some(require) = patch.require_mfa {
            if let (true, Caller::Session(p)) = (require, caller) {
                if !p.signed_in_with_mfa() {
                    return Err(CoreError::MfaRequired(
                        "sign in with a second factor before requiring one of every member, \
                         or you would lock yourself out of this organization"
                            .into(),
                    ));
                }
            }
            self.require_recent_auth_of(caller).await?;
        }
        let updated = self.store.update_org(org, &patch, self.clock.now()).await?;
        let (before, after) = (&updated.previous, &updated.current);
        let mut metadata = caller.audit_metadata();
        if before.name != after.name {
            metadata = metadata.with("renamed", AuditValue::Flag(true));
        }
        if before.require_mfa != after.require_mfa {
            tracing::info!(
                org.id = %org,
                user.id = %caller.user_id(),
                require_mfa = after.require_mfa,
                "organization MFA requirement changed"
            );
            metadata = metadata.with("require_mfa", AuditValue::Flag(after.require_mfa));
        }
        self.audit_in(
            Some(org),
            AuditAction::OrganizationUpdated,
            Some(caller.user_id()),
            Some(AuditValue::Org(org)),
            meta,
            metadata,
        )
        .await;
        Ok((updated.current, access))
    }

    /// Deletes an organization with its memberships, roles, invitations and
    /// keys (owners only). Its audit events stay.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`.
    pub async fn delete_org(&self, caller: &Caller, org: OrgId, meta: &RequestMeta) -> Result<()> {
        self.org_access(caller, org).await?.require_owner()?;
        self.require_recent_auth_of(caller).await?;
        if !self.store.delete_org(org).await? {
            return Err(CoreError::NotFound);
        }
        tracing::info!(org.id = %org, user.id = %caller.user_id(), "organization deleted");
        self.audit_in(
            Some(org),
            AuditAction::OrganizationDeleted,
            Some(caller.user_id()),
            Some(AuditValue::Org(org)),
            meta,
            caller.audit_metadata(),
        )
        .await;
        Ok(())
    }

    /// Members of an organization (`members:read`).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`.
    pub async fn list_members(
        &self,
        caller: &Caller,
        org: OrgId,
        page: PageRequest<UserId>,
    ) -> Result<Vec<Member>> {
        self.authorize(caller, org, "members:read").await?;
        Ok(self.store.list_members(org, page).await?)
    }

    /// The role a member holds, for permission comparisons.
    async fn member_permissions(
        &self,
        org: OrgId,
        user: UserId,
    ) -> Result<(RoleName, Permissions)> {
        let m = self
            .store
            .get_membership(org, user)
            .await?
            .ok_or(CoreError::NotFound)?;
        let permissions = self.role_permissions(&m.role, m.role_permissions.as_ref());
        Ok((m.role, permissions))
    }

    /// The permissions a role would grant in `org`; `Validation` when it does
    /// not exist there.
    pub(super) async fn permissions_of_role(
        &self,
        org: OrgId,
        role: &RoleName,
    ) -> Result<Permissions> {
        if role.is_builtin() {
            return Ok(self.role_permissions(role, None));
        }
        match self.store.get_role(org, role).await? {
            Some(r) => Ok(r.permissions),
            None => Err(CoreError::field(
                "role",
                "no such role in this organization",
            )),
        }
    }

    /// Gives a member another role (`members:manage`). Nobody hands out more
    /// than they hold, only owners make or unmake owners, and the last owner
    /// stays an owner.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, `Validation` (unknown role), `Conflict` (last owner).
    pub async fn change_member_role(
        &self,
        caller: &Caller,
        org: OrgId,
        user: UserId,
        role: &RoleName,
        meta: &RequestMeta,
    ) -> Result<Membership> {
        let access = self.authorize(caller, org, "members:manage").await?;
        let (current, current_permissions) = self.member_permissions(org, user).await?;
        let wanted = self.permissions_of_role(org, role).await?;
        if current.as_str() == RoleName::OWNER || role.as_str() == RoleName::OWNER {
            access.require_owner()?;
            // Making or unmaking an owner is sensitive: it needs a recent authentication.
            self.require_recent_auth_of(caller).await?;
        }
        // Owners pass trivially (they hold everything); API keys of owners
        // are held to their scopes.
        access.require_all(&current_permissions)?;
        access.require_all(&wanted)?;
        match self.store.change_member_role(org, user, role).await? {
            MemberChange::Done { previous } => {
                self.audit_in(
                    Some(org),
                    AuditAction::MemberRoleChanged,
                    Some(caller.user_id()),
                    Some(AuditValue::User(user)),
                    meta,
                    caller
                        .audit_metadata()
                        .with("from", AuditValue::Role(previous))
                        .with("to", AuditValue::Role(role.clone())),
                )
                .await;
            }
            MemberChange::NotMember => return Err(CoreError::NotFound),
            MemberChange::LastOwner => {
                return Err(CoreError::Conflict(
                    "the last owner cannot be demoted; make another member an owner first".into(),
                ))
            }
            MemberChange::UnknownRole => {
                return Err(CoreError::field(
                    "role",
                    "no such role in this organization",
                ))
            }
        }
        self.store
            .get_membership(org, user)
            .await?
            .ok_or(CoreError::NotFound)
    }

    /// Removes a member (`members:manage`, or anyone leaving by themselves).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, `Conflict` (last owner).
    pub async fn remove_member(
        &self,
        caller: &Caller,
        org: OrgId,
        user: UserId,
        meta: &RequestMeta,
    ) -> Result<()> {
        let access = self.org_access(caller, org).await?;
        // People may leave by themselves; a key needs the scope even for its owner.
        let leaving = user == caller.user_id() && matches!(caller, Caller::Session(_));
        if !leaving {
            access.require("members:manage")?;
            let (current, current_permissions) = self.member_permissions(org, user).await?;
            if current.as_str() == RoleName::OWNER {
                access.require_owner()?;
                // As sensitive as demoting one (change_member_role).
                self.require_recent_auth_of(caller).await?;
            }
            access.require_all(&current_permissions)?;
        }
        match self.store.remove_member(org, user).await? {
            MemberChange::Done { previous } => {
                tracing::info!(org.id = %org, user.id = %user, "member removed");
                self.audit_in(
                    Some(org),
                    AuditAction::MemberRemoved,
                    Some(caller.user_id()),
                    Some(AuditValue::User(user)),
                    meta,
                    caller
                        .audit_metadata()
                        .with("role", AuditValue::Role(previous)),
                )
                .await;
                Ok(())
            }
            MemberChange::NotMember => Err(CoreError::NotFound),
            MemberChange::LastOwner => Err(CoreError::Conflict(
                "the last owner cannot be removed; make another member an owner first".into(),
            )),
            MemberChange::UnknownRole => Err(CoreError::Internal("unexpected role outcome".into())),
        }
    }

    /// Built-in and custom roles with their permissions (`org:read`).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`.
    pub async fn list_roles(&self, caller: &Caller, org: OrgId) -> Result<Vec<(Role, bool)>> {
        self.authorize(caller, org, "org:read").await?;
        let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let mut roles: Vec<(Role, bool)> = RoleName::BUILT_IN
            .into_iter()
            .map(|name| {
                let name = RoleName::builtin(name);
                let permissions = self.role_permissions(&name, None);
                let role = Role {
                    name,
                    permissions,
                    created_at: epoch,
                    updated_at: epoch,
                };
                (role, true)
            })
            .collect();
        roles.extend(
            self.store
                .list_roles(org)
                .await?
                .into_iter()
                .map(|r| (r, false)),
        );
        Ok(roles)
    }

    /// Parses and checks permission names for a role: catalogue names and the
    /// host's registered `app:*` names.
    fn parse_role_permissions(&self, raw: &[String]) -> Result<Permissions> {
        let mut errors = Vec::new();
        let mut set = Permissions::new();
        for (i, name) in raw.iter().enumerate() {
            match Permission::parse(name) {
                Ok(p)
                    if p.as_str().starts_with("app:")
                        && !self.config.app_permissions.contains(&p) =>
                {
                    errors.push(crate::FieldError::new(
                        format!("permissions[{i}]"),
                        format!("{name:?} is not a permission the application registered"),
                    ))
                }
                Ok(p) => {
                    set.insert(p);
                }
                Err(m) => errors.push(crate::FieldError::new(format!("permissions[{i}]"), m)),
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(CoreError::Validation(errors))
        }
    }

    /// Defines a custom role (`roles:manage`), with permissions the caller holds.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, `Validation`, `Conflict` (name taken).
    pub async fn create_role(
        &self,
        caller: &Caller,
        org: OrgId,
        name: &str,
        permissions: &[String],
        meta: &RequestMeta,
    ) -> Result<Role> {
        let access = self.authorize(caller, org, "roles:manage").await?;
        let name = RoleName::parse(name).map_err(|m| CoreError::field("name", m))?;
        if name.is_builtin() {
            return Err(CoreError::Conflict(format!("{name} is a built-in role")));
        }
        let permissions = self.parse_role_permissions(permissions)?;
        access.require_all(&permissions)?;
        let now = self.clock.now();
        let role = Role {
            name,
            permissions,
            created_at: now,
            updated_at: now,
        };
        match self.store.create_role(org, &role).await {
            Err(StoreError::Conflict { .. }) => {
                return Err(CoreError::Conflict(format!(
                    "the role {} exists",
                    role.name
                )))
            }
            other => other?,
        }
        self.audit_in(
            Some(org),
            AuditAction::RoleCreated,
            Some(caller.user_id()),
            Some(AuditValue::Role(role.name.clone())),
            meta,
            caller.audit_metadata(),
        )
        .await;
        Ok(role)
    }

    /// Replaces a custom role's permissions (`roles:manage`).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden` (built-in roles, permissions the caller lacks), `Validation`.
    pub async fn update_role(
        &self,
        caller: &Caller,
        org: OrgId,
        name: &str,
        permissions: &[String],
        meta: &RequestMeta,
    ) -> Result<Role> {
        let access = self.authorize(caller, org, "roles:manage").await?;
        let name = RoleName::parse(name).map_err(|_| CoreError::NotFound)?;
        if name.is_builtin() {
            return Err(CoreError::Forbidden(
                "built-in roles cannot be changed".into(),
            ));
        }
        let permissions = self.parse_role_permissions(permissions)?;
        let current = self
            .store
            .get_role(org, &name)
            .await?
            .ok_or(CoreError::NotFound)?;
        access.require_all(&current.permissions)?;
        access.require_all(&permissions)?;
        let role = self
            .store
            .update_role(org, &name, &permissions, self.clock.now())
            .await?
            .ok_or(CoreError::NotFound)?;
        self.audit_in(
            Some(org),
            AuditAction::RoleUpdated,
            Some(caller.user_id()),
            Some(AuditValue::Role(role.name.clone())),
            meta,
            caller.audit_metadata(),
        )
        .await;
        Ok(role)
    }

    /// Deletes a custom role nobody holds (`roles:manage`).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden` (built-in roles), `Conflict` (in use).
    pub async fn delete_role(
        &self,
        caller: &Caller,
        org: OrgId,
        name: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        self.authorize(caller, org, "roles:manage").await?;
        let name = RoleName::parse(name).map_err(|_| CoreError::NotFound)?;
        if name.is_builtin() {
            return Err(CoreError::Forbidden(
                "built-in roles cannot be deleted".into(),
            ));
        }
        match self.store.delete_role(org, &name).await? {
            RoleDeletion::Deleted => {}
            RoleDeletion::NotFound => return Err(CoreError::NotFound),
            RoleDeletion::InUse => {
                return Err(CoreError::Conflict(
                    "members or pending invitations hold this role; reassign them first".into(),
                ))
            }
        }
        self.audit_in(
            Some(org),
            AuditAction::RoleDeleted,
            Some(caller.user_id()),
            Some(AuditValue::Role(name)),
            meta,
            caller.audit_metadata(),
        )
        .await;
        Ok(())
    }

    /// The organization's audit events, newest first (`audit:read`). The
    /// filter's organization is always the one authorized here.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`.
    pub async fn org_audit_log(
        &self,
        caller: &Caller,
        org: OrgId,
        mut filter: AuditFilter,
        page: PageRequest<AuditEventId>,
    ) -> Result<Vec<AuditEvent>> {
        self.authorize(caller, org, "audit:read").await?;
        for (field, bound) in [("since", filter.since), ("until", filter.until)] {
            if let Some(t) = bound {
                check_client_time(field, t)?;
            }
        }
        filter.org_id = Some(org);
        Ok(self.store.list_audit(&filter, page).await?)
    }

    /// The caller's standing in its active organization (the session's, or an
    /// organization key's): none when none is active or the membership has
    /// ended, and no standing while the organization requires MFA that the
    /// session lacks.
    ///
    /// # Errors
    /// Store failures.
    pub async fn active_org_access(&self, caller: &Caller) -> Result<ActiveOrg> {
        let org_id = match caller {
            Caller::Session(p) => self
                .store
                .get_session(p.session_id)
                .await?
                .and_then(|s| s.org_id),
            Caller::ApiKey(k) => k.org_id,
        };
        let Some(org_id) = org_id else {
            return Ok(ActiveOrg::None);
        };
        match self.org_access(caller, org_id).await {
            Ok(access) => Ok(ActiveOrg::Member(access)),
            Err(CoreError::NotFound) => Ok(ActiveOrg::None),
            Err(CoreError::MfaRequired(_)) => Ok(ActiveOrg::MfaRequired(org_id)),
            Err(e) => Err(e),
        }
    }

    /// The active organization with the caller's standing in it.
    ///
    /// # Errors
    /// Store failures.
    pub async fn session_organization(
        &self,
        caller: &Caller,
    ) -> Result<Option<SessionOrganization>> {
        let (org_id, access) = match self.active_org_access(caller).await? {
            ActiveOrg::None => return Ok(None),
            ActiveOrg::Member(access) => (access.org_id, Some(access)),
            ActiveOrg::MfaRequired(org_id) => (org_id, None),
        };
        let Some(org) = self.store.get_org(org_id).await? else {
            return Ok(None);
        };
        Ok(Some(SessionOrganization { org, access }))
    }

    /// The account the caller acts for, without its password hash: served
    /// from this instance's live cache, which the change feed keeps exact.
    ///
    /// # Errors
    /// `Unauthorized` when the account is gone.
    pub async fn caller_user(&self, caller: &Caller) -> Result<User> {
        self.live
            .user(caller.user_id(), self.clock.now())
            .await?
            .ok_or(CoreError::Unauthorized)
    }

    /// What `GET /v1/session` shows: the user and the active organization.
    ///
    /// # Errors
    /// `Unauthorized` when the account is gone.
    pub async fn session_info(
        &self,
        caller: &Caller,
    ) -> Result<(User, Option<SessionOrganization>)> {
        let user = self.caller_user(caller).await?;
        Ok((user, self.session_organization(caller).await?))
    }
}
