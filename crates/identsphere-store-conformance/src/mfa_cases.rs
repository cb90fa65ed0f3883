//! Second factors: TOTP enrollment and steps, recovery codes, MFA challenges,
//! and session re-authentication.
use crate::cases::{now, refresh, session, user, S};
use chrono::Duration;
use identsphere_core::{secret::TokenHash, store::*};
use std::sync::Arc;

fn codes(n: usize, tag: &str) -> Vec<TokenHash> {
    (0..n)
        .map(|i| TokenHash::of(&format!("{tag}{i}")))
        .collect()
}

pub async fn totp_enrollment_confirmation_and_steps(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let t = now();
    assert!(s.get_totp(ann.id).await.unwrap().is_none());
    assert!(s
        .begin_totp_enrollment(ann.id, b"sealed-1", t)
        .await
        .unwrap());
    // A pending enrollment may be restarted with another secret.
    assert!(s
        .begin_totp_enrollment(ann.id, b"sealed-2", t)
        .await
        .unwrap());
    let rec = s.get_totp(ann.id).await.unwrap().unwrap();
    assert_eq!(rec.sealed_secret, b"sealed-2");
    assert_eq!(rec.confirmed_at, None);
    // Steps are not accepted before confirmation.
    assert!(!s.use_totp_step(ann.id, 10).await.unwrap());
    assert!(s
        .confirm_totp(ann.id, 100, &codes(10, "a"), t)
        .await
        .unwrap());
    assert!(!s
        .confirm_totp(ann.id, 101, &codes(10, "b"), t)
        .await
        .unwrap());
    let rec = s.get_totp(ann.id).await.unwrap().unwrap();
    assert_eq!(rec.confirmed_at, Some(t));
    assert_eq!(rec.last_step, Some(100));
    assert_eq!(s.count_recovery_codes(ann.id).await.unwrap(), 10);
    // A confirmed authenticator is not replaced by a new enrollment.
    assert!(!s
        .begin_totp_enrollment(ann.id, b"sealed-3", t)
        .await
        .unwrap());
    assert_eq!(
        s.get_totp(ann.id).await.unwrap().unwrap().sealed_secret,
        b"sealed-2"
    );
    // Each step once, and never an older one.
    assert!(!s.use_totp_step(ann.id, 100).await.unwrap());
    assert!(!s.use_totp_step(ann.id, 99).await.unwrap());
    assert!(s.use_totp_step(ann.id, 101).await.unwrap());
    assert!(!s.use_totp_step(ann.id, 101).await.unwrap());
    // Deleting removes everything and reports that MFA was on.
    assert!(s.delete_mfa(ann.id).await.unwrap());
    assert!(s.get_totp(ann.id).await.unwrap().is_none());
    assert_eq!(s.count_recovery_codes(ann.id).await.unwrap(), 0);
    assert!(!s.delete_mfa(ann.id).await.unwrap());
}

