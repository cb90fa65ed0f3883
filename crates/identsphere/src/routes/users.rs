//! The caller's account.
//!
//! | method | path | handler |
//! |---|---|---|
//! | GET | /v1/users/me | [`me`] |
//! | PATCH | /v1/users/me | [`update_me`] |
//! | GET | /v1/session | [`session`] |
use crate::{
    dto::{OrganizationRef, SessionInfo, UpdateMeBody, UserResponse},
    error::{ApiResult, Problem},
    extract::{Auth, Authenticated, Json},
    state::AppState,
};
use axum::extract::State;
use identsphere_core::service::Caller;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me, update_me))
        .routes(routes!(session))
}

/// The caller's profile (API keys: scope `users:read`).
#[utoipa::path(get, path = "/v1/users/me", tag = "users", responses(
    (status = 200, body = UserResponse),
    (status = 401, body = Problem),
    (status = 403, body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn me(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<axum::Json<UserResponse>> {
    caller.require_scope("users:read")?;
    Ok(axum::Json(
        state.identity.caller_user(&caller).await?.into(),
    ))
}

/// Updates the caller's profile (the email changes through
/// `/v1/auth/email/change`; API keys: scope `users:write`).
#[utoipa::path(patch, path = "/v1/users/me", tag = "users", request_body = UpdateMeBody, responses(
    (status = 200, body = UserResponse),
    (status = 401, body = Problem),
    (status = 403, body = Problem),
    (status = 422, body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn update_me(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Json(body): Json<UpdateMeBody>,
) -> ApiResult<axum::Json<UserResponse>> {
    caller.require_scope("users:write")?;
    Ok(axum::Json(
        state
            .identity
            .update_profile(caller.user_id(), body.name)
            .await?
            .into(),
    ))
}

/// What a front end needs to render: the user, the active organization, the
/// role and the capabilities (hints only; the server authorizes every request).
/// When the active organization requires MFA and the session was signed in
/// without a second factor, `mfa_required` is true and there is no role and
/// no capability.
#[utoipa::path(get, path = "/v1/session", tag = "users", responses(
    (status = 200, body = SessionInfo),
    (status = 401, body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn session(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<axum::Json<SessionInfo>> {
    // Role and capabilities come from the membership as it is now, never
    // from the token's claims.
    let (user, org) = state
        .identity
        .session_info(&Caller::Session(principal))
        .await?;
    let Some(org) = org else {
        return Ok(axum::Json(SessionInfo {
            user: user.into(),
            organization: None,
            role: None,
            capabilities: Vec::new(),
            mfa_required: false,
        }));
    };
    let mfa_required = org.access.is_none();
    let (role, capabilities) = match org.access {
        Some(access) => (
            Some(access.role.to_string()),
            access.permissions.iter().map(ToString::to_string).collect(),
        ),
        // The organization requires a second factor this session lacks: it
        // holds nothing there, so the interface shows nothing it could do.
        None => (None, Vec::new()),
    };
    Ok(axum::Json(SessionInfo {
        user: user.into(),
        organization: Some(OrganizationRef {
            id: org.org.id.to_string(),
            name: org.org.name,
            require_mfa: org.org.require_mfa,
        }),
        role,
        capabilities,
        mfa_required,
    }))
}
