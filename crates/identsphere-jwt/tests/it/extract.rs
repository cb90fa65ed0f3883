//! The axum extractors (feature `axum`).
use crate::support::{claims, KeyServer, Signer};
use axum::{
    body::Body,
    extract::FromRef,
    http::{Request, StatusCode},
    routing::get,
    Router,
};
use identsphere_jwt::{Authenticated, Claims, RequireAuthLayer, Validator};
use serde_json::Value;
use tower::ServiceExt;

const ISSUER: &str = "https://auth.example.com";

async fn sub(claims: Claims) -> String {
    claims.sub
}

async fn sub_validated(Authenticated(claims): Authenticated) -> String {
    claims.sub
}

async fn call(app: Router, token: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::builder().uri("/");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let r = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn setup() -> (Validator, String) {
    let key = Signer::ed25519("k1");
    let keys = KeyServer::serving(vec![key.jwk()]).await;
    // The key server keeps running (on the test's runtime) after `keys` is dropped.
    (
        keys.builder(ISSUER).build().unwrap(),
        key.sign(&claims(ISSUER)),
    )
}

#[tokio::test]
async fn the_claims_extractor_reads_what_the_layer_stored() {
    let (validator, token) = setup().await;
    let app = Router::new()
        .route("/", get(sub))
        .layer(RequireAuthLayer::new(validator));
    assert_eq!(
        call(app.clone(), Some(&token)).await,
        (StatusCode::OK, "user-1".into())
    );
    assert_eq!(call(app, None).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_claims_extractor_without_the_layer_says_so() {
    let (_, token) = setup().await;
    let app = Router::new().route("/", get(sub));
    let (status, body) = call(app, Some(&token)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "internal_error");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("RequireAuthLayer is not installed"),
        "{body}"
    );
}

#[tokio::test]
async fn authenticated_validates_with_the_validator_from_state() {
    #[derive(Clone)]
    struct AppState {
        validator: Validator,
    }
    impl FromRef<AppState> for Validator {
        fn from_ref(state: &AppState) -> Self {
            state.validator.clone()
        }
    }
    let (validator, token) = setup().await;
    let app = Router::new()
        .route("/", get(sub_validated))
        .with_state(AppState { validator });
    assert_eq!(
        call(app.clone(), Some(&token)).await,
        (StatusCode::OK, "user-1".into())
    );
    let (status, body) = call(app.clone(), Some("garbage")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("\"code\":\"unauthorized\""), "{body}");
    assert_eq!(call(app, None).await.0, StatusCode::UNAUTHORIZED);
}
