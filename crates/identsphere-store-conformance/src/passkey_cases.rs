//! Passkeys and WebAuthn ceremonies.
use crate::cases::{now, user, S};
use chrono::Duration;
use identsphere_core::{ids::*, store::*};
use std::sync::Arc;

fn passkey(user: UserId, credential_id: &[u8], name: &str) -> NewPasskey {
    NewPasskey {
        id: PasskeyId::new(),
        user_id: user,
        credential_id: credential_id.to_vec(),
        credential: format!("{{\"cred\":\"{name}\"}}"),
        name: name.into(),
        created_at: now(),
    }
}

fn ceremony(kind: CeremonyKind, user: Option<UserId>, ttl_secs: i64) -> NewWebauthnCeremony {
    let t = now();
    NewWebauthnCeremony {
        id: CeremonyId::new(),
        kind,
        user_id: user,
        state: "{\"challenge\":\"c\"}".into(),
        created_at: t,
        expires_at: t + Duration::seconds(ttl_secs),
    }
}

pub async fn passkeys_lifecycle_is_scoped_by_user(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let first = s
        .create_passkey(&passkey(ann.id, b"cred-1", "Laptop"))
        .await
        .unwrap();
    assert_eq!(first.user_id, ann.id);
    assert_eq!(first.last_used_at, None);
    let second = s
        .create_passkey(&passkey(ann.id, b"cred-2", "Phone"))
        .await
        .unwrap();
    s.create_passkey(&passkey(bob.id, b"cred-3", "Key"))
        .await
        .unwrap();
    // A credential id belongs to one passkey, whoever registers it.
    assert!(matches!(
        s.create_passkey(&passkey(bob.id, b"cred-1", "Copy")).await,
        Err(StoreError::Conflict { .. })
    ));
    let anns = s.list_passkeys(ann.id).await.unwrap();
    assert_eq!(anns, vec![first.clone(), second.clone()]);
    assert_eq!(
        s.find_passkey_by_credential(b"cred-2").await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(s.find_passkey_by_credential(b"nope").await.unwrap(), None);

    // Renaming and deleting are the owner's alone.
    assert_eq!(
        s.rename_passkey(bob.id, first.id, "Mine").await.unwrap(),
        None
    );
    let renamed = s
        .rename_passkey(ann.id, first.id, "Work laptop")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.name, "Work laptop");
    assert!(!s.delete_passkey(bob.id, first.id).await.unwrap());
    assert!(s.delete_passkey(ann.id, first.id).await.unwrap());
    assert!(!s.delete_passkey(ann.id, first.id).await.unwrap());
    assert_eq!(s.find_passkey_by_credential(b"cred-1").await.unwrap(), None);

    // A use records the time, and the credential only when it changed.
    let t = now() + Duration::seconds(5);
    s.record_passkey_use(second.id, None, t).await.unwrap();
    let used = s
        .find_passkey_by_credential(b"cred-2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (used.last_used_at, used.credential.as_str()),
        (Some(t), second.credential.as_str())
    );
    s.record_passkey_use(second.id, Some("{\"counter\":2}"), t)
        .await
        .unwrap();
    let used = s
        .find_passkey_by_credential(b"cred-2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(used.credential, "{\"counter\":2}");
}

pub async fn ceremonies_are_taken_once_by_kind_before_expiry(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let t = now();
    let login = ceremony(CeremonyKind::Login, None, 300);
    s.create_webauthn_ceremony(&login).await.unwrap();
    // The wrong kind takes nothing (and leaves it).
    assert_eq!(
        s.take_webauthn_ceremony(login.id, CeremonyKind::Registration, t)
            .await
            .unwrap(),
        None
    );
    let taken = s
        .take_webauthn_ceremony(login.id, CeremonyKind::Login, t)
        .await
        .unwrap();
    assert_eq!(
        taken,
        Some(WebauthnCeremony {
            user_id: None,
            state: login.state.clone()
        })
    );
    assert_eq!(
        s.take_webauthn_ceremony(login.id, CeremonyKind::Login, t)
            .await
            .unwrap(),
        None
    );

    let registration = ceremony(CeremonyKind::Registration, Some(ann.id), 300);
    s.create_webauthn_ceremony(&registration).await.unwrap();
    let late = registration.expires_at;
    assert_eq!(
        s.take_webauthn_ceremony(registration.id, CeremonyKind::Registration, late)
            .await
            .unwrap(),
        None,
        "expired"
    );
    let registration = ceremony(CeremonyKind::Registration, Some(ann.id), 300);
    s.create_webauthn_ceremony(&registration).await.unwrap();
    let taken = s
        .take_webauthn_ceremony(registration.id, CeremonyKind::Registration, t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.user_id, Some(ann.id));
}

pub async fn concurrent_ceremony_takes_have_one_winner(s: S) {
    let c = ceremony(CeremonyKind::Login, None, 300);
    s.create_webauthn_ceremony(&c).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                s.take_webauthn_ceremony(c.id, CeremonyKind::Login, now())
                    .await
                    .unwrap()
                    .is_some()
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}
