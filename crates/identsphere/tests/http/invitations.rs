//! Invitations: a one-time, 7-day emailed link that adds its holder to an
//! organization, creating (and signing in) the account when the address has none.
use crate::support::*;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

both_stores!(
    invite_mails_a_link_and_lists_the_invitation,
    accepting_creates_a_verified_signed_in_account,
    a_new_account_needs_a_valid_password,
    existing_accounts_accept_signed_in_as_the_invited_address,
    links_work_once,
    concurrent_accepts_admit_one_member,
    revoked_invitations_stop_working,
    invitations_expire_after_seven_days,
    reinviting_replaces_the_earlier_link,
    who_may_invite,
    org_keys_cannot_invite_beyond_their_scopes,
    accepting_needs_no_credentials,
    the_public_router_accepts_on_its_own,
    audit_events_name_no_address,
);

const ACCEPT: &str = "/v1/auth/invitations/accept";

/// `IDENTSPHERE_PUBLIC_URL` of the test server (links in mail start with it).
fn public_url(app: &TestApp) -> String {
    format!("http://localhost:{}", app.base.rsplit(':').next().unwrap())
}

/// The owner's access token and a fresh organization.
async fn owner_and_org(app: &TestApp) -> (String, String, String) {
    let login = app.user("owner@example.com").await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    let org = app.org(&token, "Acme").await;
    (token, login["user"]["id"].as_str().unwrap().to_owned(), org)
}

async fn send_invite(app: &TestApp, token: &str, org: &str, email: &str, role: &str) -> Response {
    app.post_bearer(
        &format!("/v1/organizations/{org}/invitations"),
        token,
        json!({ "email": email, "role": role }),
    )
    .await
}

