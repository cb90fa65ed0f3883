//! The served OpenAPI document covers every route.
use crate::support::*;
use serde_json::Value;

both_stores!(openapi_lists_every_route, health_and_readiness);

async fn openapi_lists_every_route(b: Backend) {
    // With master credentials: without them the client API answers 404.
    let Some(app) = TestApp::spawn_with(b, with_master).await else {
        return;
    };
    let doc: Value = app.get_json("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let expected = [
        ("post", "/v1/auth/signup"),
        ("post", "/v1/auth/email/verify"),
        ("post", "/v1/auth/email/verify/resend"),
        ("post", "/v1/auth/login"),
        ("post", "/v1/auth/refresh"),
        ("post", "/v1/auth/logout"),
        ("get", "/v1/auth/sessions"),
        ("delete", "/v1/auth/sessions"),
        ("delete", "/v1/auth/sessions/{id}"),
        ("post", "/v1/auth/password/forgot"),
        ("post", "/v1/auth/password/reset"),
        ("post", "/v1/auth/password/change"),
        ("post", "/v1/auth/email/change"),
        ("post", "/v1/auth/email/change/confirm"),
        ("get", "/v1/auth/email/change"),
        ("delete", "/v1/auth/email/change"),
        ("get", "/v1/session"),
        ("get", "/v1/users/me"),
        ("patch", "/v1/users/me"),
        ("get", "/.well-known/jwks.json"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/openapi.json"),
        ("post", "/v1/clients"),
        ("get", "/v1/clients"),
        ("delete", "/v1/clients/{id}"),
        ("post", "/v1/clients/{id}/rotate-key"),
        ("post", "/v1/clients/users"),
        ("get", "/v1/clients/users"),
        ("delete", "/v1/clients/users/{id}"),
        ("post", "/v1/tokens"),
        ("post", "/v1/tokens/introspect"),
        ("delete", "/v1/tokens/{id}"),
        ("post", "/v1/auth/switch-organization"),
        ("get", "/v1/auth/mfa"),
        ("post", "/v1/auth/mfa/verify"),
        ("post", "/v1/auth/mfa/totp/enroll"),
        ("post", "/v1/auth/mfa/totp/confirm"),
        ("post", "/v1/auth/mfa/disable"),
        ("post", "/v1/auth/mfa/recovery-codes"),
        ("post", "/v1/auth/passkeys/register/start"),
        ("post", "/v1/auth/passkeys/register/finish"),
        ("post", "/v1/auth/passkeys/login/start"),
        ("post", "/v1/auth/passkeys/login/finish"),
        ("get", "/v1/auth/passkeys"),
        ("patch", "/v1/auth/passkeys/{id}"),
        ("delete", "/v1/auth/passkeys/{id}"),
        ("post", "/v1/auth/step-up"),
        ("post", "/v1/auth/invitations/accept"),
        ("post", "/v1/organizations"),
        ("get", "/v1/organizations"),
        ("get", "/v1/organizations/{id}"),
        ("patch", "/v1/organizations/{id}"),
        ("delete", "/v1/organizations/{id}"),
        ("get", "/v1/organizations/{id}/members"),
        ("patch", "/v1/organizations/{id}/members/{user_id}"),
        ("delete", "/v1/organizations/{id}/members/{user_id}"),
        ("get", "/v1/organizations/{id}/roles"),
        ("post", "/v1/organizations/{id}/roles"),
        ("patch", "/v1/organizations/{id}/roles/{role}"),
        ("delete", "/v1/organizations/{id}/roles/{role}"),
        ("post", "/v1/organizations/{id}/invitations"),
        ("get", "/v1/organizations/{id}/invitations"),
        ("delete", "/v1/organizations/{id}/invitations/{inv_id}"),
        ("get", "/v1/organizations/{id}/audit-log"),
        ("post", "/v1/api-keys"),
        ("get", "/v1/api-keys"),
        ("delete", "/v1/api-keys/{id}"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    for (method, path) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
        // Every documented route is really served (never a 404 from the fallback).
        let r = app
            .http
            .request(method.to_uppercase().parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_ne!(
            r.status(),
            reqwest::StatusCode::NOT_FOUND,
            "{method} {path}"
        );
    }
    assert_eq!(
        documented,
        expected.len(),
        "a route is documented but not listed here"
    );
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

async fn health_and_readiness(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    assert_eq!(app.get_json("/healthz").await["status"], "ok");
    let ready = app.get_json("/readyz").await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["database"], "ok");
    let feed = match b {
        Backend::Sqlite => "local",
        Backend::Postgres => "live",
    };
    assert_eq!(ready["checks"]["revocation_feed"], feed);
}
