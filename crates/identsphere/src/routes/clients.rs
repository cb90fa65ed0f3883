//! The client API: clients (master credentials) and their machine users
//! (a client's key).
//!
//! | method | path | auth | handler |
//! |---|---|---|---|
//! | POST | /v1/clients | master | [`create`] |
//! | GET | /v1/clients | master | [`list`] |
//! | DELETE | /v1/clients/{id} | master | [`delete`] |
//! | POST | /v1/clients/{id}/rotate-key | master | [`rotate_key`] |
//! | POST | /v1/clients/users | client key | [`create_user`] |
//! | GET | /v1/clients/users | client key | [`list_users`] |
//! | DELETE | /v1/clients/users/{id} | client key | [`delete_user`] |
use super::organizations::path_id;
use crate::{
    dto::{
        ClientBody, ClientKeyResponse, ClientResponse, ClientUserBody, ClientUserResponse,
        CreatedClientUserResponse, Page, PageQuery,
    },
    error::{ApiResult, Problem},
    extract::{ClientKey, ClientMeta, Json, Master, OptionalJson, Query},
    state::AppState,
};
use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use identsphere_core::{ids::ClientId, ids::ClientUserId, store::PageRequest};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(delete))
        .routes(routes!(rotate_key))
        .routes(routes!(create_user, list_users))
        .routes(routes!(delete_user))
}

/// Registers a client. Its key (`api_key`) is in this response only.
#[utoipa::path(post, path = "/v1/clients", tag = "clients", request_body = ClientBody, responses(
    (status = 201, body = ClientKeyResponse),
    (status = 401, description = "Missing or wrong master credentials (`WWW-Authenticate: Basic`)", body = Problem),
    (status = 404, description = "The client API is off (no master credentials configured)", body = Problem),
    (status = 422, body = Problem),
    (status = 429, description = "Too many wrong master credentials from this address", body = Problem),
), security(("master" = [])))]
pub async fn create(
    State(state): State<AppState>,
    _: Master,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<ClientBody>,
) -> ApiResult<(StatusCode, axum::Json<ClientKeyResponse>)> {
    let (client, api_key) = state.identity.create_client(&body.name, &meta).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ClientKeyResponse {
            client: client.into(),
            api_key,
        }),
    ))
}

/// Every client, by ascending id.
#[utoipa::path(get, path = "/v1/clients", tag = "clients", params(PageQuery), responses(
    (status = 200, body = Page<ClientResponse>),
    (status = 401, body = Problem),
    (status = 404, body = Problem),
), security(("master" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _: Master,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<ClientResponse>>> {
    let page: PageRequest<ClientId> = q.page()?;
    let clients = state.identity.list_clients(page).await?;
    Ok(axum::Json(Page::of(
        clients,
        page.limit,
        |c| c.id.to_string(),
        ClientResponse::from,
    )))
}

/// Deletes a client with its machine users and their tokens, at once.
#[utoipa::path(delete, path = "/v1/clients/{id}", tag = "clients", params(("id" = String, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = Problem),
    (status = 404, body = Problem),
), security(("master" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    _: Master,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.identity.delete_client(path_id(&id)?, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives a client a new key, in this response only; the old key stops
/// working at once. Its machine users and their tokens are unaffected.
#[utoipa::path(post, path = "/v1/clients/{id}/rotate-key", tag = "clients", params(("id" = String, Path)), responses(
    (status = 200, body = ClientKeyResponse),
    (status = 401, body = Problem),
    (status = 404, body = Problem),
), security(("master" = [])))]
pub async fn rotate_key(
    State(state): State<AppState>,
    _: Master,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ClientKeyResponse>> {
    let (client, api_key) = state
        .identity
        .rotate_client_key(path_id(&id)?, &meta)
        .await?;
    Ok(axum::Json(ClientKeyResponse {
        client: client.into(),
        api_key,
    }))
}

/// Creates a machine user of the calling client. Its `secret` is in this
/// response only. The body may be omitted (the identifier is then the id).
#[utoipa::path(post, path = "/v1/clients/users", tag = "clients", request_body(content = Option<ClientUserBody>), responses(
    (status = 201, body = CreatedClientUserResponse),
    (status = 401, description = "Missing or unknown client key", body = Problem),
    (status = 409, description = "The client has a user with that identifier", body = Problem),
    (status = 422, body = Problem),
), security(("client_key" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    ClientKey(client): ClientKey,
    ClientMeta(meta): ClientMeta,
    OptionalJson(body): OptionalJson<ClientUserBody>,
) -> ApiResult<(StatusCode, axum::Json<CreatedClientUserResponse>)> {
    let body = body.unwrap_or_default();
    let (user, secret) = state
        .identity
        .create_client_user(&client, body.identifier.as_deref(), &meta)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedClientUserResponse {
            user: user.into(),
            secret,
        }),
    ))
}

/// The calling client's machine users, by ascending id.
#[utoipa::path(get, path = "/v1/clients/users", tag = "clients", params(PageQuery), responses(
    (status = 200, body = Page<ClientUserResponse>),
    (status = 401, body = Problem),
), security(("client_key" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    ClientKey(client): ClientKey,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<ClientUserResponse>>> {
    let page: PageRequest<ClientUserId> = q.page()?;
    let users = state.identity.list_client_users(&client, page).await?;
    Ok(axum::Json(Page::of(
        users,
        page.limit,
        |u| u.id.to_string(),
        ClientUserResponse::from,
    )))
}

/// Deletes one of the calling client's machine users; its tokens stop
/// working at once. Another client's user answers 404.
#[utoipa::path(delete, path = "/v1/clients/users/{id}", tag = "clients", params(("id" = String, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = Problem),
    (status = 404, body = Problem),
), security(("client_key" = [])))]
pub async fn delete_user(
    State(state): State<AppState>,
    ClientKey(client): ClientKey,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .identity
        .delete_client_user(&client, path_id(&id)?, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