async fn invitations(app: &TestApp, token: &str, org: &str) -> Vec<Value> {
    let r = app
        .get_bearer(&format!("/v1/organizations/{org}/invitations"), token)
        .await;
    body(r, StatusCode::OK).await["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn members(app: &TestApp, token: &str, org: &str) -> Vec<Value> {
    let r = app
        .get_bearer(&format!("/v1/organizations/{org}/members"), token)
        .await;
    body(r, StatusCode::OK).await["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn invite_mails_a_link_and_lists_the_invitation(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let (owner, owner_id, org) = owner_and_org(&app).await;
    let before = chrono::Utc::now();
    let r = send_invite(&app, &owner, &org, "New@Example.com", "member").await;
    let text = {
        assert_eq!(r.status(), StatusCode::CREATED);
        r.text().await.unwrap()
    };
    let inv: Value = serde_json::from_str(&text).unwrap();
    assert!(inv["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(inv["org_id"], org.as_str());
    assert_eq!(inv["email"], "new@example.com");
    assert_eq!(inv["role"], "member");
    assert_eq!(inv["status"], "pending");
    assert_eq!(inv["invited_by"], owner_id.as_str());
    assert!(inv.get("token").is_none(), "{inv}");
    let created: chrono::DateTime<chrono::Utc> =
        inv["created_at"].as_str().unwrap().parse().unwrap();
    let expires: chrono::DateTime<chrono::Utc> =
        inv["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires - created, chrono::Duration::days(7));
    let from_now = expires - before;
    assert!(
        from_now >= chrono::Duration::days(7) - chrono::Duration::seconds(5)
            && from_now <= chrono::Duration::days(7) + chrono::Duration::seconds(60),
        "{from_now}"
    );

    // The link goes to the (normalised) address, under the public URL.
    let mail = app.mail.first_to("new@example.com").await;
    let token = mail.token().expect("invitation link");
    assert!(token.len() >= 32, "{token}");
    let link = format!("{}/accept-invitation?token={token}", public_url(&app));
    assert!(mail.text().contains(&link), "{}", mail.text());
    assert!(mail.text().contains("Acme"));
    assert_eq!(app.mail.count_to("owner@example.com"), 1); // only the verification mail

    // Neither the creating response nor the list holds the token.
    assert!(!text.contains(&token));
    let r = app
        .get_bearer(&format!("/v1/organizations/{org}/invitations"), &owner)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let list_text = r.text().await.unwrap();
    assert!(!list_text.contains(&token));
    let list: Value = serde_json::from_str(&list_text).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert!(list["next_cursor"].is_null());
    assert_eq!(items[0]["id"], inv["id"]);
    assert_eq!(items[0]["email"], "new@example.com");
    assert_eq!(items[0]["status"], "pending");
    assert_eq!(items[0]["role"], "member");
}

async fn accepting_creates_a_verified_signed_in_account(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let (owner, _, org) = owner_and_org(&app).await;
    let token = app.invite(&owner, &org, "nina@example.com", "member").await;
    let r = app
        .post(
            ACCEPT,
            json!({ "token": token, "password": PASSWORD, "name": "Nina" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    assert!(!text.contains(&token));
    let accepted: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(accepted["organization_id"], org.as_str());
    assert_eq!(accepted["role"], "member");
    let user = &accepted["user"];
    assert_eq!(user["email"], "nina@example.com");
    assert_eq!(user["name"], "Nina");
    assert_eq!(user["email_verified"], true);
    let user_id = user["id"].as_str().unwrap();
    let tokens = &accepted["tokens"];
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let access = tokens["access_token"].as_str().unwrap();
    assert!(tokens["refresh_token"].as_str().is_some());
    assert!(tokens["session_id"].as_str().is_some());

    // The same session is set as cookies.
    assert_eq!(
        cookie_value(&headers, "identsphere_access").as_deref(),
        Some(access)
    );
    assert_eq!(
        cookie_value(&headers, "identsphere_refresh").as_deref(),
        tokens["refresh_token"].as_str()
    );
    assert!(cookie_value(&headers, "identsphere_csrf").is_some_and(|c| !c.is_empty()));

    let me = body(app.get_bearer("/v1/users/me", access).await, StatusCode::OK).await;
    assert_eq!(me["id"], user_id);
    assert_eq!(me["email_verified"], true);

    // The password works, and the address counts as verified.
    let login = body(
        app.login("nina@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(login["status"], "ok");
    assert_eq!(login["user"]["id"], user_id);
    problem(
        app.login("nina@example.com", "not the password at all")
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;

    // The membership shows on both sides.
    let orgs = body(
        app.get_bearer("/v1/organizations", access).await,
        StatusCode::OK,
    )
    .await;
    let orgs = orgs["items"].as_array().unwrap();
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0]["id"], org.as_str());
    assert_eq!(orgs[0]["name"], "Acme");
    assert_eq!(orgs[0]["role"], "member");
    let list = members(&app, &owner, &org).await;
    assert_eq!(list.len(), 2);
    let nina = list.iter().find(|m| m["user_id"] == user_id).unwrap();
    assert_eq!(nina["email"], "nina@example.com");
    assert_eq!(nina["role"], "member");
    assert!(nina["joined_at"].as_str().is_some());
    // The new member reads the list too (members:read).
    assert_eq!(members(&app, access, &org).await.len(), 2);

    // It is no longer pending.
    assert!(invitations(&app, &owner, &org).await.is_empty());
}

async fn a_new_account_needs_a_valid_password(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let (owner, _, org) = owner_and_org(&app).await;
    let token = app.invite(&owner, &org, "nina@example.com", "member").await;

    let p = problem(
        app.post(ACCEPT, json!({ "token": token })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(field_errors(&p), ["password"]);
    let p = problem(
        app.post(ACCEPT, json!({ "token": token, "password": "short" }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(field_errors(&p), ["password"]);

    // Nothing was consumed or created.
    let pending = invitations(&app, &owner, &org).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["status"], "pending");
    assert_eq!(members(&app, &owner, &org).await.len(), 1);
    problem(
        app.login("nina@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;

    let accepted = body(
        app.post(ACCEPT, json!({ "token": token, "password": PASSWORD }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(accepted["status"], "accepted");
    assert!(accepted["tokens"]["access_token"].as_str().is_some());
    assert_eq!(members(&app, &owner, &org).await.len(), 2);
}

async fn existing_accounts_accept_signed_in_as_the_invited_address(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let (owner, _, org) = owner_and_org(&app).await;
    let bob = app.user("bob@example.com").await;
    let carol = app.user("carol@example.com").await;
    let bob_token = bob["access_token"].as_str().unwrap();
    let token = app.invite(&owner, &org, "bob@example.com", "admin").await;

    // Not signed in: the link alone does not prove who holds the account,
    // and a password in the body does not create or change anything.
    let other_password = "an entirely different password";
    problem(
        app.post(
            ACCEPT,
            json!({ "token": token, "password": other_password }),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // Signed in as someone else.
    problem(
        app.post_bearer(
            ACCEPT,
            carol["access_token"].as_str().unwrap(),
            json!({ "token": token }),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(members(&app, &owner, &org).await.len(), 1);
    assert_eq!(invitations(&app, &owner, &org).await.len(), 1);

    // Signed in as the invited address.
    let r = app
        .post_bearer(ACCEPT, bob_token, json!({ "token": token }))
        .await;
    assert!(cookie_value(r.headers(), "identsphere_access").is_none());
    let accepted = body(r, StatusCode::OK).await;
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(accepted["organization_id"], org.as_str());
    assert_eq!(accepted["role"], "admin");
    assert_eq!(accepted["user"]["id"], bob["user"]["id"]);
    assert!(accepted["tokens"].is_null(), "{accepted}");

    let orgs = body(
        app.get_bearer("/v1/organizations", bob_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(orgs["items"][0]["id"], org.as_str());
    assert_eq!(orgs["items"][0]["role"], "admin");
    let list = members(&app, &owner, &org).await;
    assert_eq!(list.len(), 2);
    assert!(list
        .iter()
        .any(|m| m["user_id"] == bob["user"]["id"] && m["role"] == "admin"));
    // The carol attempt left carol out; bob's password is unchanged.
    let carol_orgs = body(
        app.get_bearer("/v1/organizations", carol["access_token"].as_str().unwrap())
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(carol_orgs["items"].as_array().unwrap().is_empty());
    assert_eq!(
        app.login("bob@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    problem(
        app.login("bob@example.com", other_password).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
}

async fn links_work_once(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let (owner, _, org) = owner_and_org(&app).await;
    let token = app.invite(&owner, &org, "nina@example.com", "member").await;
    let first = app
        .post(ACCEPT, json!({ "token": token, "password": PASSWORD }))
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    problem(
        app.post(ACCEPT, json!({ "token": token, "password": PASSWORD }))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    // Used, even by the member it admitted.
    problem(
        app.post_bearer(
            ACCEPT,
            first["tokens"]["access_token"].as_str().unwrap(),
            json!({ "token": token }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    let long = "a".repeat(129);
    let extended = format!("{token}x");
    for bad in ["", "nope", long.as_str(), extended.as_str()] {
        problem(
            app.post(ACCEPT, json!({ "token": bad, "password": PASSWORD }))
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_token",
        )
        .await;
    }
    assert_eq!(members(&app, &owner, &org).await.len(), 2);
}

async fn concurrent_accepts_admit_one_member(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let app = Arc::new(app);
    let (owner, _, org) = owner_and_org(&app).await;
    let token = app.invite(&owner, &org, "nina@example.com", "member").await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let r = app
                    .post(ACCEPT, json!({ "token": token, "password": PASSWORD }))
                    .await;
                let status = r.status();
                let body: Value = r.json().await.unwrap();
                (status, body)
            })
        })
        .collect();
    let results: Vec<(StatusCode, Value)> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    // The accepts queue on the invitation row: every other one finds it used
    // (the account is only inserted by the winner, so no 409 can arise).
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["code"], "invalid_token", "{body}");
    }
    let list = members(&app, &owner, &org).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(
        list.iter()
            .filter(|m| m["email"] == "nina@example.com")
            .count(),
        1
    );
    assert_eq!(
        list.iter()
            .find(|m| m["email"] == "nina@example.com")
            .unwrap()["user_id"],
        winners[0]["user"]["id"]
    );
    let me = body(
        app.login("nina@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["user"]["id"], winners[0]["user"]["id"]);
    let added = body(
        app.get_bearer(
            &format!("/v1/organizations/{org}/audit-log?action=member.added"),
            &owner,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(added["items"].as_array().unwrap().len(), 1, "{added}");
}

async fn revoked_invitations_stop_working(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let (owner, _, org) = owner_and_org(&app).await;
    let token = app.invite(&owner, &org, "nina@example.com", "member").await;
    let id = invitations(&app, &owner, &org).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/organizations/{org}/invitations/{id}");

    // Another organization's path does not reach it, even for the same owner,
    // and neither does someone outside the organization.
    let second = app.org(&owner, "Second").await;
    problem(
        app.delete_bearer(
            &format!("/v1/organizations/{second}/invitations/{id}"),
            &owner,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let eve = app.user("eve@example.com").await;
    problem(
        app.delete_bearer(&path, eve["access_token"].as_str().unwrap())
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem(
        app.http.delete(app.url(&path)).send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_eq!(invitations(&app, &owner, &org).await.len(), 1);

    let r = app.delete_bearer(&path, &owner).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    problem(
        app.post(ACCEPT, json!({ "token": token, "password": PASSWORD }))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    problem(
        app.delete_bearer(&path, &owner).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem(
        app.delete_bearer(
            &format!("/v1/organizations/{org}/invitations/not-an-id"),
            &owner,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert!(invitations(&app, &owner, &org).await.is_empty());
    assert_eq!(members(&app, &owner, &org).await.len(), 1);

    // An accepted invitation cannot be revoked any more.
    app.member(&owner, &org, "otto@example.com", "member").await;
    let accepted = body(
        app.get_bearer(
            &format!("/v1/organizations/{org}/audit-log?action=invitation.accepted"),
            &owner,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let accepted_id = accepted["items"][0]["target_id"].as_str().unwrap();
    problem(
        app.delete_bearer(
            &format!("/v1/organizations/{org}/invitations/{accepted_id}"),
            &owner,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn invitations_expire_after_seven_days(b: Backend) {
    use identsphere::core::clock::ManualClock;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let Some(app) = TestApp::spawn_with(b, |c| c.clock = clock.clone()).await else {
        return;
    };
    let (owner, _, org) = owner_and_org(&app).await;
    let early = app
        .invite(&owner, &org, "early@example.com", "member")
        .await;
    let late = app.invite(&owner, &org, "late@example.com", "member").await;

    clock.advance(chrono::Duration::days(7) - chrono::Duration::seconds(1));
    // The owner's access token has long expired: sign in again.
    let owner = body(
        app.login("owner@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let accepted = body(
        app.post(ACCEPT, json!({ "token": early, "password": PASSWORD }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(accepted["status"], "accepted");

    clock.advance(chrono::Duration::seconds(2));
    let pending = invitations(&app, &owner, &org).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["email"], "late@example.com");
    assert_eq!(pending[0]["status"], "expired");
    problem(
        app.post(ACCEPT, json!({ "token": late, "password": PASSWORD }))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    assert_eq!(members(&app, &owner, &org).await.len(), 2);
    problem(
        app.login("late@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
}

async fn reinviting_replaces_the_earlier_link(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let (owner, _, org) = owner_and_org(&app).await;
    let old = app.invite(&owner, &org, "nina@example.com", "member").await;
    let new = app.invite(&owner, &org, "nina@example.com", "admin").await;
    assert_ne!(old, new);
    assert_eq!(app.mail.count_to("nina@example.com"), 2);
    let pending = invitations(&app, &owner, &org).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["role"], "admin");

    problem(
        app.post(ACCEPT, json!({ "token": old, "password": PASSWORD }))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    let accepted = body(
        app.post(ACCEPT, json!({ "token": new, "password": PASSWORD }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(accepted["role"], "admin");
    // Inviting the same address into another organization leaves this one alone.
    let other = app.org(&owner, "Other").await;
    let third = app
        .invite(&owner, &other, "zoe@example.com", "member")
        .await;
    app.invite(&owner, &org, "zoe@example.com", "member").await;
    let accepted = body(
        app.post(ACCEPT, json!({ "token": third, "password": PASSWORD }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(accepted["organization_id"], other.as_str());
}

async fn who_may_invite(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let (owner, _, org) = owner_and_org(&app).await;
    let (admin, _) = app.member(&owner, &org, "admin@example.com", "admin").await;
    let (plain, _) = app
        .member(&owner, &org, "member@example.com", "member")
        .await;

    // Already a member (including the owner), by any letter case.
    for existing in [
        "admin@example.com",
        "Member@Example.com",
        "owner@example.com",
    ] {
        problem(
            send_invite(&app, &owner, &org, existing, "member").await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
    }

    // Members lack invitations:manage.
    problem(
        send_invite(&app, &plain, &org, "x@example.com", "member").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    problem(
        app.get_bearer(&format!("/v1/organizations/{org}/invitations"), &plain)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // Admins invite admins and members, but not owners.
    problem(
        send_invite(&app, &admin, &org, "x@example.com", "owner").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    for role in ["admin", "member"] {
        let r = send_invite(&app, &admin, &org, &format!("{role}-x@example.com"), role).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let r = send_invite(&app, &owner, &org, "co-owner@example.com", "owner").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let co_owner = app
        .mail
        .first_to("co-owner@example.com")
        .await
        .token()
        .unwrap();
    let accepted = body(
        app.post(ACCEPT, json!({ "token": co_owner, "password": PASSWORD }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(accepted["role"], "owner");

    // A custom role invites only into roles whose permissions it holds.
    let r = app
        .post_bearer(
            &format!("/v1/organizations/{org}/roles"),
            &owner,
            json!({ "name": "recruiter", "permissions": ["invitations:manage", "org:read", "members:read"] }),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let (recruiter, _) = app
        .member(&owner, &org, "recruiter@example.com", "recruiter")
        .await;
    let r = send_invite(&app, &recruiter, &org, "y@example.com", "member").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    problem(
        send_invite(&app, &recruiter, &org, "z@example.com", "admin").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // Bad input.
    for (email, role, field) in [
        ("x@example.com", "superhero", "role"),
        ("x@example.com", "Not A Role", "role"),
        ("x@example.com", "", "role"),
        ("not-an-email", "member", "email"),
    ] {
        let p = problem(
            send_invite(&app, &owner, &org, email, role).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(field_errors(&p), [field], "{p}");
    }
    problem(
        app.post_bearer(
            &format!("/v1/organizations/{org}/invitations"),
            &owner,
            json!({ "email": "x@example.com" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;

    // Outsiders do not see the organization; anonymous callers are refused.
    let eve = app.user("eve@example.com").await;
    problem(
        send_invite(
            &app,
            eve["access_token"].as_str().unwrap(),
            &org,
            "x@example.com",
            "member",
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem(
        app.post(
            &format!("/v1/organizations/{org}/invitations"),
            json!({ "email": "x@example.com", "role": "member" }),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // None of the refused attempts sent mail.
    for nobody in ["x@example.com", "z@example.com"] {
        assert_eq!(app.mail.count_to(nobody), 0, "{nobody}");
    }
    assert_eq!(app.mail.count_to("admin@example.com"), 1);
}

async fn org_keys_cannot_invite_beyond_their_scopes(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let (owner, owner_id, org) = owner_and_org(&app).await;
    let r = app
        .post_bearer(
            "/v1/api-keys",
            &owner,
            json!({ "name": "recruiting", "scopes": ["invitations:manage", "org:read", "members:read"], "org_id": org }),
        )
        .await;
    let key = body(r, StatusCode::CREATED).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let via_key = |email: &'static str, role: &'static str| {
        app.http
            .post(app.url(&format!("/v1/organizations/{org}/invitations")))
            .header("x-api-key", &key)
            .json(&json!({ "email": email, "role": role }))
            .send()
    };

    // Its scopes cover inviting members (a key grants only what its scopes
    // hold), and the invitation names the key's owner.
    let inv = body(
        via_key("x@example.com", "member").await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(inv["invited_by"], owner_id.as_str());
    // Making an owner needs org:manage, which the key lacks.
    problem(
        via_key("y@example.com", "owner").await.unwrap(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    // An admin's key with the same scope is held to it.
    let (admin, _) = app.member(&owner, &org, "admin@example.com", "admin").await;
    let r = app
        .post_bearer(
            "/v1/api-keys",
            &admin,
            json!({ "name": "recruiting", "scopes": ["invitations:manage", "org:read", "members:read"], "org_id": org }),
        )
        .await;
    let admin_key = body(r, StatusCode::CREATED).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    problem(
        app.post_bearer(
            &format!("/v1/organizations/{org}/invitations"),
            &admin_key,
            json!({ "email": "w@example.com", "role": "admin" }),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    // An owner's key is held to its scopes too: it cannot invite an admin
    // (every permission) when it holds three.
    problem(
        via_key("z@example.com", "admin").await.unwrap(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

async fn accepting_needs_no_credentials(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let (owner, _, org) = owner_and_org(&app).await;
    // No credentials at all: a bare request with only a JSON body.
    let token = app.invite(&owner, &org, "nina@example.com", "member").await;
    let r = app
        .http
        .post(app.url(ACCEPT))
        .header("content-type", "application/json")
        .body(json!({ "token": token, "password": PASSWORD }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(body(r, StatusCode::OK).await["status"], "accepted");

    // A stale or bogus credential is ignored rather than refused.
    let token = app.invite(&owner, &org, "otto@example.com", "member").await;
    let r = app
        .post_bearer(
            ACCEPT,
            "not-a-jwt",
            json!({ "token": token, "password": PASSWORD }),
        )
        .await;
    assert_eq!(body(r, StatusCode::OK).await["status"], "accepted");
    assert_eq!(members(&app, &owner, &org).await.len(), 3);
}

async fn the_public_router_accepts_on_its_own(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let (owner, _, org) = owner_and_org(&app).await;
    let token = app.invite(&owner, &org, "nina@example.com", "member").await;

    // A host mounts only the public router, outside any auth middleware.
    let (routes, doc) = identsphere::routes::invitations::router_public().split_for_parts();
    assert!(doc.paths.paths.contains_key(ACCEPT));
    assert_eq!(doc.paths.paths.len(), 1);
    let router = axum::Router::new()
        .merge(routes)
        .with_state(app.service.state().clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let host = format!("http://{addr}");
    let r = app
        .http
        .post(format!("{host}{ACCEPT}"))
        .json(&json!({ "token": token, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert!(cookie_value(r.headers(), "identsphere_access").is_some());
    let accepted = body(r, StatusCode::OK).await;
    assert_eq!(accepted["organization_id"], org.as_str());
    let access = accepted["tokens"]["access_token"].as_str().unwrap();
    // The session it opened works on the full server, and the membership is there.
    let orgs = body(
        app.get_bearer("/v1/organizations", access).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(orgs["items"][0]["id"], org.as_str());
    // The public router serves nothing else.
    let r = app
        .http
        .get(format!("{host}/v1/organizations"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn audit_events_name_no_address(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let (owner, owner_id, org) = owner_and_org(&app).await;
    let token = app.invite(&owner, &org, "nina@example.com", "member").await;
    let accepted = body(
        app.post(
            ACCEPT,
            json!({ "token": token, "password": PASSWORD, "name": "Nina Secretname" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let nina_id = accepted["user"]["id"].as_str().unwrap();
    let bob = app.user("bob@example.com").await;
    let bob_token = app.invite(&owner, &org, "bob@example.com", "admin").await;
    let r = app
        .post_bearer(
            ACCEPT,
            bob["access_token"].as_str().unwrap(),
            json!({ "token": bob_token }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.invite(&owner, &org, "revoked@example.com", "member")
        .await;
    let revoked_id = invitations(&app, &owner, &org).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .delete_bearer(
            &format!("/v1/organizations/{org}/invitations/{revoked_id}"),
            &owner,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let r = app
        .get_bearer(&format!("/v1/organizations/{org}/audit-log"), &owner)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    for secret in [
        "nina@example.com",
        "bob@example.com",
        "revoked@example.com",
        "owner@example.com",
        "Secretname",
        PASSWORD,
        token.as_str(),
        bob_token.as_str(),
    ] {
        assert!(
            !text.contains(secret),
            "{secret} is in the audit log: {text}"
        );
    }
    let log: Value = serde_json::from_str(&text).unwrap();
    let events = log["items"].as_array().unwrap();
    let of =
        |action: &str| -> Vec<&Value> { events.iter().filter(|e| e["action"] == action).collect() };
    assert!(events.iter().all(|e| e["org_id"] == org.as_str()));

    let acc = of("invitation.accepted");
    assert_eq!(acc.len(), 2);
    let nina_acc = acc.iter().find(|e| e["actor_id"] == nina_id).unwrap();
    assert_eq!(nina_acc["metadata"], json!({}));
    assert_eq!(nina_acc["ip"], "127.0.0.1");
    let nina_inv = nina_acc["target_id"].as_str().unwrap();

    let created = of("invitation.created");
    assert_eq!(created.len(), 3);
    assert!(created.iter().all(|e| e["actor_id"] == owner_id.as_str()));
    let nina_created = created.iter().find(|e| e["target_id"] == nina_inv).unwrap();
    assert_eq!(nina_created["metadata"], json!({ "role": "member" }));

    let added = of("member.added");
    assert_eq!(added.len(), 2);
    let nina_added = added.iter().find(|e| e["target_id"] == nina_id).unwrap();
    assert_eq!(nina_added["actor_id"], nina_id);
    assert_eq!(nina_added["metadata"], json!({ "role": "member" }));
    let bob_added = added
        .iter()
        .find(|e| e["target_id"] == bob["user"]["id"])
        .unwrap();
    assert_eq!(bob_added["metadata"], json!({ "role": "admin" }));

    let rev = of("invitation.revoked");
    assert_eq!(rev.len(), 1);
    assert_eq!(rev[0]["target_id"], revoked_id.as_str());
    assert_eq!(rev[0]["actor_id"], owner_id.as_str());

    // The filter finds them too.
    let filtered = body(
        app.get_bearer(
            &format!("/v1/organizations/{org}/audit-log?action=invitation.accepted"),
            &owner,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 2);
}
