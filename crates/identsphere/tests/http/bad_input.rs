//! Bad input gets a 4xx problem, never a 5xx and never a half-written row.
use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;

both_stores!(
    malformed_requests_are_4xx_problems,
    refused_signups_write_nothing,
    nul_characters_never_reach_the_store,
    times_out_of_range_are_refused,
    invisible_and_bidi_characters_are_refused_in_names,
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

/// PostgreSQL text cannot hold U+0000 (the review's 500): every way a NUL can
/// arrive is refused as a 422 naming the field, and nothing is written.
async fn nul_characters_never_reach_the_store(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, with_master).await else {
        return;
    };
    for (body, field) in [
        (
            json!({ "email": "ann\u{0}@example.com", "password": PASSWORD }),
            "email",
        ),
        (
            json!({ "email": "ann@example.com", "password": PASSWORD, "name": "Ann\u{0}" }),
            "name",
        ),
        (
            json!({ "email": "ann@example.com", "password": format!("{PASSWORD}\u{0}") }),
            "password",
        ),
    ] {
        let r = app.post("/v1/auth/signup", body).await;
        let problem = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(field_errors(&problem), [field], "{problem}");
    }
    let store = app.service.state().identity().store().clone();
    assert!(store
        .find_user_by_email(&ann_email())
        .await
        .unwrap()
        .is_none());
    let r = app
        .post(
            "/v1/auth/login",
            json!({ "email": "ann\u{0}@example.com", "password": PASSWORD }),
        )
        .await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    // The review's probe: a NUL in `identifier` on POST /v1/tokens.
    let created = app
        .http
        .post(app.url("/v1/clients"))
        .basic_auth(MASTER_USER, Some(MASTER_PASSWORD))
        .json(&json!({ "name": "fleet" }))
        .send()
        .await
        .unwrap();
    let key = body(created, StatusCode::CREATED).await["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let client_post = |path: &'static str, body: serde_json::Value| {
        app.http
            .post(app.url(path))
            .header("x-api-key", &key)
            .json(&body)
            .send()
    };
    let r = client_post(
        "/v1/tokens",
        json!({ "identifier": "sensor\u{0}1", "secret": "iscs_x" }),
    )
    .await
    .unwrap();
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(field_errors(&p), ["identifier"]);
    let r = client_post("/v1/clients/users", json!({ "identifier": "sensor\u{0}1" }))
        .await
        .unwrap();
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(field_errors(&p), ["identifier"]);
    use identsphere::core::audit::AuditAction;
    for action in [
        AuditAction::MachineTokenIssued,
        AuditAction::MachineTokenRefused,
        AuditAction::ClientUserCreated,
    ] {
        assert!(app.audit(Some(action)).await.is_empty(), "{action:?}");
    }

    // Nested fields are named by their path; query parameters by their name.
    let login = app.user("bob@example.com").await;
    let bob = token(&login);
    let org = app.org(&bob, "Acme").await;
    let r = app
        .post_bearer(
            &format!("/v1/organizations/{org}/roles"),
            &bob,
            json!({ "name": "auditor", "permissions": ["audit:read", "x\u{0}"] }),
        )
        .await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(field_errors(&p), ["permissions[1]"]);
    for query in ["action=%00", "cursor=a%00b"] {
        let r = app
            .get_bearer(&format!("/v1/organizations/{org}/audit-log?{query}"), &bob)
            .await;
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        let field = query.split('=').next().unwrap();
        assert_eq!(field_errors(&p), [field], "{query}");
    }
}

