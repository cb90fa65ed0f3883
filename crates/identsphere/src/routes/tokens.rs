//! Machine tokens, issued to a client's machine users (SECURITY rule 9: a
//! token is checked against its stored record on every use).
//!
//! | method | path | auth | handler |
//! |---|---|---|---|
//! | POST | /v1/tokens | client key | [`issue`] |
//! | POST | /v1/tokens/introspect | client key | [`introspect`] |
//! | DELETE | /v1/tokens/{id} | client key | [`revoke`] |
use super::organizations::path_id;
use crate::{
    dto::{IntrospectBody, IntrospectionResponse, MachineTokenBody, MachineTokenResponse},
    error::{ApiResult, Problem},
    extract::{ClientKey, ClientMeta, Json},
    state::AppState,
};
use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue))
        .routes(routes!(introspect))
        .routes(routes!(revoke))
}

/// Exchanges a machine user's identifier and secret for a token (default
/// lifetime 30 days, the most allowed). The token is stored: it works until
/// it expires, is revoked, or its user or client is deleted.
#[utoipa::path(post, path = "/v1/tokens", tag = "clients", request_body = MachineTokenBody, responses(
    (status = 201, body = MachineTokenResponse),
    (status = 401, description = "`unauthorized` (client key) or `invalid_credentials` (identifier or secret, never saying which)", body = Problem),
    (status = 422, description = "`expires_in` out of range", body = Problem),
), security(("client_key" = [])))]
pub async fn issue(
    State(state): State<AppState>,
    ClientKey(client): ClientKey,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<MachineTokenBody>,
) -> ApiResult<(StatusCode, axum::Json<MachineTokenResponse>)> {
    let issued = state
        .identity
        .issue_machine_token(
            &client,
            &body.identifier,
            &body.secret,
            body.expires_in,
            &meta,
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(issued.into())))
}

/// Checks a token for the client whose users it serves (RFC 7662 style):
/// signature, expiry and its stored record. A token that is invalid,
/// expired, revoked, deleted or another client's is `{"active": false}`.
#[utoipa::path(post, path = "/v1/tokens/introspect", tag = "clients", request_body = IntrospectBody, responses(
    (status = 200, body = IntrospectionResponse),
    (status = 401, body = Problem),
), security(("client_key" = [])))]
pub async fn introspect(
    State(state): State<AppState>,
    ClientKey(client): ClientKey,
    Json(body): Json<IntrospectBody>,
) -> ApiResult<axum::Json<IntrospectionResponse>> {
    let principal = state
        .identity
        .introspect_machine_token(&client, &body.token)
        .await?;
    Ok(axum::Json(principal.into()))
}

/// Revokes one of the calling client's tokens, at once on every instance.
/// Another client's token, or one already revoked, answers 404.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "clients", params(("id" = String, Path)), responses(
    (status = 204, description = "Revoked"),
    (status = 401, body = Problem),
    (status = 404, body = Problem),
), security(("client_key" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    ClientKey(client): ClientKey,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .identity
        .revoke_machine_token(&client, path_id(&id)?, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
