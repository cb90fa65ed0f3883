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
    service::{Principal, RequestMeta},
    CoreError, FieldError,
};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;

/// A JSON body. Rejections are problem+json: 415 for another content type,
/// 413 past the body limit (enforced while reading), 400 for malformed JSON,
/// 422 with the offending field for well-formed JSON of the wrong shape.
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
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest("the request body could not be read".into())
        }
    })
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
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

/// The authenticated caller.
///
/// `Authorization: Bearer` wins when present (an invalid one is refused, not
/// retried with cookies). Otherwise the `identsphere_access` cookie is used,
/// and then unsafe methods must echo the `identsphere_csrf` cookie in
/// `X-CSRF-Token`.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

/// How a request carried its credentials.
pub(crate) enum Credential {
    Bearer(String),
    Cookie(String),
    None,
}

pub(crate) fn credential(headers: &HeaderMap, jar: &CookieJar) -> Result<Credential, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| CoreError::Unauthorized)?;
        let (scheme, token) = value.split_once(' ').ok_or(CoreError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(CoreError::Unauthorized.into());
        }
        return Ok(Credential::Bearer(token.trim().to_owned()));
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

impl<S> FromRequestParts<S> for Auth
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = AppState::from_ref(state);
        let jar = CookieJar::from_headers(&parts.headers);
        let token = match credential(&parts.headers, &jar)? {
            Credential::Bearer(t) => t,
            Credential::Cookie(t) => {
                check_csrf(&parts.method, &parts.headers, &jar)?;
                t
            }
            Credential::None => return Err(CoreError::Unauthorized.into()),
        };
        let principal = state.identity.authenticate(&token).await?;
        tracing::Span::current().record("user.id", tracing::field::display(principal.user_id));
        Ok(Self(principal))
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
