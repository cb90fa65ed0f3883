//! The attacks of the outside security review (issue 12), each played out
//! over HTTP on both stores: it must fail the way the review says it did
//! not, and the owner's own use must keep working.
use crate::mfa::Mfa;
use crate::support::*;
use identsphere::core::{
    audit::AuditAction,
    clock::ManualClock,
    rate_limit::{Limit, LimitKind, RateLimits},
};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use std::{net::IpAddr, sync::Arc, time::Duration};

both_stores!(
    concurrent_wrong_passwords_are_checked_at_most_a_burst,
    concurrent_wrong_reconfirmations_are_limited_per_address,
    a_reset_ends_pending_links_and_lists_what_can_sign_in,
    pending_email_changes_are_listed_and_cancelled,
    pre_hijacked_accounts_go_to_the_mailbox_owner,
    pre_hijacking_leaves_nothing_when_verification_is_off,
    a_known_browser_is_not_locked_out_by_failures_elsewhere,
    the_step_up_window_is_configured_and_guards_owner_removal_and_deletion,
    an_email_change_ends_links_and_invitations_to_the_old_address,
    sign_up_mail_is_limited_per_address,
    csrf_tokens_are_bound_to_their_session,
    repeated_mfa_failures_warn_the_owner,
);

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(chrono::Utc::now()))
}

/// A client whose connections come from `127.0.0.N`: loopback has a whole
/// /8, so a test can be eight different client addresses.
fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, n]))
        .build()
        .unwrap()
}

fn count(answers: &[Response], status: StatusCode) -> usize {
    answers.iter().filter(|r| r.status() == status).count()
}

/// Item 1: 80 wrong passwords sent together from 8 addresses (with the
/// right one among them) are counted before Argon2 runs, so at most the
/// account's burst (10) is checked and the rest answer 429; a minute later,
/// one more. Before the fix the budget was peeked, and all 80 were hashed.
async fn concurrent_wrong_passwords_are_checked_at_most_a_burst(b: Backend) {
    let clock = clock();
    let Some(app) = TestApp::spawn_with(b, |c| {
        c.clock = clock.clone();
        c.rate_limits
            .set(LimitKind::LoginIp, Limit::per_minute(10_000, 10_000));
    })
    .await
    else {
        return;
    };
    app.signup_verified("ann@example.com").await;
    let clients: Vec<_> = (2..10).map(client_from).collect();
    let round = || {
        futures::future::join_all((0..80).map(|i| {
            let password = if i == 40 { PASSWORD } else { "wrong password" };
            clients[i % 8]
                .post(app.url("/v1/auth/login"))
                .json(&json!({ "email": "ann@example.com", "password": password }))
                .send()
        }))
    };
    // The burst is 10; the right password, if it was checked, gives its
    // attempt back, which one more guess may take.
    let checked = |answers: &[Response]| {
        count(answers, StatusCode::UNAUTHORIZED) + count(answers, StatusCode::OK)
    };
    let answers: Vec<Response> = round().await.into_iter().map(Result::unwrap).collect();
    let first = checked(&answers);
    assert!(first <= 11, "{first} of 80 were checked");
    assert!(count(&answers, StatusCode::TOO_MANY_REQUESTS) >= 69);
    // A minute refills one attempt.
    clock.advance(chrono::Duration::seconds(60));
    let answers: Vec<Response> = round().await.into_iter().map(Result::unwrap).collect();
    let second = checked(&answers);
    assert!(
        first + second <= 12,
        "{second} more were checked a minute later"
    );
}

/// Item 1: 40 wrong step-ups sent together with a stolen access token, from
/// one address, are bounded by the per-address re-confirmation budget and
/// the account's, counted before hashing.
async fn concurrent_wrong_reconfirmations_are_limited_per_address(b: Backend) {
    let clock = clock();
    let Some(app) = TestApp::spawn_with(b, |c| {
        c.clock = clock.clone();
        c.rate_limits = RateLimits::default();
        c.rate_limits
            .set(LimitKind::LoginIp, Limit::per_minute(10_000, 10_000))
            .set(LimitKind::PasswordConfirmIp, Limit::per_minute(5, 5));
    })
    .await
    else {
        return;
    };
    let access = token(&app.user("ann@example.com").await);
    let answers = futures::future::join_all((0..40).map(|_| {
        app.post_bearer(
            "/v1/auth/step-up",
            &access,
            json!({ "password": "wrong password" }),
        )
    }))
    .await;
    assert!(count(&answers, StatusCode::UNAUTHORIZED) <= 5);
    assert!(count(&answers, StatusCode::TOO_MANY_REQUESTS) >= 35);
    let limited = app
        .audit(Some(AuditAction::RateLimitExceeded))
        .await
        .into_iter()
        .filter(|e| e.metadata["limit"] == "password_confirm_ip")
        .count();
    assert_eq!(limited, 1, "audited once per window");
}

