//! Extractors: JSON bodies that fail as problem+json, the authenticated
//! principal (Bearer or cookie with CSRF), and client metadata.
use crate::{
    cookies::{ACCESS, CSRF, CSRF_HEADER},
    error::ApiError,
    state::AppState,
};
use axum::{
    body::Bytes,
    extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request},
    http::{header, request::Parts, HeaderMap, Method},
};
use axum_extra::extract::CookieJar;
use identsphere_core::{
    secret::constant_time_eq,
    service::{Caller, Principal, RequestMeta, API_KEY_PREFIX},
    CoreError, FieldError,
};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;

mod clients;
mod nul;

pub use clients::{ClientKey, Machine, Master};

/// A JSON body. Rejections are problem+json: 415 for another content type,
/// 413 past the body limit (enforced while reading), 408 when the body does
/// not arrive within the body-read timeout, 400 for malformed JSON, 422 with
/// the offending field for well-formed JSON of the wrong shape.
#[derive(Debug)]
pub struct Json<T>(pub T);

fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if crate::timeouts::is_body_timeout(&rejection) {
            ApiError::RequestTimeout
        } else if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest("the request body could not be read".into())
        }
    })
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    nul::refuse_in_json(bytes)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if path == "." { "body".to_owned() } else { path };
                // serde's messages name fields and types, never the values sent.
                ApiError::Core(CoreError::Validation(vec![FieldError::new(
                    field,
                    inner.to_string(),
                )]))
            }
            _ => ApiError::BadRequest(format!("malformed JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|_| ApiError::BadRequest("malformed JSON: trailing characters".into()))?;
    Ok(value)
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = read_body(req, state).await?;
        parse(&bytes).map(Json)
    }
}

/// A JSON body that may be absent (no body at all); a body that is present is
/// held to the same rules as [`Json`].
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = is_json(req.headers().get(header::CONTENT_TYPE));
        let bytes = read_body(req, state).await?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse(&bytes).map(|v| Self(Some(v)))
    }
}

/// A signed-in session (access token). API keys are refused with 403: the
/// endpoints behind this extractor (sign-out, passwords, sessions, keys)
/// belong to people, not to scripts.
///
/// `Authorization: Bearer` wins when present (an invalid one is refused, not
/// retried with cookies). Otherwise the `identsphere_access` cookie is used,
/// and then unsafe methods must echo the `identsphere_csrf` cookie in
/// `X-CSRF-Token`.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

/// A session or an API key (`Authorization: Bearer isk_…` or `x-api-key`).
/// Handlers check the key's scopes through the core service.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

/// How a request carried its credentials.
pub(crate) enum Credential {
    /// `Authorization: Bearer` (a JWT or an API key) or `x-api-key`.
    Bearer(String),
    Cookie(String),
    None,
}

/// The `x-api-key` header (API.md §3).
pub const API_KEY_HEADER: &str = "x-api-key";

/// The token of `Authorization: Bearer`; `None` without that header, an
/// error when it is there but malformed or of another scheme.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| CoreError::Unauthorized)?;
    let (scheme, token) = value.split_once(' ').ok_or(CoreError::Unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(CoreError::Unauthorized.into());
    }
    Ok(Some(token.trim()))
}

pub(crate) fn credential(headers: &HeaderMap, jar: &CookieJar) -> Result<Credential, ApiError> {
    if let Some(token) = bearer(headers)? {
        return Ok(Credential::Bearer(token.to_owned()));
    }
    if let Some(value) = headers.get(API_KEY_HEADER) {
        let key = value.to_str().map_err(|_| CoreError::Unauthorized)?.trim();
        if !key.starts_with(API_KEY_PREFIX) {
            return Err(CoreError::Unauthorized.into());
        }
        return Ok(Credential::Bearer(key.to_owned()));
    }
    match jar.get(ACCESS) {
        Some(c) if !c.value().is_empty() => Ok(Credential::Cookie(c.value().to_owned())),
        _ => Ok(Credential::None),
    }
}

/// Double-submit check for cookie-authenticated unsafe requests.
pub(crate) fn check_csrf(
    method: &Method,
    headers: &HeaderMap,
    jar: &CookieJar,
) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let cookie = jar.get(CSRF).map(|c| c.value()).filter(|v| !v.is_empty());
    let header = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match (cookie, header) {
        (Some(c), Some(h)) if constant_time_eq(c, h) => Ok(()),
        _ => Err(ApiError::CsrfFailed),
    }
}

/// The second half of the CSRF check, once the session is known: the
/// (header-matched) cookie must be that session's own token.
pub(crate) fn check_csrf_binding(
    method: &Method,
    state: &AppState,
    jar: &CookieJar,
    session: identsphere_core::ids::SessionId,
) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || state.cookies.csrf_bound(jar, session)
    {
        Ok(())
    } else {
        Err(ApiError::CsrfFailed)
    }
}

/// Authenticates whatever credential the request carries.
pub(crate) async fn authenticate(
    method: &Method,
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Caller, ApiError> {
    let jar = CookieJar::from_headers(headers);
    let (token, via_cookie) = match credential(headers, &jar)? {
        Credential::Bearer(t) => (t, false),
        Credential::Cookie(t) => {
            check_csrf(method, headers, &jar)?;
            (t, true)
        }
        Credential::None => return Err(CoreError::Unauthorized.into()),
    };
    let caller = state.identity.authenticate_caller(&token).await?;
    if let (true, Caller::Session(principal)) = (via_cookie, &caller) {
        check_csrf_binding(method, state, &jar, principal.session_id)?;
    }
    tracing::Span::current().record("user.id", tracing::field::display(caller.user_id()));
    Ok(caller)
}

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(Self(caller.clone()));
        }
        let caller =
            authenticate(&parts.method, &parts.headers, &AppState::from_ref(state)).await?;
        parts.extensions.insert(caller.clone());
        Ok(Self(caller))
    }
}

