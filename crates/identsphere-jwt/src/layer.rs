//! [`RequireAuthLayer`]: a tower layer that lets only requests with a valid
//! access token through, with the [`Claims`] in their extensions.
use crate::{claims::Claims, error::ValidationError, validator::Validator};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

/// The access-token cookie of API.md §3.
const ACCESS_COOKIE: &str = "identsphere_access";
/// The double-submit CSRF cookie and the header that must echo it.
const CSRF_COOKIE: &str = "identsphere_csrf";
const CSRF_HEADER: &str = "x-csrf-token";

/// Why a request was refused. Renders as RFC 9457 `application/problem+json`
/// with the `code`s of the IdentSphere API.
///
/// | case | status | `code` |
/// | --- | --- | --- |
/// | no token | 401, `WWW-Authenticate: Bearer` | `unauthorized` |
/// | invalid token | 401, `WWW-Authenticate: Bearer error="invalid_token"` | `unauthorized` |
/// | JWKS unreachable, no usable cache | 503 | `unavailable` |
/// | cookie without a matching CSRF header | 403 | `csrf_failed` |
/// | extractor used without the layer | 500 | `internal_error` |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No access token was sent (or `Authorization` is not `Bearer`).
    #[error("no access token: send Authorization: Bearer <token>")]
    MissingToken,
    /// The token was refused, or the keys to check it could not be fetched.
    #[error(transparent)]
    InvalidToken(#[from] ValidationError),
    /// A cookie-authenticated unsafe request did not echo the
    /// `identsphere_csrf` cookie in `X-CSRF-Token`.
    #[error("missing or mismatched CSRF token")]
    CsrfFailed,
    /// The `Claims` extractor ran on a route without [`RequireAuthLayer`].
    #[error("RequireAuthLayer is not installed on this route, so there are no claims to extract: add .layer(RequireAuthLayer::new(validator)) to the router, or use the Authenticated extractor")]
    LayerMissing,
}

impl AuthRejection {
    /// The HTTP status this rejection answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken => StatusCode::UNAUTHORIZED,
            Self::InvalidToken(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::CsrfFailed => StatusCode::FORBIDDEN,
            Self::LayerMissing => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem+json response, with any body type that can be made from a `String`.
    pub fn into_http_response<B: From<String>>(self) -> Response<B> {
        let status = self.status();
        let (code, title, detail) = match &self {
            // The JWKS URL and the fetch error are for the logs, not the caller.
            Self::InvalidToken(e) if e.is_unavailable() => (
                "unavailable",
                "Service unavailable",
                "the token issuer's signing keys could not be fetched; retry later".to_owned(),
            ),
            Self::MissingToken | Self::InvalidToken(_) => {
                ("unauthorized", "Unauthorized", self.to_string())
            }
            Self::CsrfFailed => ("csrf_failed", "CSRF check failed", self.to_string()),
            Self::LayerMissing => ("internal_error", "Internal error", self.to_string()),
        };
        match &self {
            Self::InvalidToken(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "refused a request: no signing keys")
            }
            Self::LayerMissing => tracing::error!("{self}"),
            _ => tracing::debug!(error = %self, "refused a request"),
        }
        let body = serde_json::json!({
            "type": format!("urn:identsphere:problem:{code}"),
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
            "code": code,
        });
        let mut response = Response::new(B::from(body.to_string()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        // RFC 6750 §3: no error code when the request carried no token at all.
        let challenge = match self {
            Self::InvalidToken(e) if e.is_unavailable() => None,
            Self::InvalidToken(_) => Some(r#"Bearer error="invalid_token""#),
            Self::MissingToken => Some("Bearer"),
            Self::CsrfFailed | Self::LayerMissing => None,
        };
        if let Some(challenge) = challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// Where a request's token came from.
enum Credential {
    Bearer(String),
    Cookie(String),
}

/// Finds the token: `Authorization: Bearer` wins; the `identsphere_access`
/// cookie is read only when `cookie` is on and no `Authorization` header was
/// sent (an invalid Bearer token is refused, not retried with the cookie).
fn credential(headers: &HeaderMap, cookie: bool) -> Result<Credential, AuthRejection> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or(AuthRejection::MissingToken)?;
        return Ok(Credential::Bearer(token.to_owned()));
    }
    if cookie {
        if let Some(token) = cookie_value(headers, ACCESS_COOKIE) {
            return Ok(Credential::Cookie(token.to_owned()));
        }
    }
    Err(AuthRejection::MissingToken)
}

/// The first non-empty value of cookie `name` in the `Cookie` headers.
fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, v)| *n == name && !v.is_empty())
        .map(|(_, v)| v)
}

