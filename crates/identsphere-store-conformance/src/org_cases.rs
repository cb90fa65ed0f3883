//! Organizations, memberships, custom roles, invitations and API keys.
//! Each case takes a fresh, empty store.
use crate::cases::{email, now, refresh, session, user, S};
use chrono::{DateTime, Duration, Utc};
use identsphere_core::{
    ids::*,
    permissions::{Permission, Permissions, RoleName},
    secret::{random_token, TokenHash},
    store::*,
};

fn role(name: &str) -> RoleName {
    RoleName::parse(name).unwrap()
}

fn owner() -> RoleName {
    RoleName::builtin(RoleName::OWNER)
}

fn admin() -> RoleName {
    RoleName::builtin(RoleName::ADMIN)
}

fn member() -> RoleName {
    RoleName::builtin(RoleName::MEMBER)
}

fn perms(names: &[&str]) -> Permissions {
    names
        .iter()
        .map(|p| Permission::parse(p).unwrap())
        .collect()
}

fn all<C>() -> PageRequest<C> {
    PageRequest {
        after: None,
        limit: 100,
    }
}

async fn named_user(s: &S, address: &str, name: Option<&str>) -> User {
    s.create_user(&NewUser {
        id: UserId::new(),
        email: email(address),
        name: name.map(str::to_owned),
        email_verified: true,
        password_hash: None,
        created_at: now(),
    })
    .await
    .unwrap()
}

async fn org_at(s: &S, name: &str, creator: UserId, at: DateTime<Utc>) -> Organization {
    s.create_org(
        &NewOrganization {
            id: OrgId::new(),
            name: name.into(),
            created_at: at,
        },
        creator,
    )
    .await
    .unwrap()
}

async fn org(s: &S, name: &str, creator: UserId) -> Organization {
    org_at(s, name, creator, now()).await
}

fn custom(name: &str, permissions: &[&str], at: DateTime<Utc>) -> Role {
    Role {
        name: role(name),
        permissions: perms(permissions),
        created_at: at,
        updated_at: at,
    }
}

fn invitation(
    org: OrgId,
    to: &str,
    role: RoleName,
    token: &str,
    by: UserId,
    at: DateTime<Utc>,
) -> NewInvitation {
    NewInvitation {
        id: InvitationId::new(),
        org_id: org,
        email: email(to),
        role,
        hash: TokenHash::of(token),
        invited_by: by,
        created_at: at,
        expires_at: at + Duration::days(7),
    }
}

fn new_account(address: &str, at: DateTime<Utc>) -> NewUser {
    NewUser {
        id: UserId::new(),
        email: email(address),
        name: Some("Invited".into()),
        email_verified: true,
        password_hash: Some("$argon2id$fake".into()),
        created_at: at,
    }
}

fn api_key(
    user: UserId,
    org: Option<OrgId>,
    token: &str,
    at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> NewApiKey {
    NewApiKey {
        id: ApiKeyId::new(),
        user_id: user,
        org_id: org,
        name: format!("key {}", &token[..8]),
        prefix: token[..8].to_owned(),
        hash: TokenHash::of(token),
        scopes: vec!["org:read".into(), "app:invoices.read".into()],
        created_at: at,
        expires_at,
    }
}

async fn owner_count(s: &S, org: OrgId) -> usize {
    s.list_members(org, all())
        .await
        .unwrap()
        .iter()
        .filter(|m| m.role == owner())
        .count()
}

async fn org_of_session(s: &S, id: SessionId) -> Option<OrgId> {
    s.get_session(id).await.unwrap().unwrap().org_id
}

/// Makes `org` the active organization of `sess` (with a throwaway refresh token).
async fn activate(s: &S, sess: SessionId, org: Option<OrgId>) {
    let t = now();
    let done = s
        .switch_session_org(
            sess,
            org,
            &refresh(TokenHash::of(&random_token("rt_")), t),
            t,
        )
        .await
        .unwrap();
    assert_eq!(done.unwrap().org_id, org);
}

/// The creator becomes the owner; organizations are read, renamed and deleted.
pub async fn orgs_create_get_update_delete(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let t = now();
    let o = org_at(&s, "Acme", ann.id, t).await;
    assert_eq!(o.name, "Acme");
    assert_eq!((o.created_at, o.updated_at), (t, t));
    assert_eq!(s.get_org(o.id).await.unwrap(), Some(o.clone()));
    assert!(s.get_org(OrgId::new()).await.unwrap().is_none());

    let m = s.get_membership(o.id, ann.id).await.unwrap().unwrap();
    assert_eq!(
        m,
        Membership {
            org_id: o.id,
            user_id: ann.id,
            role: owner(),
            joined_at: t,
            role_permissions: None,
            org_require_mfa: false,
        }
    );

    let later = t + Duration::seconds(5);
    let rename = OrgPatch {
        name: Some("Acme Inc".into()),
        require_mfa: None,
    };
    let updated = s.update_org(o.id, &rename, later).await.unwrap();
    assert_eq!(updated.previous, o);
    let renamed = updated.current;
    assert_eq!(renamed.name, "Acme Inc");
    assert!(!renamed.require_mfa);
    assert_eq!((renamed.created_at, renamed.updated_at), (t, later));
    assert_eq!(s.get_org(o.id).await.unwrap(), Some(renamed));
    assert!(matches!(
        s.update_org(OrgId::new(), &rename, later).await,
        Err(StoreError::NotFound)
    ));

    assert!(s.delete_org(o.id).await.unwrap());
    assert!(s.get_org(o.id).await.unwrap().is_none());
    assert!(!s.delete_org(o.id).await.unwrap());
    assert!(s.get_membership(o.id, ann.id).await.unwrap().is_none());
    assert!(s.list_user_orgs(ann.id, all()).await.unwrap().is_empty());
    // The user outlives the organization.
    assert!(s.get_user(ann.id).await.unwrap().is_some());
}

/// `require_mfa` starts off, changes alone (the name stays), reports the
/// value it replaced, and is read with every membership and listed organization.
pub async fn org_mfa_requirement_is_stored_and_read_with_memberships(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let t = now();
    let o = org_at(&s, "Acme", ann.id, t).await;
    let other = org_at(&s, "Other", ann.id, t).await;
    s.add_member(o.id, bob.id, &member(), t).await.unwrap();
    assert!(!o.require_mfa);
    assert!(
        !s.get_membership(o.id, bob.id)
            .await
            .unwrap()
            .unwrap()
            .org_require_mfa
    );

    let require = |on| OrgPatch {
        name: None,
        require_mfa: Some(on),
    };
    let later = t + Duration::seconds(5);
    let on = s.update_org(o.id, &require(true), later).await.unwrap();
    assert!(!on.previous.require_mfa);
    assert!(on.current.require_mfa);
    assert_eq!(on.current.name, "Acme", "the name is kept");
    assert_eq!(on.current.updated_at, later);
    assert_eq!(s.get_org(o.id).await.unwrap(), Some(on.current.clone()));
    for user in [ann.id, bob.id] {
        let m = s.get_membership(o.id, user).await.unwrap().unwrap();
        assert!(m.org_require_mfa);
    }
    // Only that organization.
    assert!(
        !s.get_membership(other.id, ann.id)
            .await
            .unwrap()
            .unwrap()
            .org_require_mfa
    );
    let listed: Vec<(OrgId, bool)> = s
        .list_user_orgs(ann.id, all())
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.org.id, m.org.require_mfa))
        .collect();
    let mut expected = vec![(o.id, true), (other.id, false)];
    expected.sort();
    assert_eq!(listed, expected);

    // A rename keeps the requirement; setting the same value reports it as before.
    let renamed = s
        .update_org(
            o.id,
            &OrgPatch {
                name: Some("Acme Inc".into()),
                require_mfa: None,
            },
            later,
        )
        .await
        .unwrap();
    assert!(renamed.previous.require_mfa && renamed.current.require_mfa);
    let again = s.update_org(o.id, &require(true), later).await.unwrap();
    assert!(again.previous.require_mfa && again.current.require_mfa);

    let off = s.update_org(o.id, &require(false), later).await.unwrap();
    assert!(off.previous.require_mfa);
    assert!(!off.current.require_mfa);
    assert_eq!(off.current.name, "Acme Inc");
    assert!(
        !s.get_membership(o.id, bob.id)
            .await
            .unwrap()
            .unwrap()
            .org_require_mfa
    );
}

