//! The cases. Each takes a fresh, empty store.
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use identsphere_core::{
    audit::{AuditAction, AuditFilter, AuditMetadata, AuditValue, NewAuditEvent},
    clock::truncate_millis,
    ids::*,
    secret::{random_token, TokenHash},
    store::*,
    Email,
};
use std::sync::Arc;

pub(crate) type S = Arc<dyn Store>;

pub(crate) fn now() -> DateTime<Utc> {
    truncate_millis(Utc::now())
}

pub(crate) fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

pub(crate) async fn user(s: &S, address: &str) -> User {
    s.create_user(&NewUser {
        id: UserId::new(),
        email: email(address),
        name: Some("Ann".into()),
        email_verified: false,
        password_hash: Some("$argon2id$fake".into()),
        created_at: now(),
    })
    .await
    .unwrap()
}

pub(crate) fn refresh(hash: TokenHash, at: DateTime<Utc>) -> NewRefreshToken {
    NewRefreshToken {
        id: RefreshTokenId::new(),
        hash,
        created_at: at,
        expires_at: at + Duration::days(30),
    }
}

pub(crate) async fn session(s: &S, user: UserId, token: &str, at: DateTime<Utc>) -> Session {
    let new = NewSession {
        id: SessionId::new(),
        user_id: user,
        created_at: at,
        expires_at: at + Duration::days(30),
        ip: Some("127.0.0.1".into()),
        user_agent: Some("test".into()),
        auth_time: at,
        amr: vec!["pwd".into()],
    };
    s.create_session(&new, &refresh(TokenHash::of(token), at))
        .await
        .unwrap()
}

async fn legacy_user(s: &S, stored: &str) -> User {
    s.create_user(&NewUser {
        id: UserId::new(),
        email: Email::from_trusted(stored.into()),
        name: None,
        email_verified: true,
        password_hash: None,
        created_at: now(),
    })
    .await
    .unwrap()
}

/// Addresses stored under the old rule (trim and lower case only) are found
/// and rewritten by the current one; a clash with an existing account and an
/// address the rules now refuse are left alone and reported.
pub async fn stored_addresses_are_refolded(s: S) {
    use identsphere_core::addresses::refold_stored;
    let plain = user(&s, "ann@example.com").await;
    let wide = legacy_user(&s, "ａｎｎ@example.com").await;
    let idn = legacy_user(&s, "bob@bücher.example").await;
    let quoted = legacy_user(&s, "\"cid\"@example.com").await;
    let also_idn = legacy_user(&s, "dan@bücher.example").await;
    let folded = user(&s, "dan@xn--bcher-kva.example").await;
    let clock = identsphere_core::ManualClock::new(now());
    let summary = refold_stored(s.as_ref(), &clock).await.unwrap();
    assert_eq!(summary.refolded, 1, "{summary:?}");
    assert_eq!(summary.refused, [quoted.id]);
    let mut conflicts = summary.conflicts.clone();
    conflicts.sort();
    let mut expected = vec![wide.id, also_idn.id];
    expected.sort();
    assert_eq!(conflicts, expected);
    let found = |a: &'static str| {
        let s = s.clone();
        async move { s.find_user_by_email(&email(a)).await.unwrap().map(|u| u.id) }
    };
    assert_eq!(found("ann@example.com").await, Some(plain.id));
    assert_eq!(found("bob@bücher.example").await, Some(idn.id));
    assert_eq!(found("dan@bücher.example").await, Some(folded.id));
    let stored = s.get_user(idn.id).await.unwrap().unwrap().email;
    assert_eq!(stored.as_str(), "bob@xn--bcher-kva.example");
    // Idempotent: a second run changes nothing.
    let again = refold_stored(s.as_ref(), &clock).await.unwrap();
    assert_eq!(again.refolded, 0);
    assert_eq!(again.conflicts.len(), 2);
}

