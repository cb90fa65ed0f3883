//! Machine clients, machine users and machine tokens.
use crate::cases::{now, S};
use chrono::Duration;
use identsphere_core::{ids::*, secret::TokenHash, store::*};
use std::sync::Arc;

async fn client(s: &S, name: &str) -> Client {
    s.create_client(&NewClient {
        id: ClientId::new(),
        name: name.into(),
        key_prefix: format!("isck_{name}"),
        key_hash: TokenHash::of(&format!("key of {name}")),
        created_at: now(),
    })
    .await
    .unwrap()
}

fn new_user(client: ClientId, identifier: &str) -> NewClientUser {
    NewClientUser {
        id: ClientUserId::new(),
        client_id: client,
        identifier: identifier.into(),
        secret_hash: TokenHash::of(&format!("secret of {identifier}")),
        created_at: now(),
    }
}

fn new_token(user: &ClientUser) -> NewMachineToken {
    let t = now();
    NewMachineToken {
        id: MachineTokenId::new(),
        user_id: user.id,
        client_id: user.client_id,
        created_at: t,
        expires_at: t + Duration::days(30),
    }
}

pub async fn clients_are_found_by_key_listed_and_rotated(s: S) {
    let a = client(&s, "a").await;
    let b = client(&s, "b").await;
    assert_eq!(a.key_rotated_at, None);
    assert_eq!(s.get_client(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        s.find_client_by_key(&TokenHash::of("key of b"))
            .await
            .unwrap(),
        Some(b.clone())
    );
    assert_eq!(
        s.find_client_by_key(&TokenHash::of("nope")).await.unwrap(),
        None
    );
    let all = s
        .list_clients(PageRequest {
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(all, vec![a.clone(), b.clone()]);
    let rest = s
        .list_clients(PageRequest {
            after: Some(a.id),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(rest, vec![b.clone()]);

    // A new key replaces the old one at once.
    let at = now();
    let rotated = s
        .replace_client_key(a.id, "isck_new", &TokenHash::of("new key"), at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (rotated.key_prefix.as_str(), rotated.key_rotated_at),
        ("isck_new", Some(at))
    );
    assert_eq!(
        s.find_client_by_key(&TokenHash::of("key of a"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.find_client_by_key(&TokenHash::of("new key"))
            .await
            .unwrap(),
        Some(rotated)
    );
    assert_eq!(
        s.replace_client_key(ClientId::new(), "x", &TokenHash::of("x"), at)
            .await
            .unwrap(),
        None
    );
    // Two clients cannot share a key.
    assert!(matches!(
        s.create_client(&NewClient {
            id: ClientId::new(),
            name: "c".into(),
            key_prefix: "isck_".into(),
            key_hash: TokenHash::of("key of b"),
            created_at: now(),
        })
        .await,
        Err(StoreError::Conflict { .. })
    ));
}

pub async fn client_users_are_unique_per_client_and_scoped(s: S) {
    let a = client(&s, "a").await;
    let b = client(&s, "b").await;
    let first = s
        .create_client_user(&new_user(a.id, "device-1"))
        .await
        .unwrap();
    assert_eq!(first.secret_hash, TokenHash::of("secret of device-1"));
    let second = s
        .create_client_user(&new_user(a.id, "device-2"))
        .await
        .unwrap();
    // The same identifier in another client is another user.
    let other = s
        .create_client_user(&new_user(b.id, "device-1"))
        .await
        .unwrap();
    match s.create_client_user(&new_user(a.id, "device-1")).await {
        Err(StoreError::Conflict { constraint }) => {
            assert!(constraint.contains("client_users"), "{constraint}")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        s.find_client_user(a.id, "device-1").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        s.find_client_user(b.id, "device-1").await.unwrap(),
        Some(other.clone())
    );
    assert_eq!(s.find_client_user(a.id, "device-3").await.unwrap(), None);
    let page = |after| PageRequest { after, limit: 1 };
    assert_eq!(
        s.list_client_users(a.id, page(None)).await.unwrap(),
        vec![first.clone()]
    );
    assert_eq!(
        s.list_client_users(a.id, page(Some(first.id)))
            .await
            .unwrap(),
        vec![second.clone()]
    );
    // Deleting is scoped by client.
    assert!(!s.delete_client_user(b.id, first.id).await.unwrap());
    assert!(s.delete_client_user(a.id, first.id).await.unwrap());
    assert!(!s.delete_client_user(a.id, first.id).await.unwrap());
    assert_eq!(s.find_client_user(a.id, "device-1").await.unwrap(), None);
}

pub async fn machine_tokens_live_while_their_user_and_client_do(s: S) {
    let a = client(&s, "a").await;
    let b = client(&s, "b").await;
    let ann = s.create_client_user(&new_user(a.id, "ann")).await.unwrap();
    let bob = s.create_client_user(&new_user(a.id, "bob")).await.unwrap();
    let new = new_token(&ann);
    assert!(s.create_machine_token(&new).await.unwrap());
    let stored = s.get_machine_token(new.id).await.unwrap().unwrap();
    assert_eq!(
        stored,
        MachineToken {
            id: new.id,
            user_id: ann.id,
            client_id: a.id,
            identifier: "ann".into(),
            created_at: new.created_at,
            expires_at: new.expires_at,
            revoked_at: None,
        }
    );
    assert!(stored.is_active(now()));
    assert!(!stored.is_active(new.expires_at));
    // A token names its user's own client, or nothing is stored.
    let mut wrong_client = new_token(&ann);
    wrong_client.client_id = b.id;
    assert!(!s.create_machine_token(&wrong_client).await.unwrap());
    assert_eq!(s.get_machine_token(wrong_client.id).await.unwrap(), None);

    // Revoking is the client's alone, and happens once.
    let at = now();
    assert!(!s.revoke_machine_token(b.id, new.id, at).await.unwrap());
    assert!(s.revoke_machine_token(a.id, new.id, at).await.unwrap());
    assert!(!s.revoke_machine_token(a.id, new.id, at).await.unwrap());
    let revoked = s.get_machine_token(new.id).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(at));
    assert!(!revoked.is_active(at));

    // Deleting a user deletes its tokens; a deleted user gets no new ones.
    let bobs = new_token(&bob);
    assert!(s.create_machine_token(&bobs).await.unwrap());
    assert!(s.delete_client_user(a.id, bob.id).await.unwrap());
    assert_eq!(s.get_machine_token(bobs.id).await.unwrap(), None);
    assert!(!s.create_machine_token(&new_token(&bob)).await.unwrap());

    // Deleting a client deletes its users and their tokens.
    let again = new_token(&ann);
    assert!(s.create_machine_token(&again).await.unwrap());
    assert!(s.delete_client(a.id).await.unwrap());
    assert!(!s.delete_client(a.id).await.unwrap());
    assert_eq!(s.get_client(a.id).await.unwrap(), None);
    assert_eq!(s.find_client_user(a.id, "ann").await.unwrap(), None);
    assert_eq!(s.get_machine_token(again.id).await.unwrap(), None);
    assert_eq!(s.get_client(b.id).await.unwrap(), Some(b));
}

/// A token issued while its user is being deleted is either stored before
/// the deletion (and deleted with it) or not stored at all: never left behind.
pub async fn tokens_racing_a_user_deletion_are_never_orphaned(s: S) {
    let a = client(&s, "a").await;
    for round in 0..10 {
        let user = s
            .create_client_user(&new_user(a.id, &format!("racer-{round}")))
            .await
            .unwrap();
        let tokens: Vec<NewMachineToken> = (0..8).map(|_| new_token(&user)).collect();
        let mut tasks = Vec::new();
        for t in tokens.clone() {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(
                async move { s.create_machine_token(&t).await },
            ));
        }
        let deleter = {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.delete_client_user(a.id, user.id).await })
        };
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(deleter.await.unwrap().unwrap());
        for t in &tokens {
            assert_eq!(s.get_machine_token(t.id).await.unwrap(), None);
        }
    }
}
