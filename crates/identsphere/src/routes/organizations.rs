//! Organizations, their members, roles and audit log.
//!
//! | method | path | handler |
//! |---|---|---|
//! | POST | /v1/organizations | [`create`] |
//! | GET | /v1/organizations | [`list`] |
//! | GET | /v1/organizations/{id} | [`get`] |
//! | PATCH | /v1/organizations/{id} | [`update`] |
//! | DELETE | /v1/organizations/{id} | [`delete`] |
//! | GET | /v1/organizations/{id}/members | [`list_members`] |
//! | PATCH | /v1/organizations/{id}/members/{user_id} | [`change_member_role`] |
//! | DELETE | /v1/organizations/{id}/members/{user_id} | [`remove_member`] |
//! | GET | /v1/organizations/{id}/roles | [`list_roles`] |
//! | POST | /v1/organizations/{id}/roles | [`create_role`] |
//! | PATCH | /v1/organizations/{id}/roles/{role} | [`update_role`] |
//! | DELETE | /v1/organizations/{id}/roles/{role} | [`delete_role`] |
//! | GET | /v1/organizations/{id}/audit-log | [`audit_log`] |
//!
//! Every path id of an organization the caller does not belong to answers
//! 404 `not_found`, exactly like an id that does not exist. In an organization
//! that requires MFA, sessions not signed in with a second factor get 403
//! `mfa_required` on every route of it; `GET /v1/organizations` still lists it
//! (with `require_mfa`), so an interface can ask the user to enroll.
use crate::{
    dto::{
        AuditEventResponse, AuditQuery, CreateRoleBody, MemberResponse, MembershipResponse,
        OrganizationBody, OrganizationResponse, Page, PageQuery, RoleBody, RoleResponse,
        UpdateOrganizationBody, UpdateRoleBody,
    },
    error::{ApiResult, Problem},
    extract::{Authenticated, ClientMeta, Json, Query},
    state::AppState,
};
use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use identsphere_core::{
    audit::{AuditAction, AuditFilter},
    ids::{OrgId, UserId},
    permissions::RoleName,
    store::{OrgPatch, PageRequest},
    CoreError,
};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
        .routes(routes!(list_members))
        .routes(routes!(change_member_role, remove_member))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(update_role, delete_role))
        .routes(routes!(audit_log))
}

/// A path id; anything that is not one of ours cannot exist.
pub(crate) fn path_id<T: std::str::FromStr>(raw: &str) -> Result<T, CoreError> {
    raw.parse().map_err(|_| CoreError::NotFound)
}

/// Creates an organization; the caller becomes its `owner`.
#[utoipa::path(post, path = "/v1/organizations", tag = "organizations", request_body = OrganizationBody, responses(
    (status = 201, body = OrganizationResponse),
    (status = 401, body = Problem),
    (status = 403, description = "API keys cannot create organizations", body = Problem),
    (status = 422, body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<OrganizationBody>,
) -> ApiResult<(StatusCode, axum::Json<OrganizationResponse>)> {
    let org = state
        .identity
        .create_org(&caller, &body.name, &meta)
        .await?;
    let owner = RoleName::builtin(RoleName::OWNER);
    Ok((
        StatusCode::CREATED,
        axum::Json(OrganizationResponse::new(org, &owner)),
    ))
}

