//! Access tokens verified by an independent JWT implementation (jwt-simple)
//! from our published JWKS, key rotation, and refusal of forged tokens.
use crate::support::*;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use identsphere::core::tokens::JwtAlg;
use jwt_simple::prelude::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::HashSet;

both_stores!(
    rs256_tokens_verify_against_jwks,
    eddsa_tokens_verify_against_jwks,
    hs256_tokens_verify_with_the_secret_and_jwks_is_empty,
    forged_tokens_are_refused
);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Extra {
    sid: String,
    amr: Vec<String>,
    auth_time: i64,
}

fn options(app: &TestApp) -> VerificationOptions {
    let issuer = format!("http://localhost:{}", app.base.rsplit(':').next().unwrap());
    VerificationOptions {
        allowed_issuers: Some(HashSet::from([issuer])),
        allowed_audiences: Some(HashSet::from(["identsphere".to_owned()])),
        ..Default::default()
    }
}

fn b64(v: &Value) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(v.as_str().unwrap()).unwrap()
}

async fn jwks(app: &TestApp) -> Vec<Value> {
    let r = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["keys"]
        .as_array()
        .unwrap()
        .clone()
}

fn verify(app: &TestApp, jwk: &Value, token: &str) -> JWTClaims<Extra> {
    match jwk["kty"].as_str().unwrap() {
        "RSA" => RS256PublicKey::from_components(&b64(&jwk["n"]), &b64(&jwk["e"]))
            .unwrap()
            .verify_token::<Extra>(token, Some(options(app)))
            .unwrap(),
        "OKP" => Ed25519PublicKey::from_bytes(&b64(&jwk["x"]))
            .unwrap()
            .verify_token::<Extra>(token, Some(options(app)))
            .unwrap(),
        other => panic!("unexpected kty {other}"),
    }
}

async fn asymmetric(b: Backend, alg: JwtAlg, kty: &str) {
    let Some(app) = TestApp::spawn_with(b, |c| c.jwt_alg = alg).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let token = login["access_token"].as_str().unwrap();
    let keys = jwks(&app).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], kty);
    assert_eq!(keys[0]["alg"], alg.as_str());
    assert_eq!(keys[0]["use"], "sig");
    assert!(keys[0].get("d").is_none(), "private material published");
    assert_eq!(keys[0]["kid"].as_str().unwrap(), header_kid(token));
    let claims = verify(&app, &keys[0], token);
    assert_eq!(claims.subject.as_deref(), login["user"]["id"].as_str());
    assert_eq!(claims.custom.sid, login["session_id"].as_str().unwrap());
    assert_eq!(claims.custom.amr, ["pwd"]);
    assert!(claims.jwt_id.is_some());
    let lifetime = claims.expires_at.unwrap().as_secs() - claims.issued_at.unwrap().as_secs();
    assert_eq!(lifetime, 900);

    // Rotation: new tokens use the new key; the old key stays published and valid.
    let new_kid = app.service.rotate_signing_key().await.unwrap();
    let keys = jwks(&app).await;
    assert_eq!(keys.len(), 2);
    assert_eq!(
        app.get_bearer("/v1/users/me", token).await.status(),
        StatusCode::OK
    );
    let next: Value = app
        .login("ann@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let next_token = next["access_token"].as_str().unwrap();
    assert_eq!(header_kid(next_token), new_kid);
    let new_key = keys.iter().find(|k| k["kid"] == new_kid.as_str()).unwrap();
    verify(&app, new_key, next_token);
    assert_eq!(
        app.get_bearer("/v1/users/me", next_token).await.status(),
        StatusCode::OK
    );
}

async fn rs256_tokens_verify_against_jwks(b: Backend) {
    asymmetric(b, JwtAlg::Rs256, "RSA").await;
}

async fn eddsa_tokens_verify_against_jwks(b: Backend) {
    asymmetric(b, JwtAlg::EdDsa, "OKP").await;
}

async fn hs256_tokens_verify_with_the_secret_and_jwks_is_empty(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    assert!(jwks(&app).await.is_empty());
    let login = app.user("ann@example.com").await;
    let key = HS256Key::from_bytes(b"test-secret-that-is-at-least-32-bytes-long");
    let claims = key
        .verify_token::<Extra>(login["access_token"].as_str().unwrap(), Some(options(&app)))
        .unwrap();
    assert_eq!(claims.custom.sid, login["session_id"].as_str().unwrap());
    // A token for another audience, signed with the right key, is refused by the server.
    let mut wrong = Claims::with_custom_claims(claims.custom, Duration::from_mins(5))
        .with_issuer(claims.issuer.unwrap())
        .with_audience("someone-else")
        .with_subject(claims.subject.unwrap());
    let forged = key.authenticate(wrong.clone()).unwrap();
    problem(
        app.get_bearer("/v1/users/me", &forged).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    wrong.audiences = Some(Audiences::AsString("identsphere".into()));
    wrong.issuer = Some("http://evil.example".into());
    let forged = key.authenticate(wrong).unwrap();
    problem(
        app.get_bearer("/v1/users/me", &forged).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

async fn forged_tokens_are_refused(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| c.jwt_alg = JwtAlg::Rs256).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let token = login["access_token"].as_str().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    // alg=none with the real claims.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    problem(
        app.get_bearer("/v1/users/me", &none).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // Algorithm confusion: HS256 keyed with the public key's bytes.
    let keys = jwks(&app).await;
    let header = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#,
        keys[0]["kid"].as_str().unwrap()
    ));
    let signing_input = format!("{header}.{}", parts[1]);
    for public in [
        keys[0].to_string(),
        keys[0]["n"].as_str().unwrap().to_owned(),
    ] {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(public.as_bytes()).unwrap();
        mac.update(signing_input.as_bytes());
        let confused = format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        problem(
            app.get_bearer("/v1/users/me", &confused).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    // A flipped signature byte.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let tampered = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    problem(
        app.get_bearer("/v1/users/me", &tampered).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_eq!(
        app.get_bearer("/v1/users/me", token).await.status(),
        StatusCode::OK
    );
}
