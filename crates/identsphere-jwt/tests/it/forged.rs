//! Tokens the test signs itself, with keys served from a JWKS it controls:
//! the cases a real server never produces.
use crate::support::{claims, now, with, KeyServer, Signer};
use identsphere_jwt::{Algorithm, ValidationError};
use serde_json::{json, Value};
use std::time::Duration;

const ISSUER: &str = "https://auth.example.com";

#[tokio::test]
async fn es256_tokens_validate() {
    let key = Signer::es256("ec-1");
    let keys = KeyServer::serving(vec![key.jwk()]).await;
    let validator = keys.builder(ISSUER).build().unwrap();
    let claims = validator
        .validate(&key.sign(&claims(ISSUER)))
        .await
        .unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.sid.as_str()),
        ("user-1", "session-1")
    );

    // Unless the app narrowed the accepted algorithms.
    let narrow = keys
        .builder(ISSUER)
        .algorithms([Algorithm::Rs256, Algorithm::EdDsa])
        .build()
        .unwrap();
    assert!(matches!(
        narrow.validate(&key.sign(&self::claims(ISSUER))).await,
        Err(ValidationError::DisallowedAlgorithm)
    ));
}

#[tokio::test]
async fn expiry_and_not_before_with_and_without_leeway() {
    let key = Signer::ed25519("ed-1");
    let keys = KeyServer::serving(vec![key.jwk()]).await;
    let strict = keys.builder(ISSUER).build().unwrap();
    let lenient = keys
        .builder(ISSUER)
        .leeway(Duration::from_secs(60))
        .build()
        .unwrap();

    let expired = key.sign(&with(claims(ISSUER), "exp", json!(now() - 10)));
    assert!(matches!(
        strict.validate(&expired).await,
        Err(ValidationError::Expired)
    ));
    assert!(lenient.validate(&expired).await.is_ok());
    let long_expired = key.sign(&with(claims(ISSUER), "exp", json!(now() - 120)));
    assert!(matches!(
        lenient.validate(&long_expired).await,
        Err(ValidationError::Expired)
    ));

    let early = key.sign(&with(claims(ISSUER), "nbf", json!(now() + 30)));
    assert!(matches!(
        strict.validate(&early).await,
        Err(ValidationError::NotYetValid)
    ));
    assert!(lenient.validate(&early).await.is_ok());
    let started = key.sign(&with(claims(ISSUER), "nbf", json!(now() - 1)));
    assert!(strict.validate(&started).await.is_ok());
}

#[tokio::test]
async fn required_claims_must_be_present_and_well_typed() {
    let key = Signer::ed25519("ed-1");
    let keys = KeyServer::serving(vec![key.jwk()]).await;
    let validator = keys.builder(ISSUER).build().unwrap();
    for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "sid", "auth_time"] {
        let token = key.sign(&with(claims(ISSUER), claim, Value::Null));
        match validator.validate(&token).await {
            Err(ValidationError::MissingClaim(c)) => assert_eq!(c, claim),
            other => panic!("{claim}: {other:?}"),
        }
    }
    let token = key.sign(&with(claims(ISSUER), "sid", json!(42)));
    match validator.validate(&token).await {
        Err(ValidationError::InvalidClaim(c)) => assert_eq!(c, "sid"),
        other => panic!("{other:?}"),
    }
    // Optional claims come through.
    let mut full = claims(ISSUER);
    full["org_id"] = "org-1".into();
    full["org_role"] = "admin".into();
    full["act"] = json!({ "sub": "admin-1" });
    let c = validator.validate(&key.sign(&full)).await.unwrap();
    assert_eq!(c.org_id.as_deref(), Some("org-1"));
    assert_eq!(c.org_role.as_deref(), Some("admin"));
    assert_eq!(c.act.map(|a| a.sub).as_deref(), Some("admin-1"));
}

#[tokio::test]
async fn kid_must_be_present_known_and_of_the_right_key_type() {
    let ed = Signer::ed25519("ed-1");
    let ec = Signer::es256("ec-1");
    let keys = KeyServer::serving(vec![ed.jwk()]).await;
    let validator = keys.builder(ISSUER).build().unwrap();

    // No kid, even though the set has exactly one key: refused, documented.
    assert!(matches!(
        validator.validate(&ed.sign_as(None, &claims(ISSUER))).await,
        Err(ValidationError::MissingKeyId)
    ));
    assert!(matches!(
        validator
            .validate(&ed.sign_as(Some("nope"), &claims(ISSUER)))
            .await,
        Err(ValidationError::UnknownKey)
    ));
    // ES256 under the kid of the Ed25519 key.
    assert!(matches!(
        validator
            .validate(&ec.sign_as(Some("ed-1"), &claims(ISSUER)))
            .await,
        Err(ValidationError::DisallowedAlgorithm)
    ));
    // Signed by another key that claims the known kid.
    let impostor = Signer::ed25519("ed-1");
    assert!(matches!(
        validator.validate(&impostor.sign(&claims(ISSUER))).await,
        Err(ValidationError::BadSignature)
    ));
    assert!(validator.validate(&ed.sign(&claims(ISSUER))).await.is_ok());
}

#[tokio::test]
async fn symmetric_keys_in_the_jwks_are_ignored() {
    // A JWKS that (wrongly) publishes an HMAC key must not make HS256 usable.
    let keys = KeyServer::serving(vec![json!({ "kty": "oct", "kid": "h", "k": "c2VjcmV0" })]).await;
    let validator = keys.builder(ISSUER).build().unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("h".into());
    let token = jsonwebtoken::encode(
        &header,
        &claims(ISSUER),
        &jsonwebtoken::EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    assert!(matches!(
        validator.validate(&token).await,
        Err(ValidationError::DisallowedAlgorithm)
    ));
}

#[tokio::test]
async fn garbage_is_malformed_and_errors_never_quote_the_token() {
    let key = Signer::ed25519("ed-1");
    let keys = KeyServer::serving(vec![key.jwk()]).await;
    let validator = keys.builder(ISSUER).build().unwrap();
    for garbage in ["", "abc", "a.b", "a.b.c.d", "not.base64!.x", "e30.e30.e30"] {
        assert!(
            matches!(
                validator.validate(garbage).await,
                Err(ValidationError::Malformed(_))
            ),
            "{garbage:?}"
        );
    }
    let token = key.sign(&with(claims(ISSUER), "aud", json!("someone-else")));
    let e = validator.validate(&token).await.unwrap_err();
    let shown = format!("{e} {e:?}");
    for part in token.split('.') {
        assert!(!shown.contains(part), "{shown}");
    }
    assert!(!shown.contains("someone-else"), "{shown}");
    assert_eq!(keys.fetches(), 1);
}
