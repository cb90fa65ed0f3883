//! Extractors for axum 0.8 (feature `axum`).
use crate::{
    claims::Claims,
    layer::{authenticate, AuthRejection},
    validator::Validator,
};
use axum::{
    extract::{FromRef, FromRequestParts},
    http::request::Parts,
    response::{IntoResponse, Response},
};

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        self.into_http_response()
    }
}

/// Reads the claims that [`crate::RequireAuthLayer`] put in the request.
///
/// On a route without the layer it answers 500 with a problem saying that
/// `RequireAuthLayer is not installed` (a wiring mistake, not the caller's).
impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AuthRejection> {
        parts
            .extensions
            .get::<Claims>()
            .cloned()
            .ok_or(AuthRejection::LayerMissing)
    }
}

/// The claims of the request's `Authorization: Bearer` token, validated by
/// the extractor itself with the [`Validator`] taken from the router state
/// (`Validator: FromRef<S>`), for routers that protect only some handlers.
///
/// Behind [`crate::RequireAuthLayer`] it reuses the layer's claims instead of
/// validating twice. It does not read cookies; use the layer's
/// [`with_cookie`](crate::RequireAuthLayer::with_cookie) for that.
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use identsphere_jwt::{Authenticated, Validator};
///
/// async fn me(Authenticated(claims): Authenticated) -> String {
///     claims.sub
/// }
///
/// # fn app(validator: Validator) -> Router {
/// Router::new().route("/me", get(me)).with_state(validator)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    Validator: FromRef<S>,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthRejection> {
        if let Some(claims) = parts.extensions.get::<Claims>() {
            return Ok(Self(claims.clone()));
        }
        let validator = Validator::from_ref(state);
        authenticate(&validator, &parts.method, &parts.headers, false)
            .await
            .map(Self)
    }
}
