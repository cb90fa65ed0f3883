//! `/v1/auth/mfa` and `/v1/auth/step-up`: TOTP second factor, recovery codes
//! and re-authentication for sensitive operations.
//!
//! | method | path | handler |
//! |---|---|---|
//! | GET | /v1/auth/mfa | [`mfa_status`] |
//! | POST | /v1/auth/mfa/verify | [`verify`] |
//! | POST | /v1/auth/mfa/totp/enroll | [`enroll`] |
//! | POST | /v1/auth/mfa/totp/confirm | [`confirm`] |
//! | POST | /v1/auth/mfa/disable | [`disable`] |
//! | POST | /v1/auth/mfa/recovery-codes | [`regenerate_recovery_codes`] |
//! | POST | /v1/auth/step-up | [`step_up`] |
use crate::{
    dto::*,
    error::{ApiResult, Problem},
    extract::{Auth, ClientMeta, Json},
    state::AppState,
};
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use axum_extra::extract::CookieJar;
use identsphere_core::{service::MfaProof, CoreError};
use secrecy::SecretString;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mfa_status))
        .routes(routes!(verify))
        .routes(routes!(enroll))
        .routes(routes!(confirm))
        .routes(routes!(disable))
        .routes(routes!(regenerate_recovery_codes))
        .routes(routes!(step_up))
}

fn one_of(
    a: Option<String>,
    b: Option<String>,
    fields: &str,
    make_a: fn(SecretString) -> MfaProof,
    make_b: fn(SecretString) -> MfaProof,
) -> Result<MfaProof, CoreError> {
    match (a, b) {
        (Some(a), None) => Ok(make_a(SecretString::from(a))),
        (None, Some(b)) => Ok(make_b(SecretString::from(b))),
        _ => Err(CoreError::field(fields, "send exactly one of these fields")),
    }
}

/// Whether the caller has MFA on, and how many recovery codes are left.
#[utoipa::path(get, path = "/v1/auth/mfa", tag = "auth", responses(
    (status = 200, body = MfaStatusResponse),
    (status = 401, body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn mfa_status(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<axum::Json<MfaStatusResponse>> {
    let (enabled, recovery_codes_left) = state.identity.mfa_status(&principal).await?;
    Ok(axum::Json(MfaStatusResponse {
        enabled,
        recovery_codes_left,
    }))
}

/// Completes a login that answered `mfa_required`, with a TOTP code or a
/// recovery code (each accepted once). Same answer and cookies as a login.
/// Three wrong codes end the MFA token.
#[utoipa::path(post, path = "/v1/auth/mfa/verify", tag = "auth", request_body = MfaVerifyBody, responses(
    (status = 200, description = "Signed in", body = LoginResponse),
    (status = 401, description = "`invalid_mfa_code` (wrong, reused or used-up code) or `invalid_mfa_token` (unknown, expired, used, or 3 wrong codes: sign in again)", body = Problem),
    (status = 422, description = "Not exactly one of `code` and `recovery_code`", body = Problem),
))]
pub async fn verify(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    jar: CookieJar,
    Json(body): Json<MfaVerifyBody>,
) -> ApiResult<(CookieJar, axum::Json<LoginResponse>)> {
    let proof = one_of(
        body.code,
        body.recovery_code,
        "code",
        MfaProof::Code,
        MfaProof::RecoveryCode,
    )?;
    let (user, tokens) = state
        .identity
        .verify_mfa(&body.mfa_token, proof, &meta)
        .await?;
    let device = state.identity.device_cookie(&user.email);
    let jar = state.cookies.set_sign_in(jar, &tokens, device);
    Ok((jar, axum::Json(LoginResponse::new(tokens, user))))
}