/// Users round-trip, are found by email and take patches.
pub async fn users_create_find_update(s: S) {
    let u = user(&s, "ann@example.com").await;
    assert_eq!(s.get_user(u.id).await.unwrap().unwrap(), u);
    assert_eq!(
        s.find_user_by_email(&email("ann@example.com"))
            .await
            .unwrap()
            .unwrap()
            .id,
        u.id
    );
    assert!(s
        .find_user_by_email(&email("bob@example.com"))
        .await
        .unwrap()
        .is_none());
    assert!(s.get_user(UserId::new()).await.unwrap().is_none());

    let later = now() + Duration::seconds(5);
    let patched = s
        .update_user(
            u.id,
            &UserPatch {
                name: Some(None),
                email_verified: Some(true),
                ..Default::default()
            },
            later,
        )
        .await
        .unwrap();
    assert_eq!(patched.name, None);
    assert!(patched.email_verified);
    assert_eq!(patched.password_hash, u.password_hash);
    assert_eq!(patched.updated_at, later);
    let patched = s
        .update_user(
            u.id,
            &UserPatch {
                email: Some(email("ann2@example.com")),
                ..Default::default()
            },
            later,
        )
        .await
        .unwrap();
    assert_eq!(patched.email.as_str(), "ann2@example.com");
    assert!(patched.email_verified);
    assert!(matches!(
        s.update_user(UserId::new(), &UserPatch::default(), later)
            .await,
        Err(StoreError::NotFound)
    ));
}

/// A second account with the same address is a conflict, also on update.
pub async fn users_email_is_unique(s: S) {
    user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let dup = NewUser {
        id: UserId::new(),
        email: email("ann@example.com"),
        name: None,
        email_verified: false,
        password_hash: None,
        created_at: now(),
    };
    assert!(matches!(
        s.create_user(&dup).await,
        Err(StoreError::Conflict { .. })
    ));
    let patch = UserPatch {
        email: Some(email("ann@example.com")),
        ..Default::default()
    };
    assert!(matches!(
        s.update_user(bob.id, &patch, now()).await,
        Err(StoreError::Conflict { .. })
    ));
}

/// A password hash is replaced only while it is still the one the caller read.
pub async fn password_hash_is_replaced_only_if_unchanged(s: S) {
    let u = user(&s, "ann@example.com").await;
    let old = u.password_hash.clone().unwrap();
    let later = now() + Duration::seconds(5);
    assert!(s
        .replace_password_hash(u.id, &old, "$argon2id$upgraded", later)
        .await
        .unwrap());
    let got = s.get_user(u.id).await.unwrap().unwrap();
    assert_eq!(got.password_hash.as_deref(), Some("$argon2id$upgraded"));
    assert_eq!(got.updated_at, later);
    // The hash read earlier is stale now: nothing changes.
    assert!(!s
        .replace_password_hash(u.id, &old, "$argon2id$stale", later)
        .await
        .unwrap());
    assert_eq!(
        s.get_user(u.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .as_deref(),
        Some("$argon2id$upgraded")
    );
    assert!(!s
        .replace_password_hash(UserId::new(), &old, "$argon2id$x", later)
        .await
        .unwrap());
}

/// Listing and revoking only ever touch the given user's sessions.
pub async fn sessions_list_and_revoke_are_scoped_by_user(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let t = now();
    let a1 = session(&s, ann.id, &random_token("rt_"), t).await;
    let a2 = session(&s, ann.id, &random_token("rt_"), t + Duration::seconds(1)).await;
    let a3 = session(&s, ann.id, &random_token("rt_"), t + Duration::seconds(2)).await;
    let b1 = session(&s, bob.id, &random_token("rt_"), t).await;

    let listed: Vec<SessionId> = s
        .list_active_sessions(ann.id, t)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![a3.id, a2.id, a1.id]);
    assert_eq!(s.get_session(a1.id).await.unwrap().unwrap(), a1);

    // Another user's session id revokes nothing.
    assert!(s
        .revoke_sessions(ann.id, SessionSelector::One(b1.id), t)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .get_session(b1.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_none());

    assert_eq!(
        s.revoke_sessions(ann.id, SessionSelector::One(a1.id), t)
            .await
            .unwrap(),
        vec![a1.id]
    );
    // Revoking twice reports nothing the second time.
    assert!(s
        .revoke_sessions(ann.id, SessionSelector::One(a1.id), t)
        .await
        .unwrap()
        .is_empty());
    let mut others = s
        .revoke_sessions(ann.id, SessionSelector::AllExcept(a3.id), t)
        .await
        .unwrap();
    others.sort();
    assert_eq!(others, vec![a2.id]);
    let listed: Vec<SessionId> = s
        .list_active_sessions(ann.id, t)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![a3.id]);
    assert_eq!(
        s.revoke_sessions(ann.id, SessionSelector::All, t)
            .await
            .unwrap(),
        vec![a3.id]
    );
    assert!(s.list_active_sessions(ann.id, t).await.unwrap().is_empty());
    assert_eq!(s.list_active_sessions(bob.id, t).await.unwrap().len(), 1);
    // Expired sessions are not listed.
    assert!(s
        .list_active_sessions(bob.id, t + Duration::days(31))
        .await
        .unwrap()
        .is_empty());
}