/// Double-submit check (the server's own rule): a cookie-authenticated
/// request with an unsafe method must echo the CSRF cookie in `X-CSRF-Token`.
fn check_csrf(method: &Method, headers: &HeaderMap) -> Result<(), AuthRejection> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let cookie = cookie_value(headers, CSRF_COOKIE);
    let header = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match (cookie, header) {
        (Some(c), Some(h)) if constant_time_eq(c.as_bytes(), h.as_bytes()) => Ok(()),
        _ => Err(AuthRejection::CsrfFailed),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Validates the request's token; `cookie` also accepts the access cookie.
pub(crate) async fn authenticate(
    validator: &Validator,
    method: &Method,
    headers: &HeaderMap,
    cookie: bool,
) -> Result<Claims, AuthRejection> {
    let token = match credential(headers, cookie)? {
        Credential::Bearer(token) => token,
        Credential::Cookie(token) => {
            check_csrf(method, headers)?;
            token
        }
    };
    Ok(validator.validate(&token).await?)
}

/// A tower [`Layer`](tower::Layer) that requires a valid IdentSphere access token.
///
/// On success the request goes on with the [`Claims`] in its extensions
/// (`req.extensions().get::<Claims>()`, axum's `Extension<Claims>`, or the
/// `Claims` extractor of the `axum` feature). On failure it answers at once
/// with an [`AuthRejection`]: 401 for a missing or invalid token, 503 when the
/// keys cannot be fetched (the token may be fine, so clients should retry
/// rather than log the user out).
///
/// Only `Authorization: Bearer` is read by default. [`Self::with_cookie`]
/// also accepts the server's `identsphere_access` cookie, for apps served
/// from the same site as the IdentSphere server; unsafe methods then need the
/// `X-CSRF-Token` double-submit header, as on the server.
///
/// Works with any inner service whose response body can be made from a
/// `String` (axum's `Body`, `String`, `Full<Bytes>`, …).
#[derive(Debug, Clone)]
pub struct RequireAuthLayer {
    validator: Validator,
    cookie: bool,
}

impl RequireAuthLayer {
    /// A layer validating with `validator`, reading `Authorization: Bearer` only.
    pub fn new(validator: Validator) -> Self {
        Self {
            validator,
            cookie: false,
        }
    }

    /// Also accept the `identsphere_access` cookie when no `Authorization`
    /// header is sent, with the CSRF double-submit check on unsafe methods.
    #[must_use]
    pub fn with_cookie(mut self) -> Self {
        self.cookie = true;
        self
    }
}

impl<S> tower::Layer<S> for RequireAuthLayer {
    type Service = RequireAuth<S>;

    fn layer(&self, inner: S) -> RequireAuth<S> {
        RequireAuth {
            inner,
            validator: self.validator.clone(),
            cookie: self.cookie,
        }
    }
}

/// The service made by [`RequireAuthLayer`].
#[derive(Debug, Clone)]
pub struct RequireAuth<S> {
    inner: S,
    validator: Validator,
    cookie: bool,
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for RequireAuth<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // Take the service that was driven to readiness; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let validator = self.validator.clone();
        let cookie = self.cookie;
        Box::pin(async move {
            match authenticate(&validator, req.method(), req.headers(), cookie).await {
                Ok(claims) => {
                    req.extensions_mut().insert(claims);
                    inner.call(req).await
                }
                Err(rejection) => Ok(rejection.into_http_response()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn token(h: &HeaderMap, cookie: bool) -> Option<(bool, String)> {
        match credential(h, cookie) {
            Ok(Credential::Bearer(t)) => Some((false, t)),
            Ok(Credential::Cookie(t)) => Some((true, t)),
            Err(_) => None,
        }
    }

    #[test]
    fn bearer_is_read_and_wins_over_the_cookie() {
        let h = headers(&[("authorization", "bearer  abc ")]);
        assert_eq!(token(&h, false), Some((false, "abc".into())));
        let both = headers(&[
            ("authorization", "Bearer abc"),
            ("cookie", "identsphere_access=def"),
        ]);
        assert_eq!(token(&both, true), Some((false, "abc".into())));
        // A non-Bearer Authorization is not retried with the cookie.
        let basic = headers(&[
            ("authorization", "Basic dTpw"),
            ("cookie", "identsphere_access=def"),
        ]);
        assert_eq!(token(&basic, true), None);
        assert_eq!(
            token(&headers(&[("authorization", "Bearer ")]), false),
            None
        );
    }

    #[test]
    fn cookie_only_when_enabled() {
        let h = headers(&[
            ("cookie", "a=1; identsphere_access=; x=2"),
            ("cookie", "identsphere_access=tok"),
        ]);
        assert_eq!(token(&h, false), None);
        assert_eq!(token(&h, true), Some((true, "tok".into())));
    }

    #[test]
    fn csrf_double_submit() {
        let ok = headers(&[
            ("cookie", "identsphere_csrf=s3cret"),
            ("x-csrf-token", "s3cret"),
        ]);
        let bad = headers(&[
            ("cookie", "identsphere_csrf=s3cret"),
            ("x-csrf-token", "s3creT"),
        ]);
        let none = headers(&[("cookie", "identsphere_csrf=s3cret")]);
        assert!(check_csrf(&Method::POST, &ok).is_ok());
        assert!(check_csrf(&Method::DELETE, &bad).is_err());
        assert!(check_csrf(&Method::PUT, &none).is_err());
        assert!(check_csrf(&Method::GET, &none).is_ok());
        assert!(check_csrf(&Method::POST, &HeaderMap::new()).is_err());
    }

    #[test]
    fn rejections_render_as_problems() {
        let r: Response<String> = AuthRejection::MissingToken.into_http_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body: serde_json::Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(body["code"], "unauthorized");
        assert_eq!(body["type"], "urn:identsphere:problem:unauthorized");
        assert_eq!(body["status"], 401);

        let r: Response<String> =
            AuthRejection::InvalidToken(ValidationError::Expired).into_http_response();
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
        let body: serde_json::Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(body["detail"], "token has expired");

        let r: Response<String> = AuthRejection::LayerMissing.into_http_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(r.body().contains("RequireAuthLayer is not installed"));
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}