/// Starts a TOTP enrollment (RFC 6238: SHA-1, 6 digits, 30 s). Nothing
/// changes for sign-in until `/v1/auth/mfa/totp/confirm`. Needs a recent
/// authentication.
#[utoipa::path(post, path = "/v1/auth/mfa/totp/enroll", tag = "auth", responses(
    (status = 200, body = TotpEnrollResponse),
    (status = 401, body = Problem),
    (status = 403, description = "`step_up_required`", body = Problem),
    (status = 409, description = "MFA is already on", body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn enroll(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<axum::Json<TotpEnrollResponse>> {
    let e = state.identity.enroll_totp(&principal).await?;
    Ok(axum::Json(TotpEnrollResponse {
        secret: e.secret,
        otpauth_uri: e.otpauth_uri,
    }))
}

/// Confirms the enrollment with a first code; MFA is on from now and the
/// ten recovery codes are returned, this once.
#[utoipa::path(post, path = "/v1/auth/mfa/totp/confirm", tag = "auth", request_body = CodeBody, responses(
    (status = 200, body = RecoveryCodesResponse),
    (status = 401, description = "`invalid_mfa_code` or `unauthorized`", body = Problem),
    (status = 409, description = "No pending enrollment", body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn confirm(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Auth(principal): Auth,
    Json(body): Json<CodeBody>,
) -> ApiResult<axum::Json<RecoveryCodesResponse>> {
    let recovery_codes = state
        .identity
        .confirm_totp(&principal, &SecretString::from(body.code), &meta)
        .await?;
    Ok(axum::Json(RecoveryCodesResponse { recovery_codes }))
}

/// Turns MFA off. Needs the current password and a recent authentication.
#[utoipa::path(post, path = "/v1/auth/mfa/disable", tag = "auth", request_body = PasswordBody, responses(
    (status = 204, description = "MFA is off"),
    (status = 401, description = "`invalid_credentials` (wrong password) or `unauthorized`", body = Problem),
    (status = 403, description = "`step_up_required`", body = Problem),
    (status = 409, description = "MFA is not on", body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn disable(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Auth(principal): Auth,
    Json(body): Json<PasswordBody>,
) -> ApiResult<StatusCode> {
    state
        .identity
        .disable_mfa(&principal, &SecretString::from(body.password), &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the recovery codes with ten new ones, shown this once. Needs
/// the current password and a recent authentication.
#[utoipa::path(post, path = "/v1/auth/mfa/recovery-codes", tag = "auth", request_body = PasswordBody, responses(
    (status = 200, body = RecoveryCodesResponse),
    (status = 401, description = "`invalid_credentials` (wrong password) or `unauthorized`", body = Problem),
    (status = 403, description = "`step_up_required`", body = Problem),
    (status = 409, description = "MFA is not on", body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Auth(principal): Auth,
    Json(body): Json<PasswordBody>,
) -> ApiResult<axum::Json<RecoveryCodesResponse>> {
    let recovery_codes = state
        .identity
        .regenerate_recovery_codes(&principal, &SecretString::from(body.password), &meta)
        .await?;
    Ok(axum::Json(RecoveryCodesResponse { recovery_codes }))
}

/// Re-authenticates the session with the password, a TOTP code or a
/// passkey: a fresh `auth_time` (sensitive operations need one newer than
/// `IDENTSPHERE_STEP_UP_MAX_AGE_SECS`, 5 minutes by default) and the method
/// added to `amr`. On an account with a second factor, the password alone is
/// refused (422 on `code`), and sensitive operations need a session whose
/// `amr` holds `mfa`. Returns a new pair; the session's other refresh tokens
/// stay valid. Cookies are updated when the request used them.
#[utoipa::path(post, path = "/v1/auth/step-up", tag = "auth", request_body = StepUpBody, responses(
    (status = 200, body = TokenPairResponse),
    (status = 401, description = "`invalid_credentials`, `invalid_mfa_code` or `unauthorized`", body = Problem),
    (status = 422, description = "Not exactly one of `password`, `code` and a passkey; or a password on an account with a second factor", body = Problem),
    (status = 429, description = "`rate_limited`: re-confirmations from this address, or failures for this account", body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn step_up(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Auth(principal): Auth,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<StepUpBody>,
) -> ApiResult<Response> {
    let proof = match (body.ceremony_id, body.credential) {
        (Some(ceremony), Some(assertion)) if body.password.is_none() && body.code.is_none() => {
            MfaProof::Passkey {
                ceremony: ceremony.parse().map_err(|_| CoreError::PasskeyRejected)?,
                assertion,
            }
        }
        (None, None) => one_of(
            body.password,
            body.code,
            "password",
            MfaProof::Password,
            MfaProof::Code,
        )?,
        _ => {
            return Err(CoreError::field(
                "password",
                "send exactly one of password, code, or ceremony_id with credential",
            )
            .into())
        }
    };
    let tokens = state.identity.step_up(&principal, proof, &meta).await?;
    if headers.contains_key(axum::http::header::AUTHORIZATION) {
        Ok(axum::Json(TokenPairResponse::from(tokens)).into_response())
    } else {
        let jar = state.cookies.set_session(jar, &tokens);
        Ok((jar, axum::Json(TokenPairResponse::from(tokens))).into_response())
    }
}