impl<S> FromRequestParts<S> for Auth
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Authenticated(caller) = Authenticated::from_request_parts(parts, state).await?;
        Ok(Self(caller.session()?.clone()))
    }
}

/// Client address (the TCP peer) and user agent.
#[derive(Debug, Clone)]
pub struct ClientMeta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect());
        Ok(Self(RequestMeta { ip, user_agent }))
    }
}

/// Query parameters; a malformed query is a 422 `validation_failed` naming
/// the parameter, not axum's plain-text rejection, and so is a parameter that
/// decodes to a NUL.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        nul::refuse_in_query(query)?;
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let field = match e.path().to_string() {
                    p if p == "." => "query".to_owned(),
                    p => p,
                };
                ApiError::Core(CoreError::Validation(vec![FieldError::new(
                    field,
                    e.into_inner().to_string(),
                )]))
            })
    }
}

// The principal for host applications: who is calling and what they may do in
// their active organization.

use identsphere_core::{
    ids::{OrgId, UserId},
    permissions::{Permissions, RoleName},
    service::{ActiveOrg, OrgAccess},
};

/// Callers without an active organization hold no permissions.
static NO_PERMISSIONS: Permissions = Permissions::new();

/// The caller (a session or an API key) with its standing in its active
/// organization, for the host application's handlers.
///
/// The active organization is the one the session switched to
/// (`POST /v1/auth/switch-organization`), or the organization of an
/// organization API key. Sessions with none active, personal API keys and
/// memberships that have ended have no organization, and therefore no
/// permissions: permissions come from memberships and roles only, never from
/// the account (SECURITY.md rule 16). The membership and role are read from
/// the store on each request, so a role change or a removal applies at once;
/// an API key's permissions are its role's, narrowed to its scopes. A session
/// not signed in with a second factor holds nothing in an active organization
/// that requires MFA: [`CurrentUser::mfa_required`] is set and
/// [`CurrentUser::require`] answers 403 `mfa_required`.
///
/// Credentials are those of [`Authenticated`]: `Authorization: Bearer` (a JWT
/// or an `isk_` key), `x-api-key`, or the access cookie with the CSRF echo on
/// unsafe methods. Rejections are problem+json: 401 `unauthorized` without a
/// valid credential, 403 `csrf_failed`, 500 when the store fails.
///
/// It needs no layer. Behind [`crate::guard::RequirePermission`] it is the
/// value the guard resolved (kept in the request extensions), so the store is
/// read once per request.
///
/// ```no_run
/// use identsphere::{error::ApiError, CurrentUser};
///
/// async fn export(user: CurrentUser) -> Result<String, ApiError> {
///     user.require("app:invoices.export")?;
///     Ok(format!("invoices of {:?}", user.org_id()))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// The authenticated session or API key.
    pub caller: Caller,
    /// The caller's standing in its active organization, if it has one.
    pub organization: Option<OrgAccess>,
    /// The active organization requires MFA and this session was not signed
    /// in with a second factor (`organization` is then `None`).
    pub mfa_required: bool,
}

impl CurrentUser {
    /// Resolves `caller`'s active organization and its standing there.
    ///
    /// # Errors
    /// A store failure (500 `internal_error`).
    pub async fn resolve(state: &AppState, caller: Caller) -> Result<Self, ApiError> {
        let (organization, mfa_required) = match state.identity.active_org_access(&caller).await? {
            ActiveOrg::None => (None, false),
            ActiveOrg::Member(access) => (Some(access), false),
            ActiveOrg::MfaRequired(_) => (None, true),
        };
        Ok(Self {
            caller,
            organization,
            mfa_required,
        })
    }

    /// The user the caller acts for (an API key acts for its owner).
    pub fn user_id(&self) -> UserId {
        self.caller.user_id()
    }

    /// The active organization.
    pub fn org_id(&self) -> Option<OrgId> {
        self.organization.as_ref().map(|o| o.org_id)
    }

    /// The caller's role in the active organization.
    pub fn role(&self) -> Option<&RoleName> {
        self.organization.as_ref().map(|o| &o.role)
    }

    /// What the caller may do in the active organization; empty without one.
    pub fn permissions(&self) -> &Permissions {
        self.organization
            .as_ref()
            .map_or(&NO_PERMISSIONS, |o| &o.permissions)
    }

    /// Whether the caller holds `permission` in the active organization.
    pub fn has(&self, permission: &str) -> bool {
        self.organization
            .as_ref()
            .is_some_and(|o| o.allows(permission))
    }

    /// Refuses a caller without `permission` in the active organization.
    ///
    /// # Errors
    /// 403 `forbidden`, naming the permission; 403 `mfa_required` when the
    /// active organization requires a second factor the session lacks.
    pub fn require(&self, permission: &str) -> Result<(), ApiError> {
        match &self.organization {
            Some(access) => Ok(access.require(permission)?),
            None if self.mfa_required => Err(CoreError::MfaRequired(format!(
                "requires the permission {permission}, and the active organization requires \
                 multi-factor authentication: sign in with your second factor"
            ))
            .into()),
            None => Err(CoreError::Forbidden(format!(
                "requires the permission {permission} in an active organization, and none is active"
            ))
            .into()),
        }
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Some(user) = parts.extensions.get::<CurrentUser>() {
            return Ok(user.clone());
        }
        let Authenticated(caller) = Authenticated::from_request_parts(parts, state).await?;
        let user = Self::resolve(&AppState::from_ref(state), caller).await?;
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}
