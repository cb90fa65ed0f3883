//! Sign-up, verification, login, password and email flows.
use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

both_stores!(
    signup_verify_login_me,
    unverified_email_cannot_log_in,
    signup_does_not_reveal_registered_emails,
    login_failures_look_alike,
    verification_link_works_once,
    resend_verification,
    forgot_and_reset_password_revokes_sessions,
    change_password,
    email_change_needs_confirmation_and_tells_old_address,
    email_change_to_an_address_taken_meanwhile_conflicts,
    update_profile,
    me_shows_every_change_at_once,
    verification_can_be_disabled,
);

async fn signup_verify_login_me(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let cookie = app.signup_browser("Ann@Example.com", PASSWORD).await;
    let mail = app.mail.first_to("ann@example.com").await;
    assert!(mail.text().contains(&format!(
        "http://localhost:{}/verify-email?token=",
        app.base.rsplit(':').next().unwrap()
    )));
    let r = app
        .post_with_cookie(
            "/v1/auth/email/verify",
            &cookie,
            json!({ "token": mail.token().unwrap() }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["email_verified"], true);

    let r = app.login("ANN@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let login: Value = r.json().await.unwrap();
    assert_eq!(login["status"], "ok");
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["expires_in"], 900);
    assert!(login["refresh_token"].as_str().unwrap().starts_with("rt_"));
    assert_eq!(login["user"]["id"], user["id"]);
    let access = login["access_token"].as_str().unwrap();

    let me: Value = app
        .get_bearer("/v1/users/me", access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me, user);
    let session: Value = app
        .get_bearer("/v1/session", access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["user"], user);
    assert_eq!(session["capabilities"], json!([]));
    assert!(session["organization"].is_null());
}

async fn unverified_email_cannot_log_in(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.post(
        "/v1/auth/signup",
        json!({ "email": "ann@example.com", "password": PASSWORD }),
    )
    .await;
    // The account is created by a job after the answer; its mail says it exists.
    app.mail.first_to("ann@example.com").await;
    problem(
        app.login("ann@example.com", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "email_not_verified",
    )
    .await;
    // A wrong password never learns that the account is unverified.
    problem(
        app.login("ann@example.com", "wrong password!").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
}

async fn verification_can_be_disabled(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| c.require_email_verification = false).await else {
        return;
    };
    app.post(
        "/v1/auth/signup",
        json!({ "email": "ann@example.com", "password": PASSWORD }),
    )
    .await;
    // The account is created by a job after the answer; its mail says it exists.
    app.mail.first_to("ann@example.com").await;
    assert_eq!(
        app.login("ann@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn signup_does_not_reveal_registered_emails(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let first = app
        .post(
            "/v1/auth/signup",
            json!({ "email": "ann@example.com", "password": PASSWORD }),
        )
        .await;
    let (s1, b1): (_, Value) = (first.status(), first.json().await.unwrap());
    let again = app
        .post(
            "/v1/auth/signup",
            json!({ "email": "ann@example.com", "password": "another password" }),
        )
        .await;
    let (s2, b2): (_, Value) = (again.status(), again.json().await.unwrap());
    assert_eq!((s1, &b1), (s2, &b2));
    // The account was never verified: the mailbox's owner gets a link to
    // finish it, choosing the password anew.
    let notice = app.mail.nth_to("ann@example.com", 1).await;
    assert!(
        notice.text().contains("never confirmed"),
        "{}",
        notice.text()
    );
    assert!(notice.token().is_some());
    // Once verified, a sign-up only tells the owner.
    app.signup_verified("bob@example.com").await;
    let r = app
        .post(
            "/v1/auth/signup",
            json!({ "email": "bob@example.com", "password": "another password" }),
        )
        .await;
    let (s3, b3): (_, Value) = (r.status(), r.json().await.unwrap());
    assert_eq!((s1, &b1), (s3, &b3));
    let notice = app.mail.nth_to("bob@example.com", 1).await;
    assert!(notice.text().contains("already has one"));
    assert!(notice.token().is_none());
    for path in ["/v1/auth/password/forgot", "/v1/auth/email/verify/resend"] {
        let known = app.post(path, json!({ "email": "ann@example.com" })).await;
        let unknown = app
            .post(path, json!({ "email": "nobody@example.com" }))
            .await;
        assert_eq!(known.status(), StatusCode::ACCEPTED);
        assert_eq!(unknown.status(), StatusCode::ACCEPTED);
        assert_eq!(known.text().await.unwrap(), unknown.text().await.unwrap());
    }
}

async fn login_failures_look_alike(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.signup_verified("ann@example.com").await;
    let wrong = problem(
        app.login("ann@example.com", "not the password").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let unknown = problem(
        app.login("bob@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let malformed = problem(
        app.login("not-an-email", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(wrong, unknown);
    assert_eq!(unknown, malformed);
}

async fn verification_link_works_once(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let cookie = app.signup_browser("ann@example.com", PASSWORD).await;
    let token = app.mail.first_to("ann@example.com").await.token().unwrap();
    // Concurrent clicks: exactly one succeeds.
    let attempts = futures::future::join_all((0..10).map(|_| {
        app.post_with_cookie("/v1/auth/email/verify", &cookie, json!({ "token": token }))
    }))
    .await;
    let ok = attempts
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    assert_eq!(ok, 1);
    problem(
        app.post("/v1/auth/email/verify", json!({ "token": token }))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    problem(
        app.post("/v1/auth/email/verify", json!({ "token": "made-up" }))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
}

async fn resend_verification(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.post(
        "/v1/auth/signup",
        json!({ "email": "ann@example.com", "password": PASSWORD }),
    )
    .await;
    let first = app.mail.first_to("ann@example.com").await.token().unwrap();
    app.post(
        "/v1/auth/email/verify/resend",
        json!({ "email": "ann@example.com" }),
    )
    .await;
    let second = app.mail.nth_to("ann@example.com", 1).await.token().unwrap();
    // The new link replaces the old one.
    problem(
        app.post("/v1/auth/email/verify", json!({ "token": first }))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    // A resent link carries no sign-up proof: it asks for the password.
    problem(
        app.post("/v1/auth/email/verify", json!({ "token": second }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        app.post(
            "/v1/auth/email/verify",
            json!({ "token": second, "password": PASSWORD })
        )
        .await
        .status(),
        StatusCode::OK
    );
    // Verified accounts get no more links.
    app.post(
        "/v1/auth/email/verify/resend",
        json!({ "email": "ann@example.com" }),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.mail.count_to("ann@example.com"), 2);
}

async fn forgot_and_reset_password_revokes_sessions(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let access = login["access_token"].as_str().unwrap();
    app.post(
        "/v1/auth/password/forgot",
        json!({ "email": "ann@example.com" }),
    )
    .await;
    let mail = app.mail.nth_to("ann@example.com", 1).await;
    assert!(mail.text().contains("/reset-password?token="));
    let token = mail.token().unwrap();
    // A weak password does not burn the link.
    let weak = app
        .post(
            "/v1/auth/password/reset",
            json!({ "token": token, "new_password": "short" }),
        )
        .await;
    let body = problem(weak, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "new_password");
    let r = app
        .post(
            "/v1/auth/password/reset",
            json!({ "token": token, "new_password": "a brand new password" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let again = app
        .post(
            "/v1/auth/password/reset",
            json!({ "token": token, "new_password": "yet another password" }),
        )
        .await;
    problem(again, StatusCode::BAD_REQUEST, "invalid_token").await;
    // Every session is gone, at once.
    problem(
        app.get_bearer("/v1/users/me", access).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let refresh = app
        .post(
            "/v1/auth/refresh",
            json!({ "refresh_token": login["refresh_token"] }),
        )
        .await;
    problem(refresh, StatusCode::UNAUTHORIZED, "unauthorized").await;
    problem(
        app.login("ann@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        app.login("ann@example.com", "a brand new password")
            .await
            .status(),
        StatusCode::OK
    );
}

async fn change_password(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let first = app.user("ann@example.com").await;
    let second: Value = app
        .login("ann@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let token = second["access_token"].as_str().unwrap();
    let wrong = app
        .post_bearer(
            "/v1/auth/password/change",
            token,
            json!({ "current_password": "nope nope nope", "new_password": "a brand new password" }),
        )
        .await;
    problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let r = app
        .post_bearer(
            "/v1/auth/password/change",
            token,
            json!({ "current_password": PASSWORD, "new_password": "a brand new password" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // This session lives on; the other one is signed out.
    assert_eq!(
        app.get_bearer("/v1/users/me", token).await.status(),
        StatusCode::OK
    );
    let other = app
        .get_bearer("/v1/users/me", first["access_token"].as_str().unwrap())
        .await;
    problem(other, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert!(app
        .mail
        .nth_to("ann@example.com", 1)
        .await
        .text()
        .contains("password of your account was just changed"));
    assert_eq!(
        app.login("ann@example.com", "a brand new password")
            .await
            .status(),
        StatusCode::OK
    );
}

async fn email_change_needs_confirmation_and_tells_old_address(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    app.signup_verified("taken@example.com").await;
    let token = login["access_token"].as_str().unwrap();
    let wrong = app
        .post_bearer(
            "/v1/auth/email/change",
            token,
            json!({ "new_email": "new@example.com", "password": "wrong password" }),
        )
        .await;
    problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // A taken address gets the same answer and no mail.
    let taken = app
        .post_bearer(
            "/v1/auth/email/change",
            token,
            json!({ "new_email": "taken@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(taken.status(), StatusCode::ACCEPTED);
    let r = app
        .post_bearer(
            "/v1/auth/email/change",
            token,
            json!({ "new_email": "new@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let link = app.mail.first_to("new@example.com").await.token().unwrap();
    // Nothing changes before confirmation.
    let me: Value = app
        .get_bearer("/v1/users/me", token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ann@example.com");
    let r = app
        .post("/v1/auth/email/change/confirm", json!({ "token": link }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = app
        .get_bearer("/v1/users/me", token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "new@example.com");
    assert!(app
        .mail
        .nth_to("ann@example.com", 1)
        .await
        .text()
        .contains("no longer signs in"));
    assert_eq!(app.mail.count_to("taken@example.com"), 1);
    assert_eq!(
        app.login("new@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    problem(
        app.login("ann@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
}

async fn update_profile(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let token = app.user("ann@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch = |body: Value| {
        app.http
            .patch(app.url("/v1/users/me"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let me: Value = patch(json!({ "name": "  Ann Lee " }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "Ann Lee");
    let me: Value = patch(json!({})).await.unwrap().json().await.unwrap();
    assert_eq!(me["name"], "Ann Lee");
    let me: Value = patch(json!({ "name": null }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(me["name"].is_null());
    problem(
        patch(json!({ "name": "x".repeat(201) })).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    problem(
        patch(json!({ "email": "x@example.com" })).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

async fn email_change_to_an_address_taken_meanwhile_conflicts(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let token = login["access_token"].as_str().unwrap();
    let body = json!({ "new_email": "new@example.com", "password": PASSWORD });
    assert_eq!(
        app.post_bearer("/v1/auth/email/change", token, body)
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let link = app.mail.first_to("new@example.com").await.token().unwrap();
    // Someone else signs up with the address before the link is used.
    app.post(
        "/v1/auth/signup",
        json!({ "email": "new@example.com", "password": PASSWORD }),
    )
    .await;
    let verify = app.mail.nth_to("new@example.com", 1).await.token().unwrap();
    assert_eq!(
        app.post(
            "/v1/auth/email/verify",
            json!({ "token": verify, "password": PASSWORD })
        )
        .await
        .status(),
        StatusCode::OK
    );
    let r = app
        .post("/v1/auth/email/change/confirm", json!({ "token": link }))
        .await;
    problem(r, StatusCode::CONFLICT, "conflict").await;
    let me: Value = app
        .get_bearer("/v1/users/me", token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ann@example.com");
}

/// `GET /v1/users/me` and `/v1/session` are served from a cache: every change
/// shows at once on the next read (the email change is checked the same way
/// by `email_change_needs_confirmation_and_tells_old_address`).
async fn me_shows_every_change_at_once(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let token = token(&app.user("ann@example.com").await);
    for name in ["Ann Lee", "Ann"] {
        app.get_json_bearer("/v1/users/me", &token).await;
        app.rename(&token, name).await;
        assert_eq!(
            app.get_json_bearer("/v1/session", &token).await["user"]["name"],
            name
        );
    }
}
