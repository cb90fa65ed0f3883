//! The caller's account.
//!
//! | method | path | handler |
//! |---|---|---|
//! | GET | /v1/users/me | [`me`] |
//! | PATCH | /v1/users/me | [`update_me`] |
//! | GET | /v1/session | [`session`] |
use crate::{
    dto::{SessionInfo, UpdateMeBody, UserResponse},
    error::{ApiResult, Problem},
    extract::{Auth, Json},
    state::AppState,
};
use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me, update_me))
        .routes(routes!(session))
}

/// The caller's profile.
#[utoipa::path(get, path = "/v1/users/me", tag = "users", responses(
    (status = 200, body = UserResponse),
    (status = 401, body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn me(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<axum::Json<UserResponse>> {
    Ok(axum::Json(
        state.identity.current_user(&principal).await?.into(),
    ))
}

/// Updates the caller's profile (the email changes through `/v1/auth/email/change`).
#[utoipa::path(patch, path = "/v1/users/me", tag = "users", request_body = UpdateMeBody, responses(
    (status = 200, body = UserResponse),
    (status = 401, body = Problem),
    (status = 422, body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn update_me(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(body): Json<UpdateMeBody>,
) -> ApiResult<axum::Json<UserResponse>> {
    Ok(axum::Json(
        state
            .identity
            .update_profile(&principal, body.name)
            .await?
            .into(),
    ))
}

/// What a front end needs to render: the user, the active organization, the
/// role and the capabilities (hints only; the server authorizes every request).
#[utoipa::path(get, path = "/v1/session", tag = "users", responses(
    (status = 200, body = SessionInfo),
    (status = 401, body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn session(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<axum::Json<SessionInfo>> {
    let user = state.identity.current_user(&principal).await?;
    Ok(axum::Json(SessionInfo {
        user: user.into(),
        organization: None,
        // Organizations arrive with issue 3; the role will be read from the
        // membership then, never taken from the token's claims.
        role: None,
        capabilities: Vec::new(),
    }))
}
