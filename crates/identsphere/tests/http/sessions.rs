//! Listing and revoking sessions; revocation takes effect at once.
use crate::support::*;
use reqwest::StatusCode;
use serde_json::Value;

both_stores!(
    access_tokens_expire,
    list_and_revoke_sessions,
    logout_everywhere_else,
    logout_revokes_current_session,
    sessions_of_others_are_not_found
);

async fn list_and_revoke_sessions(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let a = app.user("ann@example.com").await;
    let b2: Value = app
        .login("ann@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let token = a["access_token"].as_str().unwrap();
    let list: Value = app
        .get_bearer("/v1/auth/sessions", token)
        .await
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(list["next_cursor"].is_null());
    assert_eq!(items[0]["id"], b2["session_id"]);
    assert_eq!(items[0]["current"], false);
    assert_eq!(items[1]["current"], true);
    assert_eq!(items[1]["ip"], "127.0.0.1");
    for field in [
        "id",
        "created_at",
        "last_seen_at",
        "ip",
        "user_agent",
        "current",
    ] {
        assert!(items[0].get(field).is_some(), "{field}");
    }

    let other = b2["session_id"].as_str().unwrap();
    assert_eq!(
        app.delete_bearer(&format!("/v1/auth/sessions/{other}"), token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    // Its access token is refused at once, and its refresh token too.
    problem(
        app.get_bearer("/v1/users/me", b2["access_token"].as_str().unwrap())
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let r = app
        .post(
            "/v1/auth/refresh",
            serde_json::json!({ "refresh_token": b2["refresh_token"] }),
        )
        .await;
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    problem(
        app.delete_bearer(&format!("/v1/auth/sessions/{other}"), token)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem(
        app.delete_bearer("/v1/auth/sessions/not-a-uuid", token)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let list: Value = app
        .get_bearer("/v1/auth/sessions", token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

async fn logout_everywhere_else(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let keep = app.user("ann@example.com").await;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(
            app.login("ann@example.com", PASSWORD)
                .await
                .json::<Value>()
                .await
                .unwrap(),
        );
    }
    let token = keep["access_token"].as_str().unwrap();
    let r: Value = app
        .delete_bearer("/v1/auth/sessions", token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["revoked"], 3);
    for o in &others {
        problem(
            app.get_bearer("/v1/users/me", o["access_token"].as_str().unwrap())
                .await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    assert_eq!(
        app.get_bearer("/v1/users/me", token).await.status(),
        StatusCode::OK
    );
}

async fn logout_revokes_current_session(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let token = login["access_token"].as_str().unwrap();
    let r = app
        .post_bearer("/v1/auth/logout", token, serde_json::json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let cleared = set_cookies(r.headers());
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("identsphere_access=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    problem(
        app.get_bearer("/v1/users/me", token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let r = app
        .post(
            "/v1/auth/refresh",
            serde_json::json!({ "refresh_token": login["refresh_token"] }),
        )
        .await;
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = app
        .http
        .post(app.url("/v1/auth/logout"))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn sessions_of_others_are_not_found(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let ann = app.user("ann@example.com").await;
    let bob = app.user("bob@example.com").await;
    let path = format!("/v1/auth/sessions/{}", bob["session_id"].as_str().unwrap());
    problem(
        app.delete_bearer(&path, ann["access_token"].as_str().unwrap())
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(
        app.get_bearer("/v1/users/me", bob["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
}

async fn access_tokens_expire(b: Backend) {
    use identsphere::core::clock::ManualClock;
    let clock = std::sync::Arc::new(ManualClock::new(chrono::Utc::now()));
    let Some(app) = TestApp::spawn_with(b, |c| c.clock = clock.clone()).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let token = login["access_token"].as_str().unwrap();
    clock.advance(chrono::Duration::seconds(899));
    assert_eq!(
        app.get_bearer("/v1/users/me", token).await.status(),
        StatusCode::OK
    );
    clock.advance(chrono::Duration::seconds(1));
    problem(
        app.get_bearer("/v1/users/me", token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // The refresh token still works and yields a fresh access token.
    let r: Value = app
        .post(
            "/v1/auth/refresh",
            serde_json::json!({ "refresh_token": login["refresh_token"] }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        app.get_bearer("/v1/users/me", r["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
}
