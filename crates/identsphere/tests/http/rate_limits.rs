//! Rate limits (SECURITY.md rule 15): 429 + Retry-After, recovery with time
//! (a manual clock, no sleeping), the same answers for unknown addresses, and
//! budgets shared through Redis or kept in-process when Redis is down.
use crate::support::*;
use identsphere::{
    core::{
        audit::{AuditAction, AuditEvent},
        clock::ManualClock,
        rate_limit::{conformance, Limit, LimitKind, RateLimits},
    },
    AuthServiceConfig,
};
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;

both_stores!(
    login_per_ip_with_the_defaults,
    failed_logins_lock_account_and_address_alike_for_unknown_addresses,
    failed_logins_lock_an_account_from_every_address,
    password_reconfirmations_share_the_login_lockout,
    signup_per_ip,
    forgot_and_resend_per_account_and_per_ip,
    reset_per_ip,
    mfa_verify_per_ip,
    limits_off_limit_nothing,
);

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(chrono::Utc::now()))
}

/// The documented defaults on `clock`.
fn defaults(clock: &Arc<ManualClock>) -> impl FnOnce(&mut AuthServiceConfig) {
    let clock = clock.clone();
    move |c| {
        c.rate_limits = RateLimits::default();
        c.clock = clock;
    }
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// Asserts a 429 `rate_limited` with `Retry-After: secs`.
async fn limited(r: Response, secs: u64) {
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some(secs.to_string().as_str()),
        "Retry-After"
    );
    problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

async fn events(app: &TestApp, action: AuditAction) -> Vec<AuditEvent> {
    app.audit(Some(action)).await
}

async fn login_per_ip_with_the_defaults(b: Backend) {
    let clock = clock();
    let Some(app) = TestApp::spawn_with(b, defaults(&clock)).await else {
        return;
    };
    assert_eq!(
        app.get_json("/readyz").await["checks"]["rate_limits"],
        "in_process"
    );
    // Distinct addresses: only the per-IP budget (20/min, burst 10) is spent.
    for i in 0..10 {
        let r = app
            .login(&format!("u{i}@example.com"), "wrong password")
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    limited(app.login("u10@example.com", "wrong password").await, 3).await;
    clock.advance(secs(2));
    limited(app.login("u10@example.com", "wrong password").await, 1).await;
    clock.advance(secs(1));
    assert_eq!(
        app.login("u10@example.com", "wrong password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // Audited with ids only (none here: nobody is known), once per window.
    let hits = events(&app, AuditAction::RateLimitExceeded).await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].actor_id, None);
    assert_eq!(
        hits[0].metadata,
        json!({ "limit": "login_ip", "retry_after_secs": 3 })
    );
}

async fn failed_logins_lock_account_and_address_alike_for_unknown_addresses(b: Backend) {
    let clock = clock();
    let Some(app) = TestApp::spawn_with(b, |c| {
        defaults(&clock)(c);
        // Spent in the per-IP test; here only the account budgets count.
        c.rate_limits
            .set(LimitKind::LoginIp, Limit::per_minute(1000, 1000));
    })
    .await
    else {
        return;
    };
    let ann = app.user("ann@example.com").await;
    let ann_id = ann["user"]["id"].as_str().unwrap().to_owned();
    // Five failures per account from one address, then even the right
    // password waits: for a registered address and an unknown one alike.
    for email in ["ann@example.com", "nobody@example.com"] {
        for i in 0..5 {
            let r = app.login(email, "wrong password").await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{email} {i}");
        }
        limited(app.login(email, PASSWORD).await, 60).await;
        // Spelling variants are one account.
        limited(app.login(&email.to_uppercase(), PASSWORD).await, 60).await;
    }
    clock.advance(secs(60));
    assert_eq!(
        app.login("ann@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.login("nobody@example.com", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let all = events(&app, AuditAction::UserLockedOut).await;
    assert_eq!(all.len(), 2, "one audit event per locked budget: {all:?}");
    let actors: Vec<_> = all
        .iter()
        .map(|e| e.actor_id.map(|a| a.to_string()))
        .collect();
    assert!(actors.contains(&Some(ann_id)), "{actors:?}");
    assert!(actors.contains(&None), "{actors:?}");
    for e in &all {
        assert_eq!(e.metadata["limit"], "login_failures_account_ip");
        assert!(!e.metadata.to_string().contains('@'));
    }
}

async fn failed_logins_lock_an_account_from_every_address(b: Backend) {
    // Loopback cannot vary its address: the per-address budget is raised
    // so that the account's own budget (10 failures, then one a minute) shows.
    let clock = clock();
    let Some(app) = TestApp::spawn_with(b, |c| {
        defaults(&clock)(c);
        c.rate_limits
            .set(LimitKind::LoginIp, Limit::per_minute(1000, 1000))
            .set(
                LimitKind::LoginFailuresAccountIp,
                Limit::per_minute(1000, 1000),
            );
    })
    .await
    else {
        return;
    };
    app.user("ann@example.com").await;
    for email in ["ann@example.com", "nobody@example.com"] {
        for i in 0..10 {
            let r = app.login(email, "wrong password").await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{email} {i}");
        }
        limited(app.login(email, PASSWORD).await, 60).await;
    }
    let lockouts = events(&app, AuditAction::UserLockedOut).await;
    assert_eq!(lockouts.len(), 2, "{lockouts:?}");
    assert!(lockouts
        .iter()
        .all(|e| e.metadata["limit"] == "login_failures_account"));
    // A success does not spend the budget: only failures count.
    clock.advance(secs(60));
    for _ in 0..3 {
        assert_eq!(
            app.login("ann@example.com", PASSWORD).await.status(),
            StatusCode::OK
        );
    }
}

async fn signup_per_ip(b: Backend) {
    let clock = clock();
    let Some(app) = TestApp::spawn_with(b, defaults(&clock)).await else {
        return;
    };
    let signup = |email: String| {
        let app = &app;
        async move {
            app.post(
                "/v1/auth/signup",
                json!({ "email": email, "password": PASSWORD }),
            )
            .await
        }
    };
    for i in 0..10 {
        assert_eq!(
            signup(format!("s{i}@example.com")).await.status(),
            StatusCode::CREATED
        );
    }
    // 20 an hour: one every three minutes after the burst of 10.
    limited(signup("s10@example.com".into()).await, 180).await;
    limited(signup("s0@example.com".into()).await, 180).await;
    clock.advance(secs(180));
    assert_eq!(
        signup("s10@example.com".into()).await.status(),
        StatusCode::CREATED
    );
}

async fn forgot_and_resend_per_account_and_per_ip(b: Backend) {
    let clock = clock();
    let Some(app) = TestApp::spawn_with(b, defaults(&clock)).await else {
        return;
    };
    app.post(
        "/v1/auth/signup",
        json!({ "email": "ann@example.com", "password": PASSWORD }),
    )
    .await;
    for path in ["/v1/auth/password/forgot", "/v1/auth/email/verify/resend"] {
        // Three an hour per target address, registered or not: the answers
        // are the same, so the limit reveals nothing.
        for email in ["ann@example.com", "nobody@example.com"] {
            for i in 0..3 {
                let r = app.post(path, json!({ "email": email })).await;
                assert_eq!(r.status(), StatusCode::ACCEPTED, "{path} {email} {i}");
            }
            limited(app.post(path, json!({ "email": email })).await, 1200).await;
        }
        // Per client address: 10 at once (8 spent above), then 20 an hour.
        for email in ["other1@example.com", "other2@example.com"] {
            let r = app.post(path, json!({ "email": email })).await;
            assert_eq!(r.status(), StatusCode::ACCEPTED, "{path} {email}");
        }
        let r = app
            .post(path, json!({ "email": "other3@example.com" }))
            .await;
        limited(r, 180).await;
    }
    clock.advance(secs(1200));
    let r = app
        .post(
            "/v1/auth/password/forgot",
            json!({ "email": "ann@example.com" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

async fn reset_per_ip(b: Backend) {
    let clock = clock();
    let Some(app) = TestApp::spawn_with(b, defaults(&clock)).await else {
        return;
    };
    let reset = || {
        app.post(
            "/v1/auth/password/reset",
            json!({ "token": "not-a-token", "new_password": "a brand new passphrase" }),
        )
    };
    for _ in 0..10 {
        problem(reset().await, StatusCode::BAD_REQUEST, "invalid_token").await;
    }
    limited(reset().await, 6).await;
    clock.advance(secs(6));
    problem(reset().await, StatusCode::BAD_REQUEST, "invalid_token").await;
}

async fn mfa_verify_per_ip(b: Backend) {
    let clock = clock();
    let Some(app) = TestApp::spawn_with(b, defaults(&clock)).await else {
        return;
    };
    // Every attempt counts from one address (20/min, burst 10), before the
    // MFA token is even looked up.
    let attempt = || {
        app.post(
            "/v1/auth/mfa/verify",
            json!({ "mfa_token": "no-such-token", "code": "123456" }),
        )
    };
    for _ in 0..10 {
        problem(
            attempt().await,
            StatusCode::UNAUTHORIZED,
            "invalid_mfa_token",
        )
        .await;
    }
    limited(attempt().await, 3).await;
    clock.advance(secs(3));
    problem(
        attempt().await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;
    let hits = events(&app, AuditAction::RateLimitExceeded).await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(
        hits[0].metadata,
        json!({ "limit": "mfa_verify_ip", "retry_after_secs": 3 })
    );
}

async fn limits_off_limit_nothing(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| c.rate_limits = RateLimits::disabled()).await else {
        return;
    };
    app.user("ann@example.com").await;
    for _ in 0..15 {
        assert_eq!(
            app.login("ann@example.com", "wrong password")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.login("ann@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_json("/readyz").await["checks"]["rate_limits"],
        "off"
    );
}

fn unique_prefix() -> String {
    format!("identsphere:rl:test-{}:", uuid::Uuid::now_v7().simple())
}

#[tokio::test]
async fn redis_limiter_conformance() {
    let limiter = identsphere::rate_limit::RedisLimiter::connect(&redis_url(), unique_prefix())
        .await
        .unwrap();
    conformance::run(&limiter, "conf").await;
    use identsphere::core::rate_limit::RateLimiter;
    assert_eq!(
        limiter.backend(),
        "redis",
        "Redis must be reachable for this test"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_budget_through_redis() {
    let clock = clock();
    let prefix = unique_prefix();
    let shared = |c: &mut AuthServiceConfig| {
        defaults(&clock)(c);
        c.redis_url = Some(SecretString::from(redis_url()));
        c.redis_key_prefix = prefix.clone();
    };
    // Two services, each with its own Redis connection (and its own store:
    // the budget lives in Redis alone).
    let a = TestApp::spawn_with(Backend::Sqlite, shared).await.unwrap();
    let b = TestApp::spawn_with(Backend::Sqlite, shared).await.unwrap();
    for app in [&a, &b] {
        assert_eq!(
            app.get_json("/readyz").await["checks"]["rate_limits"],
            "redis"
        );
    }
    for i in 0..10 {
        let app = if i % 2 == 0 { &a } else { &b };
        let r = app
            .login(&format!("u{i}@example.com"), "wrong password")
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    limited(a.login("x@example.com", "wrong password").await, 3).await;
    limited(b.login("x@example.com", "wrong password").await, 3).await;
    clock.advance(secs(3));
    assert_eq!(
        b.login("x@example.com", "wrong password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    limited(a.login("y@example.com", "wrong password").await, 3).await;

    // No address or email is a Redis key.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        assert!(!key.contains('@') && !key.contains("127.0.0.1"), "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_keeps_serving_with_in_process_limits() {
    let clock = clock();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        defaults(&clock)(c);
        c.redis_url = Some(SecretString::from("redis://127.0.0.1:1"));
        c.redis_key_prefix = unique_prefix();
    })
    .await
    .unwrap();
    let ready = app.get_json("/readyz").await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(
        ready["checks"]["rate_limits"],
        "in_process (redis unreachable)"
    );
    for i in 0..10 {
        let r = app
            .login(&format!("u{i}@example.com"), "wrong password")
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    limited(app.login("x@example.com", "wrong password").await, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_redis_coming_back() {
    // A Redis of our own on a free port, started only after the service.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let clock = clock();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        defaults(&clock)(c);
        c.redis_url = Some(SecretString::from(format!("redis://127.0.0.1:{port}")));
        c.redis_key_prefix = unique_prefix();
    })
    .await
    .unwrap();
    let status = || async { app.get_json("/readyz").await["checks"]["rate_limits"].clone() };
    assert_eq!(status().await, "in_process (redis unreachable)");
    // In-process budget spent meanwhile.
    for _ in 0..10 {
        app.login("u@example.com", "wrong password").await;
    }
    limited(app.login("x@example.com", "wrong password").await, 3).await;

    let mut redis = RedisProcess(
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed"),
    );
    let mut back = false;
    for _ in 0..100 {
        if status().await == "redis" {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back, "readiness never saw Redis come back");
    // The shared budget (empty in the new Redis) is used again.
    assert_eq!(
        app.login("x@example.com", "wrong password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    redis.0.kill().unwrap();
    redis.0.wait().unwrap();
}

/// Kills the Redis a test started, even when the test fails.
struct RedisProcess(std::process::Child);

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A stolen access token is no way around the lockout: wrong passwords at
/// step-up (and the other re-confirmations) count like failed logins.
async fn password_reconfirmations_share_the_login_lockout(b: Backend) {
    let clock = clock();
    let Some(app) = TestApp::spawn_with(b, |c| {
        defaults(&clock)(c);
        // Here the account's budget is under test, not the address's.
        c.rate_limits
            .set(LimitKind::PasswordConfirmIp, Limit::per_minute(1000, 1000));
    })
    .await
    else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let access = crate::support::token(&login);
    let wrong = json!({ "password": "wrong password" });
    for i in 0..10 {
        let r = app
            .post_bearer("/v1/auth/step-up", &access, wrong.clone())
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{i}");
    }
    let right = json!({ "password": PASSWORD });
    limited(
        app.post_bearer("/v1/auth/step-up", &access, right.clone())
            .await,
        60,
    )
    .await;
    let change = json!({ "current_password": PASSWORD, "new_password": "another long passphrase" });
    limited(
        app.post_bearer("/v1/auth/password/change", &access, change)
            .await,
        60,
    )
    .await;
    limited(app.login("ann@example.com", PASSWORD).await, 60).await;
    clock.advance(secs(60));
    let r = app.post_bearer("/v1/auth/step-up", &access, right).await;
    assert_eq!(r.status(), StatusCode::OK);
}
