//! The client API: clients registered with the master credentials, machine
//! users created with a client's key, and machine tokens that are checked
//! against their stored record on every use (SECURITY rule 9).
use crate::support::*;
use identsphere::{
    core::{audit::AuditAction, clock::ManualClock, tokens::JwtAlg},
    extract::Machine,
};
use jwt_simple::prelude::*;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

both_stores!(
    the_client_api_is_off_without_master_credentials,
    clients_need_the_master_credentials,
    wrong_master_credentials_are_limited_per_address,
    clients_are_listed_rotated_and_deleted,
    machine_users_belong_to_their_client,
    tokens_are_issued_for_the_right_secret_only,
    tokens_are_checked_against_their_record_on_every_use,
    tokens_expire,
    machine_tokens_are_not_sessions,
    tokens_issued_while_the_user_is_deleted_never_survive,
    host_apps_accept_machine_tokens_with_the_extractor,
    the_client_api_is_audited_with_ids_only,
);

async fn spawn(b: Backend) -> Option<TestApp> {
    TestApp::spawn_with(b, with_master).await
}

/// A request with the master credentials.
async fn as_master(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Response {
    let mut req = app
        .http
        .request(method, app.url(path))
        .basic_auth(MASTER_USER, Some(MASTER_PASSWORD));
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

/// A request with a client's key.
async fn as_client(
    app: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let mut req = app
        .http
        .request(method, app.url(path))
        .header("x-api-key", key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

/// Registers a client; returns the creating response (with `api_key`).
async fn client(app: &TestApp, name: &str) -> Value {
    body(
        as_master(
            app,
            Method::POST,
            "/v1/clients",
            Some(json!({ "name": name })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await
}

/// Creates a machine user of the client with `key`; returns the creating response.
async fn machine_user(app: &TestApp, key: &str, identifier: &str) -> Value {
    body(
        as_client(
            app,
            key,
            Method::POST,
            "/v1/clients/users",
            Some(json!({ "identifier": identifier })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await
}

/// Exchanges a machine user's credentials for a token.
async fn issue(app: &TestApp, key: &str, identifier: &str, secret: &str) -> Response {
    as_client(
        app,
        key,
        Method::POST,
        "/v1/tokens",
        Some(json!({ "identifier": identifier, "secret": secret })),
    )
    .await
}

/// A client with one machine user and a token: (client key, user, token response).
async fn fleet(app: &TestApp) -> (String, Value, Value) {
    let key = client(app, "fleet").await["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let user = machine_user(app, &key, "sensor-1").await;
    let token = body(
        issue(app, &key, "sensor-1", user["secret"].as_str().unwrap()).await,
        StatusCode::CREATED,
    )
    .await;
    (key, user, token)
}

/// What the client with `key` learns of `token`.
async fn introspect(app: &TestApp, key: &str, token: &str) -> Value {
    body(
        as_client(
            app,
            key,
            Method::POST,
            "/v1/tokens/introspect",
            Some(json!({ "token": token })),
        )
        .await,
        StatusCode::OK,
    )
    .await
}

fn access(token: &Value) -> &str {
    token["access_token"].as_str().unwrap()
}

async fn the_client_api_is_off_without_master_credentials(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let r = as_master(
        &app,
        Method::POST,
        "/v1/clients",
        Some(json!({ "name": "x" })),
    )
    .await;
    let p = problem(r, StatusCode::NOT_FOUND, "not_found").await;
    assert!(p["detail"]
        .as_str()
        .unwrap()
        .contains("IDENTSPHERE_MASTER_USERNAME"));
    // Client keys do not exist either.
    let r = as_client(&app, "isck_x", Method::GET, "/v1/clients/users", None).await;
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn clients_need_the_master_credentials(b: Backend) {
    let Some(app) = spawn(b).await else {
        return;
    };
    let post = |auth: Option<(&'static str, &'static str)>| {
        let mut req = app
            .http
            .post(app.url("/v1/clients"))
            .json(&json!({ "name": "fleet" }));
        if let Some((u, p)) = auth {
            req = req.basic_auth(u, Some(p));
        }
        req.send()
    };
    for auth in [
        None,
        Some((MASTER_USER, "wrong password")),
        Some(("someone", MASTER_PASSWORD)),
    ] {
        let r = post(auth).await.unwrap();
        assert_eq!(
            r.headers()["www-authenticate"],
            "Basic realm=\"identsphere\", charset=\"UTF-8\""
        );
        problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    // A session or a user's API key is not the master.
    let login = app.user("ann@example.com").await;
    let r = app
        .post_bearer("/v1/clients", &token(&login), json!({ "name": "x" }))
        .await;
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let created = body(
        post(Some((MASTER_USER, MASTER_PASSWORD))).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let key = created["api_key"].as_str().unwrap();
    assert!(key.starts_with("isck_") && key.len() > 40, "{key}");
    assert!(key.starts_with(created["key_prefix"].as_str().unwrap()));
    assert_eq!(created["name"], "fleet");
    assert!(created["client_id"].as_str().unwrap().len() == 36);
    assert!(created["key_rotated_at"].is_null());
    // Bad input is a 422 naming the field, and writes nothing.
    let r = as_master(
        &app,
        Method::POST,
        "/v1/clients",
        Some(json!({ "name": " " })),
    )
    .await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(field_errors(&p), ["name"]);
    let r = as_master(
        &app,
        Method::POST,
        "/v1/clients",
        Some(json!({ "name": "x", "secret": "y" })),
    )
    .await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let list = body(
        as_master(&app, Method::GET, "/v1/clients", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(items(&list).len(), 1);
}

async fn wrong_master_credentials_are_limited_per_address(b: Backend) {
    let Some(app) = spawn(b).await else {
        return;
    };
    let wrong = || {
        app.http
            .get(app.url("/v1/clients"))
            .basic_auth(MASTER_USER, Some("a wrong guess at it"))
            .send()
    };
    // Five wrong guesses, then the address waits, even with the right password.
    for _ in 0..5 {
        problem(
            wrong().await.unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    let r = wrong().await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let r = as_master(&app, Method::GET, "/v1/clients", None).await;
    problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(
        app.audit(Some(AuditAction::MasterAuthFailed)).await.len(),
        5
    );
}

async fn clients_are_listed_rotated_and_deleted(b: Backend) {
    let Some(app) = spawn(b).await else {
        return;
    };
    let first = client(&app, "first").await;
    let second = client(&app, "second").await;
    let page = body(
        as_master(&app, Method::GET, "/v1/clients?limit=1", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(items(&page)[0]["client_id"], first["client_id"]);
    assert!(
        items(&page)[0].get("api_key").is_none(),
        "keys are shown once"
    );
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = body(
        as_master(
            &app,
            Method::GET,
            &format!("/v1/clients?limit=1&cursor={cursor}"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(items(&rest)[0]["client_id"], second["client_id"]);

    // Rotation: the old key stops at once; users and tokens stay.
    let old_key = first["api_key"].as_str().unwrap();
    let user = machine_user(&app, old_key, "sensor-1").await;
    let issued = body(
        issue(&app, old_key, "sensor-1", user["secret"].as_str().unwrap()).await,
        StatusCode::CREATED,
    )
    .await;
    let id = first["client_id"].as_str().unwrap();
    let rotated = body(
        as_master(
            &app,
            Method::POST,
            &format!("/v1/clients/{id}/rotate-key"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let new_key = rotated["api_key"].as_str().unwrap();
    assert_ne!(new_key, old_key);
    assert!(rotated["key_rotated_at"].is_string());
    let r = as_client(&app, old_key, Method::GET, "/v1/clients/users", None).await;
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let users = body(
        as_client(&app, new_key, Method::GET, "/v1/clients/users", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(items(&users)[0]["user_id"], user["user_id"]);
    assert_eq!(
        introspect(&app, new_key, access(&issued)).await["active"],
        true
    );

    // Deletion: the key, the users and their tokens end with the client.
    let r = as_master(&app, Method::DELETE, &format!("/v1/clients/{id}"), None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = as_client(&app, new_key, Method::GET, "/v1/clients/users", None).await;
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let other = second["api_key"].as_str().unwrap();
    assert_eq!(
        introspect(&app, other, access(&issued)).await["active"],
        false
    );
    assert!(app
        .service
        .state()
        .identity()
        .authenticate_machine(access(&issued))
        .await
        .is_err());
    for (method, path) in [
        (Method::DELETE, format!("/v1/clients/{id}")),
        (Method::POST, format!("/v1/clients/{id}/rotate-key")),
        (Method::DELETE, "/v1/clients/not-an-id".to_owned()),
    ] {
        let r = as_master(&app, method, &path, None).await;
        problem(r, StatusCode::NOT_FOUND, "not_found").await;
    }
}

async fn machine_users_belong_to_their_client(b: Backend) {
    let Some(app) = spawn(b).await else {
        return;
    };
    let a = client(&app, "a").await["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_key = client(&app, "b").await["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let sensor = machine_user(&app, &a, "sensor-1").await;
    assert!(sensor["secret"].as_str().unwrap().starts_with("iscs_"));
    assert_eq!(sensor["identifier"], "sensor-1");
    // Identifiers are unique within a client, not across clients.
    let r = as_client(
        &app,
        &a,
        Method::POST,
        "/v1/clients/users",
        Some(json!({ "identifier": "sensor-1" })),
    )
    .await;
    problem(r, StatusCode::CONFLICT, "conflict").await;
    machine_user(&app, &b_key, "sensor-1").await;
    // Without a body, the id is the identifier.
    let anonymous = body(
        as_client(&app, &a, Method::POST, "/v1/clients/users", None).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(anonymous["identifier"], anonymous["user_id"]);
    for bad in [
        json!({ "identifier": "two words" }),
        json!({ "identifier": "" }),
    ] {
        let r = as_client(&app, &a, Method::POST, "/v1/clients/users", Some(bad)).await;
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(field_errors(&p), ["identifier"]);
    }
    let list = body(
        as_client(&app, &a, Method::GET, "/v1/clients/users", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(items(&list).len(), 2);
    assert!(items(&list).iter().all(|u| u.get("secret").is_none()));
    // Another client's user is not found; the owner deletes it.
    let path = format!("/v1/clients/users/{}", sensor["user_id"].as_str().unwrap());
    let r = as_client(&app, &b_key, Method::DELETE, &path, None).await;
    problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = as_client(&app, &a, Method::DELETE, &path, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = as_client(&app, &a, Method::DELETE, &path, None).await;
    problem(r, StatusCode::NOT_FOUND, "not_found").await;
    // User API keys and sessions are not client keys.
    let login = app.user("ann@example.com").await;
    let r = app
        .post_bearer("/v1/clients/users", &token(&login), json!({}))
        .await;
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn tokens_are_issued_for_the_right_secret_only(b: Backend) {
    let Some(app) = spawn(b).await else {
        return;
    };
    let (key, user, issued) = fleet(&app).await;
    assert_eq!(issued["token_type"], "Bearer");
    assert_eq!(issued["expires_in"], 30 * 24 * 3600);
    assert_eq!(issued["user_id"], user["user_id"]);
    let c = claims(access(&issued));
    assert_eq!(c["sub"], user["user_id"]);
    assert_eq!(c["jti"], issued["id"]);
    assert_eq!(c["aud"], "identsphere");
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        2_592_000
    );
    assert!(c.get("sid").is_none());
    assert!(c["client_id"].is_string());

    // Wrong secret, unknown identifier, another user's secret: one answer.
    let other = machine_user(&app, &key, "sensor-2").await;
    for (identifier, secret) in [
        ("sensor-1", "iscs_not-the-secret"),
        ("nobody", user["secret"].as_str().unwrap()),
        ("sensor-1", other["secret"].as_str().unwrap()),
        ("sensor-1", ""),
    ] {
        let r = issue(&app, &key, identifier, secret).await;
        problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // Another client cannot use this client's users.
    let b_key = client(&app, "b").await["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = issue(&app, &b_key, "sensor-1", user["secret"].as_str().unwrap()).await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // Without a client key there is no exchange at all.
    let r = app
        .post(
            "/v1/tokens",
            json!({ "identifier": "sensor-1", "secret": user["secret"] }),
        )
        .await;
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // A chosen lifetime, within bounds.
    let ask = |expires_in: Value| {
        as_client(
            &app,
            &key,
            Method::POST,
            "/v1/tokens",
            Some(
                json!({ "identifier": "sensor-1", "secret": user["secret"], "expires_in": expires_in }),
            ),
        )
    };
    let hour = body(ask(json!(3600)).await, StatusCode::CREATED).await;
    assert_eq!(hour["expires_in"], 3600);
    for bad in [json!(59), json!(2_592_001), json!(-1)] {
        let p = problem(
            ask(bad).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(field_errors(&p), ["expires_in"]);
    }
    let p = problem(
        ask(json!("soon")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(field_errors(&p), ["expires_in"]);
}

async fn tokens_are_checked_against_their_record_on_every_use(b: Backend) {
    let Some(app) = spawn(b).await else {
        return;
    };
    let (key, user, issued) = fleet(&app).await;
    let seen = introspect(&app, &key, access(&issued)).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["jti"], issued["id"]);
    assert_eq!(seen["sub"], user["user_id"]);
    assert_eq!(seen["username"], "sensor-1");
    assert_eq!(seen["token_type"], "Bearer");
    assert_eq!(seen["exp"], claims(access(&issued))["exp"]);
    // Another client learns nothing, and neither does anyone for garbage.
    let b_key = client(&app, "b").await["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        introspect(&app, &b_key, access(&issued)).await,
        json!({ "active": false })
    );
    assert_eq!(
        introspect(&app, &key, "garbage").await,
        json!({ "active": false })
    );

    // Revocation is the owning client's, takes effect at once, and happens once.
    let path = format!("/v1/tokens/{}", issued["id"].as_str().unwrap());
    let r = as_client(&app, &b_key, Method::DELETE, &path, None).await;
    problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = as_client(&app, &key, Method::DELETE, &path, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        introspect(&app, &key, access(&issued)).await,
        json!({ "active": false })
    );
    let r = as_client(&app, &key, Method::DELETE, &path, None).await;
    problem(r, StatusCode::NOT_FOUND, "not_found").await;

    // Deleting the user ends every token it holds.
    let secret = user["secret"].as_str().unwrap();
    let second = body(
        issue(&app, &key, "sensor-1", secret).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        introspect(&app, &key, access(&second)).await["active"],
        true
    );
    let r = as_client(
        &app,
        &key,
        Method::DELETE,
        &format!("/v1/clients/users/{}", user["user_id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        introspect(&app, &key, access(&second)).await["active"],
        false
    );
    let r = issue(&app, &key, "sensor-1", secret).await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // A token whose signature does not verify is refused before any lookup.
    let mut forged = access(&second).to_owned();
    forged.pop();
    forged.push('A');
    assert_eq!(introspect(&app, &key, &forged).await["active"], false);
}

async fn tokens_expire(b: Backend) {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let c = clock.clone();
    let Some(app) = TestApp::spawn_with(b, |cfg| {
        with_master(cfg);
        cfg.clock = c;
    })
    .await
    else {
        return;
    };
    let (key, user, month) = fleet(&app).await;
    let minute = body(
        as_client(
            &app,
            &key,
            Method::POST,
            "/v1/tokens",
            Some(json!({ "identifier": "sensor-1", "secret": user["secret"], "expires_in": 60 })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    clock.advance(chrono::Duration::seconds(61));
    assert_eq!(
        introspect(&app, &key, access(&minute)).await["active"],
        false
    );
    assert_eq!(introspect(&app, &key, access(&month)).await["active"], true);
    clock.advance(chrono::Duration::days(30));
    assert_eq!(
        introspect(&app, &key, access(&month)).await["active"],
        false
    );
}

async fn machine_tokens_are_not_sessions(b: Backend) {
    let Some(app) = spawn(b).await else {
        return;
    };
    let (key, _, issued) = fleet(&app).await;
    // A machine token opens no user endpoint.
    for path in ["/v1/users/me", "/v1/session", "/v1/auth/sessions"] {
        let r = app.get_bearer(path, access(&issued)).await;
        problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    // And a session's access token is no machine token.
    let login = app.user("ann@example.com").await;
    assert_eq!(
        introspect(&app, &key, &token(&login)).await["active"],
        false
    );
    assert!(app
        .service
        .state()
        .identity()
        .authenticate_machine(&token(&login))
        .await
        .is_err());
}

/// Tokens issued while their user is deleted: each either fails, or was
/// stored before the deletion and is deleted with it. None survives.
async fn tokens_issued_while_the_user_is_deleted_never_survive(b: Backend) {
    let Some(app) = spawn(b).await else {
        return;
    };
    let key = client(&app, "fleet").await["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    for round in 0..3 {
        let identifier = format!("racer-{round}");
        let user = machine_user(&app, &key, &identifier).await;
        let secret = user["secret"].as_str().unwrap().to_owned();
        let path = format!("/v1/clients/users/{}", user["user_id"].as_str().unwrap());
        let issues = (0..12).map(|_| issue(&app, &key, &identifier, &secret));
        let delete = as_client(&app, &key, Method::DELETE, &path, None);
        let (issued, deleted) = tokio::join!(futures::future::join_all(issues), delete);
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        for r in issued {
            match r.status() {
                StatusCode::CREATED => {
                    let t: Value = r.json().await.unwrap();
                    assert_eq!(introspect(&app, &key, access(&t)).await["active"], false);
                }
                _ => {
                    problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
                }
            }
        }
    }
}

async fn host_apps_accept_machine_tokens_with_the_extractor(b: Backend) {
    let Some(app) = spawn(b).await else {
        return;
    };
    let (key, _, issued) = fleet(&app).await;
    // A host route behind the library's extractor, on the same service state.
    async fn whoami(Machine(token): Machine) -> String {
        token.identifier
    }
    let host = axum::Router::new()
        .route("/whoami", axum::routing::get(whoami))
        .with_state(app.service.state().clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, host).await.unwrap() });
    let get = |bearer: String| {
        app.http
            .get(format!("{base}/whoami"))
            .bearer_auth(bearer)
            .send()
    };
    let r = get(access(&issued).to_owned()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "sensor-1");
    let r = as_client(
        &app,
        &key,
        Method::DELETE,
        &format!("/v1/tokens/{}", issued["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = get(access(&issued).to_owned()).await.unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let login = app.user("ann@example.com").await;
    let r = get(token(&login)).await.unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn the_client_api_is_audited_with_ids_only(b: Backend) {
    let Some(app) = spawn(b).await else {
        return;
    };
    let (key, user, issued) = fleet(&app).await;
    let r = issue(&app, &key, "sensor-1", "iscs_wrong").await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let r = as_client(
        &app,
        &key,
        Method::DELETE,
        &format!("/v1/tokens/{}", issued["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let user_id = user["user_id"].as_str().unwrap();
    let events = app.audit(None).await;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for action in [
        "client.created",
        "client_user.created",
        "machine_token.refused",
        "machine_token.revoked",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    let refused = events
        .iter()
        .find(|e| e.action == "machine_token.refused")
        .unwrap();
    assert_eq!(refused.target_id.as_deref(), Some(user_id));
    assert!(refused.metadata["client_id"].is_string());
    let text = format!("{events:?}");
    for secret in [
        key.as_str(),
        user["secret"].as_str().unwrap(),
        access(&issued),
        "iscs_wrong",
        "sensor-1",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} is in the audit log: {text}"
        );
    }
}

/// Machine tokens are signed like access tokens: an independent JWT library
/// verifies one from the JWKS (the server still checks its record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_tokens_verify_against_the_jwks() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| {
        with_master(c);
        c.jwt_alg = JwtAlg::EdDsa;
    })
    .await
    else {
        return;
    };
    let (_, user, issued) = fleet(&app).await;
    let jwks: Value = app.get_json("/.well-known/jwks.json").await;
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kid"].as_str().unwrap(), header_kid(access(&issued)));
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let verified = Ed25519PublicKey::from_bytes(&x)
        .unwrap()
        .verify_token::<Value>(access(&issued), None)
        .unwrap();
    assert_eq!(verified.subject.as_deref(), user["user_id"].as_str());
    assert_eq!(verified.jwt_id.as_deref(), issued["id"].as_str());
    assert!(verified.custom["client_id"].is_string());
}

/// A rotated signing key stays published, and its machine tokens valid, for
/// as long as they live (30 days), not just an access token's 15 minutes
/// (SECURITY rule 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_tokens_outlive_a_key_rotation() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let c = clock.clone();
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |cfg| {
        with_master(cfg);
        cfg.jwt_alg = JwtAlg::EdDsa;
        cfg.clock = c;
    })
    .await
    else {
        return;
    };
    let (key, _, issued) = fleet(&app).await;
    let old_kid = header_kid(access(&issued));
    let new_kid = app.service.rotate_signing_key().await.unwrap();
    clock.advance(chrono::Duration::hours(1));
    // A second rotation prunes keys retired too long ago: not this one.
    app.service.rotate_signing_key().await.unwrap();
    let jwks: Value = app.get_json("/.well-known/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()));
    assert_eq!(
        introspect(&app, &key, access(&issued)).await["active"],
        true
    );
    clock.advance(chrono::Duration::days(30));
    assert_eq!(
        introspect(&app, &key, access(&issued)).await["active"],
        false
    );
}
