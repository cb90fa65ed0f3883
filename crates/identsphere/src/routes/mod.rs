//! The HTTP surface: one module per resource, merged here with the layers.
pub mod api_keys;
pub mod auth;
pub mod clients;
pub mod health;
pub mod invitations;
pub mod mfa;
pub mod organizations;
pub mod passkeys;
pub mod sessions;
pub mod tokens;
pub mod users;
pub mod wellknown;

use crate::{
    error::{ApiError, InternalCause},
    state::AppState,
};
use axum::{
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::{header, HeaderValue},
    response::Response,
    routing::get,
    Router,
};
use std::time::Duration;
use tower_http::{set_header::SetResponseHeaderLayer, trace::TraceLayer};
use tracing::Span;
use utoipa::{
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(title = "IdentSphere", description = "Self-hosted identity: accounts, sessions and tokens. Errors are RFC 9457 problem+json with a stable `code`."),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Sign-up, sign-in, tokens, passwords and email"),
        (name = "passkeys", description = "WebAuthn passkeys: registration, username-less login (MFA-strength), management"),
        (name = "sessions", description = "The caller's sessions"),
        (name = "users", description = "The caller's account"),
        (name = "organizations", description = "Organizations, members, roles, invitations and the audit log. Another organization's ids answer 404. In an organization with `require_mfa`, sessions not signed in with a second factor get 403 `mfa_required` (API keys are not affected)"),
        (name = "api-keys", description = "Scoped API keys (`isk_…`), shown once"),
        (name = "clients", description = "The client API. The platform operator registers clients with the master credentials (HTTP Basic; the API answers 404 while they are not configured); a client, with its key (`x-api-key: isck_…`), creates machine users (identifier + secret `iscs_…`, shown once) and exchanges their credentials for machine tokens: JWTs that the server accepts only while their stored record is unrevoked, so check them with the server (`POST /v1/tokens/introspect`), not a JWKS alone"),
        (name = "operations", description = "Health, keys and this document"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::cookies::ACCESS,
                "Access-token cookie; unsafe methods must echo the identsphere_csrf cookie in X-CSRF-Token",
            ))),
        );
        components.add_security_scheme(
            "master",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "IDENTSPHERE_MASTER_USERNAME and IDENTSPHERE_MASTER_PASSWORD",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "client_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::extract::API_KEY_HEADER,
                "A client's key (`isck_…`), from POST /v1/clients",
            ))),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::extract::API_KEY_HEADER,
                "An API key (`isk_…`), here or as `Authorization: Bearer isk_…`; its scopes limit what it may do",
            ))),
        );
    }
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router())
        .merge(mfa::router())
        .merge(passkeys::router())
        .merge(sessions::router())
        .merge(users::router())
        .merge(organizations::router())
        .merge(invitations::router())
        .merge(invitations::router_public())
        .merge(api_keys::router())
        .merge(clients::router())
        .merge(tokens::router())
        .merge(wellknown::router())
        .merge(health::router())
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api().split_for_parts();
    doc.paths.add_path_operation(
        "/openapi.json",
        vec![utoipa::openapi::HttpMethod::Get],
        utoipa::openapi::path::OperationBuilder::new()
            .tag("operations")
            .summary(Some("This OpenAPI document"))
            .response("200", utoipa::openapi::Response::new("OpenAPI 3.1 JSON")),
    );
    doc
}

/// Every route with its layers and state applied.
pub fn router(state: AppState) -> Router {
    let doc = std::sync::Arc::new(openapi());
    let (routes, _) = api().split_for_parts();
    let routes = routes
        .route(
            "/openapi.json",
            get(move || async move { axum::Json(doc.as_ref().clone()) }),
        )
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(state.max_json_body));
    crate::timeouts::apply(routes, state.timeouts)
        // Responses carry tokens and personal data: never cache them.
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(
            TraceLayer::new_for_http()
                // The matched route, never the raw URI: query strings may hold tokens.
                .make_span_with(|req: &Request| {
                    let path = req.extensions().get::<MatchedPath>().map_or("<unmatched>", MatchedPath::as_str);
                    tracing::info_span!("request", method = %req.method(), path, user.id = tracing::field::Empty, client.id = tracing::field::Empty)
                })
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _: &Span| {
                    let status = res.status().as_u16();
                    let ms = latency.as_secs_f64() * 1000.0;
                    match res.extensions().get::<InternalCause>() {
                        Some(cause) => tracing::error!(status, ms, cause = %cause.0, "request failed"),
                        None => tracing::info!(status, ms, "request"),
                    }
                })
                .on_failure(()),
        )
        .with_state(state)
}