/// A user's organizations page by ascending id and show only theirs.
pub async fn user_orgs_page_by_ascending_id(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let mut mine = Vec::new();
    for i in 0..3 {
        mine.push(org(&s, &format!("ann-{i}"), ann.id).await.id);
    }
    let shared = org(&s, "bob-shared", bob.id).await;
    let t = now();
    s.add_member(shared.id, ann.id, &member(), t).await.unwrap();
    let _bobs_own = org(&s, "bob-only", bob.id).await;
    mine.push(shared.id);
    mine.sort();

    let page = |after| PageRequest { after, limit: 2 };
    let first = s.list_user_orgs(ann.id, page(None)).await.unwrap();
    assert_eq!(
        first.iter().map(|m| m.org.id).collect::<Vec<_>>(),
        mine[..2]
    );
    let second = s.list_user_orgs(ann.id, page(Some(mine[1]))).await.unwrap();
    assert_eq!(
        second.iter().map(|m| m.org.id).collect::<Vec<_>>(),
        mine[2..]
    );
    assert!(s
        .list_user_orgs(ann.id, page(Some(mine[3])))
        .await
        .unwrap()
        .is_empty());

    let listed = s.list_user_orgs(ann.id, all()).await.unwrap();
    assert_eq!(listed.len(), 4);
    let in_shared = listed.iter().find(|m| m.org.id == shared.id).unwrap();
    assert_eq!(in_shared.org, shared);
    assert_eq!((in_shared.role.clone(), in_shared.joined_at), (member(), t));
    assert!(listed
        .iter()
        .filter(|m| m.org.id != shared.id)
        .all(|m| m.role == owner()));
    assert_eq!(s.list_user_orgs(bob.id, all()).await.unwrap().len(), 2);
}

/// Members are added once, read with their custom role's permissions, and
/// listed by ascending user id with their profile.
pub async fn memberships_read_and_list(s: S) {
    let ann = named_user(&s, "ann@example.com", Some("Ann")).await;
    let bob = named_user(&s, "bob@example.com", Some("Bob")).await;
    let cid = named_user(&s, "cid@example.com", None).await;
    let dee = named_user(&s, "dee@example.com", Some("Dee")).await;
    let o = org(&s, "Acme", ann.id).await;
    let other = org(&s, "Other", dee.id).await;
    let t = now();
    s.create_role(
        o.id,
        &custom("billing", &["org:read", "app:invoices.read"], t),
    )
    .await
    .unwrap();
    s.create_role(o.id, &custom("nothing", &[], t))
        .await
        .unwrap();
    s.add_member(o.id, bob.id, &role("billing"), t)
        .await
        .unwrap();
    s.add_member(o.id, cid.id, &admin(), t).await.unwrap();
    s.add_member(o.id, dee.id, &role("nothing"), t)
        .await
        .unwrap();
    assert!(matches!(
        s.add_member(o.id, bob.id, &member(), t).await,
        Err(StoreError::Conflict { .. })
    ));
    // The refused duplicate changed nothing.
    let bob_m = s.get_membership(o.id, bob.id).await.unwrap().unwrap();
    assert_eq!(
        bob_m,
        Membership {
            org_id: o.id,
            user_id: bob.id,
            role: role("billing"),
            joined_at: t,
            role_permissions: Some(perms(&["org:read", "app:invoices.read"])),
            org_require_mfa: false,
        }
    );
    let cid_m = s.get_membership(o.id, cid.id).await.unwrap().unwrap();
    assert_eq!((cid_m.role, cid_m.role_permissions), (admin(), None));
    // A custom role without permissions is still a custom role.
    let dee_m = s.get_membership(o.id, dee.id).await.unwrap().unwrap();
    assert_eq!(dee_m.role_permissions, Some(Permissions::new()));
    assert!(s.get_membership(other.id, bob.id).await.unwrap().is_none());
    assert!(s
        .get_membership(o.id, UserId::new())
        .await
        .unwrap()
        .is_none());

    let mut expected = vec![
        (ann.id, "ann@example.com", Some("Ann"), owner()),
        (bob.id, "bob@example.com", Some("Bob"), role("billing")),
        (cid.id, "cid@example.com", None, admin()),
        (dee.id, "dee@example.com", Some("Dee"), role("nothing")),
    ];
    expected.sort_by_key(|e| e.0);
    let expected: Vec<Member> = expected
        .into_iter()
        .map(|(id, address, name, role)| Member {
            user_id: id,
            email: email(address),
            name: name.map(str::to_owned),
            joined_at: if id == ann.id { o.created_at } else { t },
            role,
        })
        .collect();
    assert_eq!(s.list_members(o.id, all()).await.unwrap(), expected);
    let page = |after| PageRequest { after, limit: 3 };
    assert_eq!(
        s.list_members(o.id, page(None)).await.unwrap(),
        expected[..3]
    );
    assert_eq!(
        s.list_members(o.id, page(Some(expected[2].user_id)))
            .await
            .unwrap(),
        expected[3..]
    );
    // Another organization's members stay there.
    let others = s.list_members(other.id, all()).await.unwrap();
    assert_eq!(
        others.iter().map(|m| m.user_id).collect::<Vec<_>>(),
        [dee.id]
    );
}

