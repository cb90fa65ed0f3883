//! Sign-up, forgot-password and resend-verification answer at once and do
//! the address-dependent work in a job: the whole flows still work, nothing
//! happens for unknown addresses, and a job that fails is retried.
use crate::support::{both_stores, Backend, TestApp, PASSWORD};
use identsphere::core::audit::AuditAction;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

both_stores!(
    signup_then_mail_then_verify_then_login,
    forgot_then_mail_then_reset_then_login,
    resend_mails_a_fresh_link_that_verifies,
    unknown_addresses_leave_no_job_and_get_no_mail,
    a_failing_job_is_retried_until_it_succeeds,
);

/// Polls `/readyz` until no job is pending.
async fn jobs_drained(app: &TestApp) -> Value {
    for _ in 0..200 {
        let ready = app.get_json("/readyz").await;
        if ready["checks"]["jobs"]["pending"] == 0 {
            return ready;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("jobs still pending after 5 s");
}

async fn signup_then_mail_then_verify_then_login(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    // The answer (and its proof cookie) comes before the account exists.
    let cookie = app.signup_browser("new@example.com", PASSWORD).await;
    let token = app.mail.first_to("new@example.com").await.token().unwrap();
    let r = app
        .post_with_cookie("/v1/auth/email/verify", &cookie, json!({ "token": token }))
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = app.login("new@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["name"], "Test");
    let ready = jobs_drained(&app).await;
    assert_eq!(ready["checks"]["jobs"]["dead"], 0);
    // The job wrote the sign-up's audit event with the request's client.
    let events = app.audit(Some(AuditAction::UserSignedUp)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0].actor_id.map(|id| id.to_string()).as_deref(),
        body["user"]["id"].as_str()
    );
    assert_eq!(events[0].ip.as_deref(), Some("127.0.0.1"));
}

async fn forgot_then_mail_then_reset_then_login(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.signup_verified("ann@example.com").await;
    let r = app
        .post(
            "/v1/auth/password/forgot",
            json!({ "email": "ann@example.com" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let token = app
        .mail
        .nth_to("ann@example.com", 1)
        .await
        .token()
        .expect("reset link");
    let r = app
        .post(
            "/v1/auth/password/reset",
            json!({ "token": token, "new_password": "a brand new passphrase" }),
        )
        .await;
    assert_eq!(r.status().as_u16() / 100, 2, "{}", r.text().await.unwrap());
    assert_eq!(
        app.login("ann@example.com", "a brand new passphrase")
            .await
            .status(),
        StatusCode::OK
    );
}

async fn resend_mails_a_fresh_link_that_verifies(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.signup_browser("bo@example.com", PASSWORD).await;
    let first = app.mail.first_to("bo@example.com").await.token().unwrap();
    let r = app
        .post(
            "/v1/auth/email/verify/resend",
            json!({ "email": "bo@example.com" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let second = app.mail.nth_to("bo@example.com", 1).await.token().unwrap();
    assert_ne!(first, second);
    // A resent link carries no sign-up proof: its opener chooses the password.
    let body = |token: &str| json!({ "token": token, "password": "chosen on the link" });
    let r = app.post("/v1/auth/email/verify", body(&first)).await;
    assert_ne!(
        r.status(),
        StatusCode::OK,
        "the fresh link replaced the first"
    );
    let r = app.post("/v1/auth/email/verify", body(&second)).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

async fn unknown_addresses_leave_no_job_and_get_no_mail(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    for path in ["/v1/auth/password/forgot", "/v1/auth/email/verify/resend"] {
        let r = app
            .post(path, json!({ "email": "nobody@example.com" }))
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let ready = jobs_drained(&app).await;
    assert_eq!(
        ready["checks"]["jobs"],
        json!({ "worker": "running", "pending": 0, "dead": 0 })
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.mail.count_to("nobody@example.com"), 0);
}

/// The link table is taken away while a forgot-password job runs: the job
/// fails, is retried with backoff, and mails the link once the table is back.
async fn a_failing_job_is_retried_until_it_succeeds(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| {
        c.jobs.backoff_base = chrono::Duration::milliseconds(100);
        c.jobs.poll_interval = Duration::from_millis(100);
    })
    .await
    else {
        return;
    };
    app.signup_verified("cy@example.com").await;
    app.sql("ALTER TABLE one_time_tokens RENAME TO one_time_tokens_away")
        .await;
    let r = app
        .post(
            "/v1/auth/password/forgot",
            json!({ "email": "cy@example.com" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // Attempts at about 0, 0.1, 0.3 and 0.7 s (backoff 100 ms doubling,
    // less jitter): by now a few have failed, and none has given up.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let store = app.service.state().identity().store().clone();
    let counts = store.jobs().count_jobs().await.unwrap();
    assert_eq!(
        (
            counts.iter().map(|c| c.pending).sum::<u64>(),
            counts.iter().map(|c| c.dead).sum::<u64>()
        ),
        (1, 0),
        "{counts:?}"
    );
    assert_eq!(app.mail.count_to("cy@example.com"), 1, "no link yet");
    app.sql("ALTER TABLE one_time_tokens_away RENAME TO one_time_tokens")
        .await;
    let token = app
        .mail
        .nth_to("cy@example.com", 1)
        .await
        .token()
        .expect("reset link after the retry");
    let r = app
        .post(
            "/v1/auth/password/reset",
            json!({ "token": token, "new_password": "another new passphrase" }),
        )
        .await;
    assert_eq!(r.status().as_u16() / 100, 2);
    jobs_drained(&app).await;
}
