//! The router's own deadlines, as a host mounting it in its own server gets
//! them (`TestApp` serves with plain `axum::serve`): a body that does not
//! arrive in time is a 408, a request stuck on the database a 503.
use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

both_stores!(
    a_body_dripped_a_byte_at_a_time_is_a_408,
    a_request_stalled_on_a_locked_table_is_a_503
);

fn short_timeouts(c: &mut identsphere::AuthServiceConfig) {
    c.body_read_timeout = Duration::from_secs(1);
    c.request_timeout = Duration::from_secs(2);
}

async fn a_body_dripped_a_byte_at_a_time_is_a_408(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, short_timeouts).await else {
        return;
    };
    let mut socket = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    socket
        .write_all(
            b"POST /v1/auth/login HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut peeked = [0u8; 1];
    loop {
        if socket.write_all(b" ").await.is_err() {
            break;
        }
        if timeout(Duration::from_millis(100), socket.peek(&mut peeked))
            .await
            .is_ok()
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never answered");
    }
    let mut response = Vec::new();
    timeout(Duration::from_secs(5), socket.read_to_end(&mut response))
        .await
        .expect("the connection is closed after the answer")
        .unwrap();
    let took = started.elapsed();
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 408 "), "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/problem+json"),
        "{response}"
    );
    assert!(lower.contains("connection: close"), "{response}");
    assert!(
        response.contains(r#""code":"request_timeout""#),
        "{response}"
    );
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The server itself is fine.
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

async fn a_request_stalled_on_a_locked_table_is_a_503(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, short_timeouts).await else {
        return;
    };
    let lock = app.lock_users_table().await;
    let signup = |email: &'static str| {
        app.post(
            "/v1/auth/signup",
            json!({ "email": email, "password": PASSWORD }),
        )
    };
    let started = Instant::now();
    let r = signup("ann@example.com").await;
    let took = started.elapsed();
    problem(r, StatusCode::SERVICE_UNAVAILABLE, "response_timeout").await;
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // Once the lock goes, writes resume.
    drop(lock);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = signup("bob@example.com").await.status();
        if status == StatusCode::CREATED {
            break;
        }
        assert!(Instant::now() < deadline, "writes did not resume: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