/// Item 2: someone who briefly held the session asked to move the account
/// to their address; the owner resets the password, and the change (and
/// every other link) no longer confirms. The mail lists what else can sign in.
async fn a_reset_ends_pending_links_and_lists_what_can_sign_in(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let owner = token(&app.user("ann@example.com").await);
    let key = json!({ "name": "deploy bot", "scopes": ["users:read"] });
    body(
        app.post_bearer("/v1/api-keys", &owner, key).await,
        StatusCode::CREATED,
    )
    .await;
    // The intruder, with the session, starts an email change to their address.
    let change = json!({ "new_email": "mallory@example.com", "password": PASSWORD });
    let r = app
        .post_bearer("/v1/auth/email/change", &owner, change)
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let hijack = app
        .mail
        .first_to("mallory@example.com")
        .await
        .token()
        .unwrap();
    // The owner resets the password (an older reset link first).
    // One at a time: mail is sent in the background, so two requests' mails
    // may arrive in either order, and only the newer link works.
    let mut reset = String::new();
    for nth in 1..=2 {
        let r = app
            .post(
                "/v1/auth/password/forgot",
                json!({ "email": "ann@example.com" }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        reset = app
            .mail
            .nth_to("ann@example.com", nth)
            .await
            .token()
            .unwrap();
    }
    let body_ = json!({ "token": reset, "new_password": "a brand new passphrase" });
    assert_eq!(
        app.post("/v1/auth/password/reset", body_).await.status(),
        StatusCode::NO_CONTENT
    );
    problem(
        app.post("/v1/auth/email/change/confirm", json!({ "token": hijack }))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    let mail = app.mail.nth_to("ann@example.com", 3).await;
    let text = mail.text();
    assert!(text.contains("was just reset"), "{text}");
    assert!(text.contains("API key \"deploy bot\""), "{text}");
    assert!(text.contains("/account/security"), "{text}");
    assert_eq!(
        app.login("ann@example.com", "a brand new passphrase")
            .await
            .status(),
        StatusCode::OK
    );
    let events = app.audit(Some(AuditAction::PasswordReset)).await;
    assert_eq!(
        events[0].metadata["links_ended"], 1,
        "{:?}",
        events[0].metadata
    );
}

/// Item 2: a pending email change can be seen and cancelled; the link dies.
async fn pending_email_changes_are_listed_and_cancelled(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let ann = token(&app.user("ann@example.com").await);
    problem(
        app.get_bearer("/v1/auth/email/change", &ann).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let change = json!({ "new_email": "new@example.com", "password": PASSWORD });
    app.post_bearer("/v1/auth/email/change", &ann, change).await;
    let link = app.mail.first_to("new@example.com").await.token().unwrap();
    let pending = app.get_json_bearer("/v1/auth/email/change", &ann).await;
    assert_eq!(pending["new_email"], "new@example.com");
    assert!(pending["expires_at"].as_str().is_some());
    assert_eq!(
        app.delete_bearer("/v1/auth/email/change", &ann)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    problem(
        app.delete_bearer("/v1/auth/email/change", &ann).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem(
        app.post("/v1/auth/email/change/confirm", json!({ "token": link }))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    assert_eq!(
        app.audit(Some(AuditAction::EmailChangeCancelled))
            .await
            .len(),
        1
    );
}

/// Item 3: the attacker signs up with the victim's address and a password
/// of their own. The victim's own sign-up attempt mails a link; clicking it
/// (or the attacker's first link) in the victim's browser asks for a
/// password, and the attacker's never goes live.
async fn pre_hijacked_accounts_go_to_the_mailbox_owner(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let attacker_cookie = app
        .signup_browser("victim@example.com", "the attacker's passphrase")
        .await;
    let attackers_link = app
        .mail
        .first_to("victim@example.com")
        .await
        .token()
        .unwrap();
    // The victim clicks the link in their inbox, in their own browser.
    problem(
        app.post("/v1/auth/email/verify", json!({ "token": attackers_link }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    // A cookie from another sign-up proves nothing for this link.
    let other_cookie = app.signup_browser("someone@example.com", PASSWORD).await;
    problem(
        app.post_with_cookie(
            "/v1/auth/email/verify",
            &other_cookie,
            json!({ "token": attackers_link }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    // The victim signs up too: the mail offers to finish the account.
    let r = app
        .post(
            "/v1/auth/signup",
            json!({ "email": "victim@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let finish = app.mail.nth_to("victim@example.com", 1).await;
    assert!(finish.text().contains("choose your password"));
    // The attacker's link was replaced: even their own browser is too late.
    problem(
        app.post_with_cookie(
            "/v1/auth/email/verify",
            &attacker_cookie,
            json!({ "token": attackers_link }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    let r = app
        .post(
            "/v1/auth/email/verify",
            json!({ "token": finish.token().unwrap(), "password": PASSWORD }),
        )
        .await;
    assert_eq!(body(r, StatusCode::OK).await["email_verified"], true);
    problem(
        app.login("victim@example.com", "the attacker's passphrase")
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        app.login("victim@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.audit(Some(AuditAction::AccountClaimed)).await.len(), 1);
}

/// Item 3 where sign-in does not wait for verification: the attacker signs
/// in, enrols TOTP and mints an API key. The owner verifies from the mailed
/// link (or resets the password): none of it survives.
async fn pre_hijacking_leaves_nothing_when_verification_is_off(b: Backend) {
    for by_reset in [false, true] {
        let Some(m) = Mfa::spawn_with(b, |c| c.require_email_verification = false).await else {
            return;
        };
        let app = &m.app;
        app.signup_browser("victim@example.com", "the attacker's passphrase")
            .await;
        let link = app
            .mail
            .first_to("victim@example.com")
            .await
            .token()
            .unwrap();
        let login = body(
            app.login("victim@example.com", "the attacker's passphrase")
                .await,
            StatusCode::OK,
        )
        .await;
        let session = token(&login);
        let key = json!({ "name": "backdoor", "scopes": ["users:read"] });
        let key = body(
            app.post_bearer("/v1/api-keys", &session, key).await,
            StatusCode::CREATED,
        )
        .await["key"]
            .as_str()
            .unwrap()
            .to_owned();
        m.enable(&session).await;
        if by_reset {
            app.post(
                "/v1/auth/password/forgot",
                json!({ "email": "victim@example.com" }),
            )
            .await;
            let reset = app
                .mail
                .nth_to("victim@example.com", 1)
                .await
                .token()
                .unwrap();
            let r = app
                .post(
                    "/v1/auth/password/reset",
                    json!({ "token": reset, "new_password": PASSWORD }),
                )
                .await;
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
        } else {
            let r = app
                .post(
                    "/v1/auth/email/verify",
                    json!({ "token": link, "password": PASSWORD }),
                )
                .await;
            assert_eq!(r.status(), StatusCode::OK);
        }
        // The attacker's session, key and authenticator are gone.
        problem(
            app.get_bearer("/v1/users/me", &session).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
        let r = app
            .http
            .get(app.url("/v1/users/me"))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "by_reset {by_reset}");
        let owner = body(
            app.login("victim@example.com", PASSWORD).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(owner["status"], "ok", "no second factor is left: {owner}");
    }
}

/// Item 6: ten wrong passwords (and one a minute after) from an attacker
/// keep the account's budget spent, yet the owner's browser, which signed
/// in before, signs in; a browser that never did waits; a forged or
/// another account's device cookie counts as none.
async fn a_known_browser_is_not_locked_out_by_failures_elsewhere(b: Backend) {
    let clock = clock();
    let Some(app) = TestApp::spawn_with(b, |c| {
        c.clock = clock.clone();
        c.rate_limits.set(
            LimitKind::LoginFailuresAccountIp,
            Limit::per_minute(1000, 1000),
        );
    })
    .await
    else {
        return;
    };
    app.signup_verified("ann@example.com").await;
    app.signup_verified("bob@example.com").await;
    let first = app.login("ann@example.com", PASSWORD).await;
    let device = cookie_value(first.headers(), "identsphere_device").expect("device cookie");
    assert!(set_cookies(first.headers())
        .iter()
        .any(|c| c.starts_with("identsphere_device=") && c.contains("HttpOnly")));
    let bobs = cookie_value(
        app.login("bob@example.com", PASSWORD).await.headers(),
        "identsphere_device",
    )
    .unwrap();
    for _ in 0..10 {
        app.login("ann@example.com", "wrong password").await;
    }
    let login_with = |cookie: String| {
        let app = &app;
        async move {
            app.post_with_cookie(
                "/v1/auth/login",
                &cookie,
                json!({ "email": "ann@example.com", "password": PASSWORD }),
            )
            .await
        }
    };
    problem(
        app.login("ann@example.com", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    for forged in [
        format!("identsphere_device={}", bobs),
        format!("identsphere_device={}x", device),
        "identsphere_device=nonce.mac".to_owned(),
    ] {
        let r = login_with(forged).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let owner = login_with(format!("identsphere_device={device}")).await;
    assert_eq!(owner.status(), StatusCode::OK);
    // A minute on the attacker spends the refill; the owner still signs in.
    clock.advance(chrono::Duration::seconds(60));
    app.login("ann@example.com", "wrong password").await;
    let owner = login_with(format!("identsphere_device={device}")).await;
    assert_eq!(owner.status(), StatusCode::OK);
    // The device has a budget of its own: guessing with it is limited too.
    for _ in 0..10 {
        let r = app
            .post_with_cookie(
                "/v1/auth/login",
                &format!("identsphere_device={device}"),
                json!({ "email": "ann@example.com", "password": "wrong password" }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login_with(format!("identsphere_device={device}")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// Item 7: with `step_up_max_age` at 60 s, removing a co-owner and deleting
/// an organization need a sign-in newer than that, as demoting one does.
async fn the_step_up_window_is_configured_and_guards_owner_removal_and_deletion(b: Backend) {
    let clock = clock();
    let Some(app) = TestApp::spawn_with(b, |c| {
        c.clock = clock.clone();
        c.step_up_max_age = Duration::from_secs(60);
    })
    .await
    else {
        return;
    };
    let ann = token(&app.user("ann@example.com").await);
    let org = app.org(&ann, "Acme").await;
    let (_, bob_id) = app.member(&ann, &org, "bob@example.com", "owner").await;
    clock.advance(chrono::Duration::seconds(61));
    let remove = format!("/v1/organizations/{org}/members/{bob_id}");
    problem(
        app.delete_bearer(&remove, &ann).await,
        StatusCode::FORBIDDEN,
        "step_up_required",
    )
    .await;
    problem(
        app.delete_bearer(&format!("/v1/organizations/{org}"), &ann)
            .await,
        StatusCode::FORBIDDEN,
        "step_up_required",
    )
    .await;
    let stepped = body(
        app.post_bearer("/v1/auth/step-up", &ann, json!({ "password": PASSWORD }))
            .await,
        StatusCode::OK,
    )
    .await;
    let ann = token(&stepped);
    assert_eq!(
        app.delete_bearer(&remove, &ann).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete_bearer(&format!("/v1/organizations/{org}"), &ann)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

/// Item 9: a reset link mailed before an email change no longer sets the
/// password after it, and invitations to the old address are revoked (with
/// an event), so they cannot create a new account for that mailbox.
async fn an_email_change_ends_links_and_invitations_to_the_old_address(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let owner = token(&app.user("owner@example.com").await);
    let org = app.org(&owner, "Acme").await;
    let ann = token(&app.user("ann@example.com").await);
    let invite = app.invite(&owner, &org, "ann@example.com", "admin").await;
    app.post(
        "/v1/auth/password/forgot",
        json!({ "email": "ann@example.com" }),
    )
    .await;
    let reset = app.mail.nth_to("ann@example.com", 2).await.token().unwrap();
    let change = json!({ "new_email": "ann.new@example.com", "password": PASSWORD });
    app.post_bearer("/v1/auth/email/change", &ann, change).await;
    let confirm = app
        .mail
        .first_to("ann.new@example.com")
        .await
        .token()
        .unwrap();
    let r = app
        .post("/v1/auth/email/change/confirm", json!({ "token": confirm }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    problem(
        app.post(
            "/v1/auth/password/reset",
            json!({ "token": reset, "new_password": "the old mailbox's choice" }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    problem(
        app.post(
            "/v1/auth/invitations/accept",
            json!({ "token": invite, "password": "a new account's password" }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    let revoked = app.audit(Some(AuditAction::InvitationRevoked)).await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].metadata["reason"], "email_changed");
    assert_eq!(revoked[0].org_id.map(|o| o.to_string()), Some(org));
}

/// Item 10: sign-ups with one address from many client addresses mail its
/// owner at most three times an hour; registered or not, the answer is the same.
async fn sign_up_mail_is_limited_per_address(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    // Its own sign-up was the first of the three.
    app.signup_verified("taken@example.com").await;
    for (email, allowed) in [("taken@example.com", 2), ("free@example.com", 3)] {
        let mut statuses = Vec::new();
        for n in 2..17 {
            let r = client_from(n)
                .post(app.url("/v1/auth/signup"))
                .json(&json!({ "email": email, "password": PASSWORD }))
                .send()
                .await
                .unwrap();
            statuses.push(r.status());
        }
        let created = statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count();
        assert_eq!(created, allowed, "{email}: {statuses:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.mail.count_to("taken@example.com"), 3);
    assert_eq!(app.mail.count_to("free@example.com"), 3);
}

/// CSRF tokens are the session's own: a cookie and header that merely
/// agree (planted by a sibling subdomain, or another session's) fail.
async fn csrf_tokens_are_bound_to_their_session(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.signup_verified("ann@example.com").await;
    let login = app.login("ann@example.com", PASSWORD).await;
    let access = cookie_value(login.headers(), "identsphere_access").unwrap();
    let csrf = cookie_value(login.headers(), "identsphere_csrf").unwrap();
    let other = app.login("ann@example.com", PASSWORD).await;
    let others_csrf = cookie_value(other.headers(), "identsphere_csrf").unwrap();
    assert_ne!(csrf, others_csrf);
    let rename = |value: String| {
        let app = &app;
        let access = access.clone();
        async move {
            app.http
                .patch(app.url("/v1/users/me"))
                .header(
                    "cookie",
                    format!("identsphere_access={access}; identsphere_csrf={value}"),
                )
                .header("x-csrf-token", value)
                .json(&json!({ "name": "Renamed" }))
                .send()
                .await
                .unwrap()
        }
    };
    for planted in ["attacker-chosen".to_owned(), others_csrf.clone()] {
        problem(rename(planted).await, StatusCode::FORBIDDEN, "csrf_failed").await;
    }
    // A cookie refresh is held to the session of its refresh token, before
    // anything rotates.
    let refresh = cookie_value(login.headers(), "identsphere_refresh").unwrap();
    let refresh_with = |value: String| {
        let app = &app;
        let refresh = refresh.clone();
        async move {
            app.http
                .post(app.url("/v1/auth/refresh"))
                .header(
                    "cookie",
                    format!("identsphere_refresh={refresh}; identsphere_csrf={value}"),
                )
                .header("x-csrf-token", value)
                .send()
                .await
                .unwrap()
        }
    };
    problem(
        refresh_with(others_csrf).await,
        StatusCode::FORBIDDEN,
        "csrf_failed",
    )
    .await;
    assert_eq!(refresh_with(csrf.clone()).await.status(), StatusCode::OK);
    assert_eq!(rename(csrf).await.status(), StatusCode::OK);
}

/// Three wrong codes after a right password mail the owner, once.
async fn repeated_mfa_failures_warn_the_owner(b: Backend) {
    let Some(m) = Mfa::spawn(b).await else { return };
    let login = m.app.user("ann@example.com").await;
    m.enable(&token(&login)).await;
    let before = m.app.mail.count_to("ann@example.com");
    for _ in 0..2 {
        let mfa = m.mfa_login("ann@example.com").await;
        for _ in 0..3 {
            m.verify(&mfa, "code", "000001").await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let warnings: Vec<Value> = m
        .app
        .mail
        .all()
        .into_iter()
        .filter(|mail| mail.text().contains("wrong two-factor codes"))
        .map(|mail| json!(mail.text()))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(m.app.mail.count_to("ann@example.com"), before + 1);
}
