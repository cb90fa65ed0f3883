//! API keys: shown once, stored hashed, scoped, checked on every request;
//! organization keys reach their organization only, through the owner's
//! membership as it is now.
use crate::support::*;
use identsphere::core::{
    audit::{AuditAction, AuditFilter},
    store::PageRequest,
};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

both_stores!(
    personal_keys_are_shown_once_and_scoped,
    scopes_are_validated,
    wildcard_and_app_scopes_when_configured,
    revoked_keys_fail_at_once,
    keys_expire,
    keys_cannot_use_session_only_endpoints,
    org_keys_reach_their_organization_only,
    creating_org_keys_needs_api_keys_manage,
    membership_changes_narrow_org_keys_at_once,
    key_lifecycle_is_audited_with_ids_only,
);

/// Creates a key as the session `token`; returns the creating response.
async fn create_key(app: &TestApp, token: &str, req: Value) -> Value {
    body(
        app.post_bearer("/v1/api-keys", token, req).await,
        StatusCode::CREATED,
    )
    .await
}

/// A request authenticated by `key` in `x-api-key`.
async fn with_key(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    json: Option<Value>,
) -> Response {
    let mut req = app
        .http
        .request(method, app.url(path))
        .header("x-api-key", key);
    if let Some(j) = json {
        req = req.json(&j);
    }
    req.send().await.unwrap()
}