/// Role changes accept built-in roles and the organization's own custom
/// roles only, and only for its members.
pub async fn member_role_changes_stay_in_their_org(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let eve = user(&s, "eve@example.com").await;
    let o = org(&s, "Acme", ann.id).await;
    let evil = org(&s, "Evil", eve.id).await;
    let t = now();
    s.create_role(o.id, &custom("support", &["members:read"], t))
        .await
        .unwrap();
    s.create_role(evil.id, &custom("superuser", &["org:manage"], t))
        .await
        .unwrap();
    s.add_member(o.id, bob.id, &member(), t).await.unwrap();

    assert_eq!(
        s.change_member_role(o.id, bob.id, &admin()).await.unwrap(),
        MemberChange::Done { previous: member() }
    );
    assert_eq!(
        s.change_member_role(o.id, bob.id, &role("support"))
            .await
            .unwrap(),
        MemberChange::Done { previous: admin() }
    );
    let m = s.get_membership(o.id, bob.id).await.unwrap().unwrap();
    assert_eq!(m.role_permissions, Some(perms(&["members:read"])));

    // A role defined only in another organization is unknown here.
    assert_eq!(
        s.change_member_role(o.id, bob.id, &role("superuser"))
            .await
            .unwrap(),
        MemberChange::UnknownRole
    );
    assert_eq!(
        s.change_member_role(o.id, bob.id, &role("no-such-role"))
            .await
            .unwrap(),
        MemberChange::UnknownRole
    );
    assert_eq!(
        s.get_membership(o.id, bob.id).await.unwrap().unwrap().role,
        role("support")
    );

    // Members of another organization, and strangers, are not members here.
    for stranger in [eve.id, UserId::new()] {
        assert_eq!(
            s.change_member_role(o.id, stranger, &member())
                .await
                .unwrap(),
            MemberChange::NotMember
        );
        assert_eq!(
            s.remove_member(o.id, stranger).await.unwrap(),
            MemberChange::NotMember
        );
    }
    assert_eq!(
        s.change_member_role(evil.id, bob.id, &role("superuser"))
            .await
            .unwrap(),
        MemberChange::NotMember
    );
    assert!(s.get_membership(o.id, eve.id).await.unwrap().is_none());
    assert!(s.get_membership(evil.id, bob.id).await.unwrap().is_none());

    assert_eq!(
        s.remove_member(o.id, bob.id).await.unwrap(),
        MemberChange::Done {
            previous: role("support")
        }
    );
    assert!(s.get_membership(o.id, bob.id).await.unwrap().is_none());
    assert_eq!(
        s.remove_member(o.id, bob.id).await.unwrap(),
        MemberChange::NotMember
    );
}

/// The only owner can be neither demoted nor removed; one of two can.
pub async fn last_owner_cannot_leave(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let cid = user(&s, "cid@example.com").await;
    let o = org(&s, "Acme", ann.id).await;
    let t = now();
    s.create_role(o.id, &custom("support", &["members:read"], t))
        .await
        .unwrap();
    s.add_member(o.id, cid.id, &admin(), t).await.unwrap();
    for to in [admin(), member(), role("support")] {
        assert_eq!(
            s.change_member_role(o.id, ann.id, &to).await.unwrap(),
            MemberChange::LastOwner
        );
    }
    assert_eq!(
        s.remove_member(o.id, ann.id).await.unwrap(),
        MemberChange::LastOwner
    );
    // Keeping the owner role is not a demotion.
    assert_eq!(
        s.change_member_role(o.id, ann.id, &owner()).await.unwrap(),
        MemberChange::Done { previous: owner() }
    );
    assert_eq!(owner_count(&s, o.id).await, 1);
    // Other members come and go.
    assert_eq!(
        s.remove_member(o.id, cid.id).await.unwrap(),
        MemberChange::Done { previous: admin() }
    );

    s.add_member(o.id, bob.id, &owner(), t).await.unwrap();
    assert_eq!(
        s.change_member_role(o.id, ann.id, &admin()).await.unwrap(),
        MemberChange::Done { previous: owner() }
    );
    assert_eq!(
        s.change_member_role(o.id, bob.id, &member()).await.unwrap(),
        MemberChange::LastOwner
    );
    assert_eq!(
        s.remove_member(o.id, bob.id).await.unwrap(),
        MemberChange::LastOwner
    );
    s.change_member_role(o.id, ann.id, &owner()).await.unwrap();
    assert_eq!(
        s.remove_member(o.id, bob.id).await.unwrap(),
        MemberChange::Done { previous: owner() }
    );
    assert_eq!(owner_count(&s, o.id).await, 1);
}

/// Two owners demoting or removing each other at the same time: one wins,
/// the other is refused, and the organization always keeps an owner.
pub async fn concurrent_owner_changes_never_leave_no_owner(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    for round in 0..40 {
        let o = org(&s, &format!("round-{round}"), ann.id).await;
        s.add_member(o.id, bob.id, &owner(), now()).await.unwrap();
        let removal = round % 2 == 1;
        let tasks: Vec<_> = [ann.id, bob.id]
            .into_iter()
            .map(|target| {
                let s = s.clone();
                tokio::spawn(async move {
                    if removal {
                        s.remove_member(o.id, target).await.unwrap()
                    } else {
                        s.change_member_role(o.id, target, &member()).await.unwrap()
                    }
                })
            })
            .collect();
        let mut outcomes: Vec<MemberChange> = futures::future::join_all(tasks)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        outcomes.sort_by_key(|o| matches!(o, MemberChange::LastOwner));
        assert_eq!(
            outcomes,
            [
                MemberChange::Done { previous: owner() },
                MemberChange::LastOwner
            ],
            "round {round}"
        );
        assert_eq!(owner_count(&s, o.id).await, 1, "round {round}");
        let members = s.list_members(o.id, all()).await.unwrap().len();
        assert_eq!(members, if removal { 1 } else { 2 }, "round {round}");
    }
}