/// `revoked_since` rebuilds a revocation cache.
pub async fn revoked_since_lists_recent_revocations(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let t = now();
    let old = session(&s, ann.id, &random_token("rt_"), t).await;
    let new = session(&s, ann.id, &random_token("rt_"), t).await;
    let _live = session(&s, ann.id, &random_token("rt_"), t).await;
    s.revoke_sessions(ann.id, SessionSelector::One(old.id), t - Duration::hours(1))
        .await
        .unwrap();
    s.revoke_sessions(ann.id, SessionSelector::One(new.id), t)
        .await
        .unwrap();
    assert_eq!(
        s.revoked_since(t - Duration::minutes(15)).await.unwrap(),
        vec![new.id]
    );
}

/// Rotation retires a token once; presenting it again within the grace is
/// allowed, after the grace it revokes the session.
pub async fn rotation_then_grace_then_reuse(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let t = now();
    let first = random_token("rt_");
    let sess = session(&s, ann.id, &first, t).await;
    let second = refresh(TokenHash::of("second"), t);
    let grace = Duration::seconds(10);

    let RotateOutcome::Rotated(rotated) = s
        .rotate_refresh_token(&TokenHash::of(&first), &second, grace, t)
        .await
        .unwrap()
    else {
        panic!("expected a rotation")
    };
    assert_eq!(rotated.id, sess.id);
    assert_eq!(rotated.expires_at, second.expires_at);
    let again = s
        .rotate_refresh_token(
            &TokenHash::of(&first),
            &second,
            grace,
            t + Duration::seconds(9),
        )
        .await
        .unwrap();
    assert!(matches!(again, RotateOutcome::WithinGrace(ref x) if x.id == sess.id));
    // The successor works.
    let third = refresh(TokenHash::of("third"), t);
    assert!(matches!(
        s.rotate_refresh_token(
            &TokenHash::of("second"),
            &third,
            grace,
            t + Duration::seconds(9)
        )
        .await
        .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    let late = s
        .rotate_refresh_token(
            &TokenHash::of(&first),
            &second,
            grace,
            t + Duration::seconds(10),
        )
        .await
        .unwrap();
    assert_eq!(
        late,
        RotateOutcome::Reused {
            session_id: sess.id,
            user_id: ann.id
        }
    );
    assert!(s
        .get_session(sess.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    // Every token of a revoked session is dead.
    let fourth = refresh(TokenHash::of("fourth"), t);
    assert_eq!(
        s.rotate_refresh_token(
            &TokenHash::of("third"),
            &fourth,
            grace,
            t + Duration::seconds(11)
        )
        .await
        .unwrap(),
        RotateOutcome::Invalid
    );
    assert_eq!(
        s.find_session_by_refresh_token(&TokenHash::of("third"))
            .await
            .unwrap()
            .unwrap()
            .id,
        sess.id
    );
}

/// Unknown and expired tokens, and tokens of revoked sessions, are invalid.
pub async fn rotation_refuses_dead_tokens_and_sessions(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let t = now();
    let grace = Duration::seconds(10);
    let next = refresh(TokenHash::of("next"), t);
    assert_eq!(
        s.rotate_refresh_token(&TokenHash::of("nope"), &next, grace, t)
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );

    let tok = random_token("rt_");
    session(&s, ann.id, &tok, t).await;
    let expired = s
        .rotate_refresh_token(&TokenHash::of(&tok), &next, grace, t + Duration::days(31))
        .await
        .unwrap();
    assert_eq!(expired, RotateOutcome::Invalid);

    let tok = random_token("rt_");
    let sess = session(&s, ann.id, &tok, t).await;
    s.revoke_sessions(ann.id, SessionSelector::One(sess.id), t)
        .await
        .unwrap();
    let next = refresh(TokenHash::of("next2"), t);
    assert_eq!(
        s.rotate_refresh_token(&TokenHash::of(&tok), &next, grace, t)
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    // A failed rotation leaves no successor behind.
    assert!(s
        .find_session_by_refresh_token(&TokenHash::of("next2"))
        .await
        .unwrap()
        .is_none());
}

async fn race(s: &S, token: &str, grace: Duration, n: usize) -> Vec<RotateOutcome> {
    let t = now();
    let successor = refresh(TokenHash::of(&format!("{token}-next")), t);
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (s, successor, presented) = (s.clone(), successor.clone(), TokenHash::of(token));
            tokio::spawn(async move {
                let mut successor = successor;
                successor.id = RefreshTokenId::new();
                s.rotate_refresh_token(&presented, &successor, grace, t)
                    .await
                    .unwrap()
            })
        })
        .collect();
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// 50 concurrent rotations of one token: one rotation, 49 grace answers.
pub async fn concurrent_rotation_with_grace_rotates_once(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let tok = random_token("rt_");
    session(&s, ann.id, &tok, now()).await;
    let outcomes = race(&s, &tok, Duration::seconds(10), 50).await;
    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, RotateOutcome::Rotated(_)))
        .count();
    let grace = outcomes
        .iter()
        .filter(|o| matches!(o, RotateOutcome::WithinGrace(_)))
        .count();
    assert_eq!((rotated, grace), (1, 49), "{outcomes:?}");
}

/// With no grace, one rotation wins and every other presentation is reuse.
pub async fn concurrent_rotation_without_grace_lets_one_win(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let tok = random_token("rt_");
    let sess = session(&s, ann.id, &tok, now()).await;
    let outcomes = race(&s, &tok, Duration::zero(), 50).await;
    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, RotateOutcome::Rotated(_)))
        .count();
    let reused = outcomes
        .iter()
        .filter(|o| matches!(o, RotateOutcome::Reused { .. } | RotateOutcome::Invalid))
        .count();
    assert_eq!((rotated, reused), (1, 49), "{outcomes:?}");
    assert!(s
        .get_session(sess.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
}

/// A racer that read the clock before the winner did sees a retirement "in
/// the future": within a grace that is a grace answer, without one it is reuse.
pub async fn racer_with_an_earlier_clock_is_reuse_without_grace(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let t = now();
    for (grace, expect_grace) in [(Duration::seconds(10), true), (Duration::zero(), false)] {
        let tok = random_token("rt_");
        session(&s, ann.id, &tok, t).await;
        let next = refresh(TokenHash::of(&random_token("rt_")), t);
        let later = t + Duration::milliseconds(5);
        assert!(matches!(
            s.rotate_refresh_token(&TokenHash::of(&tok), &next, grace, later)
                .await
                .unwrap(),
            RotateOutcome::Rotated(_)
        ));
        let earlier = s
            .rotate_refresh_token(&TokenHash::of(&tok), &next, grace, t)
            .await
            .unwrap();
        if expect_grace {
            assert!(
                matches!(earlier, RotateOutcome::WithinGrace(_)),
                "{earlier:?}"
            );
        } else {
            assert!(
                matches!(earlier, RotateOutcome::Reused { .. }),
                "{earlier:?}"
            );
        }
    }
}

fn one_time(
    user: UserId,
    purpose: TokenPurpose,
    token: &str,
    at: DateTime<Utc>,
) -> NewOneTimeToken {
    NewOneTimeToken {
        id: OneTimeTokenId::new(),
        user_id: user,
        purpose,
        hash: TokenHash::of(token),
        new_email: (purpose == TokenPurpose::ChangeEmail).then(|| email("new@example.com")),
        proof: None,
        created_at: at,
        expires_at: at + Duration::hours(1),
    }
}

/// A one-time token works once, for its purpose, before it expires; a new
/// token of the same purpose replaces the old one.
pub async fn one_time_tokens_are_consumed_once(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let t = now();
    s.replace_one_time_token(&one_time(ann.id, TokenPurpose::VerifyEmail, "v1", t))
        .await
        .unwrap();
    s.replace_one_time_token(&one_time(ann.id, TokenPurpose::ChangeEmail, "c1", t))
        .await
        .unwrap();
    assert!(s
        .consume_one_time_token(&TokenHash::of("v1"), TokenPurpose::ResetPassword, t)
        .await
        .unwrap()
        .is_none());
    let got = s
        .consume_one_time_token(&TokenHash::of("v1"), TokenPurpose::VerifyEmail, t)
        .await
        .unwrap();
    assert_eq!(
        got,
        Some(ConsumedToken {
            user_id: ann.id,
            new_email: None
        })
    );
    assert!(s
        .consume_one_time_token(&TokenHash::of("v1"), TokenPurpose::VerifyEmail, t)
        .await
        .unwrap()
        .is_none());
    let got = s
        .consume_one_time_token(&TokenHash::of("c1"), TokenPurpose::ChangeEmail, t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.new_email, Some(email("new@example.com")));

    s.replace_one_time_token(&one_time(ann.id, TokenPurpose::ResetPassword, "r1", t))
        .await
        .unwrap();
    s.replace_one_time_token(&one_time(ann.id, TokenPurpose::ResetPassword, "r2", t))
        .await
        .unwrap();
    assert!(s
        .consume_one_time_token(&TokenHash::of("r1"), TokenPurpose::ResetPassword, t)
        .await
        .unwrap()
        .is_none());
    let late = t + Duration::hours(1);
    assert!(s
        .consume_one_time_token(&TokenHash::of("r2"), TokenPurpose::ResetPassword, late)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .consume_one_time_token(&TokenHash::of("r2"), TokenPurpose::ResetPassword, t)
        .await
        .unwrap()
        .is_some());
}

/// 20 concurrent consumers of one token: exactly one wins.
pub async fn concurrent_one_time_consumption_has_one_winner(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let t = now();
    s.replace_one_time_token(&one_time(ann.id, TokenPurpose::ResetPassword, "race", t))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.consume_one_time_token(&TokenHash::of("race"), TokenPurpose::ResetPassword, t)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let wins = futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| r.as_ref().unwrap().is_some())
        .count();
    assert_eq!(wins, 1);
}

/// Keys are listed newest first, retired together and pruned.
pub async fn signing_keys_lifecycle(s: S) {
    let t = now();
    let key = |kid: &str, at| SigningKeyRecord {
        kid: kid.into(),
        alg: "EdDSA".into(),
        private_der: vec![1, 2, 3],
        public_jwk: "{}".into(),
        created_at: at,
        retired_at: None,
    };
    s.insert_signing_key(&key("a", t)).await.unwrap();
    s.insert_signing_key(&key("b", t + Duration::seconds(1)))
        .await
        .unwrap();
    let keys = s.list_signing_keys().await.unwrap();
    assert_eq!(
        keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        ["b", "a"]
    );
    assert_eq!(keys[1], key("a", t));
    s.retire_signing_keys_except("b", t).await.unwrap();
    let keys = s.list_signing_keys().await.unwrap();
    assert_eq!(keys[0].retired_at, None);
    assert_eq!(keys[1].retired_at, Some(t));
    assert_eq!(s.delete_signing_keys_retired_before(t).await.unwrap(), 0);
    assert_eq!(
        s.delete_signing_keys_retired_before(t + Duration::seconds(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.list_signing_keys().await.unwrap().len(), 1);
}

/// A store with a feed announces every revocation, including reuse
/// revocations, and every change to a user row.
pub async fn change_feed_announces_revocations_and_user_changes(s: S) {
    let Some(mut feed) = s.change_feed().await.unwrap() else {
        return;
    };
    let ann = user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let t = now();
    let a = session(&s, ann.id, &random_token("rt_"), t).await;
    let tok = random_token("rt_");
    let b = session(&s, ann.id, &tok, t).await;
    s.revoke_sessions(ann.id, SessionSelector::One(a.id), t)
        .await
        .unwrap();
    let next = refresh(TokenHash::of(&random_token("rt_")), t);
    s.rotate_refresh_token(&TokenHash::of(&tok), &next, Duration::zero(), t)
        .await
        .unwrap();
    s.rotate_refresh_token(&TokenHash::of(&tok), &next, Duration::zero(), t)
        .await
        .unwrap();
    let patch = UserPatch {
        name: Some(Some("Ann".into())),
        ..Default::default()
    };
    s.update_user(ann.id, &patch, t).await.unwrap();
    let old = bob.password_hash.clone().unwrap();
    assert!(s
        .replace_password_hash(bob.id, &old, "$argon2id$new", t)
        .await
        .unwrap());
    let expected = [
        Change::SessionRevoked(a.id),
        Change::SessionRevoked(b.id),
        Change::UserChanged(ann.id),
        Change::UserChanged(bob.id),
    ];
    let mut seen = Vec::new();
    // Other tests share the channels: wait until all of ours have arrived.
    while !expected.iter().all(|c| seen.contains(c)) {
        let change = tokio::time::timeout(std::time::Duration::from_secs(5), feed.next())
            .await
            .unwrap()
            .unwrap();
        seen.push(change);
    }
}

/// Audit events round-trip, filter by org, actor, action and time, page newest
/// first, and name users that do not (or no longer) exist.
pub async fn audit_events_filter_page_and_outlive_their_actors(s: S) {
    let t = now();
    let (org, other_org) = (OrgId::new(), OrgId::new());
    let (ann, bob) = (UserId::new(), UserId::new()); // no user rows: no foreign keys
    let mut ids = Vec::new();
    for i in 0..5i64 {
        let e = NewAuditEvent {
            id: AuditEventId::new(),
            occurred_at: t + Duration::seconds(i),
            action: if i % 2 == 0 {
                AuditAction::LoginSucceeded
            } else {
                AuditAction::SessionRevoked
            },
            actor_id: Some(if i < 3 { ann } else { bob }),
            org_id: Some(if i == 4 { other_org } else { org }),
            target_id: Some(AuditValue::Session(SessionId::new())),
            ip: Some("127.0.0.1".into()),
            user_agent: Some("test".into()),
            metadata: AuditMetadata::default()
                .with("user_id", AuditValue::User(ann))
                .with("count", AuditValue::Count(i as u64)),
        };
        s.append_audit(&e).await.unwrap();
        ids.push(e.id);
    }
    let page = |after| PageRequest { after, limit: 2 };
    let in_org = AuditFilter {
        org_id: Some(org),
        ..Default::default()
    };
    let first = s.list_audit(&in_org, page(None)).await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[3], ids[2]]
    );
    let second = s.list_audit(&in_org, page(Some(ids[2]))).await.unwrap();
    assert_eq!(
        second.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[1], ids[0]]
    );
    assert!(s
        .list_audit(&in_org, page(Some(ids[0])))
        .await
        .unwrap()
        .is_empty());

    let e = &first[1];
    assert_eq!(e.action, "user.login.succeeded");
    assert_eq!(e.actor_id, Some(ann));
    assert_eq!(e.occurred_at, t + Duration::seconds(2));
    assert_eq!(
        e.metadata,
        serde_json::json!({ "user_id": ann.to_string(), "count": 2 })
    );

    let all = PageRequest {
        after: None,
        limit: 100,
    };
    let by_bob = AuditFilter {
        actor_id: Some(bob),
        ..Default::default()
    };
    assert_eq!(s.list_audit(&by_bob, all).await.unwrap().len(), 2);
    let revoked = AuditFilter {
        org_id: Some(org),
        action: Some(AuditAction::SessionRevoked),
        ..Default::default()
    };
    assert_eq!(
        s.list_audit(&revoked, all)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        [ids[3], ids[1]]
    );
    let window = AuditFilter {
        org_id: Some(org),
        since: Some(t + Duration::seconds(1)),
        until: Some(t + Duration::seconds(3)),
        ..Default::default()
    };
    assert_eq!(
        s.list_audit(&window, all)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        [ids[2], ids[1]]
    );
}