pub async fn concurrent_totp_step_has_one_winner(s: S) {
    let ann = user(&s, "ann@example.com").await;
    s.begin_totp_enrollment(ann.id, b"sealed", now())
        .await
        .unwrap();
    assert!(s.confirm_totp(ann.id, 1, &[], now()).await.unwrap());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.use_totp_step(ann.id, 2).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

pub async fn recovery_codes_are_used_once_even_concurrently(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let t = now();
    let ann_codes = codes(10, "ann");
    s.replace_recovery_codes(ann.id, &ann_codes, t)
        .await
        .unwrap();
    // Another user's code does not work for Ann, nor Ann's for Bob.
    s.replace_recovery_codes(bob.id, &codes(10, "bob"), t)
        .await
        .unwrap();
    assert!(!s
        .consume_recovery_code(ann.id, &TokenHash::of("bob0"), t)
        .await
        .unwrap());
    assert!(!s
        .consume_recovery_code(bob.id, &ann_codes[0], t)
        .await
        .unwrap());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (s, code) = (Arc::clone(&s), ann_codes[1]);
            tokio::spawn(async move { s.consume_recovery_code(ann.id, &code, t).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert_eq!(s.count_recovery_codes(ann.id).await.unwrap(), 9);
    // Replacing invalidates the old codes.
    s.replace_recovery_codes(ann.id, &codes(10, "new"), t)
        .await
        .unwrap();
    assert!(!s
        .consume_recovery_code(ann.id, &ann_codes[2], t)
        .await
        .unwrap());
    assert_eq!(s.count_recovery_codes(ann.id).await.unwrap(), 10);
}

pub async fn mfa_challenges_expire_count_attempts_and_are_consumed_once(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let t = now();
    let hash = TokenHash::of("mfa_one");
    s.create_mfa_challenge(&NewMfaChallenge {
        hash,
        user_id: ann.id,
        created_at: t,
        expires_at: t + Duration::minutes(5),
        attempts_left: 3,
    })
    .await
    .unwrap();
    let c = s.find_mfa_challenge(&hash, t).await.unwrap().unwrap();
    assert_eq!((c.user_id, c.attempts_left), (ann.id, 3));
    assert!(s
        .find_mfa_challenge(&hash, t + Duration::minutes(5))
        .await
        .unwrap()
        .is_none());
    assert!(!s
        .consume_mfa_challenge(&hash, t + Duration::minutes(5))
        .await
        .unwrap());
    // Of ten racing attempts, three are charged; then it is spent.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.charge_mfa_attempt(&hash, t).await.unwrap() })
        })
        .collect();
    let mut charged = 0;
    for task in tasks {
        charged += usize::from(task.await.unwrap());
    }
    assert_eq!(charged, 3);
    assert!(s.find_mfa_challenge(&hash, t).await.unwrap().is_none());
    assert!(!s
        .charge_mfa_attempt(&TokenHash::of("mfa_one"), t)
        .await
        .unwrap());
    // The last charged attempt may be the right code: it still consumes, once.
    assert!(s.consume_mfa_challenge(&hash, t).await.unwrap());
    assert!(!s.consume_mfa_challenge(&hash, t).await.unwrap());

    let live = TokenHash::of("mfa_two");
    s.create_mfa_challenge(&NewMfaChallenge {
        hash: live,
        user_id: ann.id,
        created_at: t,
        expires_at: t + Duration::minutes(5),
        attempts_left: 3,
    })
    .await
    .unwrap();
    assert!(!s
        .charge_mfa_attempt(&live, t + Duration::minutes(5))
        .await
        .unwrap());
    assert!(s.charge_mfa_attempt(&live, t).await.unwrap());
    assert_eq!(
        s.find_mfa_challenge(&live, t)
            .await
            .unwrap()
            .unwrap()
            .attempts_left,
        2
    );
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.consume_mfa_challenge(&live, t).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert!(s.find_mfa_challenge(&live, t).await.unwrap().is_none());
}

pub async fn reauthentication_sets_auth_time_and_keeps_refresh_tokens(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let t = now();
    let sess = session(&s, ann.id, "rt_first", t).await;
    let later = t + Duration::minutes(10);
    let amr = vec!["pwd".to_owned(), "otp".to_owned(), "mfa".to_owned()];
    let updated = s
        .reauthenticate_session(
            sess.id,
            later,
            &amr,
            &refresh(TokenHash::of("rt_second"), later),
            later,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.auth_time, later);
    assert_eq!(updated.amr, amr);
    assert_eq!(
        s.get_session(sess.id).await.unwrap().unwrap().auth_time,
        later
    );
    for token in ["rt_first", "rt_second"] {
        let found = s
            .find_session_by_refresh_token(&TokenHash::of(token))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, sess.id);
    }
    s.revoke_sessions(ann.id, SessionSelector::All, later)
        .await
        .unwrap();
    assert!(s
        .reauthenticate_session(
            sess.id,
            later,
            &amr,
            &refresh(TokenHash::of("rt_third"), later),
            later
        )
        .await
        .unwrap()
        .is_none());
}

/// Ending a user's MFA logins ends the live ones, and only theirs.
pub async fn mfa_challenges_of_a_user_are_ended(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let t = now();
    for (who, token) in [(ann.id, "a1"), (ann.id, "a2"), (bob.id, "b1")] {
        s.create_mfa_challenge(&NewMfaChallenge {
            hash: TokenHash::of(token),
            user_id: who,
            created_at: t,
            expires_at: t + Duration::minutes(5),
            attempts_left: 3,
        })
        .await
        .unwrap();
    }
    assert_eq!(s.end_mfa_challenges(ann.id, t).await.unwrap(), 2);
    for token in ["a1", "a2"] {
        assert!(s
            .find_mfa_challenge(&TokenHash::of(token), t)
            .await
            .unwrap()
            .is_none());
        assert!(!s
            .charge_mfa_attempt(&TokenHash::of(token), t)
            .await
            .unwrap());
    }
    assert!(s
        .find_mfa_challenge(&TokenHash::of("b1"), t)
        .await
        .unwrap()
        .is_some());
    assert_eq!(s.end_mfa_challenges(ann.id, t).await.unwrap(), 0);
}
