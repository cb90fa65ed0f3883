//! `/v1/auth`: sign-up, email verification, sign-in, refresh, sign-out,
//! passwords and email change.
//!
//! | method | path | handler |
//! |---|---|---|
//! | POST | /v1/auth/signup | [`signup`] |
//! | POST | /v1/auth/email/verify | [`verify_email`] |
//! | POST | /v1/auth/email/verify/resend | [`resend_verification`] |
//! | POST | /v1/auth/login | [`login`] |
//! | POST | /v1/auth/refresh | [`refresh`] |
//! | POST | /v1/auth/logout | [`logout`] |
//! | POST | /v1/auth/password/forgot | [`forgot_password`] |
//! | POST | /v1/auth/password/reset | [`reset_password`] |
//! | POST | /v1/auth/password/change | [`change_password`] |
//! | POST | /v1/auth/email/change | [`change_email`] |
//! | POST | /v1/auth/email/change/confirm | [`confirm_email_change`] |
//! | GET | /v1/auth/email/change | [`pending_email_change`] |
//! | DELETE | /v1/auth/email/change | [`cancel_email_change`] |
//! | POST | /v1/auth/switch-organization | [`switch_organization`] |
use crate::{
    cookies::{DEVICE, REFRESH, SIGNUP},
    dto::*,
    error::{ApiError, ApiResult, Problem},
    extract::{
        check_csrf, check_csrf_binding, credential, Auth, ClientMeta, Credential, Json,
        OptionalJson,
    },
    state::AppState,
};
use axum::{
    extract::State,
    http::{HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
};
use axum_extra::extract::CookieJar;
use identsphere_core::{
    service::{EmailChangeRequest, LoginOutcome, LoginRequest, SignupRequest},
    CoreError,
};
use secrecy::SecretString;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(verify_email))
        .routes(routes!(resend_verification))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(change_password))
        .routes(routes!(change_email))
        .routes(routes!(confirm_email_change))
        .routes(routes!(pending_email_change, cancel_email_change))
        .routes(routes!(switch_organization))
}

/// Creates an account and emails a verification link. A taken address gets
/// the same answer (its owner is told by mail), so the response never reveals
/// whether an address is registered. Sets the `identsphere_signup` cookie
/// (HttpOnly, path `/v1/auth/email/verify`, 24 hours): verifying from this
/// browser keeps the password chosen here; from anywhere else, the
/// verification asks for the password anew.
#[utoipa::path(post, path = "/v1/auth/signup", tag = "auth", request_body = SignupBody, responses(
    (status = 201, description = "Verification email sent (or the owner notified)", body = Accepted),
    (status = 422, description = "Invalid email, weak password or bad name", body = Problem),
    (status = 429, description = "`rate_limited` (per client address, and per target address whether or not it is registered), with `Retry-After`", body = Problem),
))]
pub async fn signup(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    jar: CookieJar,
    Json(body): Json<SignupBody>,
) -> ApiResult<(StatusCode, CookieJar, axum::Json<Accepted>)> {
    let req = SignupRequest {
        email: body.email,
        password: SecretString::from(body.password),
        name: body.name,
    };
    let proof = state.identity.signup(req, &meta).await?;
    Ok((
        StatusCode::CREATED,
        state.cookies.set_signup(jar, proof),
        axum::Json(Accepted::new(
            "check your inbox to verify your email address",
        )),
    ))
}

/// Verifies the address from the emailed link (`/verify-email?token=…`).
/// From the browser that signed up (its `identsphere_signup` cookie) the
/// token is enough. Otherwise `password` is required and becomes the
/// account's password: the link proves the mailbox, not who chose the
/// sign-up password, so a password chosen by someone else never goes live
/// (account pre-hijacking). Anything set up on the account before its
/// address was proven is then removed. Without a password where one is
/// needed, the answer is 422 on `password` and the link still works.
#[utoipa::path(post, path = "/v1/auth/email/verify", tag = "auth", request_body = VerifyEmailBody, responses(
    (status = 200, description = "Verified", body = UserResponse),
    (status = 400, description = "`invalid_token`: unknown, used or expired link", body = Problem),
    (status = 422, description = "`password` needed (not the signing-up browser) or too weak", body = Problem),
))]
pub async fn verify_email(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    jar: CookieJar,
    Json(body): Json<VerifyEmailBody>,
) -> ApiResult<(CookieJar, axum::Json<UserResponse>)> {
    let proof = jar.get(SIGNUP).map(|c| c.value().to_owned());
    let password = body.password.map(SecretString::from);
    let user = state
        .identity
        .verify_email(&body.token, proof.as_deref(), password.as_ref(), &meta)
        .await?;
    Ok((state.cookies.clear_signup(jar), axum::Json(user.into())))
}

