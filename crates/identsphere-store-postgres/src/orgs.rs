//! Organizations, memberships, roles, invitations and API keys on PostgreSQL.
//!
//! Membership changes lock the organization's row first (`FOR UPDATE`), so
//! that concurrent demotions and removals in one organization run one after
//! another and the last-owner count is always current.
use crate::{backend, rows::*, PostgresStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use identsphere_core::{
    ids::*,
    permissions::{Permissions, RoleName},
    secret::TokenHash,
    store::*,
    Email,
};
use sqlx::{Postgres, Transaction};

fn stored_role(name: &str) -> StoreResult<RoleName> {
    RoleName::parse(name).map_err(|m| StoreError::Backend(m.into()))
}

/// Locks the organization and returns the member's current role (`None`
/// when the organization or the membership does not exist).
async fn lock_member(
    tx: &mut Transaction<'_, Postgres>,
    org: OrgId,
    user: UserId,
) -> StoreResult<Option<String>> {
    sqlx::query("SELECT id FROM organizations WHERE id = $1 FOR UPDATE")
        .bind(org.0)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    sqlx::query_scalar("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(org.0)
        .bind(user.0)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)
}

async fn owner_count(tx: &mut Transaction<'_, Postgres>, org: OrgId) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE org_id = $1 AND role = 'owner'")
        .bind(org.0)
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)
}