/// The caller's organizations, with the caller's role in each (also those
/// that require MFA the session lacks: see `require_mfa`).
#[utoipa::path(get, path = "/v1/organizations", tag = "organizations", params(PageQuery), responses(
    (status = 200, body = Page<OrganizationResponse>),
    (status = 401, body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<OrganizationResponse>>> {
    let page: PageRequest<OrgId> = q.page()?;
    let orgs = state.identity.list_my_orgs(&caller, page).await?;
    Ok(axum::Json(Page::of(
        orgs,
        page.limit,
        |m| m.org.id.to_string(),
        |m| OrganizationResponse::new(m.org, &m.role),
    )))
}

/// One organization (`org:read`).
#[utoipa::path(get, path = "/v1/organizations/{id}", tag = "organizations", params(("id" = String, Path)), responses(
    (status = 200, body = OrganizationResponse),
    (status = 401, body = Problem),
    (status = 403, description = "`forbidden`, or `mfa_required` when the organization requires a second factor and the session was signed in without one", body = Problem),
    (status = 404, body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<OrganizationResponse>> {
    let (org, access) = state.identity.get_org(&caller, path_id(&id)?).await?;
    Ok(axum::Json(OrganizationResponse::new(org, &access.role)))
}

/// Renames an organization or sets whether it requires MFA of its members
/// (`org:manage`). Audited as `organization.updated`, with `require_mfa` (the
/// new value) in the metadata when the requirement changed.
#[utoipa::path(patch, path = "/v1/organizations/{id}", tag = "organizations", params(("id" = String, Path)), request_body = UpdateOrganizationBody, responses(
    (status = 200, body = OrganizationResponse),
    (status = 401, body = Problem),
    (status = 403, description = "`forbidden`; `step_up_required` when the request sets `require_mfa` and the sign-in is older than 5 minutes; `mfa_required` when it turns `require_mfa` on from a session not signed in with a second factor (or the organization already requires one)", body = Problem),
    (status = 404, body = Problem),
    (status = 422, description = "A bad name, or nothing to change", body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
    Json(body): Json<UpdateOrganizationBody>,
) -> ApiResult<axum::Json<OrganizationResponse>> {
    let patch = OrgPatch {
        name: body.name,
        require_mfa: body.require_mfa,
    };
    let (org, access) = state
        .identity
        .update_org(&caller, path_id(&id)?, &patch, &meta)
        .await?;
    Ok(axum::Json(OrganizationResponse::new(org, &access.role)))
}

/// Deletes an organization with its memberships, roles, invitations and
/// keys (owners only). Its audit events are kept.
#[utoipa::path(delete, path = "/v1/organizations/{id}", tag = "organizations", params(("id" = String, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = Problem),
    (status = 403, body = Problem),
    (status = 404, body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .identity
        .delete_org(&caller, path_id(&id)?, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Members (`members:read`), by user id.
#[utoipa::path(get, path = "/v1/organizations/{id}/members", tag = "organizations", params(("id" = String, Path), PageQuery), responses(
    (status = 200, body = Page<MemberResponse>),
    (status = 401, body = Problem),
    (status = 403, body = Problem),
    (status = 404, body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn list_members(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<MemberResponse>>> {
    let page: PageRequest<UserId> = q.page()?;
    let members = state
        .identity
        .list_members(&caller, path_id(&id)?, page)
        .await?;
    Ok(axum::Json(Page::of(
        members,
        page.limit,
        |m| m.user_id.to_string(),
        MemberResponse::from,
    )))
}

/// Gives a member another role (`members:manage`). Only owners make or
/// unmake owners; nobody grants permissions they lack; the last owner
/// cannot be demoted (409 `conflict`).
#[utoipa::path(patch, path = "/v1/organizations/{id}/members/{user_id}", tag = "organizations", params(("id" = String, Path), ("user_id" = String, Path)), request_body = RoleBody, responses(
    (status = 200, body = MembershipResponse),
    (status = 401, body = Problem),
    (status = 403, description = "`forbidden`, or `step_up_required` when the change makes or unmakes an owner and the sign-in is older than 5 minutes", body = Problem),
    (status = 404, body = Problem),
    (status = 409, description = "The last owner", body = Problem),
    (status = 422, body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn change_member_role(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientMeta(meta): ClientMeta,
    Path((id, user_id)): Path<(String, String)>,
    Json(body): Json<RoleBody>,
) -> ApiResult<axum::Json<MembershipResponse>> {
    let role = RoleName::parse(&body.role).map_err(|m| CoreError::field("role", m))?;
    let m = state
        .identity
        .change_member_role(&caller, path_id(&id)?, path_id(&user_id)?, &role, &meta)
        .await?;
    Ok(axum::Json(MembershipResponse {
        org_id: m.org_id.to_string(),
        user_id: m.user_id.to_string(),
        role: m.role.to_string(),
        joined_at: m.joined_at,
    }))
}

/// Removes a member (`members:manage`; anyone may remove themselves). The
/// last owner cannot be removed (409 `conflict`).
#[utoipa::path(delete, path = "/v1/organizations/{id}/members/{user_id}", tag = "organizations", params(("id" = String, Path), ("user_id" = String, Path)), responses(
    (status = 204, description = "Removed"),
    (status = 401, body = Problem),
    (status = 403, body = Problem),
    (status = 404, body = Problem),
    (status = 409, description = "The last owner", body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn remove_member(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientMeta(meta): ClientMeta,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .identity
        .remove_member(&caller, path_id(&id)?, path_id(&user_id)?, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Built-in and custom roles with their permissions (`org:read`).
#[utoipa::path(get, path = "/v1/organizations/{id}/roles", tag = "organizations", params(("id" = String, Path)), responses(
    (status = 200, body = Page<RoleResponse>),
    (status = 401, body = Problem),
    (status = 403, body = Problem),
    (status = 404, body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn list_roles(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Page<RoleResponse>>> {
    let roles = state.identity.list_roles(&caller, path_id(&id)?).await?;
    Ok(axum::Json(Page {
        items: roles
            .into_iter()
            .map(|(r, built_in)| RoleResponse::new(r, built_in))
            .collect(),
        next_cursor: None,
    }))
}

/// Defines a custom role (`roles:manage`) from permissions the caller holds.
#[utoipa::path(post, path = "/v1/organizations/{id}/roles", tag = "organizations", params(("id" = String, Path)), request_body = CreateRoleBody, responses(
    (status = 201, body = RoleResponse),
    (status = 401, body = Problem),
    (status = 403, body = Problem),
    (status = 404, body = Problem),
    (status = 409, description = "The name is taken or built in", body = Problem),
    (status = 422, body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn create_role(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
    Json(body): Json<CreateRoleBody>,
) -> ApiResult<(StatusCode, axum::Json<RoleResponse>)> {
    let role = state
        .identity
        .create_role(&caller, path_id(&id)?, &body.name, &body.permissions, &meta)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(RoleResponse::new(role, false)),
    ))
}

/// Replaces a custom role's permissions (`roles:manage`); built-in roles are fixed.
#[utoipa::path(patch, path = "/v1/organizations/{id}/roles/{role}", tag = "organizations", params(("id" = String, Path), ("role" = String, Path)), request_body = UpdateRoleBody, responses(
    (status = 200, body = RoleResponse),
    (status = 401, body = Problem),
    (status = 403, body = Problem),
    (status = 404, body = Problem),
    (status = 422, body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn update_role(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientMeta(meta): ClientMeta,
    Path((id, role)): Path<(String, String)>,
    Json(body): Json<UpdateRoleBody>,
) -> ApiResult<axum::Json<RoleResponse>> {
    let role = state
        .identity
        .update_role(&caller, path_id(&id)?, &role, &body.permissions, &meta)
        .await?;
    Ok(axum::Json(RoleResponse::new(role, false)))
}

/// Deletes a custom role that no member or pending invitation holds (`roles:manage`).
#[utoipa::path(delete, path = "/v1/organizations/{id}/roles/{role}", tag = "organizations", params(("id" = String, Path), ("role" = String, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = Problem),
    (status = 403, body = Problem),
    (status = 404, body = Problem),
    (status = 409, description = "The role is in use", body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn delete_role(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientMeta(meta): ClientMeta,
    Path((id, role)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .identity
        .delete_role(&caller, path_id(&id)?, &role, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The organization's audit events, newest first (`audit:read`).
#[utoipa::path(get, path = "/v1/organizations/{id}/audit-log", tag = "organizations", params(("id" = String, Path), AuditQuery), responses(
    (status = 200, body = Page<AuditEventResponse>),
    (status = 401, body = Problem),
    (status = 403, body = Problem),
    (status = 404, body = Problem),
    (status = 422, body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn audit_log(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<axum::Json<Page<AuditEventResponse>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let action = match q.action.as_deref() {
        None => None,
        Some(a) => Some(
            AuditAction::parse(a).ok_or_else(|| CoreError::field("action", "unknown action"))?,
        ),
    };
    let actor_id = match q.actor_id.as_deref() {
        None => None,
        Some(a) => Some(
            a.parse::<UserId>()
                .map_err(|_| CoreError::field("actor_id", "not a user id"))?,
        ),
    };
    let filter = AuditFilter {
        org_id: None,
        action,
        actor_id,
        since: q.since,
        until: q.until,
    };
    let events = state
        .identity
        .org_audit_log(&caller, path_id(&id)?, filter, page)
        .await?;
    Ok(axum::Json(Page::of(
        events,
        page.limit,
        |e| e.id.to_string(),
        AuditEventResponse::from,
    )))
}