/// PostgreSQL's timestamps span 4713 BC to 294276 AD, chrono's far more (the
/// review's 500): times from clients are held to years 1970–9999.
async fn times_out_of_range_are_refused(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let ann = token(&login);
    let org = app.org(&ann, "Acme").await;
    for (query, field) in [
        ("since=-4714-11-23T00:00:00Z", "since"),
        ("until=-4714-11-23T00:00:00Z", "until"),
        ("since=1969-12-31T23:59:59Z", "since"),
        ("until=%2B20000-01-01T00:00:00Z", "until"),
    ] {
        let r = app
            .get_bearer(&format!("/v1/organizations/{org}/audit-log?{query}"), &ann)
            .await;
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(field_errors(&p), [field], "{query}");
    }
    let r = app
        .get_bearer(
            &format!("/v1/organizations/{org}/audit-log?since=1970-01-01T00:00:00Z&until=9999-12-31T23:59:59Z"),
            &ann,
        )
        .await;
    body(r, StatusCode::OK).await;
    for expires_at in ["+20000-01-01T00:00:00Z", "+262000-01-01T00:00:00Z"] {
        let r = app
            .post_bearer(
                "/v1/api-keys",
                &ann,
                json!({ "name": "ci", "scopes": ["users:read"], "expires_at": expires_at }),
            )
            .await;
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(field_errors(&p), ["expires_at"], "{expires_at}");
    }
    let keys = app.get_json_bearer("/v1/api-keys", &ann).await;
    assert!(items(&keys).is_empty(), "{keys}");
}

/// Bidi overrides and invisible characters make two different names look
/// the same (or a name read backwards): refused in every name and identifier.
async fn invisible_and_bidi_characters_are_refused_in_names(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, with_master).await else {
        return;
    };
    let r = app
        .post(
            "/v1/auth/signup",
            json!({ "email": "eve@example.com", "password": PASSWORD, "name": "Ann\u{202E}nimda" }),
        )
        .await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(field_errors(&p), ["name"]);
    let r = app
        .post(
            "/v1/auth/signup",
            json!({ "email": "e\u{200B}ve@example.com", "password": PASSWORD }),
        )
        .await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(field_errors(&p), ["email"]);

    let login = app.user("ann@example.com").await;
    let ann = token(&login);
    let r = app
        .patch_bearer("/v1/users/me", &ann, json!({ "name": "Ann\u{200B}" }))
        .await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(field_errors(&p), ["name"]);
    let r = app
        .post_bearer(
            "/v1/organizations",
            &ann,
            json!({ "name": "\u{2066}Acme\u{2069}" }),
        )
        .await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(field_errors(&p), ["name"]);
    let org = app.org(&ann, "Acme").await;
    let r = app
        .patch_bearer(
            &format!("/v1/organizations/{org}"),
            &ann,
            json!({ "name": "Acme\u{FEFF}" }),
        )
        .await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(field_errors(&p), ["name"]);
    let r = app
        .post_bearer(
            &format!("/v1/organizations/{org}/roles"),
            &ann,
            json!({ "name": "audi\u{200D}tor", "permissions": ["audit:read"] }),
        )
        .await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(field_errors(&p), ["name"]);
    let r = app
        .post_bearer(
            "/v1/api-keys",
            &ann,
            json!({ "name": "ci\u{061C}", "scopes": ["users:read"] }),
        )
        .await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(field_errors(&p), ["name"]);

    let created = |name: &'static str| {
        app.http
            .post(app.url("/v1/clients"))
            .basic_auth(MASTER_USER, Some(MASTER_PASSWORD))
            .json(&json!({ "name": name }))
            .send()
    };
    let p = problem(
        created("fleet\u{200F}").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(field_errors(&p), ["name"]);
    let key = body(created("fleet").await.unwrap(), StatusCode::CREATED).await["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    for identifier in ["sensor\u{2060}1", "\u{202D}sensor-1"] {
        let r = app
            .http
            .post(app.url("/v1/clients/users"))
            .header("x-api-key", &key)
            .json(&json!({ "identifier": identifier }))
            .send()
            .await
            .unwrap();
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(field_errors(&p), ["identifier"]);
    }

    // Nothing was written: the only names are the plain ones.
    let me = app.get_json_bearer("/v1/users/me", &ann).await;
    assert_eq!(me["name"], "Test");
    let keys = app.get_json_bearer("/v1/api-keys", &ann).await;
    assert!(items(&keys).is_empty());
    let orgs = app.get_json_bearer("/v1/organizations", &ann).await;
    assert_eq!(items(&orgs).len(), 1, "{orgs}");
    assert_eq!(items(&orgs)[0]["name"], "Acme");
}

fn ann_email() -> identsphere::core::Email {
    identsphere::core::Email::parse("ann@example.com").unwrap()
}
