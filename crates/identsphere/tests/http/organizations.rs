//! Organizations, members, roles, switching, the audit-log query and tenant isolation.
use crate::support::{both_stores, claims, items, problem, token, Backend, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_stores!(
    organization_lifecycle,
    last_owner_is_kept,
    concurrent_mutual_demotion_leaves_an_owner,
    nobody_grants_more_than_they_hold,
    custom_roles_take_effect_at_once,
    switching_puts_the_organization_in_tokens,
    session_shows_capabilities_from_the_membership,
    audit_log_filters_and_pages,
    other_tenants_ids_answer_404,
    members_leave_but_keys_do_not_remove_their_owner,
);

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

async fn organization_lifecycle(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ann = token(&app.user("ann@example.com").await);
    let org = app.org(&ann, "  Acme  ").await;

    let got: Value = app
        .get_json_bearer(&format!("/v1/organizations/{org}"), &ann)
        .await;
    assert_eq!(got["name"], "Acme");
    assert_eq!(got["role"], "owner");
    let r = app
        .post_bearer("/v1/organizations", &ann, json!({ "name": "" }))
        .await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    // A user may belong to many organizations; the list pages by cursor.
    let second = app.org(&ann, "Second").await;
    let third = app.org(&ann, "Third").await;
    let page: Value = app.get_json_bearer("/v1/organizations?limit=2", &ann).await;
    assert_eq!(items(&page).len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let rest: Value = app
        .get_json_bearer(&format!("/v1/organizations?limit=2&cursor={cursor}"), &ann)
        .await;
    let ids: Vec<&str> = items(&page)
        .iter()
        .chain(items(&rest))
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [org.as_str(), second.as_str(), third.as_str()]);
    assert!(rest["next_cursor"].is_null());
    let r = app
        .get_bearer("/v1/organizations?cursor=nonsense", &ann)
        .await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    // Admins rename; members read; only owners delete.
    let (admin, _) = app.member(&ann, &org, "adam@example.com", "admin").await;
    let (member, _) = app.member(&ann, &org, "mia@example.com", "member").await;
    let r = app
        .patch_bearer(
            &format!("/v1/organizations/{org}"),
            &admin,
            json!({ "name": "Acme Inc" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .patch_bearer(
            &format!("/v1/organizations/{org}"),
            &member,
            json!({ "name": "Mine" }),
        )
        .await;
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let got: Value = app
        .get_json_bearer(&format!("/v1/organizations/{org}"), &member)
        .await;
    assert_eq!(
        (got["name"].as_str(), got["role"].as_str()),
        (Some("Acme Inc"), Some("member"))
    );
    let r = app
        .delete_bearer(&format!("/v1/organizations/{org}"), &admin)
        .await;
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .delete_bearer(&format!("/v1/organizations/{org}"), &ann)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .get_bearer(&format!("/v1/organizations/{org}"), &ann)
        .await;
    problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let mine: Value = app.get_json_bearer("/v1/organizations", &member).await;
    assert!(items(&mine).is_empty());
}

async fn last_owner_is_kept(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let ann = token(&login);
    let ann_id = login["user"]["id"].as_str().unwrap().to_owned();
    let org = app.org(&ann, "Acme").await;
    let me = format!("/v1/organizations/{org}/members/{ann_id}");

    let r = app
        .patch_bearer(&me, &ann, json!({ "role": "admin" }))
        .await;
    problem(r, StatusCode::CONFLICT, "conflict").await;
    let r = app.delete_bearer(&me, &ann).await;
    problem(r, StatusCode::CONFLICT, "conflict").await;

    // With a second owner, the first may step down and then leave.
    let (bob, bob_id) = app.member(&ann, &org, "bob@example.com", "owner").await;
    let r = app
        .patch_bearer(&me, &ann, json!({ "role": "member" }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["role"], "member");
    let r = app.delete_bearer(&me, &ann).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .delete_bearer(&format!("/v1/organizations/{org}/members/{bob_id}"), &bob)
        .await;
    problem(r, StatusCode::CONFLICT, "conflict").await;
    let members: Value = app
        .get_json_bearer(&format!("/v1/organizations/{org}/members"), &bob)
        .await;
    let members = items(&members);
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["email"], "bob@example.com");
    assert_eq!(members[0]["role"], "owner");
}

async fn concurrent_mutual_demotion_leaves_an_owner(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let ann = token(&login);
    let ann_id = login["user"]["id"].as_str().unwrap().to_owned();
    let org = app.org(&ann, "Acme").await;
    let (bob, bob_id) = app.member(&ann, &org, "bob@example.com", "owner").await;
    let bob_path = format!("/v1/organizations/{org}/members/{bob_id}");
    let ann_path = format!("/v1/organizations/{org}/members/{ann_id}");
    for round in 0..5 {
        let a = app.patch_bearer(&bob_path, &ann, json!({ "role": "member" }));
        let b = app.patch_bearer(&ann_path, &bob, json!({ "role": "member" }));
        let (a, b) = tokio::join!(a, b);
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        // One demotion wins; the loser is either the last owner (409) or no longer an owner (403).
        assert!(
            statuses == [200, 409] || statuses == [200, 403],
            "round {round}: {statuses:?}"
        );
        let members: Value = app
            .get_json_bearer(&format!("/v1/organizations/{org}/members"), &ann)
            .await;
        let owners: Vec<&Value> = items(&members)
            .iter()
            .filter(|m| m["role"] == "owner")
            .collect();
        assert_eq!(owners.len(), 1, "round {round}");
        // Restore two owners for the next round.
        let (owner_token, other) = if owners[0]["user_id"] == ann_id.as_str() {
            (&ann, &bob_id)
        } else {
            (&bob, &ann_id)
        };
        let r = app
            .patch_bearer(
                &format!("/v1/organizations/{org}/members/{other}"),
                owner_token,
                json!({ "role": "owner" }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
}

async fn nobody_grants_more_than_they_hold(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ann = token(&app.user("ann@example.com").await);
    let org = app.org(&ann, "Acme").await;
    let (admin, admin_id) = app.member(&ann, &org, "adam@example.com", "admin").await;
    let (_, mia_id) = app.member(&ann, &org, "mia@example.com", "member").await;
    let login = app
        .login("ann@example.com", crate::support::PASSWORD)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let ann_id = login["user"]["id"].as_str().unwrap().to_owned();

    // Admins cannot make, unmake or remove owners.
    let r = app
        .patch_bearer(
            &format!("/v1/organizations/{org}/members/{mia_id}"),
            &admin,
            json!({ "role": "owner" }),
        )
        .await;
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .patch_bearer(
            &format!("/v1/organizations/{org}/members/{ann_id}"),
            &admin,
            json!({ "role": "member" }),
        )
        .await;
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .delete_bearer(&format!("/v1/organizations/{org}/members/{ann_id}"), &admin)
        .await;
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;

    // A custom role holder with members:manage cannot hand out roles above their own.
    let r = app
        .post_bearer(&format!("/v1/organizations/{org}/roles"), &ann, json!({ "name": "people", "permissions": ["org:read", "members:read", "members:manage", "roles:manage"] }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .patch_bearer(
            &format!("/v1/organizations/{org}/members/{admin_id}"),
            &ann,
            json!({ "role": "people" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let people = admin; // now holds only the "people" role
    let r = app
        .patch_bearer(
            &format!("/v1/organizations/{org}/members/{mia_id}"),
            &people,
            json!({ "role": "admin" }),
        )
        .await;
    let body = problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(
        body["detail"].as_str().unwrap().contains("cannot grant"),
        "{body}"
    );
    let r = app
        .post_bearer(
            &format!("/v1/organizations/{org}/roles"),
            &people,
            json!({ "name": "auditor", "permissions": ["audit:read"] }),
        )
        .await;
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .post_bearer(
            &format!("/v1/organizations/{org}/roles"),
            &people,
            json!({ "name": "reader", "permissions": ["members:read"] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .patch_bearer(
            &format!("/v1/organizations/{org}/members/{mia_id}"),
            &people,
            json!({ "role": "reader" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Members without members:manage manage nobody but may leave.
    let r = app
        .patch_bearer(
            &format!("/v1/organizations/{org}/members/{mia_id}"),
            &people,
            json!({ "role": "ghost" }),
        )
        .await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}

async fn custom_roles_take_effect_at_once(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.app_permissions = vec!["app:invoices.read".into()]
    })
    .await
    else {
        return;
    };
    let ann = token(&app.user("ann@example.com").await);
    let org = app.org(&ann, "Acme").await;
    let (mia, mia_id) = app.member(&ann, &org, "mia@example.com", "member").await;
    let roles = format!("/v1/organizations/{org}/roles");

    let listed: Value = app.get_json_bearer(&roles, &mia).await;
    let names: Vec<&str> = items(&listed)
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["owner", "admin", "member"]);
    let owner = &listed["items"][0];
    assert_eq!(owner["built_in"], true);
    assert!(owner["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("app:invoices.read")));

    for (body, code) in [
        (
            json!({ "name": "Bad Name", "permissions": [] }),
            "validation_failed",
        ),
        (
            json!({ "name": "x", "permissions": ["org:delete"] }),
            "validation_failed",
        ),
        (
            json!({ "name": "x", "permissions": ["app:unregistered"] }),
            "validation_failed",
        ),
        (json!({ "name": "admin", "permissions": [] }), "conflict"),
    ] {
        let r = app.post_bearer(&roles, &ann, body.clone()).await;
        let status = if code == "conflict" {
            StatusCode::CONFLICT
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        problem(r, status, code).await;
    }
    let r = app.post_bearer(&roles, &ann, json!({ "name": "auditor", "permissions": ["audit:read", "org:read", "app:invoices.read"] })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .post_bearer(
            &roles,
            &ann,
            json!({ "name": "auditor", "permissions": [] }),
        )
        .await;
    problem(r, StatusCode::CONFLICT, "conflict").await;
    let r = app
        .post_bearer(&roles, &mia, json!({ "name": "mine", "permissions": [] }))
        .await;
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;

    // The same access token: the role is read per request, not from the token.
    let log = format!("/v1/organizations/{org}/audit-log");
    problem(
        app.get_bearer(&log, &mia).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let r = app
        .patch_bearer(
            &format!("/v1/organizations/{org}/members/{mia_id}"),
            &ann,
            json!({ "role": "auditor" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.get_bearer(&log, &mia).await.status(), StatusCode::OK);
    let r = app
        .patch_bearer(
            &format!("{roles}/auditor"),
            &ann,
            json!({ "permissions": ["org:read"] }),
        )
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["permissions"],
        json!(["org:read"])
    );
    problem(
        app.get_bearer(&log, &mia).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // Built-in roles are fixed; a role in use cannot be deleted.
    problem(
        app.patch_bearer(
            &format!("{roles}/admin"),
            &ann,
            json!({ "permissions": [] }),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    problem(
        app.delete_bearer(&format!("{roles}/owner"), &ann).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    problem(
        app.delete_bearer(&format!("{roles}/auditor"), &ann).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    let r = app
        .patch_bearer(
            &format!("/v1/organizations/{org}/members/{mia_id}"),
            &ann,
            json!({ "role": "member" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.delete_bearer(&format!("{roles}/auditor"), &ann)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    problem(
        app.delete_bearer(&format!("{roles}/auditor"), &ann).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn switching_puts_the_organization_in_tokens(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ann = token(&app.user("ann@example.com").await);
    let org = app.org(&ann, "Acme").await;
    let mia_login = app.user("mia@example.com").await;
    let mia_id = mia_login["user"]["id"].as_str().unwrap().to_owned();
    let invite = app.invite(&ann, &org, "mia@example.com", "member").await;
    let r = app
        .post_bearer(
            "/v1/auth/invitations/accept",
            &token(&mia_login),
            json!({ "token": invite }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    let r = app
        .post_bearer(
            "/v1/auth/switch-organization",
            &token(&mia_login),
            json!({ "org_id": org }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let switched: Value = r.json().await.unwrap();
    let c = claims(switched["access_token"].as_str().unwrap());
    assert_eq!(
        (c["org_id"].as_str(), c["org_role"].as_str()),
        (Some(org.as_str()), Some("member"))
    );
    assert_eq!(c["sid"], mia_login["session_id"]);

    // The login's refresh token still works next to the switch's (no reuse alarm).
    let r = app
        .post(
            "/v1/auth/refresh",
            json!({ "refresh_token": mia_login["refresh_token"] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Refresh keeps the organization and reads the role again.
    let r = app
        .patch_bearer(
            &format!("/v1/organizations/{org}/members/{mia_id}"),
            &ann,
            json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post(
            "/v1/auth/refresh",
            json!({ "refresh_token": switched["refresh_token"] }),
        )
        .await;
    let refreshed: Value = r.json().await.unwrap();
    let c = claims(refreshed["access_token"].as_str().unwrap());
    assert_eq!(
        (c["org_id"].as_str(), c["org_role"].as_str()),
        (Some(org.as_str()), Some("admin"))
    );

    // A removed member's next refresh drops the organization.
    let r = app
        .delete_bearer(&format!("/v1/organizations/{org}/members/{mia_id}"), &ann)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .post(
            "/v1/auth/refresh",
            json!({ "refresh_token": refreshed["refresh_token"] }),
        )
        .await;
    let c = claims(
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap(),
    );
    assert!(
        c.get("org_id").is_none() && c.get("org_role").is_none(),
        "{c}"
    );

    // Not a member (or no such organization): 404; `null` leaves the organization.
    let r = app
        .post_bearer(
            "/v1/auth/switch-organization",
            &token(&mia_login),
            json!({ "org_id": org }),
        )
        .await;
    problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .post_bearer(
            "/v1/auth/switch-organization",
            &token(&mia_login),
            json!({ "org_id": "not-an-id" }),
        )
        .await;
    problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .post_bearer(
            "/v1/auth/switch-organization",
            &ann,
            json!({ "org_id": null }),
        )
        .await;
    let c = claims(
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap(),
    );
    assert!(c.get("org_id").is_none());
}

async fn session_shows_capabilities_from_the_membership(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ann = token(&app.user("ann@example.com").await);
    let org = app.org(&ann, "Acme").await;
    let (mia, mia_id) = app.member(&ann, &org, "mia@example.com", "member").await;

    let none: Value = app.get_json_bearer("/v1/session", &mia).await;
    assert!(none["organization"].is_null() && none["role"].is_null());
    assert_eq!(none["capabilities"], json!([]));

    let r = app
        .post_bearer(
            "/v1/auth/switch-organization",
            &mia,
            json!({ "org_id": org }),
        )
        .await;
    let switched: Value = r.json().await.unwrap();
    let mia = switched["access_token"].as_str().unwrap().to_owned();
    let info: Value = app.get_json_bearer("/v1/session", &mia).await;
    assert_eq!(
        info["organization"],
        json!({ "id": org, "name": "Acme", "require_mfa": false })
    );
    assert_eq!(info["role"], "member");
    assert_eq!(info["mfa_required"], false);
    assert_eq!(info["capabilities"], json!(["members:read", "org:read"]));

    // A role change shows at once, with the same token whose claim still says "member".
    let r = app
        .patch_bearer(
            &format!("/v1/organizations/{org}/members/{mia_id}"),
            &ann,
            json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let info: Value = app.get_json_bearer("/v1/session", &mia).await;
    assert_eq!(info["role"], "admin");
    assert!(info["capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!("members:manage")));
    assert_eq!(claims(&mia)["org_role"], "member");
}

async fn audit_log_filters_and_pages(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let ann = token(&login);
    let ann_id = login["user"]["id"].as_str().unwrap().to_owned();
    let org = app.org(&ann, "Acme").await;
    let other = app.org(&ann, "Other").await;
    let (_, mia_id) = app.member(&ann, &org, "mia@example.com", "member").await;
    for role in ["admin", "member", "admin"] {
        let r = app
            .patch_bearer(
                &format!("/v1/organizations/{org}/members/{mia_id}"),
                &ann,
                json!({ "role": role }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let log = format!("/v1/organizations/{org}/audit-log");

    let all: Value = app.get_json_bearer(&log, &ann).await;
    let events = items(&all);
    assert!(events.iter().all(|e| e["org_id"] == org.as_str()), "{all}");
    assert_eq!(events[0]["action"], "member.role_changed");
    assert_eq!(
        events[0]["metadata"],
        json!({ "from": "member", "to": "admin" })
    );
    assert_eq!(events[0]["target_id"], mia_id.as_str());
    assert!(
        !all.to_string().contains("example.com"),
        "audit events must not hold emails: {all}"
    );
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"organization.created") && actions.contains(&"member.added"),
        "{actions:?}"
    );
    assert!(!actions.contains(&"user.login.succeeded"));

    let changed: Value = app
        .get_json_bearer(&format!("{log}?action=member.role_changed&limit=2"), &ann)
        .await;
    assert_eq!(items(&changed).len(), 2);
    let cursor = changed["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get_json_bearer(
            &format!("{log}?action=member.role_changed&limit=2&cursor={cursor}"),
            &ann,
        )
        .await;
    assert_eq!(items(&rest).len(), 1);
    assert_eq!(rest["items"][0]["metadata"]["to"], "admin");
    assert!(rest["next_cursor"].is_null());

    let by_mia: Value = app
        .get_json_bearer(&format!("{log}?actor_id={mia_id}"), &ann)
        .await;
    assert!(items(&by_mia)
        .iter()
        .all(|e| e["actor_id"] == mia_id.as_str()));
    assert!(!items(&by_mia).is_empty());
    let by_ann: Value = app
        .get_json_bearer(
            &format!("{log}?actor_id={ann_id}&action=member.role_changed"),
            &ann,
        )
        .await;
    assert_eq!(items(&by_ann).len(), 3);

    let future: Value = app
        .get_json_bearer(&format!("{log}?since=2999-01-01T00:00:00Z"), &ann)
        .await;
    assert!(items(&future).is_empty());
    let past: Value = app
        .get_json_bearer(&format!("{log}?until=2000-01-01T00:00:00Z"), &ann)
        .await;
    assert!(items(&past).is_empty());
    let other_log: Value = app
        .get_json_bearer(&format!("/v1/organizations/{other}/audit-log"), &ann)
        .await;
    assert_eq!(items(&other_log).len(), 1);

    for bad in [
        "action=nope",
        "actor_id=x",
        "since=yesterday",
        "limit=0",
        "limit=101",
    ] {
        let r = app.get_bearer(&format!("{log}?{bad}"), &ann).await;
        problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
}

/// Every organization-scoped endpoint, called by the owner of organization A
/// with organization B's ids (and with A's id but B's sub-resource ids),
/// answers 404 and changes nothing in B.
async fn other_tenants_ids_answer_404(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let ann = token(&login);
    let ann_id = login["user"]["id"].as_str().unwrap().to_owned();
    let bob = token(&app.user("bob@example.com").await);
    let a = app.org(&ann, "A").await;
    let b = app.org(&bob, "B").await;
    let (_, b_member) = app.member(&bob, &b, "mia@example.com", "member").await;
    let r = app
        .post_bearer(
            &format!("/v1/organizations/{b}/roles"),
            &bob,
            json!({ "name": "b-role", "permissions": ["org:read"] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .post_bearer(
            &format!("/v1/organizations/{b}/invitations"),
            &bob,
            json!({ "email": "x@example.com", "role": "member" }),
        )
        .await;
    let b_invitation = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post_bearer(
            "/v1/api-keys",
            &bob,
            json!({ "name": "b", "scopes": ["org:read"], "org_id": b }),
        )
        .await;
    let b_key = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/v1/organizations/{b}"), None),
        (
            Method::PATCH,
            format!("/v1/organizations/{b}"),
            Some(json!({ "name": "pwned" })),
        ),
        (Method::DELETE, format!("/v1/organizations/{b}"), None),
        (Method::GET, format!("/v1/organizations/{b}/members"), None),
        (
            Method::PATCH,
            format!("/v1/organizations/{b}/members/{b_member}"),
            Some(json!({ "role": "admin" })),
        ),
        (
            Method::DELETE,
            format!("/v1/organizations/{b}/members/{b_member}"),
            None,
        ),
        (Method::GET, format!("/v1/organizations/{b}/roles"), None),
        (
            Method::POST,
            format!("/v1/organizations/{b}/roles"),
            Some(json!({ "name": "evil", "permissions": [] })),
        ),
        (
            Method::PATCH,
            format!("/v1/organizations/{b}/roles/b-role"),
            Some(json!({ "permissions": [] })),
        ),
        (
            Method::DELETE,
            format!("/v1/organizations/{b}/roles/b-role"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/organizations/{b}/invitations"),
            Some(json!({ "email": "y@example.com", "role": "member" })),
        ),
        (
            Method::GET,
            format!("/v1/organizations/{b}/invitations"),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/organizations/{b}/invitations/{b_invitation}"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/organizations/{b}/audit-log"),
            None,
        ),
        (Method::GET, format!("/v1/api-keys?org_id={b}"), None),
        (Method::DELETE, format!("/v1/api-keys/{b_key}"), None),
        (
            Method::POST,
            "/v1/api-keys".into(),
            Some(json!({ "name": "k", "scopes": ["org:read"], "org_id": b })),
        ),
        (
            Method::POST,
            "/v1/auth/switch-organization".into(),
            Some(json!({ "org_id": b })),
        ),
        // A's id with B's sub-resources.
        (
            Method::PATCH,
            format!("/v1/organizations/{a}/members/{b_member}"),
            Some(json!({ "role": "admin" })),
        ),
        (
            Method::DELETE,
            format!("/v1/organizations/{a}/members/{b_member}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/organizations/{a}/roles/b-role"),
            Some(json!({ "permissions": [] })),
        ),
        (
            Method::DELETE,
            format!("/v1/organizations/{a}/roles/b-role"),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/organizations/{a}/invitations/{b_invitation}"),
            None,
        ),
    ];
    for (method, path, body) in calls {
        let r = send(&app, method.clone(), &path, &ann, body).await;
        let p = problem(r, StatusCode::NOT_FOUND, "not_found").await;
        assert!(
            !p.to_string().contains("mia@example.com"),
            "{method} {path}: {p}"
        );
    }
    // Assigning B's custom role inside A is an unknown role, not a leak.
    let r = app
        .post_bearer(
            &format!("/v1/organizations/{a}/invitations"),
            &ann,
            json!({ "email": "z@example.com", "role": "b-role" }),
        )
        .await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    // B is untouched.
    let got: Value = app
        .get_json_bearer(&format!("/v1/organizations/{b}"), &bob)
        .await;
    assert_eq!(got["name"], "B");
    let members: Value = app
        .get_json_bearer(&format!("/v1/organizations/{b}/members"), &bob)
        .await;
    assert_eq!(items(&members).len(), 2);
    let invitations: Value = app
        .get_json_bearer(&format!("/v1/organizations/{b}/invitations"), &bob)
        .await;
    assert_eq!(items(&invitations).len(), 1);
    let roles: Value = app
        .get_json_bearer(&format!("/v1/organizations/{b}/roles"), &bob)
        .await;
    assert_eq!(items(&roles).len(), 4);
    let keys: Value = app
        .get_json_bearer(&format!("/v1/api-keys?org_id={b}"), &bob)
        .await;
    assert_eq!(items(&keys).len(), 1);
    let log: Value = app
        .get_json_bearer(&format!("/v1/organizations/{b}/audit-log"), &bob)
        .await;
    assert!(!items(&log).is_empty());
    assert!(items(&log).iter().all(|e| e["actor_id"] != ann_id.as_str()));
}

async fn members_leave_but_keys_do_not_remove_their_owner(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ann = token(&app.user("ann@example.com").await);
    let org = app.org(&ann, "Acme").await;
    let (mia, mia_id) = app.member(&ann, &org, "mia@example.com", "admin").await;
    let key: Value = app
        .post_bearer(
            "/v1/api-keys",
            &mia,
            json!({ "name": "reader", "scopes": ["members:read"], "org_id": org }),
        )
        .await
        .json()
        .await
        .unwrap();
    let r = app
        .http
        .delete(app.url(&format!("/v1/organizations/{org}/members/{mia_id}")))
        .header("x-api-key", key["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    // The person may leave without members:manage.
    let r = app
        .delete_bearer(&format!("/v1/organizations/{org}/members/{mia_id}"), &mia)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .get_bearer(&format!("/v1/organizations/{org}"), &mia)
        .await;
    problem(r, StatusCode::NOT_FOUND, "not_found").await;
}
