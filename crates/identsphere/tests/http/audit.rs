//! The account and session flows leave an audit trail of opaque ids.
use crate::support::*;
use identsphere::core::{
    audit::{AuditAction, AuditFilter},
    store::PageRequest,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

both_stores!(flows_append_audit_events_with_ids_only);

async fn flows_append_audit_events_with_ids_only(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| c.refresh_reuse_grace = Duration::ZERO).await else {
        return;
    };
    let login = app.user("ann@example.com").await;
    let user_id: identsphere::core::UserId = login["user"]["id"].as_str().unwrap().parse().unwrap();
    app.login("ann@example.com", "not the password").await;
    app.login("nobody@example.com", "not the password").await;
    let first = login["refresh_token"].as_str().unwrap();
    assert_eq!(
        app.post("/v1/auth/refresh", json!({ "refresh_token": first }))
            .await
            .status(),
        StatusCode::OK
    );
    app.post("/v1/auth/refresh", json!({ "refresh_token": first }))
        .await;
    let second: Value = app
        .login("ann@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let r = app
        .post_bearer(
            "/v1/auth/logout",
            second["access_token"].as_str().unwrap(),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let store = app.service.state().identity().store().clone();
    let all = PageRequest {
        after: None,
        limit: 100,
    };
    let mine = store
        .list_audit(
            &AuditFilter {
                actor_id: Some(user_id),
                ..Default::default()
            },
            all,
        )
        .await
        .unwrap();
    let actions: Vec<&str> = mine.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "session.revoked",
            "user.login.succeeded",
            "refresh_token.reused",
            "user.login.failed",
            "user.login.succeeded",
            "user.email_verified",
            "user.signed_up",
        ]
    );
    assert!(mine
        .iter()
        .all(|e| e.ip.as_deref() == Some("127.0.0.1") && e.org_id.is_none()));
    assert_eq!(mine[0].target_id.as_deref(), second["session_id"].as_str());
    assert_eq!(mine[2].target_id.as_deref(), login["session_id"].as_str());

    // A failed login for an unknown address records no actor, and nothing names the address.
    let failed = AuditFilter {
        action: Some(AuditAction::LoginFailed),
        ..Default::default()
    };
    let failed = store.list_audit(&failed, all).await.unwrap();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].actor_id, None);
    let everything = format!(
        "{:?}",
        store
            .list_audit(&AuditFilter::default(), all)
            .await
            .unwrap()
    );
    for secret in [
        "ann@example.com",
        "nobody@example.com",
        PASSWORD,
        "not the password",
        first,
    ] {
        assert!(!everything.contains(secret), "{secret} is in the audit log");
    }
}
