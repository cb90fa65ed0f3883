//! The caller's sessions.
//!
//! | method | path | handler |
//! |---|---|---|
//! | GET | /v1/auth/sessions | [`list`] |
//! | DELETE | /v1/auth/sessions | [`revoke_others`] |
//! | DELETE | /v1/auth/sessions/{id} | [`revoke`] |
use crate::{
    dto::{Page, RevokedCount, SessionResponse},
    error::{ApiResult, Problem},
    extract::{Auth, ClientMeta},
    state::AppState,
};
use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use identsphere_core::CoreError;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, revoke_others))
        .routes(routes!(revoke))
}

/// Lists the caller's live sessions, newest first; `current` marks this one.
#[utoipa::path(get, path = "/v1/auth/sessions", tag = "sessions", responses(
    (status = 200, description = "All live sessions (one page)", body = Page<SessionResponse>),
    (status = 401, body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<axum::Json<Page<SessionResponse>>> {
    let sessions = state.identity.list_sessions(&principal).await?;
    let items = sessions
        .into_iter()
        .map(|s| SessionResponse::new(s, principal.session_id))
        .collect();
    Ok(axum::Json(Page {
        items,
        next_cursor: None,
    }))
}

/// Revokes one of the caller's sessions; its access tokens stop working at once.
#[utoipa::path(delete, path = "/v1/auth/sessions/{id}", tag = "sessions", params(("id" = String, Path, description = "Session id")), responses(
    (status = 204, description = "Revoked"),
    (status = 404, description = "No such live session of the caller", body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = id.parse().map_err(|_| CoreError::NotFound)?;
    state.identity.revoke_session(&principal, id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Log out everywhere else: revokes every session but the current one.
#[utoipa::path(delete, path = "/v1/auth/sessions", tag = "sessions", responses(
    (status = 200, description = "Revoked", body = RevokedCount),
    (status = 401, body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn revoke_others(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Auth(principal): Auth,
) -> ApiResult<axum::Json<RevokedCount>> {
    let revoked = state
        .identity
        .revoke_other_sessions(&principal, &meta)
        .await?;
    Ok(axum::Json(RevokedCount { revoked }))
}