/// A link can be looked at without consuming it (with its sign-up proof),
/// the live one of a purpose is found by user, and ending links ends the
/// user's unused ones, of one purpose or all, and nobody else's.
pub async fn pending_links_are_found_and_ended(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let t = now();
    let mut signup = one_time(ann.id, TokenPurpose::VerifyEmail, "v1", t);
    signup.proof = Some(TokenHash::of("browser secret"));
    s.replace_one_time_token(&signup).await.unwrap();
    for (who, purpose, token) in [
        (ann.id, TokenPurpose::ResetPassword, "r1"),
        (ann.id, TokenPurpose::ChangeEmail, "c1"),
        (bob.id, TokenPurpose::ResetPassword, "rb"),
    ] {
        s.replace_one_time_token(&one_time(who, purpose, token, t))
            .await
            .unwrap();
    }
    let found = s
        .find_one_time_token(&TokenHash::of("v1"), TokenPurpose::VerifyEmail, t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user_id, ann.id);
    assert_eq!(found.proof, Some(TokenHash::of("browser secret")));
    assert_eq!(found.created_at, t);
    assert!(s
        .find_one_time_token(&TokenHash::of("v1"), TokenPurpose::ResetPassword, t)
        .await
        .unwrap()
        .is_none());
    // Looking consumed nothing.
    assert!(s
        .consume_one_time_token(&TokenHash::of("v1"), TokenPurpose::VerifyEmail, t)
        .await
        .unwrap()
        .is_some());
    assert!(s
        .find_one_time_token(&TokenHash::of("v1"), TokenPurpose::VerifyEmail, t)
        .await
        .unwrap()
        .is_none());
    let change = s
        .pending_link(ann.id, TokenPurpose::ChangeEmail, t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.new_email, Some(email("new@example.com")));
    assert_eq!(change.expires_at, t + Duration::hours(1));
    assert!(s
        .pending_link(ann.id, TokenPurpose::ChangeEmail, t + Duration::hours(1))
        .await
        .unwrap()
        .is_none());

    assert_eq!(
        s.end_one_time_tokens(ann.id, Some(TokenPurpose::ChangeEmail), t)
            .await
            .unwrap(),
        1
    );
    assert!(s
        .consume_one_time_token(&TokenHash::of("c1"), TokenPurpose::ChangeEmail, t)
        .await
        .unwrap()
        .is_none());
    assert_eq!(s.end_one_time_tokens(ann.id, None, t).await.unwrap(), 1);
    assert!(s
        .consume_one_time_token(&TokenHash::of("r1"), TokenPurpose::ResetPassword, t)
        .await
        .unwrap()
        .is_none());
    assert_eq!(s.end_one_time_tokens(ann.id, None, t).await.unwrap(), 0);
    // Bob's link is untouched.
    assert!(s
        .consume_one_time_token(&TokenHash::of("rb"), TokenPurpose::ResetPassword, t)
        .await
        .unwrap()
        .is_some());
}
