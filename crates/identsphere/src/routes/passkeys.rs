//! `/v1/auth/passkeys`: WebAuthn passkeys — registration on a signed-in
//! account, username-less login, and their management.
//!
//! | method | path | handler |
//! |---|---|---|
//! | POST | /v1/auth/passkeys/register/start | [`register_start`] |
//! | POST | /v1/auth/passkeys/register/finish | [`register_finish`] |
//! | POST | /v1/auth/passkeys/login/start | [`login_start`] |
//! | POST | /v1/auth/passkeys/login/finish | [`login_finish`] |
//! | GET | /v1/auth/passkeys | [`list`] |
//! | PATCH | /v1/auth/passkeys/{id} | [`rename`] |
//! | DELETE | /v1/auth/passkeys/{id} | [`delete`] |
use super::organizations::path_id;
use crate::{
    dto::*,
    error::{ApiResult, Problem},
    extract::{Auth, ClientMeta, Json, Query},
    state::AppState,
};
use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use axum_extra::extract::CookieJar;
use identsphere_core::{ids::CeremonyId, service::CeremonyStart, CoreError};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_start))
        .routes(routes!(register_finish))
        .routes(routes!(login_start))
        .routes(routes!(login_finish))
        .routes(routes!(list))
        .routes(routes!(rename, delete))
}

impl From<CeremonyStart> for PasskeyCeremonyResponse {
    fn from(start: CeremonyStart) -> Self {
        let mut options = start.options;
        Self {
            ceremony_id: start.ceremony_id.to_string(),
            public_key: options["publicKey"].take(),
            mediation: options["mediation"].as_str().map(str::to_owned),
        }
    }
}

/// A ceremony id that does not parse names no ceremony.
fn ceremony_id(raw: &str, unknown: CoreError) -> Result<CeremonyId, CoreError> {
    raw.parse().map_err(|_| unknown)
}

/// Starts adding a passkey to the caller's account: options for
/// `navigator.credentials.create()`. The passkey must verify its user (PIN
/// or biometric); discoverable credentials are preferred so that it also
/// serves username-less login. Needs a recent authentication.
#[utoipa::path(post, path = "/v1/auth/passkeys/register/start", tag = "passkeys", responses(
    (status = 200, body = PasskeyCeremonyResponse),
    (status = 401, body = Problem),
    (status = 403, description = "`step_up_required`", body = Problem),
    (status = 409, description = "The account holds the most passkeys allowed (20)", body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn register_start(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<axum::Json<PasskeyCeremonyResponse>> {
    let start = state
        .identity
        .start_passkey_registration(&principal)
        .await?;
    Ok(axum::Json(start.into()))
}

/// Verifies the authenticator's answer and adds the passkey.
#[utoipa::path(post, path = "/v1/auth/passkeys/register/finish", tag = "passkeys", request_body = PasskeyRegisterFinishBody, responses(
    (status = 201, body = PasskeyResponse),
    (status = 401, body = Problem),
    (status = 409, description = "This credential is registered already", body = Problem),
    (status = 422, description = "`ceremony_id` unknown, used or expired; `credential` malformed or not verifying; bad `name`", body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn register_finish(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Auth(principal): Auth,
    Json(body): Json<PasskeyRegisterFinishBody>,
) -> ApiResult<(StatusCode, axum::Json<PasskeyResponse>)> {
    let unknown = CoreError::field(
        "ceremony_id",
        "unknown or expired; start the registration again",
    );
    let passkey = state
        .identity
        .finish_passkey_registration(
            &principal,
            ceremony_id(&body.ceremony_id, unknown)?,
            body.credential,
            body.name.as_deref(),
            &meta,
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(passkey.into())))
}

/// Starts a username-less passkey login: options for
/// `navigator.credentials.get()` with an empty `allowCredentials` (the
/// authenticator offers the passkeys it holds for this site).
#[utoipa::path(post, path = "/v1/auth/passkeys/login/start", tag = "passkeys", params(PasskeyLoginQuery), responses(
    (status = 200, body = PasskeyCeremonyResponse),
    (status = 422, description = "`mediation` other than `conditional`", body = Problem),
    (status = 429, description = "`rate_limited` (the login budget of this address), with `Retry-After`", body = Problem),
))]
pub async fn login_start(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Query(q): Query<PasskeyLoginQuery>,
) -> ApiResult<axum::Json<PasskeyCeremonyResponse>> {
    let conditional = match q.mediation.as_deref() {
        None => false,
        Some("conditional") => true,
        Some(_) => {
            return Err(CoreError::field("mediation", "must be `conditional` or absent").into())
        }
    };
    let start = state
        .identity
        .start_passkey_login(conditional, &meta)
        .await?;
    Ok(axum::Json(start.into()))
}

/// Signs in with a passkey. A passkey login is MFA-strength (`amr` is
/// `["hwk", "user", "mfa"]`): no second factor is asked for. Same answer and
/// cookies as a password login.
#[utoipa::path(post, path = "/v1/auth/passkeys/login/finish", tag = "passkeys", request_body = PasskeyLoginFinishBody, responses(
    (status = 200, description = "Signed in", body = LoginResponse),
    (status = 401, description = "`invalid_credentials`: unknown passkey, failed verification, or an unknown, used or expired ceremony", body = Problem),
))]
pub async fn login_finish(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    jar: CookieJar,
    Json(body): Json<PasskeyLoginFinishBody>,
) -> ApiResult<(CookieJar, axum::Json<LoginResponse>)> {
    let ceremony = ceremony_id(&body.ceremony_id, CoreError::PasskeyRejected)?;
    let (user, tokens) = state
        .identity
        .finish_passkey_login(ceremony, body.credential, &meta)
        .await?;
    let device = state.identity.device_cookie(&user.email);
    let jar = state.cookies.set_sign_in(jar, &tokens, device);
    Ok((jar, axum::Json(LoginResponse::new(tokens, user))))
}

/// The caller's passkeys, oldest first (one page: an account holds at most 20).
#[utoipa::path(get, path = "/v1/auth/passkeys", tag = "passkeys", responses(
    (status = 200, body = Page<PasskeyResponse>),
    (status = 401, body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<axum::Json<Page<PasskeyResponse>>> {
    let passkeys = state.identity.list_passkeys(&principal).await?;
    Ok(axum::Json(Page {
        items: passkeys.into_iter().map(PasskeyResponse::from).collect(),
        next_cursor: None,
    }))
}

/// Renames one of the caller's passkeys.
#[utoipa::path(patch, path = "/v1/auth/passkeys/{id}", tag = "passkeys", params(("id" = String, Path)), request_body = NameBody, responses(
    (status = 200, body = PasskeyResponse),
    (status = 401, body = Problem),
    (status = 404, body = Problem),
    (status = 422, body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn rename(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    Json(body): Json<NameBody>,
) -> ApiResult<axum::Json<PasskeyResponse>> {
    let passkey = state
        .identity
        .rename_passkey(&principal, path_id(&id)?, &body.name)
        .await?;
    Ok(axum::Json(passkey.into()))
}

/// Deletes one of the caller's passkeys; it can no longer sign in. Needs a
/// recent authentication. Sessions it opened stay until revoked.
#[utoipa::path(delete, path = "/v1/auth/passkeys/{id}", tag = "passkeys", params(("id" = String, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, body = Problem),
    (status = 403, description = "`step_up_required`", body = Problem),
    (status = 404, body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .identity
        .delete_passkey(&principal, path_id(&id)?, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
