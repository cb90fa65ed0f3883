//! Invitations.
//!
//! | method | path | handler | router |
//! |---|---|---|---|
//! | POST | /v1/organizations/{id}/invitations | [`create`] | [`router`] |
//! | GET | /v1/organizations/{id}/invitations | [`list`] | [`router`] |
//! | DELETE | /v1/organizations/{id}/invitations/{inv_id} | [`revoke`] | [`router`] |
//! | POST | /v1/auth/invitations/accept | [`accept`] | [`router_public`] |
//!
//! Accepting must work before the invitee has a session, so it lives in its
//! own router for hosts to mount outside their authentication middleware.
use super::organizations::path_id;
use crate::{
    dto::{
        AcceptInvitationBody, AcceptedInvitationResponse, InvitationBody, InvitationResponse, Page,
        PageQuery, TokenPairResponse,
    },
    error::{ApiError, ApiResult, Problem},
    extract::{authenticate, Authenticated, ClientMeta, Json, Query},
    state::AppState,
};
use axum::{
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode},
};
use axum_extra::extract::CookieJar;
use identsphere_core::{
    ids::InvitationId,
    service::{AcceptInvitation, Caller},
    store::PageRequest,
};
use secrecy::SecretString;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The organization-scoped routes (callers are authenticated per request).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(revoke))
}

/// `POST /v1/auth/invitations/accept`: public, to mount outside any auth layer.
pub fn router_public() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(accept))
}

/// Invites an address with a role (`invitations:manage`) and mails it a
/// one-time link that expires in 7 days. Re-inviting replaces the earlier link.
#[utoipa::path(post, path = "/v1/organizations/{id}/invitations", tag = "organizations", params(("id" = String, Path)), request_body = InvitationBody, responses(
    (status = 201, body = InvitationResponse),
    (status = 401, body = Problem),
    (status = 403, body = Problem),
    (status = 404, body = Problem),
    (status = 409, description = "Already a member", body = Problem),
    (status = 422, body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
    Json(body): Json<InvitationBody>,
) -> ApiResult<(StatusCode, axum::Json<InvitationResponse>)> {
    let inv = state
        .identity
        .invite(&caller, path_id(&id)?, &body.email, &body.role, &meta)
        .await?;
    let now = state.identity.clock().now();
    Ok((
        StatusCode::CREATED,
        axum::Json(InvitationResponse::new(inv, now)),
    ))
}

/// Invitations neither accepted nor revoked (`invitations:manage`).
#[utoipa::path(get, path = "/v1/organizations/{id}/invitations", tag = "organizations", params(("id" = String, Path), PageQuery), responses(
    (status = 200, body = Page<InvitationResponse>),
    (status = 401, body = Problem),
    (status = 403, body = Problem),
    (status = 404, body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<InvitationResponse>>> {
    let page: PageRequest<InvitationId> = q.page()?;
    let invitations = state
        .identity
        .list_invitations(&caller, path_id(&id)?, page)
        .await?;
    let now = state.identity.clock().now();
    Ok(axum::Json(Page::of(
        invitations,
        page.limit,
        |i| i.id.to_string(),
        |i| InvitationResponse::new(i, now),
    )))
}

/// Revokes a pending invitation (`invitations:manage`); its link stops working.
#[utoipa::path(delete, path = "/v1/organizations/{id}/invitations/{inv_id}", tag = "organizations", params(("id" = String, Path), ("inv_id" = String, Path)), responses(
    (status = 204, description = "Revoked"),
    (status = 401, body = Problem),
    (status = 403, body = Problem),
    (status = 404, body = Problem),
), security(("bearer" = []), ("cookie" = []), ("api_key" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientMeta(meta): ClientMeta,
    Path((id, inv_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .identity
        .revoke_invitation(&caller, path_id(&id)?, path_id(&inv_id)?, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts an invitation. When the invited address has no account, one is
/// created (verified: the link proves the address) with `password`, and
/// signed in (tokens in the body and cookies). When it has one, the caller
/// must be signed in as it. The link works once; used, revoked and expired
/// links answer 400 `invalid_token`.
#[utoipa::path(post, path = "/v1/auth/invitations/accept", tag = "auth", request_body = AcceptInvitationBody, responses(
    (status = 200, body = AcceptedInvitationResponse),
    (status = 400, description = "`invalid_token`: unknown, used, revoked or expired", body = Problem),
    (status = 401, description = "The address has an account: sign in first", body = Problem),
    (status = 403, description = "Signed in as another account", body = Problem),
    (status = 422, body = Problem),
))]
pub async fn accept(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    method: Method,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<AcceptInvitationBody>,
) -> ApiResult<(CookieJar, axum::Json<AcceptedInvitationResponse>)> {
    // Accepting needs no session, so a missing or invalid credential is not
    // an error here; a CSRF failure on a cookie session still is.
    let signed_in = match authenticate(&method, &headers, &state).await {
        Ok(Caller::Session(p)) => Some(p),
        Err(ApiError::CsrfFailed) => return Err(ApiError::CsrfFailed),
        _ => None,
    };
    let req = AcceptInvitation {
        token: body.token,
        password: body.password.map(SecretString::from),
        name: body.name,
    };
    let accepted = state
        .identity
        .accept_invitation(req, signed_in.as_ref(), &meta)
        .await?;
    let jar = match &accepted.tokens {
        Some(tokens) => state.cookies.set_session(jar, tokens),
        None => jar,
    };
    Ok((
        jar,
        axum::Json(AcceptedInvitationResponse {
            status: "accepted",
            organization_id: accepted.invitation.org_id.to_string(),
            role: accepted.invitation.role.to_string(),
            user: accepted.user.into(),
            tokens: accepted.tokens.map(TokenPairResponse::from),
        }),
    ))
}
