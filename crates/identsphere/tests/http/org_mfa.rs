//! Organizations that require MFA of their members, over HTTP on both stores.
//!
//! A session acts in such an organization only when it was signed in with a
//! second factor (`amr` holds `mfa`); API keys are not held to it.
use crate::mfa::Mfa;
use crate::support::{body, both_stores, claims, items, problem, token, Backend};
use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_stores!(
    requiring_mfa_needs_a_second_factor_and_a_recent_sign_in,
    members_without_a_second_factor_are_refused_until_they_use_one,
    invited_members_join_but_act_only_with_a_second_factor,
    api_keys_are_not_held_to_the_requirement,
    personal_keys_need_an_owner_with_a_second_factor,
);

/// Signs `email` in with the password and a TOTP code; returns the login
/// body. The code is spent, so the clock moves to the next step.
async fn sign_in_with_code(m: &Mfa, email: &str, secret: &[u8]) -> Value {
    let mfa_token = m.mfa_login(email).await;
    let login = body(
        m.verify(&mfa_token, "code", &m.code(secret)).await,
        StatusCode::OK,
    )
    .await;
    m.next_step();
    login
}

/// Steps `access` up with a TOTP code; returns the new access token.
async fn step_up_with_code(m: &Mfa, access: &str, secret: &[u8]) -> String {
    let r = m
        .app
        .post_bearer(
            "/v1/auth/step-up",
            access,
            json!({ "code": m.code(secret) }),
        )
        .await;
    let stepped = body(r, StatusCode::OK).await;
    m.next_step();
    token(&stepped)
}

async fn set_require_mfa(m: &Mfa, access: &str, org: &str, on: bool) -> reqwest::Response {
    m.app
        .patch_bearer(
            &format!("/v1/organizations/{org}"),
            access,
            json!({ "require_mfa": on }),
        )
        .await
}

async fn send(
    m: &Mfa,
    method: Method,
    path: &str,
    access: &str,
    json: Option<Value>,
) -> reqwest::Response {
    let mut req = m
        .app
        .http
        .request(method, m.app.url(path))
        .bearer_auth(access);
    if let Some(json) = json {
        req = req.json(&json);
    }
    req.send().await.unwrap()
}

/// Asserts 403 `mfa_required` with a detail that says what to do.
async fn mfa_required(r: reqwest::Response) {
    let p = problem(r, StatusCode::FORBIDDEN, "mfa_required").await;
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("second factor"), "{detail}");
}

/// The metadata of the organization's `organization.updated` events, oldest first.
async fn update_events(m: &Mfa, access: &str, org: &str) -> Vec<Value> {
    let page = m
        .app
        .get_json_bearer(
            &format!("/v1/organizations/{org}/audit-log?action=organization.updated"),
            access,
        )
        .await;
    let mut events: Vec<Value> = items(&page).iter().map(|e| e["metadata"].clone()).collect();
    events.reverse();
    events
}