/// Sends a new verification link when the address has an unverified account.
#[utoipa::path(post, path = "/v1/auth/email/verify/resend", tag = "auth", request_body = EmailBody, responses(
    (status = 202, description = "Same answer whether or not the address is registered", body = Accepted),
    (status = 429, description = "`rate_limited` (per client address, and per target address whether or not it is registered), with `Retry-After`", body = Problem),
))]
pub async fn resend_verification(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<EmailBody>,
) -> ApiResult<(StatusCode, axum::Json<Accepted>)> {
    state
        .identity
        .resend_verification(&body.email, &meta)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Accepted::new(
            "if the address needs verifying, a link is on its way",
        )),
    ))
}

/// Signs in. Returns the token pair in the body and sets the
/// `identsphere_access`, `identsphere_refresh` and `identsphere_csrf` cookies;
/// or, when the account has MFA on, answers `status: "mfa_required"` with an
/// `mfa_token` (no tokens, no cookies) to finish at `/v1/auth/mfa/verify`.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginBody, responses(
    (status = 200, description = "Signed in (`status: ok`), or a second factor is needed (`status: mfa_required`)", body = LoginAnswer),
    (status = 401, description = "`invalid_credentials`", body = Problem),
    (status = 403, description = "`email_not_verified`", body = Problem),
    (status = 429, description = "`rate_limited`: too many attempts from this address, or too many failures for this account; with `Retry-After`", body = Problem),
))]
pub async fn login(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    jar: CookieJar,
    Json(body): Json<LoginBody>,
) -> ApiResult<Response> {
    let req = LoginRequest {
        email: body.email,
        password: SecretString::from(body.password),
        device: jar.get(DEVICE).map(|c| c.value().to_owned()),
    };
    match state.identity.login(req, &meta).await? {
        LoginOutcome::SignedIn(signed_in) => {
            let (user, tokens) = *signed_in;
            let device = state.identity.device_cookie(&user.email);
            let jar = state.cookies.set_sign_in(jar, &tokens, device);
            Ok((
                jar,
                axum::Json(LoginAnswer::SignedIn(LoginResponse::new(tokens, user))),
            )
                .into_response())
        }
        LoginOutcome::MfaRequired { mfa_token, methods } => {
            Ok(axum::Json(LoginAnswer::MfaRequired(MfaRequiredResponse {
                status: "mfa_required",
                mfa_token,
                methods,
            }))
            .into_response())
        }
    }
}

/// Rotates the refresh token (from the JSON body, or else the
/// `identsphere_refresh` cookie, which needs the CSRF header) and returns a
/// new pair. A token presented again within the reuse grace gets the same
/// successor; after it, the session is revoked (`refresh_token_reused`).
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body(content = Option<RefreshBody>, description = "Omit to use the refresh cookie"), responses(
    (status = 200, description = "New token pair (cookies refreshed when the cookie was used)", body = TokenPairResponse),
    (status = 401, description = "`unauthorized` or `refresh_token_reused`", body = Problem),
    (status = 403, description = "`csrf_failed`", body = Problem),
))]
pub async fn refresh(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    method: Method,
    headers: HeaderMap,
    jar: CookieJar,
    OptionalJson(body): OptionalJson<RefreshBody>,
) -> ApiResult<Response> {
    let (token, via_cookie) = match body.and_then(|b| b.refresh_token) {
        Some(token) => (token, false),
        None => {
            let token = jar
                .get(REFRESH)
                .map(|c| c.value().to_owned())
                .filter(|v| !v.is_empty());
            let token = token.ok_or(CoreError::Unauthorized)?;
            check_csrf(&method, &headers, &jar)?;
            if let Some(session) = state.identity.session_of_refresh_token(&token).await? {
                check_csrf_binding(&method, &state, &jar, session)?;
            }
            (token, true)
        }
    };
    match state.identity.refresh(&token, &meta).await {
        Ok(tokens) if via_cookie => {
            let jar = state.cookies.set_session(jar, &tokens);
            Ok((jar, axum::Json(TokenPairResponse::from(tokens))).into_response())
        }
        Ok(tokens) => Ok(axum::Json(TokenPairResponse::from(tokens)).into_response()),
        // A dead refresh cookie is useless to keep.
        Err(e) if via_cookie => Ok((state.cookies.clear(jar), ApiError::from(e)).into_response()),
        Err(e) => Err(e.into()),
    }
}

