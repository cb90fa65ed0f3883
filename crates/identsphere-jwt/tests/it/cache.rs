//! The JWKS cache: lazy fetch, TTL, forced refetch for unknown kids and its
//! rate limit, one shared fetch under concurrency, and stale-if-error.
use crate::support::{claims, KeyServer, Signer};
use futures::future::join_all;
use identsphere_jwt::ValidationError;
use std::time::Duration;

const ISSUER: &str = "https://auth.example.com";

#[tokio::test]
async fn nothing_is_fetched_before_the_first_validation_then_the_ttl_applies() {
    let key = Signer::ed25519("k1");
    let keys = KeyServer::serving(vec![key.jwk()]).await;
    let validator = keys
        .builder(ISSUER)
        .cache_ttl(Duration::from_secs(1))
        .build()
        .unwrap();
    assert_eq!(keys.fetches(), 0, "build fetches nothing");
    let token = key.sign(&claims(ISSUER));
    for _ in 0..5 {
        validator.validate(&token).await.unwrap();
    }
    assert_eq!(keys.fetches(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    validator.validate(&token).await.unwrap();
    validator.validate(&token).await.unwrap();
    assert_eq!(keys.fetches(), 2, "one refetch after the TTL");
}

#[tokio::test]
async fn the_ttl_refetch_picks_up_new_and_drops_removed_keys() {
    let (k1, k2) = (Signer::ed25519("k1"), Signer::ed25519("k2"));
    let keys = KeyServer::serving(vec![k1.jwk()]).await;
    let validator = keys
        .builder(ISSUER)
        .cache_ttl(Duration::from_millis(200))
        .build()
        .unwrap();
    let (t1, t2) = (k1.sign(&claims(ISSUER)), k2.sign(&claims(ISSUER)));
    validator.validate(&t1).await.unwrap();
    keys.set_keys(vec![k2.jwk()]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    validator.validate(&t2).await.unwrap();
    assert!(matches!(
        validator.validate(&t1).await,
        Err(ValidationError::UnknownKey)
    ));
}

#[tokio::test]
async fn garbage_kids_cannot_make_the_app_hammer_the_key_server() {
    let key = Signer::ed25519("real");
    let keys = KeyServer::serving(vec![key.jwk()]).await;
    let validator = keys.builder(ISSUER).build().unwrap(); // default 30 s cooldown
    validator
        .validate(&key.sign(&claims(ISSUER)))
        .await
        .unwrap();
    assert_eq!(keys.fetches(), 1);

    for i in 0..50 {
        let token = key.sign_as(Some(&format!("garbage-{i}")), &claims(ISSUER));
        assert!(matches!(
            validator.validate(&token).await,
            Err(ValidationError::UnknownKey)
        ));
    }
    let results = join_all((50..150).map(|i| {
        let validator = validator.clone();
        let token = key.sign_as(Some(&format!("garbage-{i}")), &claims(ISSUER));
        async move { validator.validate(&token).await }
    }))
    .await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(ValidationError::UnknownKey))));
    assert_eq!(keys.fetches(), 2, "150 unknown kids cost one refetch");
    // Real tokens are unaffected.
    validator
        .validate(&key.sign(&claims(ISSUER)))
        .await
        .unwrap();
    assert_eq!(keys.fetches(), 2);
}

