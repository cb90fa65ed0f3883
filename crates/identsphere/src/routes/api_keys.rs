//! API keys.
//!
//! | method | path | handler |
//! |---|---|---|
//! | POST | /v1/api-keys | [`create`] |
//! | GET | /v1/api-keys | [`list`] |
//! | DELETE | /v1/api-keys/{id} | [`revoke`] |
//!
//! Keys are managed by people: these endpoints need a signed-in session, so
//! a leaked key cannot mint more keys.
use super::organizations::path_id;
use crate::{
    dto::{ApiKeyBody, ApiKeyResponse, CreatedApiKeyResponse, Page, PageQuery},
    error::{ApiResult, Problem},
    extract::{Authenticated, ClientMeta, Json, Query},
    state::AppState,
};
use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use identsphere_core::{
    ids::{ApiKeyId, OrgId},
    service::NewApiKeyRequest,
    store::PageRequest,
    CoreError,
};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(revoke))
}

fn org_id(raw: Option<&str>) -> Result<Option<OrgId>, CoreError> {
    raw.map(|o| {
        o.parse()
            .map_err(|_| CoreError::field("org_id", "not an organization id"))
    })
    .transpose()
}

/// Creates a personal key, or an organization key (`org_id`, needs
/// `api_keys:manage` there). The secret (`key`) is in this response only.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = ApiKeyBody, responses(
    (status = 201, body = CreatedApiKeyResponse),
    (status = 401, body = Problem),
    (status = 403, description = "`forbidden`, or `step_up_required` (sign-in older than 5 minutes)", body = Problem),
    (status = 404, description = "Not a member of `org_id`", body = Problem),
    (status = 422, description = "Empty scopes, unknown scope, `*` not allowed, past expiry", body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<ApiKeyBody>,
) -> ApiResult<(StatusCode, axum::Json<CreatedApiKeyResponse>)> {
    let req = NewApiKeyRequest {
        name: body.name,
        scopes: body.scopes,
        expires_at: body.expires_at,
        org_id: org_id(body.org_id.as_deref())?,
    };
    let (key, secret) = state.identity.create_api_key(&caller, req, &meta).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedApiKeyResponse {
            api_key: key.into(),
            key: secret,
        }),
    ))
}

/// Which keys to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// An organization's keys (needs `api_keys:manage`); without it, the caller's personal keys.
    pub org_id: Option<String>,
    /// Items per page, 1–100 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Unrevoked keys: the caller's personal ones, or an organization's.
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", params(ListQuery), responses(
    (status = 200, body = Page<ApiKeyResponse>),
    (status = 401, body = Problem),
    (status = 403, body = Problem),
    (status = 404, body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<ApiKeyResponse>>> {
    let page: PageRequest<ApiKeyId> = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let keys = state
        .identity
        .list_api_keys(&caller, org_id(q.org_id.as_deref())?, page)
        .await?;
    Ok(axum::Json(Page::of(
        keys,
        page.limit,
        |k| k.id.to_string(),
        ApiKeyResponse::from,
    )))
}

/// Revokes a key at once, on every instance (keys are checked against the
/// database on each request).
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)), responses(
    (status = 204, description = "Revoked"),
    (status = 401, body = Problem),
    (status = 403, body = Problem),
    (status = 404, body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .identity
        .revoke_api_key(&caller, path_id(&id)?, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