async fn requiring_mfa_needs_a_second_factor_and_a_recent_sign_in(b: Backend) {
    let Some(m) = Mfa::spawn(b).await else { return };
    let pwd = token(&m.app.user("ann@example.com").await);
    let org = m.app.org(&pwd, "Acme").await;
    let path = format!("/v1/organizations/{org}");
    assert_eq!(
        m.app.get_json_bearer(&path, &pwd).await["require_mfa"],
        false
    );

    // A password-only session would lock itself out at once.
    mfa_required(set_require_mfa(&m, &pwd, &org, true).await).await;
    assert_eq!(
        m.app.get_json_bearer(&path, &pwd).await["require_mfa"],
        false
    );
    // Bad bodies are 422, never a change.
    for bad in [
        json!({}),
        json!({ "require_mfa": "yes" }),
        json!({ "require_mfa": true, "mfa": true }),
    ] {
        problem(
            m.app.patch_bearer(&path, &pwd, bad.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }

    let (secret, _) = m.enable(&pwd).await;
    let mfa = token(&sign_in_with_code(&m, "ann@example.com", &secret).await);
    assert_eq!(claims(&mfa)["amr"], json!(["pwd", "otp", "mfa"]));
    // Signed in with a second factor, but more than 5 minutes ago.
    m.clock.advance(Duration::minutes(6));
    problem(
        set_require_mfa(&m, &mfa, &org, true).await,
        StatusCode::FORBIDDEN,
        "step_up_required",
    )
    .await;
    assert_eq!(
        m.app.get_json_bearer(&path, &mfa).await["require_mfa"],
        false
    );

    let stepped = step_up_with_code(&m, &mfa, &secret).await;
    let on = body(
        set_require_mfa(&m, &stepped, &org, true).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&on["require_mfa"], &on["name"], &on["role"]),
        (&json!(true), &json!("Acme"), &json!("owner"))
    );
    let mine = m.app.get_json_bearer("/v1/organizations", &stepped).await;
    assert_eq!(items(&mine)[0]["require_mfa"], true);
    // The same value again is allowed (and changes nothing).
    body(
        set_require_mfa(&m, &stepped, &org, true).await,
        StatusCode::OK,
    )
    .await;

    // Renaming is not sensitive and keeps the requirement.
    m.clock.advance(Duration::minutes(6));
    let renamed = m
        .app
        .patch_bearer(&path, &stepped, json!({ "name": "Acme Inc" }))
        .await;
    let renamed = body(renamed, StatusCode::OK).await;
    assert_eq!(
        (&renamed["name"], &renamed["require_mfa"]),
        (&json!("Acme Inc"), &json!(true))
    );
    // Turning it off is sensitive too.
    problem(
        set_require_mfa(&m, &stepped, &org, false).await,
        StatusCode::FORBIDDEN,
        "step_up_required",
    )
    .await;
    let stepped = step_up_with_code(&m, &stepped, &secret).await;
    let off = body(
        set_require_mfa(&m, &stepped, &org, false).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(off["require_mfa"], false);
    // The password-only session may act again.
    assert_eq!(
        m.app.get_json_bearer(&path, &pwd).await["require_mfa"],
        false
    );

    // Audited: which setting changed and to what, with no name in it.
    assert_eq!(
        update_events(&m, &stepped, &org).await,
        [
            json!({ "require_mfa": true }),
            json!({}),
            json!({ "renamed": true }),
            json!({ "require_mfa": false }),
        ]
    );
}

async fn members_without_a_second_factor_are_refused_until_they_use_one(b: Backend) {
    let Some(m) = Mfa::spawn(b).await else { return };
    let ann_pwd = token(&m.app.user("ann@example.com").await);
    let org = m.app.org(&ann_pwd, "Acme").await;
    let (bob, bob_id) = m
        .app
        .member(&ann_pwd, &org, "bob@example.com", "admin")
        .await;
    // Bob works in the organization before it requires MFA.
    let r = m
        .app
        .post_bearer(
            "/v1/auth/switch-organization",
            &bob,
            json!({ "org_id": org }),
        )
        .await;
    let switched = body(r, StatusCode::OK).await;
    let bob = token(&switched);
    assert_eq!(claims(&bob)["org_role"], "admin");

    let (ann_secret, _) = m.enable(&ann_pwd).await;
    let ann = token(&sign_in_with_code(&m, "ann@example.com", &ann_secret).await);
    body(set_require_mfa(&m, &ann, &org, true).await, StatusCode::OK).await;

    // Every route of the organization refuses him, his permissions notwithstanding;
    // a password-only admin cannot turn the requirement off either.
    let members = format!("/v1/organizations/{org}/members");
    let refused = [
        (Method::GET, format!("/v1/organizations/{org}"), None),
        (
            Method::PATCH,
            format!("/v1/organizations/{org}"),
            Some(json!({ "require_mfa": false })),
        ),
        (
            Method::PATCH,
            format!("/v1/organizations/{org}"),
            Some(json!({ "name": "Mine" })),
        ),
        (Method::GET, members.clone(), None),
        (Method::DELETE, format!("{members}/{bob_id}"), None),
        (Method::GET, format!("/v1/organizations/{org}/roles"), None),
        (
            Method::GET,
            format!("/v1/organizations/{org}/invitations"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/organizations/{org}/invitations"),
            Some(json!({ "email": "eve@example.com", "role": "admin" })),
        ),
        (
            Method::GET,
            format!("/v1/organizations/{org}/audit-log"),
            None,
        ),
        (
            Method::POST,
            "/v1/api-keys".to_owned(),
            Some(json!({ "name": "ci", "scopes": ["members:read"], "org_id": org })),
        ),
        (
            Method::POST,
            "/v1/auth/switch-organization".to_owned(),
            Some(json!({ "org_id": org })),
        ),
    ];
    for (method, path, json) in refused {
        mfa_required(send(&m, method, &path, &bob, json).await).await;
    }
    // Nothing changed: still a member, still an admin, no invitation sent.
    let listed = m.app.get_json_bearer(&members, &ann).await;
    assert_eq!(items(&listed).len(), 2);
    assert_eq!(m.app.mail.count_to("eve@example.com"), 0);
    let acme = m
        .app
        .get_json_bearer(&format!("/v1/organizations/{org}"), &ann)
        .await;
    assert_eq!(
        (&acme["name"], &acme["require_mfa"]),
        (&json!("Acme"), &json!(true))
    );

    // He still sees the organization in his list, marked, so an interface can
    // ask him to enroll; and his session shows it without a role.
    let mine = m.app.get_json_bearer("/v1/organizations", &bob).await;
    assert_eq!(
        (
            &items(&mine)[0]["id"],
            &items(&mine)[0]["require_mfa"],
            &items(&mine)[0]["role"]
        ),
        (&json!(org), &json!(true), &json!("admin"))
    );
    let session = m.app.get_json_bearer("/v1/session", &bob).await;
    assert_eq!(
        session["organization"],
        json!({ "id": org, "name": "Acme", "require_mfa": true })
    );
    assert_eq!(session["role"], Value::Null);
    assert_eq!(session["capabilities"], json!([]));
    assert_eq!(session["mfa_required"], true);
    // A refresh keeps the session but not the organization's claims.
    let r = m
        .app
        .post(
            "/v1/auth/refresh",
            json!({ "refresh_token": switched["refresh_token"] }),
        )
        .await;
    let refreshed = claims(&token(&body(r, StatusCode::OK).await));
    assert_eq!(
        (&refreshed["org_id"], &refreshed["org_role"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(refreshed["amr"], json!(["pwd"]));

    // Other organizations are not affected.
    let own = m.app.org(&bob, "Bob's").await;
    m.app
        .get_json_bearer(&format!("/v1/organizations/{own}"), &bob)
        .await;
    // Non-members learn nothing: 404, as for an organization that does not exist.
    let eve = token(&m.app.user("eve@example.com").await);
    problem(
        m.app
            .get_bearer(&format!("/v1/organizations/{org}"), &eve)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Leaving the active organization needs nothing.
    let r = m
        .app
        .post_bearer(
            "/v1/auth/switch-organization",
            &bob,
            json!({ "org_id": null }),
        )
        .await;
    body(r, StatusCode::OK).await;

    // Once he enrolls, a step-up with a code makes this same session strong enough.
    let (bob_secret, _) = m.enable(&bob).await;
    let stepped = step_up_with_code(&m, &bob, &bob_secret).await;
    assert_eq!(claims(&stepped)["amr"], json!(["pwd", "otp", "mfa"]));
    let got = m
        .app
        .get_json_bearer(&format!("/v1/organizations/{org}"), &stepped)
        .await;
    assert_eq!(got["role"], "admin");
    let r = m
        .app
        .post_bearer(
            "/v1/auth/switch-organization",
            &stepped,
            json!({ "org_id": org }),
        )
        .await;
    let in_org = claims(&token(&body(r, StatusCode::OK).await));
    assert_eq!(
        (&in_org["org_id"], &in_org["org_role"]),
        (&json!(org), &json!("admin"))
    );
    // And a new sign-in with the code works from the start.
    let login = sign_in_with_code(&m, "bob@example.com", &bob_secret).await;
    let r = m
        .app
        .post_bearer(
            "/v1/auth/switch-organization",
            &token(&login),
            json!({ "org_id": org }),
        )
        .await;
    let fresh = token(&body(r, StatusCode::OK).await);
    let session = m.app.get_json_bearer("/v1/session", &fresh).await;
    assert_eq!(
        (&session["role"], &session["mfa_required"]),
        (&json!("admin"), &json!(false))
    );
    assert!(!session["capabilities"].as_array().unwrap().is_empty());
}

async fn invited_members_join_but_act_only_with_a_second_factor(b: Backend) {
    let Some(m) = Mfa::spawn(b).await else { return };
    let ann_pwd = token(&m.app.user("ann@example.com").await);
    let org = m.app.org(&ann_pwd, "Acme").await;
    let (secret, _) = m.enable(&ann_pwd).await;
    let ann = token(&sign_in_with_code(&m, "ann@example.com", &secret).await);
    body(set_require_mfa(&m, &ann, &org, true).await, StatusCode::OK).await;

    // Accepting creates the membership (and the account), as always...
    let (carl, _) = m.app.member(&ann, &org, "carl@example.com", "member").await;
    let mine = m.app.get_json_bearer("/v1/organizations", &carl).await;
    assert_eq!(items(&mine)[0]["require_mfa"], true);
    // ...but acting there needs a second factor.
    let switch = json!({ "org_id": org });
    mfa_required(
        m.app
            .post_bearer("/v1/auth/switch-organization", &carl, switch.clone())
            .await,
    )
    .await;

    // Once the requirement is off, the same session may switch, and its
    // tokens carry the organization.
    body(set_require_mfa(&m, &ann, &org, false).await, StatusCode::OK).await;
    let r = m
        .app
        .post_bearer("/v1/auth/switch-organization", &carl, switch)
        .await;
    let c = claims(&token(&body(r, StatusCode::OK).await));
    assert_eq!(
        (&c["org_id"], &c["org_role"]),
        (&json!(org), &json!("member"))
    );
}

async fn api_keys_are_not_held_to_the_requirement(b: Backend) {
    let Some(m) = Mfa::spawn(b).await else { return };
    let ann_pwd = token(&m.app.user("ann@example.com").await);
    let org = m.app.org(&ann_pwd, "Acme").await;
    let r = m
        .app
        .post_bearer(
            "/v1/api-keys",
            &ann_pwd,
            json!({ "name": "ci", "scopes": ["members:read", "org:read"], "org_id": org }),
        )
        .await;
    let key = body(r, StatusCode::CREATED).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (secret, _) = m.enable(&ann_pwd).await;
    let ann = token(&sign_in_with_code(&m, "ann@example.com", &secret).await);
    body(set_require_mfa(&m, &ann, &org, true).await, StatusCode::OK).await;

    let with_key = |path: String| {
        m.app
            .http
            .get(m.app.url(&path))
            .header("x-api-key", &key)
            .send()
    };
    // The key is a machine credential: it keeps working...
    let members = with_key(format!("/v1/organizations/{org}/members"))
        .await
        .unwrap();
    assert_eq!(items(&body(members, StatusCode::OK).await).len(), 1);
    let got = with_key(format!("/v1/organizations/{org}")).await.unwrap();
    assert_eq!(body(got, StatusCode::OK).await["require_mfa"], true);
    // ...while its owner's password-only session does not.
    mfa_required(
        m.app
            .get_bearer(&format!("/v1/organizations/{org}/members"), &ann_pwd)
            .await,
    )
    .await;
}

async fn personal_keys_need_an_owner_with_a_second_factor(b: Backend) {
    let Some(m) = Mfa::spawn(b).await else { return };
    let ann_pwd = token(&m.app.user("ann@example.com").await);
    let org = m.app.org(&ann_pwd, "Acme").await;
    let (bob, _) = m
        .app
        .member(&ann_pwd, &org, "bob@example.com", "member")
        .await;
    // Bob, password only, mints a personal key that reads members.
    let r = m
        .app
        .post_bearer(
            "/v1/api-keys",
            &bob,
            json!({ "name": "laptop", "scopes": ["members:read"] }),
        )
        .await;
    let key = body(r, StatusCode::CREATED).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let members = || {
        m.app
            .http
            .get(m.app.url(&format!("/v1/organizations/{org}/members")))
            .header("x-api-key", &key)
            .send()
    };
    assert_eq!(members().await.unwrap().status(), StatusCode::OK);
    let (secret, _) = m.enable(&ann_pwd).await;
    let ann = token(&sign_in_with_code(&m, "ann@example.com", &secret).await);
    body(set_require_mfa(&m, &ann, &org, true).await, StatusCode::OK).await;
    // The key acts for Bob, who has no second factor: refused, and told why.
    let refused = problem(
        members().await.unwrap(),
        StatusCode::FORBIDDEN,
        "mfa_required",
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("personal API key"),
        "{refused}"
    );
    // Once Bob enrolls one, his key works again.
    m.enable(&bob).await;
    assert_eq!(members().await.unwrap().status(), StatusCode::OK);
}