async fn personal_keys_are_shown_once_and_scoped(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let ann = app.user("ann@example.com").await;
    let session = token(&ann);
    let created = create_key(
        &app,
        &session,
        json!({ "name": "ci", "scopes": ["users:read"] }),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("isk_"), "{key}");
    assert!(key.len() >= 40, "{key}");
    let prefix = created["prefix"].as_str().unwrap();
    assert!(prefix.starts_with("isk_") && prefix.len() > 4 && prefix.len() < key.len());
    assert!(key.starts_with(prefix));
    assert_eq!(created["name"], "ci");
    assert_eq!(created["scopes"], json!(["users:read"]));
    assert!(created["org_id"].is_null());
    assert!(created["expires_at"].is_null());
    assert!(created["last_used_at"].is_null());
    assert!(created["created_at"].as_str().is_some());
    let id = created["id"].as_str().unwrap();

    // The list never holds the secret.
    let r = app.get_bearer("/v1/api-keys", &session).await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(!text.contains(&key), "{text}");
    let list: Value = serde_json::from_str(&text).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id);
    assert_eq!(items[0]["prefix"], prefix);
    assert!(items[0].get("key").is_none());

    // Both transports work for what the scope covers.
    let me = body(app.get_bearer("/v1/users/me", &key).await, StatusCode::OK).await;
    assert_eq!(me["id"], ann["user"]["id"]);
    let me = body(
        with_key(&app, Method::GET, "/v1/users/me", &key, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["email"], "ann@example.com");

    // Writing needs users:write.
    problem(
        app.patch_bearer("/v1/users/me", &key, json!({ "name": "Mallory" }))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    problem(
        with_key(
            &app,
            Method::PATCH,
            "/v1/users/me",
            &key,
            Some(json!({ "name": "Mallory" })),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let me = body(
        app.get_bearer("/v1/users/me", &session).await,
        StatusCode::OK,
    )
    .await;
    assert_ne!(me["name"], "Mallory");

    // Use is recorded.
    let list = body(
        app.get_bearer("/v1/api-keys", &session).await,
        StatusCode::OK,
    )
    .await;
    assert!(
        list["items"][0]["last_used_at"].as_str().is_some(),
        "{list}"
    );

    // Near misses are refused.
    let mut tampered = key.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [tampered.as_str(), "isk_", "isk_nope", prefix] {
        problem(
            app.get_bearer("/v1/users/me", bad).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    problem(
        with_key(&app, Method::GET, "/v1/users/me", &key[4..], None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;

    // Another user's list does not show it.
    let bob = app.user("bob@example.com").await;
    let list = body(
        app.get_bearer("/v1/api-keys", &token(&bob)).await,
        StatusCode::OK,
    )
    .await;
    assert!(list["items"].as_array().unwrap().is_empty());
}

async fn scopes_are_validated(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let session = token(&app.user("ann@example.com").await);
    for (req, fields) in [
        (json!({ "name": "k", "scopes": [] }), vec!["scopes"]),
        (
            json!({ "name": "k", "scopes": ["users:admin"] }),
            vec!["scopes[0]"],
        ),
        (
            json!({ "name": "k", "scopes": ["users:read", "nope", "app:unregistered"] }),
            vec!["scopes[1]", "scopes[2]"],
        ),
        (json!({ "name": "k", "scopes": ["*"] }), vec!["scopes[0]"]),
        (
            json!({ "name": "k", "scopes": ["users:read", "*"] }),
            vec!["scopes[1]"],
        ),
        (
            json!({ "name": "k", "scopes": ["users:read"], "expires_at": "2000-01-01T00:00:00Z" }),
            vec!["expires_at"],
        ),
        (
            json!({ "name": "k", "scopes": ["users:read"], "expires_at": chrono::Utc::now() - chrono::Duration::seconds(1) }),
            vec!["expires_at"],
        ),
        (
            json!({ "name": "  ", "scopes": ["users:read"] }),
            vec!["name"],
        ),
        (
            json!({ "name": "k", "scopes": ["users:read"], "org_id": "not-an-org" }),
            vec!["org_id"],
        ),
    ] {
        let p = problem(
            app.post_bearer("/v1/api-keys", &session, req.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(field_errors(&p), fields, "{req}");
    }
    // Missing scopes is a shape error, also 422.
    problem(
        app.post_bearer("/v1/api-keys", &session, json!({ "name": "k" }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    // Nothing was created.
    let list = body(
        app.get_bearer("/v1/api-keys", &session).await,
        StatusCode::OK,
    )
    .await;
    assert!(list["items"].as_array().unwrap().is_empty());
    // A future expiry and duplicate scopes are fine (kept once).
    let created = create_key(
        &app,
        &session,
        json!({ "name": "k", "scopes": ["users:read", "users:read", "scim"],
                "expires_at": chrono::Utc::now() + chrono::Duration::days(1) }),
    )
    .await;
    assert_eq!(created["scopes"], json!(["users:read", "scim"]));
    assert!(created["expires_at"].as_str().is_some());
}

async fn wildcard_and_app_scopes_when_configured(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| {
        c.allow_wildcard_api_key_scope = true;
        c.app_permissions = vec!["app:invoices.read".into()];
    })
    .await
    else {
        return;
    };
    let session = token(&app.user("ann@example.com").await);
    let created = create_key(&app, &session, json!({ "name": "all", "scopes": ["*"] })).await;
    assert_eq!(created["scopes"], json!(["*"]));
    let key = created["key"].as_str().unwrap();
    let me = body(
        app.patch_bearer("/v1/users/me", key, json!({ "name": "Ann" }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["name"], "Ann");
    let created = create_key(
        &app,
        &session,
        json!({ "name": "app", "scopes": ["app:invoices.read"] }),
    )
    .await;
    assert_eq!(created["scopes"], json!(["app:invoices.read"]));
    let p = problem(
        app.post_bearer(
            "/v1/api-keys",
            &session,
            json!({ "name": "k", "scopes": ["app:invoices.write"] }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(field_errors(&p), ["scopes[0]"]);
}

async fn revoked_keys_fail_at_once(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let ann = token(&app.user("ann@example.com").await);
    let bob = token(&app.user("bob@example.com").await);
    let created = create_key(
        &app,
        &ann,
        json!({ "name": "ci", "scopes": ["users:read"] }),
    )
    .await;
    let key = created["key"].as_str().unwrap();
    let path = format!("/v1/api-keys/{}", created["id"].as_str().unwrap());
    assert_eq!(
        app.get_bearer("/v1/users/me", key).await.status(),
        StatusCode::OK
    );

    // Another user's key does not exist for bob.
    problem(
        app.delete_bearer(&path, &bob).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem(
        app.delete_bearer("/v1/api-keys/not-an-id", &ann).await,
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
    assert_eq!(
        app.get_bearer("/v1/users/me", key).await.status(),
        StatusCode::OK
    );

    let r = app.delete_bearer(&path, &ann).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    problem(
        app.get_bearer("/v1/users/me", key).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    problem(
        with_key(&app, Method::GET, "/v1/users/me", key, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    problem(
        app.delete_bearer(&path, &ann).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let list = body(app.get_bearer("/v1/api-keys", &ann).await, StatusCode::OK).await;
    assert!(list["items"].as_array().unwrap().is_empty());
}

async fn keys_expire(b: Backend) {
    use identsphere::core::clock::ManualClock;
    let start = chrono::Utc::now();
    let clock = Arc::new(ManualClock::new(start));
    let Some(app) = TestApp::spawn_with(b, |c| c.clock = clock.clone()).await else {
        return;
    };
    let session = token(&app.user("ann@example.com").await);
    // "In the future" is judged by the server's clock.
    let p = problem(
        app.post_bearer(
            "/v1/api-keys",
            &session,
            json!({ "name": "k", "scopes": ["users:read"], "expires_at": start - chrono::Duration::seconds(1) }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(field_errors(&p), ["expires_at"]);
    let expires = start + chrono::Duration::hours(1);
    let created = create_key(
        &app,
        &session,
        json!({ "name": "k", "scopes": ["users:read"], "expires_at": expires }),
    )
    .await;
    let key = created["key"].as_str().unwrap();
    assert_eq!(
        created["expires_at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            .timestamp(),
        expires.timestamp()
    );
    clock.advance(chrono::Duration::hours(1) - chrono::Duration::seconds(1));
    assert_eq!(
        app.get_bearer("/v1/users/me", key).await.status(),
        StatusCode::OK
    );
    clock.advance(chrono::Duration::seconds(2));
    problem(
        app.get_bearer("/v1/users/me", key).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    problem(
        with_key(&app, Method::GET, "/v1/users/me", key, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

async fn keys_cannot_use_session_only_endpoints(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let session = token(&app.user("ann@example.com").await);
    let org = app.org(&session, "Acme").await;
    let key = create_key(
        &app,
        &session,
        json!({ "name": "broad", "scopes": ["users:read", "users:write", "org:read", "org:manage", "api_keys:manage", "members:read"] }),
    )
    .await;
    let id = key["id"].as_str().unwrap();
    let key = key["key"].as_str().unwrap();
    // The key works where its scopes apply…
    assert_eq!(
        app.get_bearer("/v1/users/me", key).await.status(),
        StatusCode::OK
    );
    // …but not on endpoints that belong to a signed-in person.
    let new_key = json!({ "name": "minted", "scopes": ["users:read"] });
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, "/v1/api-keys".into(), Some(new_key.clone())),
        (
            Method::POST,
            "/v1/api-keys".into(),
            Some(json!({ "name": "minted", "scopes": ["members:read"], "org_id": org })),
        ),
        (Method::GET, "/v1/api-keys".into(), None),
        (Method::DELETE, format!("/v1/api-keys/{id}"), None),
        (
            Method::POST,
            "/v1/auth/switch-organization".into(),
            Some(json!({ "org_id": org })),
        ),
        (Method::GET, "/v1/auth/sessions".into(), None),
        (Method::DELETE, "/v1/auth/sessions".into(), None),
        (
            Method::POST,
            "/v1/organizations".into(),
            Some(json!({ "name": "Minted" })),
        ),
        (Method::GET, "/v1/session".into(), None),
    ];
    for (method, path, json) in cases {
        // Both transports of a key.
        let r = app
            .http
            .request(method.clone(), app.url(&path))
            .bearer_auth(key);
        let r = match &json {
            Some(j) => r.json(j),
            None => r,
        };
        let p = problem(r.send().await.unwrap(), StatusCode::FORBIDDEN, "forbidden").await;
        assert!(p["detail"].as_str().is_some(), "{method} {path}");
        problem(
            with_key(&app, method.clone(), &path, key, json).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
    // Nothing was minted, revoked or created.
    let list = body(
        app.get_bearer("/v1/api-keys", &session).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let orgs = body(
        app.get_bearer("/v1/organizations", &session).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(orgs["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.get_bearer("/v1/users/me", key).await.status(),
        StatusCode::OK
    );
}

async fn org_keys_reach_their_organization_only(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let ann = token(&app.user("ann@example.com").await);
    let org = app.org(&ann, "Acme").await;
    let second = app.org(&ann, "Second").await;
    let (_, bob_id) = app.member(&ann, &org, "bob@example.com", "member").await;

    let created = create_key(
        &app,
        &ann,
        json!({ "name": "reader", "scopes": ["members:read", "org:read"], "org_id": org }),
    )
    .await;
    assert_eq!(created["org_id"], org.as_str());
    let key = created["key"].as_str().unwrap();

    let members = body(
        app.get_bearer(&format!("/v1/organizations/{org}/members"), key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(members["items"].as_array().unwrap().len(), 2);
    let one = body(
        with_key(
            &app,
            Method::GET,
            &format!("/v1/organizations/{org}"),
            key,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(one["id"], org.as_str());
    problem(
        app.patch_bearer(
            &format!("/v1/organizations/{org}/members/{bob_id}"),
            key,
            json!({ "role": "admin" }),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    problem(
        app.get_bearer(&format!("/v1/organizations/{org}/audit-log"), key)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    problem(
        app.get_bearer("/v1/users/me", key).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // The owner's other organization does not exist for the key.
    for path in [
        format!("/v1/organizations/{second}"),
        format!("/v1/organizations/{second}/members"),
    ] {
        problem(
            app.get_bearer(&path, key).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let orgs = body(
        app.get_bearer("/v1/organizations", key).await,
        StatusCode::OK,
    )
    .await;
    let orgs = orgs["items"].as_array().unwrap();
    assert_eq!(orgs.len(), 1, "{orgs:?}");
    assert_eq!(orgs[0]["id"], org.as_str());
    assert_eq!(orgs[0]["role"], "owner");

    // A personal key with the same scope reaches both.
    let personal = create_key(
        &app,
        &ann,
        json!({ "name": "p", "scopes": ["members:read", "org:read"] }),
    )
    .await;
    let personal = personal["key"].as_str().unwrap();
    for o in [&org, &second] {
        assert_eq!(
            app.get_bearer(&format!("/v1/organizations/{o}/members"), personal)
                .await
                .status(),
            StatusCode::OK
        );
    }
    let orgs = body(
        app.get_bearer("/v1/organizations", personal).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(orgs["items"].as_array().unwrap().len(), 2);

    // Org keys are listed with their organization, not among personal keys.
    let listed = body(
        app.get_bearer(&format!("/v1/api-keys?org_id={org}"), &ann)
            .await,
        StatusCode::OK,
    )
    .await;
    let listed = listed["items"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], created["id"]);
    let mine = body(app.get_bearer("/v1/api-keys", &ann).await, StatusCode::OK).await;
    assert!(mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["org_id"].is_null() && k["id"] != created["id"]));
    let second_keys = body(
        app.get_bearer(&format!("/v1/api-keys?org_id={second}"), &ann)
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(second_keys["items"].as_array().unwrap().is_empty());
}

async fn creating_org_keys_needs_api_keys_manage(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let ann = token(&app.user("ann@example.com").await);
    let org = app.org(&ann, "Acme").await;
    let (mia, _) = app.member(&ann, &org, "mia@example.com", "member").await;
    let (adam, _) = app.member(&ann, &org, "adam@example.com", "admin").await;
    let r = app
        .post_bearer(
            &format!("/v1/organizations/{org}/roles"),
            &ann,
            json!({ "name": "keymaster", "permissions": ["api_keys:manage", "members:read"] }),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let (kim, _) = app.member(&ann, &org, "kim@example.com", "keymaster").await;

    // A member lacks api_keys:manage.
    problem(
        app.post_bearer(
            "/v1/api-keys",
            &mia,
            json!({ "name": "k", "scopes": ["members:read"], "org_id": org }),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    problem(
        app.get_bearer(&format!("/v1/api-keys?org_id={org}"), &mia)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // An admin grants what they hold.
    let admin_key = create_key(
        &app,
        &adam,
        json!({ "name": "auditor", "scopes": ["audit:read", "members:manage"], "org_id": org }),
    )
    .await;
    assert_eq!(
        app.get_bearer(
            &format!("/v1/organizations/{org}/audit-log"),
            admin_key["key"].as_str().unwrap()
        )
        .await
        .status(),
        StatusCode::OK
    );

    // A custom role with api_keys:manage grants only its own permissions.
    let kim_key = create_key(
        &app,
        &kim,
        json!({ "name": "reader", "scopes": ["members:read"], "org_id": org }),
    )
    .await;
    assert_eq!(
        app.get_bearer(
            &format!("/v1/organizations/{org}/members"),
            kim_key["key"].as_str().unwrap()
        )
        .await
        .status(),
        StatusCode::OK
    );
    problem(
        app.post_bearer(
            "/v1/api-keys",
            &kim,
            json!({ "name": "k", "scopes": ["audit:read"], "org_id": org }),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // Outsiders do not see the organization.
    let eve = token(&app.user("eve@example.com").await);
    problem(
        app.post_bearer(
            "/v1/api-keys",
            &eve,
            json!({ "name": "k", "scopes": ["members:read"], "org_id": org }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem(
        app.post_bearer(
            "/v1/api-keys",
            &eve,
            json!({ "name": "k", "scopes": ["members:read"], "org_id": uuid::Uuid::now_v7().to_string() }),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // A personal key may name any scope, but it acts within its owner's
    // membership: scopes ∩ role permissions.
    let mia_key = create_key(
        &app,
        &mia,
        json!({ "name": "mine", "scopes": ["audit:read"] }),
    )
    .await;
    let mia_key = mia_key["key"].as_str().unwrap();
    problem(
        app.get_bearer(&format!("/v1/organizations/{org}/audit-log"), mia_key)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    // …and mia's own members:read is not in the key's scopes.
    problem(
        app.get_bearer(&format!("/v1/organizations/{org}/members"), mia_key)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // Only members with api_keys:manage revoke an organization's keys.
    let path = format!("/v1/api-keys/{}", kim_key["id"].as_str().unwrap());
    problem(
        app.delete_bearer(&path, &mia).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    problem(
        app.delete_bearer(&path, &eve).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(
        app.delete_bearer(&path, &adam).await.status(),
        StatusCode::NO_CONTENT
    );
    problem(
        app.get_bearer(
            &format!("/v1/organizations/{org}/members"),
            kim_key["key"].as_str().unwrap(),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

async fn membership_changes_narrow_org_keys_at_once(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let ann = token(&app.user("ann@example.com").await);
    let org = app.org(&ann, "Acme").await;
    let (bob, bob_id) = app.member(&ann, &org, "bob@example.com", "admin").await;
    let key = create_key(
        &app,
        &bob,
        json!({ "name": "ops", "scopes": ["members:read", "invitations:manage", "org:read"], "org_id": org }),
    )
    .await;
    let key = key["key"].as_str().unwrap();
    let invitations = format!("/v1/organizations/{org}/invitations");
    let members = format!("/v1/organizations/{org}/members");
    assert_eq!(
        app.get_bearer(&invitations, key).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.get_bearer(&members, key).await.status(), StatusCode::OK);

    // Demoting bob takes invitations:manage from the key at once.
    let r = app
        .patch_bearer(
            &format!("/v1/organizations/{org}/members/{bob_id}"),
            &ann,
            json!({ "role": "member" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    problem(
        app.get_bearer(&invitations, key).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(app.get_bearer(&members, key).await.status(), StatusCode::OK);

    // Removing bob makes the organization vanish for the key.
    let r = app
        .delete_bearer(&format!("/v1/organizations/{org}/members/{bob_id}"), &ann)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for path in [&members, &invitations, &format!("/v1/organizations/{org}")] {
        problem(
            app.get_bearer(path, key).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let orgs = body(
        app.get_bearer("/v1/organizations", key).await,
        StatusCode::OK,
    )
    .await;
    assert!(orgs["items"].as_array().unwrap().is_empty());
}

async fn key_lifecycle_is_audited_with_ids_only(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let ann = token(&login);
    let ann_id = login["user"]["id"].as_str().unwrap();
    let org = app.org(&ann, "Acme").await;

    let org_key = create_key(
        &app,
        &ann,
        json!({ "name": "Ann's secret deploy key", "scopes": ["invitations:manage", "org:read", "members:read"], "org_id": org }),
    )
    .await;
    let org_secret = org_key["key"].as_str().unwrap().to_owned();
    let org_key_id = org_key["id"].as_str().unwrap().to_owned();
    // What a key does is attributed to its owner and names the key.
    let r = with_key(
        &app,
        Method::POST,
        &format!("/v1/organizations/{org}/invitations"),
        &org_secret,
        Some(json!({ "email": "nina@example.com", "role": "member" })),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .delete_bearer(&format!("/v1/api-keys/{org_key_id}"), &ann)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let personal = create_key(
        &app,
        &ann,
        json!({ "name": "mine", "scopes": ["users:read"] }),
    )
    .await;
    let personal_secret = personal["key"].as_str().unwrap().to_owned();
    let personal_id = personal["id"].as_str().unwrap().to_owned();
    let r = app
        .delete_bearer(&format!("/v1/api-keys/{personal_id}"), &ann)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // The organization's log has the organization key's events.
    let r = app
        .get_bearer(&format!("/v1/organizations/{org}/audit-log"), &ann)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    for secret in [
        org_secret.as_str(),
        org_key["prefix"].as_str().unwrap(),
        "Ann's secret deploy key",
        personal_secret.as_str(),
        personal_id.as_str(),
        "ann@example.com",
        "nina@example.com",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} is in the audit log: {text}"
        );
    }
    let log: Value = serde_json::from_str(&text).unwrap();
    let events = log["items"].as_array().unwrap();
    let one = |action: &str| -> &Value {
        let found: Vec<&Value> = events.iter().filter(|e| e["action"] == action).collect();
        assert_eq!(found.len(), 1, "{action}: {events:?}");
        found[0]
    };
    for action in ["api_key.created", "api_key.revoked"] {
        let e = one(action);
        assert_eq!(e["target_id"], org_key_id.as_str());
        assert_eq!(e["actor_id"], ann_id);
        assert_eq!(e["org_id"], org.as_str());
        assert_eq!(e["metadata"], json!({}));
    }
    let invited = one("invitation.created");
    assert_eq!(invited["actor_id"], ann_id);
    assert_eq!(
        invited["metadata"],
        json!({ "api_key_id": org_key_id, "role": "member" })
    );

    // Personal keys' events carry no organization.
    let store = app.service.state().identity().store().clone();
    let all = PageRequest {
        after: None,
        limit: 100,
    };
    for action in [AuditAction::ApiKeyCreated, AuditAction::ApiKeyRevoked] {
        let events = store
            .list_audit(
                &AuditFilter {
                    action: Some(action),
                    ..Default::default()
                },
                all,
            )
            .await
            .unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
        let personal_event = events
            .iter()
            .find(|e| e.target_id.as_deref() == Some(personal_id.as_str()))
            .unwrap();
        assert!(personal_event.org_id.is_none());
        assert_eq!(
            personal_event.actor_id.map(|u| u.to_string()).as_deref(),
            Some(ann_id)
        );
    }
    let everything = format!(
        "{:?}",
        store
            .list_audit(&AuditFilter::default(), all)
            .await
            .unwrap()
    );
    for secret in [org_secret.as_str(), personal_secret.as_str()] {
        assert!(!everything.contains(secret));
    }
}
