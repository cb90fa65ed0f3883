//! `RequireAuthLayer` in an axum router and around a plain tower service.
use crate::support::{claims, KeyServer, Server, Signer};
use axum::{
    body::Body,
    http::{header, Request, Response, StatusCode},
    routing::{get, post},
    Extension, Router,
};
use identsphere::core::tokens::JwtAlg;
use identsphere_jwt::{Claims, RequireAuthLayer, Validator};
use serde_json::Value;
use tower::ServiceExt;

const ISSUER: &str = "https://auth.example.com";

async fn whoami(Extension(claims): Extension<Claims>) -> String {
    format!("{} {}", claims.sub, claims.sid)
}

fn app(layer: RequireAuthLayer) -> Router {
    Router::new()
        .route("/me", get(whoami))
        .route("/me", post(whoami))
        .layer(layer)
}

fn get_with(headers: &[(&str, &str)]) -> Request<Body> {
    request("GET", headers)
}

fn request(method: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut r = Request::builder().method(method).uri("/me");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Body::empty()).unwrap()
}

async fn body_text(r: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Asserts a problem+json answer and returns its body.
async fn problem(r: Response<Body>, status: StatusCode, code: &str) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let body: Value = serde_json::from_str(&body_text(r).await).unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["type"], format!("urn:identsphere:problem:{code}"));
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

#[tokio::test]
async fn the_layer_refuses_without_a_valid_token_and_passes_claims_with_one() {
    let server = Server::spawn(JwtAlg::EdDsa).await;
    let login = server.login("ann@example.com").await;
    let app = app(RequireAuthLayer::new(server.validator()));

    let r = app.clone().oneshot(get_with(&[])).await.unwrap();
    assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let r = app
        .clone()
        .oneshot(get_with(&[("authorization", "Basic dXNlcjpwYXNz")]))
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;

    for bad in ["garbage", &format!("{}x", login.access_token)] {
        let auth = format!("Bearer {bad}");
        let r = app
            .clone()
            .oneshot(get_with(&[("authorization", &auth)]))
            .await
            .unwrap();
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
        let body = problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
        assert!(!body.to_string().contains(bad), "the token is not echoed");
    }

    let auth = format!("Bearer {}", login.access_token);
    let r = app
        .clone()
        .oneshot(get_with(&[("authorization", &auth)]))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        body_text(r).await,
        format!("{} {}", login.user_id, login.session_id)
    );
}

#[tokio::test]
async fn an_unreachable_jwks_answers_503_not_401() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    let validator = Validator::builder(ISSUER, "identsphere")
        .jwks_url(dead.clone())
        .build()
        .unwrap();
    let token = Signer::ed25519("k1").sign(&claims(ISSUER));
    let auth = format!("Bearer {token}");
    let r = app(RequireAuthLayer::new(validator))
        .oneshot(get_with(&[("authorization", &auth)]))
        .await
        .unwrap();
    assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
    let body = problem(r, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert!(
        !body.to_string().contains(&dead),
        "internal URLs stay in the logs"
    );
}

#[tokio::test]
async fn the_cookie_is_read_only_when_enabled_and_then_needs_csrf_on_unsafe_methods() {
    let key = Signer::ed25519("k1");
    let keys = KeyServer::serving(vec![key.jwk()]).await;
    let validator = keys.builder(ISSUER).build().unwrap();
    let token = key.sign(&claims(ISSUER));
    let cookie = format!("identsphere_access={token}; identsphere_csrf=c5rf");

    // Off by default.
    let bearer_only = app(RequireAuthLayer::new(validator.clone()));
    let r = bearer_only
        .oneshot(get_with(&[("cookie", &cookie)]))
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let app = app(RequireAuthLayer::new(validator).with_cookie());
    let r = app
        .clone()
        .oneshot(get_with(&[("cookie", &cookie)]))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body_text(r).await, "user-1 session-1");

    let r = app
        .clone()
        .oneshot(request("POST", &[("cookie", &cookie)]))
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN, "csrf_failed").await;
    let r = app
        .clone()
        .oneshot(request(
            "POST",
            &[("cookie", &cookie), ("x-csrf-token", "wrong")],
        ))
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN, "csrf_failed").await;
    let r = app
        .clone()
        .oneshot(request(
            "POST",
            &[("cookie", &cookie), ("x-csrf-token", "c5rf")],
        ))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Bearer wins: a bad Bearer token is refused even with a good cookie.
    let r = app
        .clone()
        .oneshot(get_with(&[
            ("cookie", &cookie),
            ("authorization", "Bearer garbage"),
        ]))
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // And a Bearer request needs no CSRF header.
    let auth = format!("Bearer {token}");
    let r = app
        .oneshot(request("POST", &[("authorization", &auth)]))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_layer_wraps_any_tower_service() {
    let key = Signer::ed25519("k1");
    let keys = KeyServer::serving(vec![key.jwk()]).await;
    let validator = keys.builder(ISSUER).build().unwrap();
    let inner = tower::service_fn(|req: Request<()>| async move {
        let sub = req
            .extensions()
            .get::<Claims>()
            .map_or("none".to_owned(), |c| c.sub.clone());
        Ok::<_, std::convert::Infallible>(Response::new(sub))
    });
    let svc = tower::ServiceBuilder::new()
        .layer(RequireAuthLayer::new(validator))
        .service(inner);

    let auth = format!("Bearer {}", key.sign(&claims(ISSUER)));
    let ok = Request::builder()
        .header("authorization", auth)
        .body(())
        .unwrap();
    let r: Response<String> = svc.clone().oneshot(ok).await.unwrap();
    assert_eq!((r.status(), r.body().as_str()), (StatusCode::OK, "user-1"));

    let r = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_str(r.body()).unwrap();
    assert_eq!(body["code"], "unauthorized");
}
