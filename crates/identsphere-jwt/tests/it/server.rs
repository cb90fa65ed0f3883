//! Tokens issued by a real IdentSphere server, validated over real HTTP.
use crate::support::{b64, clock_in_the_past, header_of, payload_of, KeyServer, Server};
use identsphere::core::tokens::JwtAlg;
use identsphere_jwt::{Algorithm, ValidationError, Validator};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn rs256_and_eddsa_tokens_from_the_server_validate() {
    for (alg, name) in [(JwtAlg::Rs256, "RS256"), (JwtAlg::EdDsa, "EdDSA")] {
        let server = Server::spawn(alg).await;
        let login = server.login("ann@example.com").await;
        assert_eq!(header_of(&login.access_token)["alg"], name);

        let claims = server
            .validator()
            .validate(&login.access_token)
            .await
            .unwrap();
        assert_eq!(claims.sub, login.user_id, "{name}");
        assert_eq!(claims.sid, login.session_id, "{name}");
        assert_eq!(claims.iss, server.base);
        assert_eq!(claims.aud, "identsphere");
        assert!(claims.amr.contains(&"pwd".to_owned()), "{:?}", claims.amr);
        assert!(claims.exp > claims.iat && claims.act.is_none() && claims.org_id.is_none());
        // Everything the server put in the token is in the claims.
        assert_eq!(
            serde_json::to_value(&claims).unwrap(),
            payload_of(&login.access_token)
        );

        // A trailing slash on the configured issuer does not matter.
        let slash = Validator::builder(format!("{}/", server.base), "identsphere")
            .build()
            .unwrap();
        assert_eq!(slash.validate(&login.access_token).await.unwrap(), claims);
    }
}

#[tokio::test]
async fn wrong_audience_or_issuer_is_refused() {
    let server = Server::spawn(JwtAlg::EdDsa).await;
    let token = server.login("ann@example.com").await.access_token;

    let other_app = Validator::builder(&server.base, "billing").build().unwrap();
    assert!(matches!(
        other_app.validate(&token).await,
        Err(ValidationError::WrongAudience)
    ));

    let other_issuer = Validator::builder("https://auth.example.com", "identsphere")
        .jwks_url(server.jwks_url())
        .build()
        .unwrap();
    assert!(matches!(
        other_issuer.validate(&token).await,
        Err(ValidationError::WrongIssuer)
    ));
}

#[tokio::test]
async fn expired_server_tokens_are_refused() {
    // The server's clock is an hour behind: its 15-minute tokens are born expired.
    let server = Server::spawn_with(JwtAlg::Rs256, |c| {
        c.clock = clock_in_the_past(Duration::from_secs(3600));
    })
    .await;
    let token = server.login("ann@example.com").await.access_token;
    assert!(matches!(
        server.validator().validate(&token).await,
        Err(ValidationError::Expired)
    ));
    // Nothing else is wrong with it: a huge leeway accepts it.
    let lenient = Validator::builder(&server.base, "identsphere")
        .leeway(Duration::from_secs(7200))
        .build()
        .unwrap();
    assert!(lenient.validate(&token).await.is_ok());
}

#[tokio::test]
async fn a_key_rotated_in_after_caching_validates_after_one_refetch() {
    let server = Server::spawn(JwtAlg::EdDsa).await;
    let keys = KeyServer::relaying(server.jwks_url()).await;
    let validator = keys.builder(&server.base).build().unwrap();

    let old = server.login("ann@example.com").await.access_token;
    validator.validate(&old).await.unwrap();
    validator.validate(&old).await.unwrap();
    assert_eq!(keys.fetches(), 1, "the cache serves the second validation");

    let new_kid = server.auth.rotate_signing_key().await.unwrap();
    let new = server.login_again("ann@example.com").await.access_token;
    assert_eq!(header_of(&new)["kid"], new_kid.as_str());
    assert_ne!(header_of(&new)["kid"], header_of(&old)["kid"]);

    validator.validate(&new).await.unwrap();
    assert_eq!(keys.fetches(), 2, "exactly one forced refetch");
    // The retired key stays published, so older tokens still validate, from the cache.
    validator.validate(&old).await.unwrap();
    validator.validate(&new).await.unwrap();
    assert_eq!(keys.fetches(), 2);
}