/// Revokes the current session and clears the cookies. Works with the
/// access token (Bearer or cookie), or with only the refresh cookie once the
/// access token has expired.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", responses(
    (status = 204, description = "Signed out"),
    (status = 401, description = "No credentials", body = Problem),
    (status = 403, description = "`csrf_failed`", body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn logout(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    method: Method,
    headers: HeaderMap,
    jar: CookieJar,
) -> ApiResult<Response> {
    let access = match credential(&headers, &jar)? {
        Credential::Bearer(token) => Some(state.identity.authenticate(&token).await?),
        Credential::Cookie(token) => {
            check_csrf(&method, &headers, &jar)?;
            let principal = state.identity.authenticate(&token).await.ok();
            if let Some(p) = &principal {
                check_csrf_binding(&method, &state, &jar, p.session_id)?;
            }
            principal
        }
        Credential::None => None,
    };
    match access {
        Some(principal) => state.identity.logout(&principal, &meta).await?,
        None => {
            let refresh = jar
                .get(REFRESH)
                .map(|c| c.value().to_owned())
                .filter(|v| !v.is_empty());
            let refresh = refresh.ok_or(CoreError::Unauthorized)?;
            check_csrf(&method, &headers, &jar)?;
            if let Some(session) = state.identity.session_of_refresh_token(&refresh).await? {
                check_csrf_binding(&method, &state, &jar, session)?;
            }
            state
                .identity
                .logout_by_refresh_token(&refresh, &meta)
                .await?;
        }
    }
    Ok((state.cookies.clear(jar), StatusCode::NO_CONTENT).into_response())
}

/// Emails a password-reset link if the address has an account.
#[utoipa::path(post, path = "/v1/auth/password/forgot", tag = "auth", request_body = EmailBody, responses(
    (status = 202, description = "Same answer whether or not the address is registered", body = Accepted),
    (status = 429, description = "`rate_limited` (per client address, and per target address whether or not it is registered), with `Retry-After`", body = Problem),
))]
pub async fn forgot_password(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<EmailBody>,
) -> ApiResult<(StatusCode, axum::Json<Accepted>)> {
    state.identity.forgot_password(&body.email, &meta).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Accepted::new(
            "if the address has an account, a reset link is on its way",
        )),
    ))
}

