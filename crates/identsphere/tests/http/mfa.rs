//! TOTP second factor, recovery codes and step-up, over HTTP on both stores.
//!
//! Codes are computed by `identsphere_testkit::totp`, an implementation
//! independent of the server's (`totp-rs` there; RFC 4226 truncation over
//! `ring`'s HMAC-SHA-1 there), itself checked against RFC 6238's Appendix B
//! vectors. Time is a ManualClock: nothing sleeps.
use crate::recorder;
use crate::support::{
    both_stores, claims, cookie_value, problem, token, Backend, TestApp, PASSWORD,
};
use chrono::Duration;
use identsphere::core::{
    audit::AuditAction,
    clock::{Clock, ManualClock},
    rate_limit::{Limit, LimitKind},
};
use identsphere_testkit::totp::{base32_decode, totp_at};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

both_stores! {
    enrollment_then_login_needs_a_code_once,
    one_code_on_twenty_mfa_tokens_is_accepted_once,
    three_wrong_codes_end_the_mfa_token,
    recovery_codes_work_once,
    disable_and_regenerate_need_the_password_and_recent_auth,
    sensitive_operations_need_a_recent_authentication,
    step_up_with_a_code_adds_otp,
    the_account_budget_holds_across_mfa_tokens,
    parallel_guesses_stay_within_the_account_budget,
    racing_guesses_on_one_mfa_token_get_three_tries,
}

/// For races of many MFA tokens on one code: the per-account budget (5 code
/// checks a minute, see `the_account_budget_holds_across_mfa_tokens`) would
/// answer most racers 429 before they reach the race under test.
fn many_checks_per_account(c: &mut identsphere::AuthServiceConfig) {
    c.rate_limits.set(
        LimitKind::MfaVerifyAccount,
        Limit::per_minute(10_000, 10_000),
    );
}

/// A server on a manual clock, with helpers for TOTP (also used by `org_mfa`).
pub(crate) struct Mfa {
    pub app: TestApp,
    pub clock: Arc<ManualClock>,
}

impl Mfa {
    pub async fn spawn(b: Backend) -> Option<Self> {
        Self::spawn_with(b, |_| {}).await
    }

    pub async fn spawn_with(
        b: Backend,
        tweak: impl FnOnce(&mut identsphere::AuthServiceConfig),
    ) -> Option<Self> {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let app = TestApp::spawn_with(b, |c| {
            c.clock = clock.clone();
            tweak(c);
        })
        .await?;
        Some(Self { app, clock })
    }

    pub fn code(&self, secret: &[u8]) -> String {
        totp_at(secret, self.clock.now().timestamp())
    }

    pub fn next_step(&self) {
        self.clock.advance(Duration::seconds(30));
    }