async fn insert_membership(
    tx: &mut Transaction<'_, Postgres>,
    org: OrgId,
    user: UserId,
    role: &RoleName,
    now: DateTime<Utc>,
    on_conflict: &str,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO memberships (org_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4) {on_conflict}"
    ))
    .bind(org.0)
    .bind(user.0)
    .bind(role.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl OrgStore for PostgresStore {
    async fn create_org(&self, o: &NewOrganization, owner: UserId) -> StoreResult<Organization> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let row: OrgRow = sqlx::query_as(
            "INSERT INTO organizations (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING *",
        )
        .bind(o.id.0)
        .bind(&o.name)
        .bind(o.created_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let owner_role = RoleName::builtin(RoleName::OWNER);
        insert_membership(&mut tx, o.id, owner, &owner_role, o.created_at, "").await?;
        tx.commit().await.map_err(backend)?;
        row.try_into()
    }

    async fn get_org(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        sqlx::query_as::<_, OrgRow>("SELECT * FROM organizations WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(TryInto::try_into)
            .transpose()
    }

    async fn update_org(
        &self,
        id: OrgId,
        patch: &OrgPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<UpdatedOrg> {
        // The row lock comes first, so `previous` is what this update changed.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let previous: Organization =
            sqlx::query_as::<_, OrgRow>("SELECT * FROM organizations WHERE id = $1 FOR UPDATE")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?
                .ok_or(StoreError::NotFound)?
                .try_into()?;
        let current: Organization = sqlx::query_as::<_, OrgRow>(
            "UPDATE organizations SET name = COALESCE($1, name),
             require_mfa = COALESCE($2, require_mfa), updated_at = $3 WHERE id = $4 RETURNING *",
        )
        .bind(patch.name.as_deref())
        .bind(patch.require_mfa)
        .bind(now)
        .bind(id.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?
        .try_into()?;
        tx.commit().await.map_err(backend)?;
        Ok(UpdatedOrg { previous, current })
    }

    async fn delete_org(&self, id: OrgId) -> StoreResult<bool> {
        // Foreign keys cascade to memberships, roles, invitations and keys, and
        // clear the organization from sessions.
        let done = sqlx::query("DELETE FROM organizations WHERE id = $1")
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_user_orgs(
        &self,
        user: UserId,
        page: PageRequest<OrgId>,
    ) -> StoreResult<Vec<OrgMembership>> {
        sqlx::query_as::<_, OrgMembershipRow>(
            "SELECT o.*, m.role, m.joined_at FROM memberships m JOIN organizations o ON o.id = m.org_id
             WHERE m.user_id = $1 AND ($2::uuid IS NULL OR m.org_id > $2) ORDER BY m.org_id LIMIT $3",
        )
        .bind(user.0)
        .bind(page.after.map(|o| o.0))
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
    }

    async fn get_membership(&self, org: OrgId, user: UserId) -> StoreResult<Option<Membership>> {
        sqlx::query_as::<_, MembershipRow>(
            "SELECT m.*, r.permissions AS role_permissions, o.require_mfa AS org_require_mfa
             FROM memberships m JOIN organizations o ON o.id = m.org_id
             LEFT JOIN roles r ON r.org_id = m.org_id AND r.name = m.role
             WHERE m.org_id = $1 AND m.user_id = $2",
        )
        .bind(org.0)
        .bind(user.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .map(TryInto::try_into)
        .transpose()
    }

    async fn list_members(
        &self,
        org: OrgId,
        page: PageRequest<UserId>,
    ) -> StoreResult<Vec<Member>> {
        sqlx::query_as::<_, MemberRow>(
            "SELECT m.user_id, u.email, u.name, m.role, m.joined_at FROM memberships m
             JOIN users u ON u.id = m.user_id
             WHERE m.org_id = $1 AND ($2::uuid IS NULL OR m.user_id > $2) ORDER BY m.user_id LIMIT $3",
        )
        .bind(org.0)
        .bind(page.after.map(|u| u.0))
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
    }

    async fn add_member(
        &self,
        org: OrgId,
        user: UserId,
        role: &RoleName,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        insert_membership(&mut tx, org, user, role, now, "").await?;
        tx.commit().await.map_err(backend)
    }

    async fn change_member_role(
        &self,
        org: OrgId,
        user: UserId,
        role: &RoleName,
    ) -> StoreResult<MemberChange> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let Some(previous) = lock_member(&mut tx, org, user).await? else {
            return Ok(MemberChange::NotMember);
        };
        if !role.is_builtin() {
            let exists: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM roles WHERE org_id = $1 AND name = $2")
                    .bind(org.0)
                    .bind(role.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
            if exists.is_none() {
                return Ok(MemberChange::UnknownRole);
            }
        }
        if previous == RoleName::OWNER
            && role.as_str() != RoleName::OWNER
            && owner_count(&mut tx, org).await? <= 1
        {
            return Ok(MemberChange::LastOwner);
        }
        sqlx::query("UPDATE memberships SET role = $1 WHERE org_id = $2 AND user_id = $3")
            .bind(role.as_str())
            .bind(org.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(MemberChange::Done {
            previous: stored_role(&previous)?,
        })
    }

    async fn remove_member(&self, org: OrgId, user: UserId) -> StoreResult<MemberChange> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let Some(previous) = lock_member(&mut tx, org, user).await? else {
            return Ok(MemberChange::NotMember);
        };
        if previous == RoleName::OWNER && owner_count(&mut tx, org).await? <= 1 {
            return Ok(MemberChange::LastOwner);
        }
        sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        // The organization stops being active in the removed member's sessions.
        sqlx::query("UPDATE sessions SET org_id = NULL WHERE user_id = $1 AND org_id = $2")
            .bind(user.0)
            .bind(org.0)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(MemberChange::Done {
            previous: stored_role(&previous)?,
        })
    }

    async fn list_roles(&self, org: OrgId) -> StoreResult<Vec<Role>> {
        // Byte order, as on SQLite and for `RoleName`: the database's default
        // collation may be a natural-language one that ignores `-` and `_`.
        sqlx::query_as::<_, RoleRow>(
            r#"SELECT * FROM roles WHERE org_id = $1 ORDER BY name COLLATE "C""#,
        )
        .bind(org.0)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
    }

    async fn get_role(&self, org: OrgId, name: &RoleName) -> StoreResult<Option<Role>> {
        sqlx::query_as::<_, RoleRow>("SELECT * FROM roles WHERE org_id = $1 AND name = $2")
            .bind(org.0)
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(TryInto::try_into)
            .transpose()
    }

    async fn create_role(&self, org: OrgId, r: &Role) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO roles (org_id, name, permissions, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(org.0)
        .bind(r.name.as_str())
        .bind(permission_names(&r.permissions))
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn update_role(
        &self,
        org: OrgId,
        name: &RoleName,
        permissions: &Permissions,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Role>> {
        sqlx::query_as::<_, RoleRow>(
            "UPDATE roles SET permissions = $1, updated_at = $2 WHERE org_id = $3 AND name = $4 RETURNING *",
        )
        .bind(permission_names(permissions))
        .bind(now)
        .bind(org.0)
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .map(TryInto::try_into)
        .transpose()
    }

    async fn delete_role(&self, org: OrgId, name: &RoleName) -> StoreResult<RoleDeletion> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // The organization lock orders this against role assignments, which take it too.
        sqlx::query("SELECT id FROM organizations WHERE id = $1 FOR UPDATE")
            .bind(org.0)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let in_use: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM memberships WHERE org_id = $1 AND role = $2)
                 OR EXISTS (SELECT 1 FROM invitations WHERE org_id = $1 AND role = $2
                            AND accepted_at IS NULL AND revoked_at IS NULL)",
        )
        .bind(org.0)
        .bind(name.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        if in_use {
            return Ok(RoleDeletion::InUse);
        }
        let done = sqlx::query("DELETE FROM roles WHERE org_id = $1 AND name = $2")
            .bind(org.0)
            .bind(name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(if done.rows_affected() > 0 {
            RoleDeletion::Deleted
        } else {
            RoleDeletion::NotFound
        })
    }
}

#[async_trait]
impl InvitationStore for PostgresStore {
    async fn create_invitation(&self, i: &NewInvitation) -> StoreResult<Invitation> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "UPDATE invitations SET revoked_at = $1
             WHERE org_id = $2 AND email = $3 AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(i.created_at)
        .bind(i.org_id.0)
        .bind(i.email.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let row: InvitationRow = sqlx::query_as(
            "INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
        )
        .bind(i.id.0)
        .bind(i.org_id.0)
        .bind(i.email.as_str())
        .bind(i.role.as_str())
        .bind(i.hash.as_bytes())
        .bind(i.invited_by.0)
        .bind(i.created_at)
        .bind(i.expires_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        row.try_into()
    }

    async fn list_invitations(
        &self,
        org: OrgId,
        page: PageRequest<InvitationId>,
    ) -> StoreResult<Vec<Invitation>> {
        sqlx::query_as::<_, InvitationRow>(
            "SELECT * FROM invitations WHERE org_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL
             AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
        )
        .bind(org.0)
        .bind(page.after.map(|i| i.0))
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
    }

    async fn find_invitation(&self, hash: &TokenHash) -> StoreResult<Option<Invitation>> {
        sqlx::query_as::<_, InvitationRow>("SELECT * FROM invitations WHERE token_hash = $1")
            .bind(hash.as_bytes())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(TryInto::try_into)
            .transpose()
    }

    async fn revoke_invitations_to(
        &self,
        email: &Email,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Invitation>> {
        sqlx::query_as::<_, InvitationRow>(
            "UPDATE invitations SET revoked_at = $1
             WHERE email = $2 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $3
             RETURNING *",
        )
        .bind(now)
        .bind(email.as_str())
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
    }

    async fn revoke_invitation(
        &self,
        org: OrgId,
        id: InvitationId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE invitations SET revoked_at = $1
             WHERE org_id = $2 AND id = $3 AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(org.0)
        .bind(id.0)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn accept_invitation(
        &self,
        hash: &TokenHash,
        email: &Email,
        acceptor: &InvitationAcceptor,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Invitation, UserId)>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Concurrent accepts queue on the row lock; all but the first then find
        // `accepted_at` set and update nothing.
        let row: Option<InvitationRow> = sqlx::query_as(
            "UPDATE invitations SET accepted_at = $1
             WHERE token_hash = $2 AND email = $3 AND accepted_at IS NULL AND revoked_at IS NULL
             AND expires_at > $1 RETURNING *",
        )
        .bind(now)
        .bind(hash.as_bytes())
        .bind(email.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let invitation: Invitation = row.try_into()?;
        let user_id = match acceptor {
            InvitationAcceptor::Existing(id) => *id,
            InvitationAcceptor::New(u) => {
                sqlx::query(
                    "INSERT INTO users (id, email, name, email_verified, password_hash, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $6)",
                )
                .bind(u.id.0)
                .bind(u.email.as_str())
                .bind(&u.name)
                .bind(u.email_verified)
                .bind(&u.password_hash)
                .bind(u.created_at)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                u.id
            }
        };
        insert_membership(
            &mut tx,
            invitation.org_id,
            user_id,
            &invitation.role,
            now,
            "ON CONFLICT DO NOTHING",
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(Some((invitation, user_id)))
    }
}

#[async_trait]
impl ApiKeyStore for PostgresStore {
    async fn create_api_key(&self, k: &NewApiKey) -> StoreResult<ApiKey> {
        sqlx::query_as::<_, ApiKeyRow>(
            "INSERT INTO api_keys (id, user_id, org_id, name, prefix, key_hash, scopes, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *",
        )
        .bind(k.id.0)
        .bind(k.user_id.0)
        .bind(k.org_id.map(|o| o.0))
        .bind(&k.name)
        .bind(&k.prefix)
        .bind(k.hash.as_bytes())
        .bind(&k.scopes)
        .bind(k.created_at)
        .bind(k.expires_at)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?
        .try_into()
    }

    async fn find_api_key(&self, hash: &TokenHash) -> StoreResult<Option<ApiKey>> {
        sqlx::query_as::<_, ApiKeyRow>("SELECT * FROM api_keys WHERE key_hash = $1")
            .bind(hash.as_bytes())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(TryInto::try_into)
            .transpose()
    }

    async fn get_api_key(&self, id: ApiKeyId) -> StoreResult<Option<ApiKey>> {
        sqlx::query_as::<_, ApiKeyRow>("SELECT * FROM api_keys WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(TryInto::try_into)
            .transpose()
    }

    async fn list_api_keys(
        &self,
        owner: ApiKeyOwner,
        page: PageRequest<ApiKeyId>,
    ) -> StoreResult<Vec<ApiKey>> {
        let (filter, id) = match owner {
            ApiKeyOwner::User(u) => ("user_id = $1 AND org_id IS NULL", u.0),
            ApiKeyOwner::Org(o) => ("org_id = $1", o.0),
            ApiKeyOwner::Creator(u) => ("user_id = $1", u.0),
        };
        sqlx::query_as::<_, ApiKeyRow>(&format!(
            "SELECT * FROM api_keys WHERE {filter} AND revoked_at IS NULL
             AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
        ))
        .bind(id)
        .bind(page.after.map(|k| k.0))
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
    }

    async fn revoke_api_key(&self, id: ApiKeyId, now: DateTime<Utc>) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id.0)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_api_key(&self, id: ApiKeyId, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
