//! Refresh-token rotation, the reuse grace, and reuse detection.
use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

both_stores!(
    refresh_rotates_and_old_token_gets_same_successor,
    fifty_concurrent_refreshes_rotate_once,
    without_grace_exactly_one_concurrent_refresh_succeeds,
    reuse_after_grace_revokes_the_session,
    garbage_refresh_tokens_are_refused,
);

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/v1/auth/refresh", json!({ "refresh_token": token }))
        .await
}

async fn refresh_rotates_and_old_token_gets_same_successor(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let first = login["refresh_token"].as_str().unwrap();
    let r: Value = refresh(&app, first).await.json().await.unwrap();
    let second = r["refresh_token"].as_str().unwrap();
    assert_ne!(second, first);
    assert_eq!(r["session_id"], login["session_id"]);
    assert_eq!(
        app.get_bearer("/v1/users/me", r["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    // Within the grace the retired token yields the very same successor.
    let again: Value = refresh(&app, first).await.json().await.unwrap();
    assert_eq!(again["refresh_token"], second);
    let third: Value = refresh(&app, second).await.json().await.unwrap();
    assert_ne!(third["refresh_token"], second);
}

async fn race(app: &TestApp, token: &str, n: usize) -> Vec<(StatusCode, Value)> {
    let tasks = (0..n).map(|_| async {
        let r = refresh(app, token).await;
        (r.status(), r.json::<Value>().await.unwrap())
    });
    futures::future::join_all(tasks).await
}

async fn fifty_concurrent_refreshes_rotate_once(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let results = race(&app, login["refresh_token"].as_str().unwrap(), 50).await;
    assert!(
        results.iter().all(|(s, _)| *s == StatusCode::OK),
        "{results:?}"
    );
    let successors: std::collections::HashSet<&str> = results
        .iter()
        .map(|(_, b)| b["refresh_token"].as_str().unwrap())
        .collect();
    assert_eq!(successors.len(), 1, "every racer gets the same successor");
    // Exactly one rotation: the successor rotates normally, and the session has one live chain.
    let successor = successors.into_iter().next().unwrap();
    assert_eq!(refresh(&app, successor).await.status(), StatusCode::OK);
}

async fn without_grace_exactly_one_concurrent_refresh_succeeds(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| c.refresh_reuse_grace = Duration::ZERO).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let results = race(&app, login["refresh_token"].as_str().unwrap(), 50).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{results:?}");
    assert!(results
        .iter()
        .filter(|(s, _)| *s != StatusCode::OK)
        .all(|(s, b)| *s == StatusCode::UNAUTHORIZED
            && (b["code"] == "refresh_token_reused" || b["code"] == "unauthorized")));
}

async fn reuse_after_grace_revokes_the_session(b: Backend) {
    let Some(app) =
        TestApp::spawn_with(b, |c| c.refresh_reuse_grace = Duration::from_millis(300)).await
    else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let first = login["refresh_token"].as_str().unwrap();
    let rotated: Value = refresh(&app, first).await.json().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    problem(
        refresh(&app, first).await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
    )
    .await;
    // The whole session is dead: its newest refresh token and its access tokens.
    problem(
        refresh(&app, rotated["refresh_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    for token in [&login["access_token"], &rotated["access_token"]] {
        problem(
            app.get_bearer("/v1/users/me", token.as_str().unwrap())
                .await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
}

async fn garbage_refresh_tokens_are_refused(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    for token in ["", "rt_nope", &"x".repeat(5000)] {
        problem(
            refresh(&app, token).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    // No body and no cookie.
    let r = app
        .http
        .post(app.url("/v1/auth/refresh"))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}