/// Removing a member drops the organization from that member's sessions
/// only where it was active.
pub async fn removing_a_member_clears_their_active_org(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let a = org(&s, "A", ann.id).await;
    let b = org(&s, "B", ann.id).await;
    let t = now();
    s.add_member(a.id, bob.id, &member(), t).await.unwrap();
    s.add_member(b.id, bob.id, &member(), t).await.unwrap();
    let bob_in_a = session(&s, bob.id, &random_token("rt_"), t).await;
    let bob_in_b = session(&s, bob.id, &random_token("rt_"), t).await;
    let bob_none = session(&s, bob.id, &random_token("rt_"), t).await;
    let ann_in_a = session(&s, ann.id, &random_token("rt_"), t).await;
    activate(&s, bob_in_a.id, Some(a.id)).await;
    activate(&s, bob_in_b.id, Some(b.id)).await;
    activate(&s, ann_in_a.id, Some(a.id)).await;

    assert_eq!(
        s.remove_member(a.id, bob.id).await.unwrap(),
        MemberChange::Done { previous: member() }
    );
    let cleared = s.get_session(bob_in_a.id).await.unwrap().unwrap();
    assert_eq!(cleared.org_id, None);
    assert!(cleared.revoked_at.is_none(), "the session itself lives on");
    assert_eq!(org_of_session(&s, bob_in_b.id).await, Some(b.id));
    assert_eq!(org_of_session(&s, bob_none.id).await, None);
    assert_eq!(org_of_session(&s, ann_in_a.id).await, Some(a.id));
}

