//! Cookies, CSRF double-submit, and Bearer precedence (API.md §3).
use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

both_stores!(
    login_sets_hardened_cookies,
    cookie_auth_needs_csrf_on_unsafe_methods,
    bearer_wins_over_cookie,
    cookie_refresh_and_logout
);

async fn cookies_of(app: &TestApp) -> (reqwest::header::HeaderMap, Value) {
    app.signup_verified("ann@example.com").await;
    let r = app.login("ann@example.com", PASSWORD).await;
    let headers = r.headers().clone();
    (headers, r.json().await.unwrap())
}

async fn login_sets_hardened_cookies(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| c.cookies_secure = true).await else {
        return;
    };
    let (headers, body) = cookies_of(&app).await;
    let cookies = set_cookies(&headers);
    let find = |name: &str| {
        cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap()
            .clone()
    };
    let access = find("identsphere_access");
    assert!(
        access.contains("HttpOnly")
            && access.contains("Secure")
            && access.contains("SameSite=Lax")
            && access.contains("Path=/")
    );
    assert_eq!(
        cookie_value(&headers, "identsphere_access").unwrap(),
        body["access_token"].as_str().unwrap()
    );
    let refresh = find("identsphere_refresh");
    assert!(
        refresh.contains("HttpOnly")
            && refresh.contains("Secure")
            && refresh.contains("Path=/v1/auth")
    );
    let csrf = find("identsphere_csrf");
    assert!(!csrf.contains("HttpOnly") && csrf.contains("Secure") && csrf.contains("SameSite=Lax"));
    assert_eq!(headers["cache-control"], "no-store");
}

fn cookie_header(headers: &reqwest::header::HeaderMap) -> String {
    [
        "identsphere_access",
        "identsphere_refresh",
        "identsphere_csrf",
    ]
    .iter()
    .map(|n| format!("{n}={}", cookie_value(headers, n).unwrap()))
    .collect::<Vec<_>>()
    .join("; ")
}

async fn cookie_auth_needs_csrf_on_unsafe_methods(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let (headers, _) = cookies_of(&app).await;
    let cookie = cookie_header(&headers);
    let csrf = cookie_value(&headers, "identsphere_csrf").unwrap();
    // Safe methods need no CSRF token.
    let r = app
        .http
        .get(app.url("/v1/users/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let patch = |token: Option<&str>| {
        let mut req = app
            .http
            .patch(app.url("/v1/users/me"))
            .header("cookie", &cookie)
            .json(&json!({ "name": "Ann" }));
        if let Some(t) = token {
            req = req.header("x-csrf-token", t);
        }
        req.send()
    };
    problem(
        patch(None).await.unwrap(),
        StatusCode::FORBIDDEN,
        "csrf_failed",
    )
    .await;
    problem(
        patch(Some("forged")).await.unwrap(),
        StatusCode::FORBIDDEN,
        "csrf_failed",
    )
    .await;
    assert_eq!(patch(Some(&csrf)).await.unwrap().status(), StatusCode::OK);
}

async fn bearer_wins_over_cookie(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let (headers, _) = cookies_of(&app).await;
    let bob = app.user("bob@example.com").await;
    let cookie = cookie_header(&headers);
    // Bearer (bob) wins over the cookie (ann), and needs no CSRF token.
    let r = app
        .http
        .patch(app.url("/v1/users/me"))
        .header("cookie", &cookie)
        .bearer_auth(bob["access_token"].as_str().unwrap())
        .json(&json!({ "name": "Bob" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["email"], "bob@example.com");
    // An invalid Bearer is refused even with a valid cookie beside it.
    let r = app
        .http
        .get(app.url("/v1/users/me"))
        .header("cookie", &cookie)
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn cookie_refresh_and_logout(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let (headers, login) = cookies_of(&app).await;
    let csrf = cookie_value(&headers, "identsphere_csrf").unwrap();
    let refresh_cookie = format!(
        "identsphere_refresh={}; identsphere_csrf={csrf}",
        cookie_value(&headers, "identsphere_refresh").unwrap()
    );
    let r = app
        .http
        .post(app.url("/v1/auth/refresh"))
        .header("cookie", &refresh_cookie)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN, "csrf_failed").await;
    let r = app
        .http
        .post(app.url("/v1/auth/refresh"))
        .header("cookie", &refresh_cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let new_refresh = cookie_value(r.headers(), "identsphere_refresh").unwrap();
    let new_csrf = cookie_value(r.headers(), "identsphere_csrf").unwrap();
    assert_ne!(new_refresh, login["refresh_token"].as_str().unwrap());
    // Logout with only the refresh cookie (the access token has "expired" in the browser).
    let cookie = format!("identsphere_refresh={new_refresh}; identsphere_csrf={new_csrf}");
    let r = app
        .http
        .post(app.url("/v1/auth/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN, "csrf_failed").await;
    let r = app
        .http
        .post(app.url("/v1/auth/logout"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &new_csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .post("/v1/auth/refresh", json!({ "refresh_token": new_refresh }))
        .await;
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}