    /// Enrolls and confirms TOTP; returns the secret and the recovery codes,
    /// with the clock moved on to the next step (the confirming code is spent).
    pub async fn enable(&self, token: &str) -> (Vec<u8>, Vec<String>) {
        let r = self
            .app
            .post_bearer("/v1/auth/mfa/totp/enroll", token, json!({}))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let e: Value = r.json().await.unwrap();
        let b32 = e["secret"].as_str().unwrap();
        let uri = e["otpauth_uri"].as_str().unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains(&format!("secret={b32}&")), "{uri}");
        assert!(uri.contains("algorithm=SHA1&digits=6&period=30"), "{uri}");
        let secret = base32_decode(b32);
        assert_eq!(secret.len(), 20);
        let right = self.code(&secret);
        let wrong = if right == "000000" {
            "111111"
        } else {
            "000000"
        };
        problem(
            self.app
                .post_bearer("/v1/auth/mfa/totp/confirm", token, json!({ "code": wrong }))
                .await,
            StatusCode::UNAUTHORIZED,
            "invalid_mfa_code",
        )
        .await;
        let r = self
            .app
            .post_bearer(
                "/v1/auth/mfa/totp/confirm",
                token,
                json!({ "code": self.code(&secret) }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        let codes: Vec<String> = body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(codes.len(), 10);
        self.next_step();
        (secret, codes)
    }

    /// Steps `token`'s session up with a code; returns the new access token.
    pub async fn step_up(&self, token: &str, secret: &[u8]) -> String {
        let r = self
            .app
            .post_bearer(
                "/v1/auth/step-up",
                token,
                json!({ "code": self.code(secret) }),
            )
            .await;
        let stepped = crate::support::body(r, StatusCode::OK).await;
        self.next_step();
        crate::support::token(&stepped)
    }

    /// A login that must stop at the second factor; returns the MFA token.
    pub async fn mfa_login(&self, email: &str) -> String {
        let r = self.app.login(email, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers().get("set-cookie").is_none(),
            "no cookies before the second factor"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "mfa_required", "{body}");
        assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
        assert!(body.get("access_token").is_none());
        assert!(body.get("refresh_token").is_none());
        body["mfa_token"].as_str().unwrap().to_owned()
    }

    pub async fn verify(&self, mfa_token: &str, field: &str, code: &str) -> reqwest::Response {
        self.app
            .post(
                "/v1/auth/mfa/verify",
                json!({ "mfa_token": mfa_token, field: code }),
            )
            .await
    }
}

async fn enrollment_then_login_needs_a_code_once(b: Backend) {
    let Some(m) = Mfa::spawn(b).await else { return };
    let login = m.app.user("ann@example.com").await;
    assert_eq!(claims(&token(&login))["amr"], json!(["pwd"]));
    let status = m.app.get_json_bearer("/v1/auth/mfa", &token(&login)).await;
    assert_eq!(
        status,
        json!({ "enabled": false, "recovery_codes_left": 0 })
    );
    let (secret, _) = m.enable(&token(&login)).await;
    let status = m.app.get_json_bearer("/v1/auth/mfa", &token(&login)).await;
    assert_eq!(
        status,
        json!({ "enabled": true, "recovery_codes_left": 10 })
    );
    // The session signed in with the password alone: now that the account
    // has a second factor, sensitive operations need it.
    problem(
        m.app
            .post_bearer("/v1/auth/mfa/totp/enroll", &token(&login), json!({}))
            .await,
        StatusCode::FORBIDDEN,
        "step_up_required",
    )
    .await;
    // A second enrollment is refused while MFA is on.
    let stepped = m.step_up(&token(&login), &secret).await;
    problem(
        m.app
            .post_bearer("/v1/auth/mfa/totp/enroll", &stepped, json!({}))
            .await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;

    let mfa_token = m.mfa_login("ann@example.com").await;
    // The code of the step that confirmed the enrollment was spent there.
    m.clock.advance(Duration::seconds(-30));
    let spent = m.code(&secret);
    m.next_step();
    problem(
        m.verify(&mfa_token, "code", &spent).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_code",
    )
    .await;
    let code = m.code(&secret);
    let r = m.verify(&mfa_token, "code", &code).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(cookie_value(r.headers(), "identsphere_access").is_some());
    assert!(cookie_value(r.headers(), "identsphere_refresh").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["user"]["email"], "ann@example.com");
    assert_eq!(claims(&token(&body))["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(
        m.app
            .get_bearer("/v1/users/me", &token(&body))
            .await
            .status(),
        StatusCode::OK
    );
    // The MFA token is spent.
    problem(
        m.verify(&mfa_token, "code", &code).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;
    // The same code, still inside its step, is refused on a new login (replay).
    let again = m.mfa_login("ann@example.com").await;
    problem(
        m.verify(&again, "code", &code).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_code",
    )
    .await;
    // The next step's code works; a step two ahead is outside the window.
    m.clock.advance(Duration::seconds(90));
    let far = totp_at(&secret, m.clock.now().timestamp() + 60);
    problem(
        m.verify(&again, "code", &far).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_code",
    )
    .await;
    let next = totp_at(&secret, m.clock.now().timestamp() + 30);
    assert_eq!(
        m.verify(&again, "code", &next).await.status(),
        StatusCode::OK
    );
    // An MFA token lives 5 minutes.
    let late = m.mfa_login("ann@example.com").await;
    m.clock.advance(Duration::minutes(5));
    problem(
        m.verify(&late, "code", &m.code(&secret)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;
    // Exactly one of code and recovery_code.
    problem(
        m.app
            .post(
                "/v1/auth/mfa/verify",
                json!({ "mfa_token": late, "code": "123456", "recovery_code": "x" }),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

async fn one_code_on_twenty_mfa_tokens_is_accepted_once(b: Backend) {
    let Some(m) = Mfa::spawn_with(b, many_checks_per_account).await else {
        return;
    };
    let login = m.app.user("ann@example.com").await;
    let (secret, _) = m.enable(&token(&login)).await;
    let mut tokens = Vec::new();
    for _ in 0..20 {
        tokens.push(m.mfa_login("ann@example.com").await);
    }
    let code = m.code(&secret);
    let answers =
        futures::future::join_all(tokens.iter().map(|t| m.verify(t, "code", &code))).await;
    let mut ok = 0;
    for r in answers {
        match r.status() {
            StatusCode::OK => ok += 1,
            _ => {
                problem(r, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
            }
        }
    }
    assert_eq!(ok, 1, "one code, one login");
}

async fn three_wrong_codes_end_the_mfa_token(b: Backend) {
    let Some(m) = Mfa::spawn(b).await else { return };
    let login = m.app.user("ann@example.com").await;
    let (secret, recovery) = m.enable(&token(&login)).await;
    let mfa_token = m.mfa_login("ann@example.com").await;
    let right = m.code(&secret);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..3 {
        problem(
            m.verify(&mfa_token, "code", wrong).await,
            StatusCode::UNAUTHORIZED,
            "invalid_mfa_code",
        )
        .await;
    }
    problem(
        m.verify(&mfa_token, "code", &right).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;
    problem(
        m.verify(&mfa_token, "recovery_code", &recovery[0]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;
    // The dead token did not spend the code: a new login accepts it.
    let fresh = m.mfa_login("ann@example.com").await;
    assert_eq!(
        m.verify(&fresh, "code", &right).await.status(),
        StatusCode::OK
    );
    // Failures are audited, by id only.
    let failed = m.app.audit(Some(AuditAction::MfaFailed)).await;
    assert_eq!(failed.len(), 3);
    let ann_id = login["user"]["id"].as_str().unwrap();
    assert!(failed.iter().all(
        |e| e.actor_id.map(|a| a.to_string()).as_deref() == Some(ann_id) && e.metadata == json!({})
    ));
    let actions: Vec<String> = m
        .app
        .audit(None)
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.iter().any(|a| a == "mfa.enabled"), "{actions:?}");
}

async fn recovery_codes_work_once(b: Backend) {
    let Some(m) = Mfa::spawn_with(b, many_checks_per_account).await else {
        return;
    };
    let login = m.app.user("ann@example.com").await;
    let (_, codes) = m.enable(&token(&login)).await;
    let first = m.mfa_login("ann@example.com").await;
    // Typed back in capitals and without the dash, it still matches.
    let typed = codes[0].to_uppercase().replace('-', "");
    let r = m.verify(&first, "recovery_code", &typed).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(claims(&token(&body))["amr"], json!(["pwd", "mfa"]));
    let again = m.mfa_login("ann@example.com").await;
    problem(
        m.verify(&again, "recovery_code", &codes[0]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_code",
    )
    .await;
    // One code raced on ten MFA tokens: one winner.
    let mut tokens = Vec::new();
    for _ in 0..10 {
        tokens.push(m.mfa_login("ann@example.com").await);
    }
    let answers = futures::future::join_all(
        tokens
            .iter()
            .map(|t| m.verify(t, "recovery_code", &codes[1])),
    )
    .await;
    let ok = answers
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    assert_eq!(ok, 1);
    let status = m.app.get_json_bearer("/v1/auth/mfa", &token(&body)).await;
    assert_eq!(status["recovery_codes_left"], 8);
}

async fn disable_and_regenerate_need_the_password_and_recent_auth(b: Backend) {
    let Some(m) = Mfa::spawn(b).await else { return };
    let login = m.app.user("ann@example.com").await;
    let (secret, old_codes) = m.enable(&token(&login)).await;
    // The password alone no longer steps up (issue 12 item 8): someone who
    // learnt it and holds a session must not turn the second factor off.
    problem(
        m.app
            .post_bearer(
                "/v1/auth/step-up",
                &token(&login),
                json!({ "password": PASSWORD }),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    for path in ["/v1/auth/mfa/recovery-codes", "/v1/auth/mfa/disable"] {
        problem(
            m.app
                .post_bearer(path, &token(&login), json!({ "password": PASSWORD }))
                .await,
            StatusCode::FORBIDDEN,
            "step_up_required",
        )
        .await;
    }
    let t = &m.step_up(&token(&login), &secret).await;
    for path in ["/v1/auth/mfa/recovery-codes", "/v1/auth/mfa/disable"] {
        problem(
            m.app
                .post_bearer(path, t, json!({ "password": "not the password" }))
                .await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    let r = m
        .app
        .post_bearer(
            "/v1/auth/mfa/recovery-codes",
            t,
            json!({ "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let new_codes: Value = r.json().await.unwrap();
    let new_codes = new_codes["recovery_codes"].as_array().unwrap().clone();
    assert_eq!(new_codes.len(), 10);
    let mfa_token = m.mfa_login("ann@example.com").await;
    problem(
        m.verify(&mfa_token, "recovery_code", &old_codes[0]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_code",
    )
    .await;
    assert_eq!(
        m.verify(&mfa_token, "recovery_code", new_codes[0].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    // Six minutes on, the right password is not enough.
    m.clock.advance(Duration::minutes(6));
    for path in ["/v1/auth/mfa/recovery-codes", "/v1/auth/mfa/disable"] {
        problem(
            m.app
                .post_bearer(path, t, json!({ "password": PASSWORD }))
                .await,
            StatusCode::FORBIDDEN,
            "step_up_required",
        )
        .await;
    }
    let r = m
        .app
        .post_bearer("/v1/auth/step-up", t, json!({ "code": m.code(&secret) }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let stepped: Value = r.json().await.unwrap();
    assert_eq!(
        m.app
            .post_bearer(
                "/v1/auth/mfa/disable",
                &token(&stepped),
                json!({ "password": PASSWORD })
            )
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    problem(
        m.app
            .post_bearer("/v1/auth/mfa/disable", t, json!({ "password": PASSWORD }))
            .await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    // Sign-in is back to the password alone.
    let r: Value = m
        .app
        .login("ann@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "ok");
}

async fn sensitive_operations_need_a_recent_authentication(b: Backend) {
    let Some(m) = Mfa::spawn(b).await else { return };
    let login = m.app.user("ann@example.com").await;
    let ann = token(&login);
    let org = m.app.org(&ann, "Acme").await;
    let (_, bob_id) = m.app.member(&ann, &org, "bob@example.com", "member").await;
    let key = json!({ "name": "ci", "scopes": ["members:read"], "org_id": org });
    let promote = format!("/v1/organizations/{org}/members/{bob_id}");
    let email = json!({ "new_email": "ann2@example.com", "password": PASSWORD });
    // Within 5 minutes of sign-in everything is allowed.
    m.clock.advance(Duration::seconds(299));
    assert_eq!(
        m.app
            .post_bearer("/v1/api-keys", &ann, key.clone())
            .await
            .status(),
        StatusCode::CREATED
    );
    m.clock.advance(Duration::seconds(2));
    problem(
        m.app.post_bearer("/v1/api-keys", &ann, key.clone()).await,
        StatusCode::FORBIDDEN,
        "step_up_required",
    )
    .await;
    problem(
        m.app
            .patch_bearer(&promote, &ann, json!({ "role": "owner" }))
            .await,
        StatusCode::FORBIDDEN,
        "step_up_required",
    )
    .await;
    problem(
        m.app
            .post_bearer("/v1/auth/email/change", &ann, email.clone())
            .await,
        StatusCode::FORBIDDEN,
        "step_up_required",
    )
    .await;
    problem(
        m.app
            .post_bearer("/v1/auth/mfa/totp/enroll", &ann, json!({}))
            .await,
        StatusCode::FORBIDDEN,
        "step_up_required",
    )
    .await;
    // Changes that involve no owner are not sensitive.
    assert_eq!(
        m.app
            .patch_bearer(&promote, &ann, json!({ "role": "admin" }))
            .await
            .status(),
        StatusCode::OK
    );
    // Step-up with a wrong password changes nothing.
    problem(
        m.app
            .post_bearer(
                "/v1/auth/step-up",
                &ann,
                json!({ "password": "wrong password" }),
            )
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    problem(
        m.app
            .post_bearer("/v1/auth/step-up", &ann, json!({ "code": "123456" }))
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_code",
    )
    .await;
    problem(
        m.app.post_bearer("/v1/auth/step-up", &ann, json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let r = m
        .app
        .post_bearer("/v1/auth/step-up", &ann, json!({ "password": PASSWORD }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let stepped: Value = r.json().await.unwrap();
    let c = claims(&token(&stepped));
    assert_eq!(c["auth_time"], m.clock.now().timestamp());
    assert_eq!(c["amr"], json!(["pwd"]));
    assert_eq!(stepped["session_id"], login["session_id"]);
    // The session row is authoritative: the older access token counts too.
    assert_eq!(
        m.app
            .post_bearer("/v1/api-keys", &ann, key.clone())
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        m.app
            .patch_bearer(&promote, &token(&stepped), json!({ "role": "owner" }))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        m.app
            .post_bearer("/v1/auth/email/change", &token(&stepped), email)
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    // Both refresh tokens of the session still work.
    for rt in [&login["refresh_token"], &stepped["refresh_token"]] {
        assert_eq!(
            m.app
                .post("/v1/auth/refresh", json!({ "refresh_token": rt }))
                .await
                .status(),
            StatusCode::OK
        );
    }
    m.clock.advance(Duration::minutes(6));
    problem(
        m.app
            .post_bearer("/v1/api-keys", &token(&stepped), key)
            .await,
        StatusCode::FORBIDDEN,
        "step_up_required",
    )
    .await;
}

async fn step_up_with_a_code_adds_otp(b: Backend) {
    let Some(m) = Mfa::spawn(b).await else { return };
    let login = m.app.user("ann@example.com").await;
    let (secret, _) = m.enable(&token(&login)).await;
    m.clock.advance(Duration::minutes(10));
    let code = m.code(&secret);
    let r = m
        .app
        .post_bearer("/v1/auth/step-up", &token(&login), json!({ "code": code }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let stepped: Value = r.json().await.unwrap();
    let c = claims(&token(&stepped));
    assert_eq!(c["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(c["auth_time"], m.clock.now().timestamp());
    recorder::install();
    let refused = || {
        recorder::counter(
            "identsphere_mfa_failures_total",
            &[("flow", "step_up"), ("method", "totp")],
        )
    };
    let before = refused();
    // The code is spent.
    problem(
        m.app
            .post_bearer("/v1/auth/step-up", &token(&login), json!({ "code": code }))
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_code",
    )
    .await;
    assert!(refused() > before);
}

async fn the_account_budget_holds_across_mfa_tokens(b: Backend) {
    // The default account budget: 5 code checks at once, then one every 12 s.
    // (TestApp raises only the per-address budgets.)
    let Some(m) = Mfa::spawn(b).await else { return };
    let login = m.app.user("ann@example.com").await;
    let ann_id = login["user"]["id"].as_str().unwrap().to_owned();
    let (secret, recovery) = m.enable(&token(&login)).await;
    let right = m.code(&secret);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    // Three wrong codes end the first MFA token; two more on a second one
    // spend the account's five checks.
    recorder::install();
    let refused = || {
        recorder::counter(
            "identsphere_mfa_failures_total",
            &[("flow", "login"), ("method", "totp")],
        )
    };
    let before = refused();
    let first = m.mfa_login("ann@example.com").await;
    let second = m.mfa_login("ann@example.com").await;
    for t in [&first, &first, &first, &second, &second] {
        problem(
            m.verify(t, "code", wrong).await,
            StatusCode::UNAUTHORIZED,
            "invalid_mfa_code",
        )
        .await;
    }
    // Counted as refused codes (other tests may add to the same counter).
    assert!(refused() >= before + 5);
    // Now every check waits, the right code included, on the surviving token
    // and on a fresh one alike: new logins buy no more guesses.
    let third = m.mfa_login("ann@example.com").await;
    let mut answers = Vec::new();
    for (t, field, code) in [
        (&second, "code", right.as_str()),
        (&third, "code", right.as_str()),
        (&third, "code", wrong),
        (&third, "recovery_code", recovery[0].as_str()),
    ] {
        let r = m.verify(t, field, code).await;
        assert_eq!(r.headers()["retry-after"], "12");
        answers.push(problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await);
    }
    // One answer whatever was sent: it tells nothing about the code, and
    // names nobody.
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    let text = answers[0].to_string();
    assert!(!text.contains("ann") && !text.contains(&ann_id), "{text}");
    // A signed-in session's step-up with a code draws on the same budget.
    let r = m
        .app
        .post_bearer("/v1/auth/step-up", &token(&login), json!({ "code": right }))
        .await;
    assert_eq!(r.headers()["retry-after"], "12");
    problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    // Refused checks spent nothing: once the budget refills, the same code
    // completes the fresh login.
    m.clock.advance(Duration::seconds(12));
    let r = m.verify(&third, "code", &right).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The limit hit is audited once, by id only.
    let hits = m.app.audit(Some(AuditAction::RateLimitExceeded)).await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].actor_id.map(|a| a.to_string()), Some(ann_id));
    assert_eq!(
        hits[0].metadata,
        json!({ "limit": "mfa_verify_account", "retry_after_secs": 12 })
    );
}

async fn parallel_guesses_stay_within_the_account_budget(b: Backend) {
    let Some(m) = Mfa::spawn(b).await else { return };
    let login = m.app.user("ann@example.com").await;
    let (secret, _) = m.enable(&token(&login)).await;
    let wrong = if m.code(&secret) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let mut tokens = Vec::new();
    for _ in 0..10 {
        tokens.push(m.mfa_login("ann@example.com").await);
    }
    // Twenty guesses at once, two per MFA token: the budget is taken before
    // any code is checked, so exactly five are checked, however they race.
    let guesses = tokens
        .iter()
        .chain(&tokens)
        .map(|t| m.verify(t, "code", wrong));
    let mut checked = 0;
    for r in futures::future::join_all(guesses).await {
        match r.status() {
            StatusCode::UNAUTHORIZED => {
                problem(r, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
                checked += 1;
            }
            _ => {
                problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
            }
        }
    }
    assert_eq!(checked, 5);
}

async fn racing_guesses_on_one_mfa_token_get_three_tries(b: Backend) {
    let Some(m) = Mfa::spawn_with(b, many_checks_per_account).await else {
        return;
    };
    let login = m.app.user("ann@example.com").await;
    let (secret, _) = m.enable(&token(&login)).await;
    let mfa_token = m.mfa_login("ann@example.com").await;
    let right = m.code(&secret);
    // Ten different wrong guesses at once: the token pays for an attempt
    // before a code is looked at, so three are checked and seven refused.
    let guesses: Vec<String> = (0..10)
        .map(|i| format!("{:06}", (right.parse::<u32>().unwrap() + 1 + i) % 1_000_000))
        .collect();
    let answers =
        futures::future::join_all(guesses.iter().map(|g| m.verify(&mfa_token, "code", g))).await;
    let mut codes = Vec::new();
    for r in answers {
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let body: Value = r.json().await.unwrap();
        codes.push(body["code"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        codes.iter().filter(|c| *c == "invalid_mfa_code").count(),
        3,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| *c == "invalid_mfa_token").count(),
        7,
        "{codes:?}"
    );
    problem(
        m.verify(&mfa_token, "code", &right).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;
}