/// Custom roles: unique per organization, listed by name, updated, and
/// deleted only when nobody holds them.
pub async fn custom_roles_lifecycle(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let o = org(&s, "Acme", ann.id).await;
    let other = org(&s, "Other", ann.id).await;
    let t = now();
    // Names that sort differently under byte order and under natural-language collations.
    for name in ["opsview", "ops_admin", "ops-lead", "auditor"] {
        s.create_role(o.id, &custom(name, &["audit:read"], t))
            .await
            .unwrap();
    }
    assert!(matches!(
        s.create_role(o.id, &custom("auditor", &["org:read"], t))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    // The same name in another organization is another role.
    s.create_role(other.id, &custom("auditor", &["org:read"], t))
        .await
        .unwrap();

    let names = |roles: Vec<Role>| {
        roles
            .into_iter()
            .map(|r| r.name.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(s.list_roles(o.id).await.unwrap()),
        ["auditor", "ops-lead", "ops_admin", "opsview"]
    );
    assert_eq!(names(s.list_roles(other.id).await.unwrap()), ["auditor"]);
    assert_eq!(
        s.get_role(o.id, &role("auditor")).await.unwrap(),
        Some(custom("auditor", &["audit:read"], t))
    );
    assert_eq!(
        s.get_role(other.id, &role("auditor"))
            .await
            .unwrap()
            .unwrap()
            .permissions,
        perms(&["org:read"])
    );
    assert!(s
        .get_role(other.id, &role("opsview"))
        .await
        .unwrap()
        .is_none());

    let later = t + Duration::seconds(5);
    let updated = s
        .update_role(
            o.id,
            &role("auditor"),
            &perms(&["audit:read", "members:read"]),
            later,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        updated,
        Role {
            name: role("auditor"),
            permissions: perms(&["audit:read", "members:read"]),
            created_at: t,
            updated_at: later,
        }
    );
    assert_eq!(
        s.get_role(o.id, &role("auditor")).await.unwrap(),
        Some(updated)
    );
    assert_eq!(
        s.get_role(other.id, &role("auditor"))
            .await
            .unwrap()
            .unwrap()
            .permissions,
        perms(&["org:read"]),
        "another organization's role of the same name is untouched"
    );
    assert!(s
        .update_role(o.id, &role("nope"), &perms(&[]), later)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .update_role(other.id, &role("opsview"), &perms(&[]), later)
        .await
        .unwrap()
        .is_none());

    // Held by a member.
    s.add_member(o.id, bob.id, &role("auditor"), t)
        .await
        .unwrap();
    assert_eq!(
        s.delete_role(o.id, &role("auditor")).await.unwrap(),
        RoleDeletion::InUse
    );
    s.change_member_role(o.id, bob.id, &member()).await.unwrap();
    // Held by a pending invitation.
    let inv = s
        .create_invitation(&invitation(
            o.id,
            "cid@example.com",
            role("auditor"),
            &random_token("inv_"),
            ann.id,
            t,
        ))
        .await
        .unwrap();
    assert_eq!(
        s.delete_role(o.id, &role("auditor")).await.unwrap(),
        RoleDeletion::InUse
    );
    assert!(s.revoke_invitation(o.id, inv.id, t).await.unwrap());
    // A member holding the same name in another organization does not count.
    s.add_member(other.id, bob.id, &role("auditor"), t)
        .await
        .unwrap();
    assert_eq!(
        s.delete_role(o.id, &role("auditor")).await.unwrap(),
        RoleDeletion::Deleted
    );
    assert!(s.get_role(o.id, &role("auditor")).await.unwrap().is_none());
    assert_eq!(
        s.delete_role(o.id, &role("auditor")).await.unwrap(),
        RoleDeletion::NotFound
    );
    assert_eq!(
        s.delete_role(o.id, &role("never-was")).await.unwrap(),
        RoleDeletion::NotFound
    );
    assert_eq!(
        names(s.list_roles(o.id).await.unwrap()),
        ["ops-lead", "ops_admin", "opsview"]
    );
    assert!(s
        .get_role(other.id, &role("auditor"))
        .await
        .unwrap()
        .is_some());
}

/// Deleting an organization takes its memberships, roles, invitations and
/// keys with it, and sessions that had it active lose it.
pub async fn deleting_an_org_cascades(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let doomed = org(&s, "Doomed", ann.id).await;
    let kept = org(&s, "Kept", ann.id).await;
    let t = now();
    s.create_role(doomed.id, &custom("support", &["members:read"], t))
        .await
        .unwrap();
    s.create_role(kept.id, &custom("support", &["members:read"], t))
        .await
        .unwrap();
    s.add_member(doomed.id, bob.id, &role("support"), t)
        .await
        .unwrap();
    let inv_token = random_token("inv_");
    s.create_invitation(&invitation(
        doomed.id,
        "cid@example.com",
        member(),
        &inv_token,
        ann.id,
        t,
    ))
    .await
    .unwrap();
    let kept_token = random_token("inv_");
    s.create_invitation(&invitation(
        kept.id,
        "cid@example.com",
        member(),
        &kept_token,
        ann.id,
        t,
    ))
    .await
    .unwrap();
    let org_key = s
        .create_api_key(&api_key(
            ann.id,
            Some(doomed.id),
            &random_token("isk_"),
            t,
            None,
        ))
        .await
        .unwrap();
    let kept_key = s
        .create_api_key(&api_key(
            ann.id,
            Some(kept.id),
            &random_token("isk_"),
            t,
            None,
        ))
        .await
        .unwrap();
    let personal = s
        .create_api_key(&api_key(ann.id, None, &random_token("isk_"), t, None))
        .await
        .unwrap();
    let in_doomed = session(&s, ann.id, &random_token("rt_"), t).await;
    let bob_in_doomed = session(&s, bob.id, &random_token("rt_"), t).await;
    let in_kept = session(&s, ann.id, &random_token("rt_"), t).await;
    activate(&s, in_doomed.id, Some(doomed.id)).await;
    activate(&s, bob_in_doomed.id, Some(doomed.id)).await;
    activate(&s, in_kept.id, Some(kept.id)).await;

    assert!(s.delete_org(doomed.id).await.unwrap());

    assert!(s.get_org(doomed.id).await.unwrap().is_none());
    assert!(s.get_membership(doomed.id, ann.id).await.unwrap().is_none());
    assert!(s.get_membership(doomed.id, bob.id).await.unwrap().is_none());
    assert!(s.list_members(doomed.id, all()).await.unwrap().is_empty());
    assert!(s.list_user_orgs(bob.id, all()).await.unwrap().is_empty());
    assert!(s.list_roles(doomed.id).await.unwrap().is_empty());
    assert!(s
        .find_invitation(&TokenHash::of(&inv_token))
        .await
        .unwrap()
        .is_none());
    assert!(s
        .list_invitations(doomed.id, all())
        .await
        .unwrap()
        .is_empty());
    assert!(s.get_api_key(org_key.id).await.unwrap().is_none());
    assert!(s
        .list_api_keys(ApiKeyOwner::Org(doomed.id), all())
        .await
        .unwrap()
        .is_empty());
    let in_doomed = s.get_session(in_doomed.id).await.unwrap().unwrap();
    assert_eq!(in_doomed.org_id, None);
    assert!(in_doomed.revoked_at.is_none());
    assert_eq!(org_of_session(&s, bob_in_doomed.id).await, None);

    // Everything else is untouched.
    assert_eq!(org_of_session(&s, in_kept.id).await, Some(kept.id));
    assert!(s.get_user(bob.id).await.unwrap().is_some());
    assert_eq!(
        s.list_user_orgs(ann.id, all())
            .await
            .unwrap()
            .iter()
            .map(|m| m.org.id)
            .collect::<Vec<_>>(),
        [kept.id]
    );
    assert_eq!(s.list_roles(kept.id).await.unwrap().len(), 1);
    let kept_inv = s
        .find_invitation(&TokenHash::of(&kept_token))
        .await
        .unwrap()
        .unwrap();
    assert!(kept_inv.is_pending(t));
    assert_eq!(s.get_api_key(kept_key.id).await.unwrap(), Some(kept_key));
    assert_eq!(s.get_api_key(personal.id).await.unwrap(), Some(personal));
}

/// A new invitation replaces the pending one for the same address; lists show
/// the unanswered ones; revoking is scoped by organization.
pub async fn invitations_replace_list_and_revoke(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let o = org(&s, "Acme", ann.id).await;
    let other = org(&s, "Other", ann.id).await;
    let t = now();
    let first_token = random_token("inv_");
    let first = invitation(o.id, "cid@example.com", member(), &first_token, ann.id, t);
    let created = s.create_invitation(&first).await.unwrap();
    assert_eq!(
        created,
        Invitation {
            id: first.id,
            org_id: o.id,
            email: email("cid@example.com"),
            role: member(),
            invited_by: Some(ann.id),
            created_at: t,
            expires_at: t + Duration::days(7),
            accepted_at: None,
            revoked_at: None,
        }
    );
    assert_eq!(
        s.find_invitation(&TokenHash::of(&first_token))
            .await
            .unwrap(),
        Some(created)
    );
    assert!(s
        .find_invitation(&TokenHash::of("unknown"))
        .await
        .unwrap()
        .is_none());
    // The same address invited elsewhere is a separate invitation.
    let elsewhere_token = random_token("inv_");
    s.create_invitation(&invitation(
        other.id,
        "cid@example.com",
        member(),
        &elsewhere_token,
        ann.id,
        t,
    ))
    .await
    .unwrap();

    let t2 = t + Duration::seconds(1);
    let second_token = random_token("inv_");
    let second = s
        .create_invitation(&invitation(
            o.id,
            "cid@example.com",
            admin(),
            &second_token,
            ann.id,
            t2,
        ))
        .await
        .unwrap();
    let replaced = s
        .find_invitation(&TokenHash::of(&first_token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replaced.revoked_at, Some(t2));
    assert!(s
        .accept_invitation(
            &TokenHash::of(&first_token),
            &email("cid@example.com"),
            &InvitationAcceptor::New(new_account("cid@example.com", t2)),
            t2,
        )
        .await
        .unwrap()
        .is_none());
    assert!(s
        .find_invitation(&TokenHash::of(&elsewhere_token))
        .await
        .unwrap()
        .unwrap()
        .is_pending(t2));

    // An expired invitation is still listed; accepted and revoked ones are not.
    let expired = s
        .create_invitation(&NewInvitation {
            expires_at: t - Duration::seconds(1),
            created_at: t - Duration::days(8),
            ..invitation(
                o.id,
                "dee@example.com",
                member(),
                &random_token("inv_"),
                ann.id,
                t,
            )
        })
        .await
        .unwrap();
    let accepted_token = random_token("inv_");
    s.create_invitation(&invitation(
        o.id,
        "eve@example.com",
        member(),
        &accepted_token,
        ann.id,
        t,
    ))
    .await
    .unwrap();
    s.accept_invitation(
        &TokenHash::of(&accepted_token),
        &email("eve@example.com"),
        &InvitationAcceptor::New(new_account("eve@example.com", t2)),
        t2,
    )
    .await
    .unwrap()
    .unwrap();
    let fay = s
        .create_invitation(&invitation(
            o.id,
            "fay@example.com",
            member(),
            &random_token("inv_"),
            ann.id,
            t2,
        ))
        .await
        .unwrap();

    let mut pending = vec![second.id, expired.id, fay.id];
    pending.sort();
    let ids = |v: Vec<Invitation>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_invitations(o.id, all()).await.unwrap()), pending);
    let page = |after| PageRequest { after, limit: 2 };
    assert_eq!(
        ids(s.list_invitations(o.id, page(None)).await.unwrap()),
        pending[..2]
    );
    assert_eq!(
        ids(s
            .list_invitations(o.id, page(Some(pending[1])))
            .await
            .unwrap()),
        pending[2..]
    );
    assert_eq!(s.list_invitations(other.id, all()).await.unwrap().len(), 1);

    // Revoking names the organization: another one's id revokes nothing.
    assert!(!s.revoke_invitation(other.id, fay.id, t2).await.unwrap());
    assert!(ids(s.list_invitations(o.id, all()).await.unwrap()).contains(&fay.id));
    assert!(s.revoke_invitation(o.id, fay.id, t2).await.unwrap());
    assert!(!s.revoke_invitation(o.id, fay.id, t2).await.unwrap());
    assert!(!s
        .revoke_invitation(o.id, InvitationId::new(), t2)
        .await
        .unwrap());
    pending.retain(|id| *id != fay.id);
    assert_eq!(ids(s.list_invitations(o.id, all()).await.unwrap()), pending);
    // An accepted invitation cannot be revoked.
    let accepted = s
        .find_invitation(&TokenHash::of(&accepted_token))
        .await
        .unwrap()
        .unwrap();
    assert!(!s.revoke_invitation(o.id, accepted.id, t2).await.unwrap());
    assert_eq!(
        s.find_invitation(&TokenHash::of(&accepted_token))
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
}

/// Accepting creates the account and the membership, once, for the invited
/// address, before the invitation expires.
pub async fn accepting_an_invitation(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let o = org(&s, "Acme", ann.id).await;
    let t = now();
    s.create_role(o.id, &custom("billing", &["app:invoices.read"], t))
        .await
        .unwrap();
    let token = random_token("inv_");
    let hash = TokenHash::of(&token);
    let inv = s
        .create_invitation(&invitation(
            o.id,
            "cid@example.com",
            role("billing"),
            &token,
            ann.id,
            t,
        ))
        .await
        .unwrap();
    let account = new_account("cid@example.com", t);

    // Another address cannot use the link.
    let wrong = new_account("mallory@example.com", t);
    assert!(s
        .accept_invitation(
            &hash,
            &email("mallory@example.com"),
            &InvitationAcceptor::New(wrong.clone()),
            t,
        )
        .await
        .unwrap()
        .is_none());
    assert!(s.get_user(wrong.id).await.unwrap().is_none());
    // Nor can an expired link be used ...
    assert!(s
        .accept_invitation(
            &hash,
            &email("cid@example.com"),
            &InvitationAcceptor::New(account.clone()),
            inv.expires_at,
        )
        .await
        .unwrap()
        .is_none());
    assert!(s.get_user(account.id).await.unwrap().is_none());
    // ... or an unknown one.
    assert!(s
        .accept_invitation(
            &TokenHash::of("unknown"),
            &email("cid@example.com"),
            &InvitationAcceptor::New(account.clone()),
            t,
        )
        .await
        .unwrap()
        .is_none());

    let at = t + Duration::minutes(1);
    let (accepted, uid) = s
        .accept_invitation(
            &hash,
            &email("cid@example.com"),
            &InvitationAcceptor::New(account.clone()),
            at,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(uid, account.id);
    assert_eq!(
        accepted,
        Invitation {
            accepted_at: Some(at),
            ..inv.clone()
        }
    );
    assert_eq!(s.find_invitation(&hash).await.unwrap(), Some(accepted));
    let cid = s.get_user(account.id).await.unwrap().unwrap();
    assert_eq!(cid.email, email("cid@example.com"));
    assert_eq!(cid.name.as_deref(), Some("Invited"));
    assert!(cid.email_verified);
    assert_eq!(cid.password_hash, account.password_hash);
    assert_eq!(
        s.get_membership(o.id, cid.id).await.unwrap(),
        Some(Membership {
            org_id: o.id,
            user_id: cid.id,
            role: role("billing"),
            joined_at: at,
            role_permissions: Some(perms(&["app:invoices.read"])),
            org_require_mfa: false,
        })
    );

    // Twice is once.
    assert!(s
        .accept_invitation(
            &hash,
            &email("cid@example.com"),
            &InvitationAcceptor::Existing(cid.id),
            at,
        )
        .await
        .unwrap()
        .is_none());

    // A revoked invitation is dead.
    let dee = user(&s, "dee@example.com").await;
    let revoked_token = random_token("inv_");
    let revoked = s
        .create_invitation(&invitation(
            o.id,
            "dee@example.com",
            member(),
            &revoked_token,
            ann.id,
            t,
        ))
        .await
        .unwrap();
    s.revoke_invitation(o.id, revoked.id, t).await.unwrap();
    assert!(s
        .accept_invitation(
            &TokenHash::of(&revoked_token),
            &email("dee@example.com"),
            &InvitationAcceptor::Existing(dee.id),
            t,
        )
        .await
        .unwrap()
        .is_none());
    assert!(s.get_membership(o.id, dee.id).await.unwrap().is_none());

    // An existing member keeps the role (and join time) they have.
    let bob = user(&s, "bob@example.com").await;
    let joined = t - Duration::days(1);
    s.add_member(o.id, bob.id, &admin(), joined).await.unwrap();
    let bob_token = random_token("inv_");
    s.create_invitation(&invitation(
        o.id,
        "bob@example.com",
        member(),
        &bob_token,
        ann.id,
        t,
    ))
    .await
    .unwrap();
    let (_, uid) = s
        .accept_invitation(
            &TokenHash::of(&bob_token),
            &email("bob@example.com"),
            &InvitationAcceptor::Existing(bob.id),
            at,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(uid, bob.id);
    let m = s.get_membership(o.id, bob.id).await.unwrap().unwrap();
    assert_eq!((m.role, m.joined_at), (admin(), joined));
}

/// Accepting with a new account for an address that already has one fails as a
/// conflict and leaves the invitation usable (the transaction rolled back).
pub async fn failed_acceptance_leaves_the_invitation_pending(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let erin = user(&s, "erin@example.com").await;
    let o = org(&s, "Acme", ann.id).await;
    let t = now();
    let token = random_token("inv_");
    let hash = TokenHash::of(&token);
    s.create_invitation(&invitation(
        o.id,
        "erin@example.com",
        admin(),
        &token,
        ann.id,
        t,
    ))
    .await
    .unwrap();
    let duplicate = new_account("erin@example.com", t);
    assert!(matches!(
        s.accept_invitation(
            &hash,
            &email("erin@example.com"),
            &InvitationAcceptor::New(duplicate.clone()),
            t,
        )
        .await,
        Err(StoreError::Conflict { .. })
    ));
    let inv = s.find_invitation(&hash).await.unwrap().unwrap();
    assert_eq!(inv.accepted_at, None);
    assert!(s.get_user(duplicate.id).await.unwrap().is_none());
    assert!(s.get_membership(o.id, erin.id).await.unwrap().is_none());
    assert!(s
        .get_membership(o.id, duplicate.id)
        .await
        .unwrap()
        .is_none());
    assert_eq!(s.list_invitations(o.id, all()).await.unwrap(), [inv]);

    let (_, uid) = s
        .accept_invitation(
            &hash,
            &email("erin@example.com"),
            &InvitationAcceptor::Existing(erin.id),
            t,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(uid, erin.id);
    assert_eq!(
        s.get_membership(o.id, erin.id).await.unwrap().unwrap().role,
        admin()
    );
}

/// 20 concurrent acceptances of one invitation, each with its own new
/// account: exactly one wins and exactly one account exists.
pub async fn concurrent_acceptance_has_one_winner(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let o = org(&s, "Acme", ann.id).await;
    let t = now();
    let token = random_token("inv_");
    s.create_invitation(&invitation(
        o.id,
        "cid@example.com",
        member(),
        &token,
        ann.id,
        t,
    ))
    .await
    .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (s, hash) = (s.clone(), TokenHash::of(&token));
            tokio::spawn(async move {
                let account = new_account("cid@example.com", t);
                s.accept_invitation(
                    &hash,
                    &email("cid@example.com"),
                    &InvitationAcceptor::New(account),
                    t,
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let winners: Vec<UserId> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap().map(|(_, uid)| uid))
        .collect();
    assert_eq!(winners.len(), 1);
    let cid = s
        .find_user_by_email(&email("cid@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cid.id, winners[0]);
    let members = s.list_members(o.id, all()).await.unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| m.user_id)
            .filter(|u| *u != ann.id)
            .collect::<Vec<_>>(),
        [cid.id]
    );
}

/// Switching the active organization adds a refresh token without retiring
/// the others; dead sessions cannot switch.
pub async fn switching_org_keeps_other_refresh_tokens(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let o = org(&s, "Acme", ann.id).await;
    let t = now();
    let old = random_token("rt_");
    let sess = session(&s, ann.id, &old, t).await;
    assert_eq!(sess.org_id, None);

    let switched_token = random_token("rt_");
    let at = t + Duration::seconds(1);
    let new_refresh = refresh(TokenHash::of(&switched_token), at);
    let switched = s
        .switch_session_org(sess.id, Some(o.id), &new_refresh, at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(switched.id, sess.id);
    assert_eq!(switched.org_id, Some(o.id));
    assert_eq!(switched.expires_at, new_refresh.expires_at);
    assert_eq!(s.get_session(sess.id).await.unwrap(), Some(switched));
    assert_eq!(
        s.find_session_by_refresh_token(&TokenHash::of(&switched_token))
            .await
            .unwrap()
            .unwrap()
            .id,
        sess.id
    );

    // Both tokens rotate: the old one was not retired (no grace needed).
    let later = at + Duration::seconds(1);
    for presented in [&switched_token, &old] {
        let next = refresh(TokenHash::of(&random_token("rt_")), later);
        match s
            .rotate_refresh_token(&TokenHash::of(presented), &next, Duration::zero(), later)
            .await
            .unwrap()
        {
            RotateOutcome::Rotated(rotated) => {
                assert_eq!(rotated.id, sess.id);
                assert_eq!(rotated.org_id, Some(o.id));
            }
            other => panic!("expected a rotation, got {other:?}"),
        }
    }

    // Switching back to no organization.
    let back = s
        .switch_session_org(
            sess.id,
            None,
            &refresh(TokenHash::of(&random_token("rt_")), later),
            later,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.org_id, None);

    // Expired and revoked sessions stay as they are.
    let expired_refresh = refresh(TokenHash::of("expired-switch"), t);
    assert!(s
        .switch_session_org(
            sess.id,
            Some(o.id),
            &expired_refresh,
            t + Duration::days(60)
        )
        .await
        .unwrap()
        .is_none());
    s.revoke_sessions(ann.id, SessionSelector::One(sess.id), later)
        .await
        .unwrap();
    let revoked_refresh = refresh(TokenHash::of("revoked-switch"), later);
    assert!(s
        .switch_session_org(sess.id, Some(o.id), &revoked_refresh, later)
        .await
        .unwrap()
        .is_none());
    for leftover in ["expired-switch", "revoked-switch"] {
        assert!(s
            .find_session_by_refresh_token(&TokenHash::of(leftover))
            .await
            .unwrap()
            .is_none());
    }
    assert_eq!(org_of_session(&s, sess.id).await, None);
    assert!(s
        .switch_session_org(SessionId::new(), None, &refresh(TokenHash::of("x"), t), t)
        .await
        .unwrap()
        .is_none());
}

/// API keys: found by hash or id, listed per owner (personal keys apart from
/// organization keys), revoked once, touched, and expiring.
pub async fn api_keys_lifecycle(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let a = org(&s, "A", ann.id).await;
    let b = org(&s, "B", ann.id).await;
    let t = now();
    let token = random_token("isk_");
    let new = api_key(ann.id, None, &token, t, None);
    let personal = s.create_api_key(&new).await.unwrap();
    assert_eq!(
        personal,
        ApiKey {
            id: new.id,
            user_id: ann.id,
            org_id: None,
            name: new.name.clone(),
            prefix: new.prefix.clone(),
            scopes: vec!["org:read".into(), "app:invoices.read".into()],
            created_at: t,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        }
    );
    assert_eq!(
        s.find_api_key(&TokenHash::of(&token)).await.unwrap(),
        Some(personal.clone())
    );
    assert_eq!(
        s.get_api_key(personal.id).await.unwrap(),
        Some(personal.clone())
    );
    assert!(s
        .find_api_key(&TokenHash::of("unknown"))
        .await
        .unwrap()
        .is_none());
    assert!(s.get_api_key(ApiKeyId::new()).await.unwrap().is_none());

    let create = |user, org, expires| {
        let s = s.clone();
        async move {
            s.create_api_key(&api_key(user, org, &random_token("isk_"), t, expires))
                .await
                .unwrap()
        }
    };
    let expiring = create(ann.id, None, Some(t + Duration::hours(1))).await;
    let ann_in_a = create(ann.id, Some(a.id), None).await;
    let ann_in_b = create(ann.id, Some(b.id), None).await;
    let bobs = create(bob.id, None, None).await;
    let bob_in_a = create(bob.id, Some(a.id), None).await;

    let ids = |v: Vec<ApiKey>| v.into_iter().map(|k| k.id).collect::<Vec<_>>();
    let sorted = |mut v: Vec<ApiKeyId>| {
        v.sort();
        v
    };
    assert_eq!(
        ids(s
            .list_api_keys(ApiKeyOwner::User(ann.id), all())
            .await
            .unwrap()),
        sorted(vec![personal.id, expiring.id])
    );
    assert_eq!(
        ids(s
            .list_api_keys(ApiKeyOwner::User(bob.id), all())
            .await
            .unwrap()),
        [bobs.id]
    );
    let in_a = sorted(vec![ann_in_a.id, bob_in_a.id]);
    assert_eq!(
        ids(s
            .list_api_keys(ApiKeyOwner::Org(a.id), all())
            .await
            .unwrap()),
        in_a
    );
    let one = |after| PageRequest { after, limit: 1 };
    assert_eq!(
        ids(s
            .list_api_keys(ApiKeyOwner::Org(a.id), one(None))
            .await
            .unwrap()),
        in_a[..1]
    );
    assert_eq!(
        ids(s
            .list_api_keys(ApiKeyOwner::Org(a.id), one(Some(in_a[0])))
            .await
            .unwrap()),
        in_a[1..]
    );
    assert_eq!(
        ids(s
            .list_api_keys(ApiKeyOwner::Org(b.id), all())
            .await
            .unwrap()),
        [ann_in_b.id]
    );

    // Revoked once, then no longer listed, but still found.
    let later = t + Duration::minutes(1);
    assert!(s.revoke_api_key(personal.id, later).await.unwrap());
    assert!(!s.revoke_api_key(personal.id, later).await.unwrap());
    assert!(!s.revoke_api_key(ApiKeyId::new(), later).await.unwrap());
    assert!(s.revoke_api_key(bob_in_a.id, later).await.unwrap());
    assert_eq!(
        ids(s
            .list_api_keys(ApiKeyOwner::User(ann.id), all())
            .await
            .unwrap()),
        [expiring.id]
    );
    assert_eq!(
        ids(s
            .list_api_keys(ApiKeyOwner::Org(a.id), all())
            .await
            .unwrap()),
        [ann_in_a.id]
    );
    let revoked = s
        .find_api_key(&TokenHash::of(&token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(later));
    assert!(!revoked.is_active(t));

    // Touching records the use.
    s.touch_api_key(ann_in_a.id, later).await.unwrap();
    let touched = s.get_api_key(ann_in_a.id).await.unwrap().unwrap();
    assert_eq!(touched.last_used_at, Some(later));
    assert_eq!(
        touched,
        ApiKey {
            last_used_at: Some(later),
            ..ann_in_a.clone()
        }
    );

    // Expiry.
    let expiring = s.get_api_key(expiring.id).await.unwrap().unwrap();
    assert_eq!(expiring.expires_at, Some(t + Duration::hours(1)));
    assert!(expiring.is_active(t + Duration::minutes(59)));
    assert!(!expiring.is_active(t + Duration::hours(1)));
    assert!(ann_in_a.is_active(t + Duration::days(3650)));
}

/// Revoking the invitations to an address (it left its account) revokes the
/// pending ones in every organization and leaves others alone.
pub async fn invitations_to_an_address_are_revoked_everywhere(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let acme = org(&s, "Acme", ann.id).await;
    let other = org(&s, "Other", ann.id).await;
    let t = now();
    for (o, to, token) in [
        (acme.id, "old@example.com", "inv_a"),
        (other.id, "old@example.com", "inv_b"),
        (acme.id, "keep@example.com", "inv_c"),
    ] {
        s.create_invitation(&invitation(o, to, member(), token, ann.id, t))
            .await
            .unwrap();
    }
    let revoked = s
        .revoke_invitations_to(&email("old@example.com"), t)
        .await
        .unwrap();
    let mut orgs: Vec<_> = revoked.iter().map(|i| i.org_id).collect();
    orgs.sort();
    let mut expected = vec![acme.id, other.id];
    expected.sort();
    assert_eq!(orgs, expected);
    assert!(revoked.iter().all(|i| i.accepted_at.is_none()));
    for token in ["inv_a", "inv_b"] {
        let inv = s
            .find_invitation(&TokenHash::of(token))
            .await
            .unwrap()
            .unwrap();
        assert!(!inv.is_pending(t), "{token}");
    }
    let kept = s
        .find_invitation(&TokenHash::of("inv_c"))
        .await
        .unwrap()
        .unwrap();
    assert!(kept.is_pending(t));
    assert!(s
        .revoke_invitations_to(&email("old@example.com"), t)
        .await
        .unwrap()
        .is_empty());
}

/// Every key a user created: personal and organizations'.
pub async fn api_keys_are_listed_by_creator(s: S) {
    let ann = user(&s, "ann@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let acme = org(&s, "Acme", ann.id).await;
    let t = now();
    let personal = s
        .create_api_key(&api_key(ann.id, None, &random_token("isk_"), t, None))
        .await
        .unwrap();
    let of_org = s
        .create_api_key(&api_key(
            ann.id,
            Some(acme.id),
            &random_token("isk_"),
            t,
            None,
        ))
        .await
        .unwrap();
    s.create_api_key(&api_key(bob.id, None, &random_token("isk_"), t, None))
        .await
        .unwrap();
    let mut ids: Vec<_> = s
        .list_api_keys(ApiKeyOwner::Creator(ann.id), all())
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    ids.sort();
    let mut expected = vec![personal.id, of_org.id];
    expected.sort();
    assert_eq!(ids, expected);
}
