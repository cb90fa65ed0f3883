//! Bad input gets a 4xx problem, never a 5xx and never a half-written row.
use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;

both_stores!(
    malformed_requests_are_4xx_problems,
    refused_signups_write_nothing
);

async fn malformed_requests_are_4xx_problems(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let raw = |body: &'static str, ct: Option<&'static str>| {
        let mut req = app.http.post(app.url("/v1/auth/signup")).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    problem(
        raw("{\"email\":", Some("application/json")).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    problem(
        raw("{}", Some("text/plain")).await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    problem(
        raw("{}", None).await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let body = problem(
        raw("{}", Some("application/json")).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("email"));
    let unknown = app
        .post(
            "/v1/auth/signup",
            json!({ "email": "a@example.com", "password": PASSWORD, "role": "admin" }),
        )
        .await;
    let body = problem(
        unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("unknown field"));
    let wrong_type = app
        .post(
            "/v1/auth/login",
            json!({ "email": 5, "password": PASSWORD }),
        )
        .await;
    let body = problem(
        wrong_type,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "email");

    // Over 64 KiB: refused while reading, with a declared length and streamed alike.
    // The server answers 413 without reading the rest, then closes a socket
    // with unread data; the kernel may reset it before the client reads the
    // answer. So: every attempt is a 413 or a reset (never anything else),
    // and at least one 413 must arrive.
    // Its own client, so that a reset connection is never reused by the
    // requests that follow (hyper would report `IncompleteMessage`).
    let oversize = reqwest::Client::new();
    for streamed in [false, true] {
        let mut answered = 0;
        for _ in 0..5 {
            let req = oversize
                .post(app.url("/v1/auth/login"))
                .header("content-type", "application/json");
            let req = if streamed {
                let chunks = futures::stream::iter(
                    (0..100).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])),
                );
                req.body(reqwest::Body::wrap_stream(chunks))
            } else {
                req.body(
                    json!({ "email": "a@example.com", "password": "x".repeat(70 * 1024) })
                        .to_string(),
                )
            };
            match req.send().await {
                Ok(r) => {
                    problem(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
                    answered += 1;
                }
                Err(e) => assert!(e.is_request(), "{e:?}"),
            }
        }
        assert!(
            answered > 0,
            "no 413 arrived in 5 attempts (streamed: {streamed})"
        );
    }

    let r = app
        .post(
            "/v1/auth/signup",
            json!({ "email": "not an email", "password": PASSWORD }),
        )
        .await;
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "email");
    // Passwords over 1024 bytes are refused before hashing, at signup and login alike.
    let long = "é".repeat(513);
    let r = app
        .post(
            "/v1/auth/signup",
            json!({ "email": "a@example.com", "password": long }),
        )
        .await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let r = app
        .post(
            "/v1/auth/login",
            json!({ "email": "a@example.com", "password": long }),
        )
        .await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    problem(
        app.http.get(app.url("/v1/nope")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem(
        app.http
            .get(app.url("/v1/auth/login"))
            .send()
            .await
            .unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    problem(
        app.http.get(app.url("/v1/users/me")).send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let r = app
        .http
        .get(app.url("/v1/users/me"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn refused_signups_write_nothing(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let weak = app
        .post(
            "/v1/auth/signup",
            json!({ "email": "ann@example.com", "password": "short", "name": "Ann" }),
        )
        .await;
    let body = problem(weak, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "password");
    let both = app
        .post(
            "/v1/auth/signup",
            json!({ "email": "nope", "password": "short" }),
        )
        .await;
    let body = problem(both, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
    let email = ann_email();
    let store = app.service.state().identity().store().clone();
    assert!(store.find_user_by_email(&email).await.unwrap().is_none());
    // The address is still free.
    app.signup_verified("ann@example.com").await;
}

fn ann_email() -> identsphere::core::Email {
    identsphere::core::Email::parse("ann@example.com").unwrap()
}