#[tokio::test]
async fn the_refetch_cooldown_is_configurable() {
    let key = Signer::ed25519("real");
    let keys = KeyServer::serving(vec![key.jwk()]).await;
    let validator = keys
        .builder(ISSUER)
        .refetch_cooldown(Duration::from_secs(1))
        .build()
        .unwrap();
    let garbage = key.sign_as(Some("garbage"), &claims(ISSUER));
    for _ in 0..2 {
        for _ in 0..10 {
            assert!(matches!(
                validator.validate(&garbage).await,
                Err(ValidationError::UnknownKey)
            ));
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    // The first fetch (lazy fill) plus one forced refetch per cooldown window.
    assert_eq!(keys.fetches(), 3);
}

#[tokio::test]
async fn a_key_published_during_the_cooldown_waits_for_it() {
    let (k1, k2) = (Signer::ed25519("k1"), Signer::ed25519("k2"));
    let keys = KeyServer::serving(vec![k1.jwk()]).await;
    let validator = keys
        .builder(ISSUER)
        .refetch_cooldown(Duration::from_secs(1))
        .build()
        .unwrap();
    validator.validate(&k1.sign(&claims(ISSUER))).await.unwrap();
    // A garbage kid spends the forced refetch...
    let garbage = k1.sign_as(Some("garbage"), &claims(ISSUER));
    assert!(validator.validate(&garbage).await.is_err());
    assert_eq!(keys.fetches(), 2);
    // ...so a key rotated in right after is unknown until the cooldown has passed.
    keys.set_keys(vec![k1.jwk(), k2.jwk()]);
    let t2 = k2.sign(&claims(ISSUER));
    assert!(matches!(
        validator.validate(&t2).await,
        Err(ValidationError::UnknownKey)
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    validator.validate(&t2).await.unwrap();
    assert_eq!(keys.fetches(), 3);
}

#[tokio::test]
async fn concurrent_validations_share_one_fetch() {
    let key = Signer::ed25519("k1");
    let keys = KeyServer::serving(vec![key.jwk()]).await;
    keys.set_delay(Duration::from_millis(300));
    let validator = keys.builder(ISSUER).build().unwrap();
    let token = key.sign(&claims(ISSUER));
    let results = join_all((0..32).map(|_| validator.validate(&token))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(keys.fetches(), 1, "cold cache, 32 callers, one fetch");

    // The same for a rotated-in kid: one forced refetch, shared.
    let k2 = Signer::ed25519("k2");
    keys.set_keys(vec![key.jwk(), k2.jwk()]);
    let t2 = k2.sign(&claims(ISSUER));
    let results = join_all((0..32).map(|_| validator.validate(&t2))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(keys.fetches(), 2);
}

#[tokio::test]
async fn stale_keys_are_served_while_the_key_server_is_down() {
    let key = Signer::ed25519("k1");
    let keys = KeyServer::serving(vec![key.jwk()]).await;
    let validator = keys
        .builder(ISSUER)
        .cache_ttl(Duration::from_millis(200))
        .error_backoff(Duration::from_secs(1))
        .build()
        .unwrap();
    let token = key.sign(&claims(ISSUER));
    validator.validate(&token).await.unwrap();

    keys.set_failing(true);
    tokio::time::sleep(Duration::from_millis(250)).await;
    validator.validate(&token).await.unwrap();
    assert_eq!(
        keys.fetches(),
        2,
        "the refetch was tried, failed, and the stale set served"
    );
    for _ in 0..10 {
        validator.validate(&token).await.unwrap();
    }
    assert_eq!(keys.fetches(), 2, "no retry within the error backoff");

    // An unknown kid cannot be settled while the server is down: 503, not 401.
    let other = Signer::ed25519("k2").sign(&claims(ISSUER));
    let e = validator.validate(&other).await.unwrap_err();
    assert!(e.is_unavailable(), "{e:?}");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    keys.set_failing(false);
    validator.validate(&token).await.unwrap();
    assert_eq!(
        keys.fetches(),
        3,
        "retried after the backoff, and recovered"
    );
}

#[tokio::test]
async fn stale_if_error_is_bounded_by_max_stale() {
    let key = Signer::ed25519("k1");
    let keys = KeyServer::serving(vec![key.jwk()]).await;
    let validator = keys
        .builder(ISSUER)
        .cache_ttl(Duration::from_millis(200))
        .max_stale(Duration::from_millis(600))
        .error_backoff(Duration::ZERO)
        .build()
        .unwrap();
    let token = key.sign(&claims(ISSUER));
    validator.validate(&token).await.unwrap();
    keys.set_failing(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    validator.validate(&token).await.unwrap(); // 300 ms old: stale but usable
    tokio::time::sleep(Duration::from_millis(700)).await;
    let e = validator.validate(&token).await.unwrap_err(); // 1 s old: too stale
    assert!(
        matches!(&e, ValidationError::JwksUnavailable(j) if j.url() == keys.url()),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_unreachable_or_broken_jwks_is_unavailable_not_invalid() {
    let key = Signer::ed25519("k1");
    let token = key.sign(&claims(ISSUER));

    let keys = KeyServer::serving(vec![key.jwk()]).await;
    keys.set_failing(true);
    let validator = keys.builder(ISSUER).build().unwrap(); // default 5 s backoff
    for _ in 0..5 {
        assert!(validator
            .validate(&token)
            .await
            .unwrap_err()
            .is_unavailable());
    }
    assert_eq!(
        keys.fetches(),
        1,
        "failures back off instead of retrying per request"
    );

    // Nothing listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    let validator = identsphere_jwt::Validator::builder(ISSUER, "identsphere")
        .jwks_url(dead)
        .build()
        .unwrap();
    assert!(validator
        .validate(&token)
        .await
        .unwrap_err()
        .is_unavailable());

    // Not a JWK Set.
    let keys = KeyServer::serving(vec![]).await;
    keys.set_body(serde_json::json!({ "error": "not here" }));
    let validator = keys.builder(ISSUER).build().unwrap();
    assert!(validator
        .validate(&token)
        .await
        .unwrap_err()
        .is_unavailable());
}