/// Sets a new password from the emailed link and revokes every session.
#[utoipa::path(post, path = "/v1/auth/password/reset", tag = "auth", request_body = ResetPasswordBody, responses(
    (status = 204, description = "Password set; every session revoked"),
    (status = 400, description = "`invalid_token`", body = Problem),
    (status = 422, description = "Weak password", body = Problem),
    (status = 429, description = "`rate_limited`, with `Retry-After`", body = Problem),
))]
pub async fn reset_password(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<ResetPasswordBody>,
) -> ApiResult<StatusCode> {
    state
        .identity
        .reset_password(&body.token, &SecretString::from(body.new_password), &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the password; other sessions are signed out.
#[utoipa::path(post, path = "/v1/auth/password/change", tag = "auth", request_body = ChangePasswordBody, responses(
    (status = 204, description = "Changed; other sessions revoked"),
    (status = 401, description = "`invalid_credentials` (wrong current password) or `unauthorized`", body = Problem),
    (status = 422, description = "Weak password", body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn change_password(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Auth(principal): Auth,
    Json(body): Json<ChangePasswordBody>,
) -> ApiResult<StatusCode> {
    let current = SecretString::from(body.current_password);
    state
        .identity
        .change_password(
            &principal,
            &current,
            &SecretString::from(body.new_password),
            &meta,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts an email change: mails a confirmation link to the new address.
/// A taken address gets the same answer and no mail.
#[utoipa::path(post, path = "/v1/auth/email/change", tag = "auth", request_body = ChangeEmailBody, responses(
    (status = 202, description = "Confirmation sent to the new address", body = Accepted),
    (status = 401, description = "`invalid_credentials` or `unauthorized`", body = Problem),
    (status = 403, description = "`step_up_required` (sign-in older than 5 minutes)", body = Problem),
    (status = 422, description = "Invalid address", body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn change_email(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Auth(principal): Auth,
    Json(body): Json<ChangeEmailBody>,
) -> ApiResult<(StatusCode, axum::Json<Accepted>)> {
    let req = EmailChangeRequest {
        new_email: body.new_email,
        password: SecretString::from(body.password),
    };
    state
        .identity
        .request_email_change(&principal, req, &meta)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Accepted::new(
            "confirm the change from the link sent to the new address",
        )),
    ))
}

/// Completes an email change from the link sent to the new address; the old
/// address is told.
#[utoipa::path(post, path = "/v1/auth/email/change/confirm", tag = "auth", request_body = TokenBody, responses(
    (status = 200, description = "Changed", body = UserResponse),
    (status = 400, description = "`invalid_token`", body = Problem),
    (status = 409, description = "The address was taken meanwhile", body = Problem),
))]
pub async fn confirm_email_change(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<TokenBody>,
) -> ApiResult<axum::Json<UserResponse>> {
    Ok(axum::Json(
        state
            .identity
            .confirm_email_change(&body.token, &meta)
            .await?
            .into(),
    ))
}

/// The caller's pending email change: the address awaiting confirmation.
#[utoipa::path(get, path = "/v1/auth/email/change", tag = "auth", responses(
    (status = 200, body = PendingEmailChangeResponse),
    (status = 401, body = Problem),
    (status = 404, description = "No email change is pending", body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn pending_email_change(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<axum::Json<PendingEmailChangeResponse>> {
    let pending = state
        .identity
        .pending_email_change(&principal)
        .await?
        .ok_or(CoreError::NotFound)?;
    let new_email = pending.new_email.ok_or(CoreError::NotFound)?;
    Ok(axum::Json(PendingEmailChangeResponse {
        new_email: new_email.to_string(),
        requested_at: pending.created_at,
        expires_at: pending.expires_at,
    }))
}

/// Cancels the caller's pending email change: its link stops working.
#[utoipa::path(delete, path = "/v1/auth/email/change", tag = "auth", responses(
    (status = 204, description = "Cancelled"),
    (status = 401, body = Problem),
    (status = 403, description = "`csrf_failed`", body = Problem),
    (status = 404, description = "No email change is pending", body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn cancel_email_change(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Auth(principal): Auth,
) -> ApiResult<StatusCode> {
    state
        .identity
        .cancel_email_change(&principal, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes an organization the session's active one (`null`: none) and
/// returns a new pair whose access token carries `org_id` and `org_role`.
/// The session's other refresh tokens stay valid. Cookies are updated when
/// the request was authenticated by cookie.
#[utoipa::path(post, path = "/v1/auth/switch-organization", tag = "auth", request_body = SwitchOrganizationBody, responses(
    (status = 200, body = TokenPairResponse),
    (status = 401, body = Problem),
    (status = 403, description = "`csrf_failed`; `forbidden` for an API key; `mfa_required` when the organization requires a second factor and the session was signed in without one", body = Problem),
    (status = 404, description = "Not a member of that organization", body = Problem),
), security(("bearer" = []), ("cookie" = [])))]
pub async fn switch_organization(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ClientMeta(meta): ClientMeta,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<SwitchOrganizationBody>,
) -> ApiResult<Response> {
    let org = match body.org_id.as_deref() {
        Some(raw) => Some(raw.parse().map_err(|_| CoreError::NotFound)?),
        None => None,
    };
    let tokens = state
        .identity
        .switch_organization(&principal, org, &meta)
        .await?;
    let via_cookie = !headers.contains_key(axum::http::header::AUTHORIZATION);
    if via_cookie {
        let jar = state.cookies.set_session(jar, &tokens);
        Ok((jar, axum::Json(TokenPairResponse::from(tokens))).into_response())
    } else {
        Ok(axum::Json(TokenPairResponse::from(tokens)).into_response())
    }
}