#[tokio::test]
async fn algorithm_confusion_is_refused() {
    let server = Server::spawn(JwtAlg::Rs256).await;
    let token = server.login("ann@example.com").await.access_token;
    let validator = server.validator();
    validator.validate(&token).await.unwrap();
    let kid = header_of(&token)["kid"].as_str().unwrap().to_owned();
    let claims = payload_of(&token);
    let body = b64(&serde_json::to_vec(&claims).unwrap());
    let disallowed = |r: Result<_, ValidationError>| {
        assert!(
            matches!(r, Err(ValidationError::DisallowedAlgorithm)),
            "{r:?}"
        )
    };

    // alg: none, with and without a signature.
    let none = b64(json!({ "alg": "none", "typ": "JWT", "kid": kid })
        .to_string()
        .as_bytes());
    disallowed(validator.validate(&format!("{none}.{body}.c2ln")).await);
    assert!(matches!(
        validator.validate(&format!("{none}.{body}.")).await,
        Err(ValidationError::Malformed(_))
    ));

    // HS256 "signed" with the public key, in the forms an attacker might try.
    let jwks = server.jwks().await;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .clone();
    let n = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        jwk["n"].as_str().unwrap(),
    )
    .unwrap();
    for secret in [jwk.to_string().into_bytes(), n] {
        let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(kid.clone());
        let forged =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
        disallowed(validator.validate(&forged).await);
    }

    // An accepted algorithm that does not fit the RSA key named by kid.
    let ed = b64(json!({ "alg": "EdDSA", "kid": kid }).to_string().as_bytes());
    let sig = token.rsplit('.').next().unwrap();
    disallowed(validator.validate(&format!("{ed}.{body}.{sig}")).await);

    // RS256 itself, when the app accepts only EdDSA.
    let eddsa_only = Validator::builder(&server.base, "identsphere")
        .algorithms([Algorithm::EdDsa])
        .build()
        .unwrap();
    disallowed(eddsa_only.validate(&token).await);
}

#[tokio::test]
async fn tampered_tokens_fail_the_signature_check() {
    let server = Server::spawn(JwtAlg::EdDsa).await;
    let ann = server.login("ann@example.com").await;
    let bob = server.login("bob@example.com").await;
    let validator = server.validator();

    // Ann's token claiming to be Bob.
    let mut claims = payload_of(&ann.access_token);
    claims["sub"] = bob.user_id.clone().into();
    let parts: Vec<&str> = ann.access_token.split('.').collect();
    let body = b64(&serde_json::to_vec(&claims).unwrap());
    let tampered = format!("{}.{body}.{}", parts[0], parts[2]);
    assert!(matches!(
        validator.validate(&tampered).await,
        Err(ValidationError::BadSignature)
    ));

    // Ann's header and payload with Bob's signature.
    let bob_sig = bob.access_token.rsplit('.').next().unwrap();
    let swapped = format!("{}.{}.{bob_sig}", parts[0], parts[1]);
    assert!(matches!(
        validator.validate(&swapped).await,
        Err(ValidationError::BadSignature)
    ));

    // The untouched tokens still validate.
    assert_eq!(
        validator.validate(&ann.access_token).await.unwrap().sub,
        ann.user_id
    );
    assert_eq!(
        validator.validate(&bob.access_token).await.unwrap().sub,
        bob.user_id
    );
}

#[tokio::test]
async fn an_hs256_server_publishes_no_keys_so_its_tokens_are_refused() {
    let server = Server::spawn(JwtAlg::Hs256).await;
    let token = server.login("ann@example.com").await.access_token;
    assert!(matches!(
        server.validator().validate(&token).await,
        Err(ValidationError::DisallowedAlgorithm)
    ));
}
