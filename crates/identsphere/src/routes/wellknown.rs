//! `/.well-known`: the public signing keys.
use crate::state::AppState;
use axum::{extract::State, http::header, response::IntoResponse};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(jwks))
}

/// The JWK Set (RFC 7517) of the keys that sign access tokens: the current
/// key and retired keys whose tokens may not have expired yet. Empty under
/// HS256, whose key is secret.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations", responses(
    (status = 200, description = "JWK Set", content_type = "application/json", body = Object),
))]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    // Public and cache-friendly, unlike every other response.
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(state.identity.keys().jwks()),
    )
}
