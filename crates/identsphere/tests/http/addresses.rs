//! One mailbox is one account (review issue 12, item 12): every spelling of
//! an address is folded (NFKC, lower case, IDNA) before it is compared,
//! stored or mailed, and a quoted local part is refused.
use crate::support::*;
use identsphere::core::{
    audit::AuditAction,
    rate_limit::{Limit, LimitKind},
};
use reqwest::StatusCode;
use serde_json::json;

both_stores!(
    spellings_of_one_mailbox_are_one_account,
    idn_domains_are_one_account_in_either_form,
    email_changes_compare_folded_addresses,
);

async fn signup(app: &TestApp, email: &str) -> reqwest::Response {
    app.post(
        "/v1/auth/signup",
        json!({ "email": email, "password": PASSWORD, "name": "Eve" }),
    )
    .await
}

/// Sign-ups under another spelling get the "already registered" treatment
/// (the same 201, a note to the owner, no account), and every spelling signs
/// in to the one account.
async fn spellings_of_one_mailbox_are_one_account(b: Backend) {
    // Every spelling spends one address's sign-up budget (three an hour):
    // raised here, where five attempts are the point.
    let Some(app) = TestApp::spawn_with(b, |c| {
        c.rate_limits
            .set(LimitKind::SignupAccount, Limit::per_minute(1000, 1000));
    })
    .await
    else {
        return;
    };
    let ann = app.user("ann@example.com").await;
    let id = ann["user"]["id"].as_str().unwrap().to_owned();
    let r = signup(&app, "\"ann\"@example.com").await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(field_errors(&p), ["email"]);
    assert!(p["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("quoted"));

    let spellings = [
        "ANN@example.com",
        "ａｎｎ@example.com",
        "ＡＮＮ＠ＥＸＡＭＰＬＥ．ＣＯＭ",
        " Ann@Example.COM ",
    ];
    for (n, spelling) in spellings.iter().enumerate() {
        assert_eq!(signup(&app, spelling).await.status(), StatusCode::CREATED);
        // Mail goes to the stored address: the verification, then one
        // "already registered" note per attempt.
        let note = app.mail.nth_to("ann@example.com", n + 1).await;
        assert!(note.text().contains("already has one"), "{}", note.text());
    }
    assert_eq!(app.audit(Some(AuditAction::UserSignedUp)).await.len(), 1);
    for spelling in spellings {
        let r = app.login(spelling, PASSWORD).await;
        let login = body(r, StatusCode::OK).await;
        assert_eq!(login["user"]["id"], id.as_str(), "{spelling}");
        assert_eq!(login["user"]["email"], "ann@example.com");
    }
}

async fn idn_domains_are_one_account_in_either_form(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    assert_eq!(
        signup(&app, "Ann@Bücher.example").await.status(),
        StatusCode::CREATED
    );
    // Stored, and mailed, in the ASCII form any SMTP relay accepts.
    let token = app
        .mail
        .first_to("ann@xn--bcher-kva.example")
        .await
        .token()
        .unwrap();
    let r = app
        .post(
            "/v1/auth/email/verify",
            json!({ "token": token, "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    for (n, other) in ["ann@xn--bcher-kva.example", "ANN@BÜCHER.EXAMPLE"]
        .iter()
        .enumerate()
    {
        assert_eq!(signup(&app, other).await.status(), StatusCode::CREATED);
        let note = app.mail.nth_to("ann@xn--bcher-kva.example", n + 1).await;
        assert!(note.text().contains("already has one"));
    }
    assert_eq!(app.audit(Some(AuditAction::UserSignedUp)).await.len(), 1);
    let store = app.service.state().identity().store().clone();
    let email = identsphere::core::Email::parse("ann@bücher.example").unwrap();
    let user = store.find_user_by_email(&email).await.unwrap().unwrap();
    assert_eq!(user.email.as_str(), "ann@xn--bcher-kva.example");
    for spelling in ["ann@bücher.example", "ann@xn--bcher-kva.example"] {
        let login = body(app.login(spelling, PASSWORD).await, StatusCode::OK).await;
        assert_eq!(login["user"]["id"], user.id.to_string());
    }
}

/// The address an email change moves to is folded too: a spelling of one's
/// own address is "already your address", and a spelling of another account's
/// gets the taken-address answer (no mail to anyone).
async fn email_changes_compare_folded_addresses(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let ann = token(&app.user("ann@example.com").await);
    app.signup_verified("bob@example.com").await;
    let change = |to: &'static str| {
        app.post_bearer(
            "/v1/auth/email/change",
            &ann,
            json!({ "new_email": to, "password": PASSWORD }),
        )
    };
    let p = problem(
        change("ＡＮＮ@example.com").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(field_errors(&p), ["new_email"]);
    let before = app.mail.count_to("bob@example.com");
    let r = change("ｂｏｂ@EXAMPLE.com").await;
    assert!(r.status().is_success(), "{}", r.status());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.mail.count_to("bob@example.com"), before);
    let r = change("ann@bücher.example").await;
    assert!(r.status().is_success());
    let link = app.mail.first_to("ann@xn--bcher-kva.example").await;
    let r = app
        .post(
            "/v1/auth/email/change/confirm",
            json!({ "token": link.token().unwrap() }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let me = app.get_json_bearer("/v1/users/me", &ann).await;
    assert_eq!(me["email"], "ann@xn--bcher-kva.example", "{me}");
}
