//! Passkeys over HTTP on both stores, end to end with a software
//! authenticator (`webauthn-authenticator-rs`'s SoftPasskey, through
//! `identsphere_testkit::passkey`): real P-256 keys, real signatures, and a
//! client that builds `clientDataJSON` and checks the origin as a browser does.
use crate::support::{
    body, both_stores, claims, cookie_value, items, problem, token, Backend, TestApp, PASSWORD,
};
use chrono::Duration;
use identsphere::core::{
    audit::AuditAction,
    clock::{Clock, ManualClock},
};
use identsphere_testkit::{
    passkey::SoftAuthenticator,
    totp::{base32_decode, totp_at},
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

both_stores! {
    register_then_sign_in_without_a_username,
    a_passkey_login_is_mfa_strength,
    each_ceremony_finishes_once_and_within_five_minutes,
    assertions_that_do_not_verify_are_refused,
    passkeys_are_listed_renamed_and_deleted_by_their_owner_only,
    front_end_origins_are_configurable,
}

struct Passkeys {
    app: TestApp,
    clock: Arc<ManualClock>,
}

impl Passkeys {
    async fn spawn(b: Backend) -> Option<Self> {
        Self::spawn_with(b, |_| {}).await
    }

    async fn spawn_with(
        b: Backend,
        tweak: impl FnOnce(&mut identsphere::AuthServiceConfig),
    ) -> Option<Self> {
        let crate::mfa::Mfa { app, clock } = crate::mfa::Mfa::spawn_with(b, tweak).await?;
        Some(Self { app, clock })
    }

    /// The origin a browser on the public URL has.
    fn origin(&self) -> String {
        self.app.service.state().identity().config().issuer()
    }

    async fn register_start(&self, token: &str) -> Value {
        body(
            self.app
                .post_bearer("/v1/auth/passkeys/register/start", token, json!({}))
                .await,
            StatusCode::OK,
        )
        .await
    }

    /// Registers a passkey held by `device`; returns the passkey object.
    async fn register(&self, token: &str, device: &mut SoftAuthenticator, name: &str) -> Value {
        let start = self.register_start(token).await;
        let credential = device.register(&start["publicKey"]).unwrap();
        body(
            self.app
                .post_bearer(
                    "/v1/auth/passkeys/register/finish",
                    token,
                    json!({ "ceremony_id": start["ceremony_id"], "credential": credential, "name": name }),
                )
                .await,
            StatusCode::CREATED,
        )
        .await
    }

    async fn login_start(&self) -> Value {
        body(
            self.app
                .post("/v1/auth/passkeys/login/start", json!({}))
                .await,
            StatusCode::OK,
        )
        .await
    }

    async fn login_finish(&self, ceremony: &Value, credential: Value) -> reqwest::Response {
        self.app
            .post(
                "/v1/auth/passkeys/login/finish",
                json!({ "ceremony_id": ceremony, "credential": credential }),
            )
            .await
    }

    /// Steps `token`'s session up with a passkey of `device`; returns the
    /// new access token. Once an account has a passkey, a session signed in
    /// with the password alone needs this before sensitive operations.
    async fn step_up(&self, access: &str, device: &mut SoftAuthenticator) -> String {
        let start = self.login_start().await;
        let assertion = device.login(&start["publicKey"]).unwrap();
        let r = self
            .app
            .post_bearer(
                "/v1/auth/step-up",
                access,
                json!({ "ceremony_id": start["ceremony_id"], "credential": assertion }),
            )
            .await;
        token(&body(r, StatusCode::OK).await)
    }

    /// A complete username-less login with `device`; returns the answer.
    async fn sign_in(&self, device: &mut SoftAuthenticator) -> reqwest::Response {
        let start = self.login_start().await;
        let assertion = device.login(&start["publicKey"]).unwrap();
        self.login_finish(&start["ceremony_id"], assertion).await
    }

    async fn audit(&self, action: AuditAction) -> Vec<identsphere::core::audit::AuditEvent> {
        self.app.audit(Some(action)).await
    }
}

async fn register_then_sign_in_without_a_username(b: Backend) {
    let Some(p) = Passkeys::spawn(b).await else {
        return;
    };
    let login = p.app.user("ann@example.com").await;
    let ann = token(&login);
    let ann_id = login["user"]["id"].as_str().unwrap();

    // The options a browser gets: this site, Ann as an opaque handle, user
    // verification required, a discoverable credential preferred.
    let start = p.register_start(&ann).await;
    let options = &start["publicKey"];
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["user"]["name"], "ann@example.com");
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert_eq!(
        options["authenticatorSelection"]["residentKey"],
        "preferred"
    );
    assert_eq!(options["excludeCredentials"], json!([]));
    assert!(
        options["challenge"].as_str().unwrap().len() >= 22,
        "{options}"
    );
    assert!(start.get("mediation").is_none());

    let mut laptop = SoftAuthenticator::new(&p.origin());
    let credential = laptop.register(options).unwrap();
    let passkey = body(
        p.app
            .post_bearer(
                "/v1/auth/passkeys/register/finish",
                &ann,
                json!({ "ceremony_id": start["ceremony_id"], "credential": credential, "name": "  Laptop " }),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(passkey["name"], "Laptop");
    assert!(passkey["last_used_at"].is_null());
    let listed = p.app.get_json_bearer("/v1/auth/passkeys", &ann).await;
    assert_eq!(items(&listed).len(), 1);
    assert_eq!(items(&listed)[0]["id"], passkey["id"]);
    // Adding another passkey is sensitive: the password session steps up
    // with the passkey it has. A second registration excludes the credential
    // the device holds.
    problem(
        p.app
            .post_bearer("/v1/auth/passkeys/register/start", &ann, json!({}))
            .await,
        StatusCode::FORBIDDEN,
        "step_up_required",
    )
    .await;
    let ann = p.step_up(&ann, &mut laptop).await;
    let again = p.register_start(&ann).await;
    assert_eq!(
        again["publicKey"]["excludeCredentials"][0]["id"],
        json!(laptop.held()[0].id)
    );

    // Username-less login: no email anywhere, nothing listed by the server.
    let start = p.login_start().await;
    assert_eq!(start["publicKey"]["allowCredentials"], json!([]));
    assert_eq!(start["publicKey"]["userVerification"], "required");
    assert!(
        start.get("mediation").is_none(),
        "a modal dialog by default"
    );
    let assertion = laptop.login(&start["publicKey"]).unwrap();
    let r = p.login_finish(&start["ceremony_id"], assertion).await;
    assert!(cookie_value(r.headers(), "identsphere_refresh").is_some());
    let signed_in = body(r, StatusCode::OK).await;
    assert_eq!(signed_in["status"], "ok");
    assert_eq!(signed_in["user"]["id"], ann_id);
    let access = token(&signed_in);
    assert_eq!(claims(&access)["amr"], json!(["hwk", "user", "mfa"]));
    assert_eq!(
        p.app.get_json_bearer("/v1/users/me", &access).await["id"],
        ann_id
    );

    // The authenticator's signature counter moved, and the server kept up:
    // a second login verifies against the stored counter.
    p.clock.advance(Duration::seconds(60));
    body(p.sign_in(&mut laptop).await, StatusCode::OK).await;
    let listed = p.app.get_json_bearer("/v1/auth/passkeys", &ann).await;
    assert!(items(&listed)[0]["last_used_at"].is_string());
    let store = p.app.service.state().identity().store().clone();
    let stored = |s: &str| -> Value { serde_json::from_str(s).unwrap() };
    let cred_id = laptop.held()[0].id.clone();
    let raw_id = {
        use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
        URL_SAFE_NO_PAD.decode(&cred_id).unwrap()
    };
    let record = store
        .find_passkey_by_credential(&raw_id)
        .await
        .unwrap()
        .unwrap();
    let mut credential = stored(&record.credential);
    assert_eq!(
        credential["cred"]["counter"], 3,
        "the counter of the step-up and both logins was stored"
    );

    // A counter that does not move forwards means a cloned authenticator:
    // with the stored counter ahead of the device's, the login is refused.
    credential["cred"]["counter"] = json!(1_000);
    store
        .record_passkey_use(record.id, Some(&credential.to_string()), chrono::Utc::now())
        .await
        .unwrap();
    let r = p.sign_in(&mut laptop).await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    let registered = p.audit(AuditAction::PasskeyRegistered).await;
    assert_eq!(registered.len(), 1);
    assert_eq!(
        registered[0].actor_id.map(|u| u.to_string()).as_deref(),
        Some(ann_id)
    );
    let logins = p.audit(AuditAction::LoginSucceeded).await;
    let with_passkey: Vec<_> = logins
        .iter()
        .filter(|e| e.metadata["passkey_id"] == passkey["id"])
        .collect();
    assert_eq!(with_passkey.len(), 2);

    // Conditional UI (autofill) is asked for with a query parameter.
    let r = p
        .app
        .post(
            "/v1/auth/passkeys/login/start?mediation=conditional",
            json!({}),
        )
        .await;
    assert_eq!(body(r, StatusCode::OK).await["mediation"], "conditional");
    let r = p
        .app
        .post("/v1/auth/passkeys/login/start?mediation=silent", json!({}))
        .await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}

async fn a_passkey_login_is_mfa_strength(b: Backend) {
    let Some(p) = Passkeys::spawn(b).await else {
        return;
    };
    let ann = token(&p.app.user("ann@example.com").await);
    let mut phone = SoftAuthenticator::new(&p.origin());
    p.register(&ann, &mut phone, "Phone").await;
    let ann = p.step_up(&ann, &mut phone).await;
    // Turn TOTP on: a password login now stops at the second factor...
    let enroll = body(
        p.app
            .post_bearer("/v1/auth/mfa/totp/enroll", &ann, json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    let secret = base32_decode(enroll["secret"].as_str().unwrap());
    let code = totp_at(&secret, p.clock.now().timestamp());
    let r = p
        .app
        .post_bearer("/v1/auth/mfa/totp/confirm", &ann, json!({ "code": code }))
        .await;
    body(r, StatusCode::OK).await;
    let password = body(
        p.app.login("ann@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(password["status"], "mfa_required");
    // ...while a passkey login is complete on its own, and counts as a
    // recent authentication for sensitive operations.
    let signed_in = body(p.sign_in(&mut phone).await, StatusCode::OK).await;
    assert_eq!(signed_in["status"], "ok");
    let access = token(&signed_in);
    assert!(claims(&access)["amr"]
        .as_array()
        .unwrap()
        .contains(&json!("mfa")));
    let r = p
        .app
        .post_bearer("/v1/auth/passkeys/register/start", &access, json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn each_ceremony_finishes_once_and_within_five_minutes(b: Backend) {
    let Some(p) = Passkeys::spawn(b).await else {
        return;
    };
    let ann = token(&p.app.user("ann@example.com").await);
    let mut key = SoftAuthenticator::new(&p.origin());
    p.register(&ann, &mut key, "Key").await;

    // Ten racing finishes of one signed assertion: one session, nine refusals.
    let start = p.login_start().await;
    let assertion = key.login(&start["publicKey"]).unwrap();
    let finishes = (0..10).map(|_| p.login_finish(&start["ceremony_id"], assertion.clone()));
    let statuses: Vec<StatusCode> = futures::future::join_all(finishes)
        .await
        .iter()
        .map(reqwest::Response::status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count(),
        9,
        "{statuses:?}"
    );

    // A login started more than five minutes ago cannot finish.
    let start = p.login_start().await;
    let assertion = key.login(&start["publicKey"]).unwrap();
    p.clock.advance(Duration::seconds(301));
    let r = p.login_finish(&start["ceremony_id"], assertion).await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // Registrations likewise, and one user cannot finish another's.
    let ann = token(
        &body(
            p.app.login("ann@example.com", PASSWORD).await,
            StatusCode::OK,
        )
        .await,
    );
    let ann = p.step_up(&ann, &mut key).await;
    let bob = token(&p.app.user("bob@example.com").await);
    let start = p.register_start(&ann).await;
    let mut other = SoftAuthenticator::new(&p.origin());
    let credential = other.register(&start["publicKey"]).unwrap();
    let finish = json!({ "ceremony_id": start["ceremony_id"], "credential": credential });
    let r = p
        .app
        .post_bearer("/v1/auth/passkeys/register/finish", &bob, finish.clone())
        .await;
    let refused = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(crate::support::field_errors(&refused), ["ceremony_id"]);
    // Bob's attempt used the ceremony up: Ann starts again.
    let r = p
        .app
        .post_bearer("/v1/auth/passkeys/register/finish", &ann, finish)
        .await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let start = p.register_start(&ann).await;
    let credential = other.register(&start["publicKey"]).unwrap();
    p.clock.advance(Duration::seconds(301));
    let r = p
        .app
        .post_bearer(
            "/v1/auth/passkeys/register/finish",
            &ann,
            json!({ "ceremony_id": start["ceremony_id"], "credential": credential }),
        )
        .await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let listed = p.app.get_json_bearer("/v1/auth/passkeys", &ann).await;
    assert_eq!(items(&listed).len(), 1, "only the first key was added");
}

async fn assertions_that_do_not_verify_are_refused(b: Backend) {
    let Some(p) = Passkeys::spawn(b).await else {
        return;
    };
    let ann = token(&p.app.user("ann@example.com").await);
    let bob_login = p.app.user("bob@example.com").await;
    let bob = token(&bob_login);
    let mut anns = SoftAuthenticator::new(&p.origin());
    p.register(&ann, &mut anns, "Ann's").await;
    let ann = p.step_up(&ann, &mut anns).await;
    let mut bobs = SoftAuthenticator::new(&p.origin());
    p.register(&bob, &mut bobs, "Bob's").await;
    // Bob's passkey answers a ceremony, but it does not step up Ann's session.
    let start = p.login_start().await;
    let bobs_answer = bobs.login(&start["publicKey"]).unwrap();
    let r = p
        .app
        .post_bearer(
            "/v1/auth/step-up",
            &ann,
            json!({ "ceremony_id": start["ceremony_id"], "credential": bobs_answer }),
        )
        .await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let ann_key = anns.held()[0].clone();
    let bob_handle = bobs.held()[0].user_handle.clone();

    let refused =
        |r: reqwest::Response| problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials");

    // Ann's credential claiming to be Bob's.
    let start = p.login_start().await;
    let forged = anns
        .login_with(&start["publicKey"], &ann_key.id, Some(&bob_handle))
        .unwrap();
    refused(p.login_finish(&start["ceremony_id"], forged).await).await;
    // No user handle at all.
    let start = p.login_start().await;
    let anonymous = anns
        .login_with(&start["publicKey"], &ann_key.id, None)
        .unwrap();
    refused(p.login_finish(&start["ceremony_id"], anonymous).await).await;
    // A signature that does not match.
    let start = p.login_start().await;
    let mut tampered = anns.login(&start["publicKey"]).unwrap();
    let sig = tampered["response"]["signature"].as_str().unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    tampered["response"]["signature"] = json!(format!("{flipped}{}", &sig[1..]));
    refused(p.login_finish(&start["ceremony_id"], tampered).await).await;
    // A page on another origin (the RP id matches, the port does not): the
    // browser signs, the server refuses.
    let start = p.login_start().await;
    let phished = anns
        .at_origin("http://localhost:1")
        .login(&start["publicKey"])
        .unwrap();
    anns.at_origin(&p.origin());
    refused(p.login_finish(&start["ceremony_id"], phished).await).await;
    // Not a credential; not a ceremony id.
    let start = p.login_start().await;
    refused(
        p.login_finish(&start["ceremony_id"], json!({ "id": "x" }))
            .await,
    )
    .await;
    let assertion = anns.login(&p.login_start().await["publicKey"]).unwrap();
    refused(p.login_finish(&json!("not-a-ceremony"), assertion).await).await;
    // A malformed registration answer is a field error, not a 5xx.
    let start = p.register_start(&ann).await;
    let r = p
        .app
        .post_bearer(
            "/v1/auth/passkeys/register/finish",
            &ann,
            json!({ "ceremony_id": start["ceremony_id"], "credential": { "id": 1 } }),
        )
        .await;
    let bad = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(crate::support::field_errors(&bad), ["credential"]);

    // A deleted passkey no longer signs in.
    let id = items(&p.app.get_json_bearer("/v1/auth/passkeys", &ann).await)[0]["id"].clone();
    let r = p
        .app
        .delete_bearer(&format!("/v1/auth/passkeys/{}", id.as_str().unwrap()), &ann)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    refused(p.sign_in(&mut anns).await).await;
    // Bob's still does.
    body(p.sign_in(&mut bobs).await, StatusCode::OK).await;

    // Refusals are audited, with the passkey when one was named; nothing
    // from the assertion is recorded.
    let failed = p.audit(AuditAction::LoginFailed).await;
    assert_eq!(failed.len(), 6, "{failed:?}");
    assert!(failed.iter().all(|e| e
        .metadata
        .as_object()
        .unwrap()
        .keys()
        .all(|k| k == "passkey_id")));
}

async fn passkeys_are_listed_renamed_and_deleted_by_their_owner_only(b: Backend) {
    let Some(p) = Passkeys::spawn(b).await else {
        return;
    };
    let ann = token(&p.app.user("ann@example.com").await);
    let bob = token(&p.app.user("bob@example.com").await);
    let mut key = SoftAuthenticator::new(&p.origin());
    let passkey = p.register(&ann, &mut key, "Key").await;
    let ann = p.step_up(&ann, &mut key).await;
    let path = format!("/v1/auth/passkeys/{}", passkey["id"].as_str().unwrap());

    let renamed = body(
        p.app
            .patch_bearer(&path, &ann, json!({ "name": "YubiKey 5C" }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(renamed["name"], "YubiKey 5C");
    for bad in ["", "   ", "a\u{7}b", &"x".repeat(65)] {
        let r = p
            .app
            .patch_bearer(&path, &ann, json!({ "name": bad }))
            .await;
        problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    // Bob sees none of it, and Ann's id is unknown to him.
    assert!(items(&p.app.get_json_bearer("/v1/auth/passkeys", &bob).await).is_empty());
    let r = p
        .app
        .patch_bearer(&path, &bob, json!({ "name": "mine" }))
        .await;
    problem(r, StatusCode::NOT_FOUND, "not_found").await;
    problem(
        p.app.delete_bearer(&path, &bob).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let r = p
        .app
        .delete_bearer("/v1/auth/passkeys/not-an-id", &ann)
        .await;
    problem(r, StatusCode::NOT_FOUND, "not_found").await;

    // Adding and removing passkeys need a recent authentication.
    p.clock.advance(Duration::seconds(301));
    let r = p
        .app
        .post_bearer("/v1/auth/passkeys/register/start", &ann, json!({}))
        .await;
    problem(r, StatusCode::FORBIDDEN, "step_up_required").await;
    problem(
        p.app.delete_bearer(&path, &ann).await,
        StatusCode::FORBIDDEN,
        "step_up_required",
    )
    .await;
    // Renaming is not sensitive.
    let r = p
        .app
        .patch_bearer(&path, &ann, json!({ "name": "Old key" }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // The account has a passkey: the password alone does not step up.
    let r = p
        .app
        .post_bearer("/v1/auth/step-up", &ann, json!({ "password": PASSWORD }))
        .await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let ann = p.step_up(&ann, &mut key).await;
    assert_eq!(
        p.app.delete_bearer(&path, &ann).await.status(),
        StatusCode::NO_CONTENT
    );
    problem(
        p.app.delete_bearer(&path, &ann).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert!(items(&p.app.get_json_bearer("/v1/auth/passkeys", &ann).await).is_empty());
    assert_eq!(p.audit(AuditAction::PasskeyDeleted).await.len(), 1);

    // Without a session, nothing but the login is reachable.
    let r = p
        .app
        .post("/v1/auth/passkeys/register/start", json!({}))
        .await;
    problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn front_end_origins_are_configurable(b: Backend) {
    let app_origin = "https://app.localhost:3000";
    let Some(p) = Passkeys::spawn_with(b, |c| {
        c.webauthn_origins = vec![app_origin.parse().unwrap()];
    })
    .await
    else {
        return;
    };
    let ann = token(&p.app.user("ann@example.com").await);
    // The host app's pages run the ceremonies.
    let mut key = SoftAuthenticator::new(app_origin);
    p.register(&ann, &mut key, "Key").await;
    body(p.sign_in(&mut key).await, StatusCode::OK).await;
    // A sibling the operator did not list is refused.
    key.at_origin("https://evil.localhost");
    let r = p.sign_in(&mut key).await;
    problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // A server on an IP address has no passkeys (WebAuthn needs a domain),
    // and says why instead of failing.
    let Some(ip) =
        Passkeys::spawn_with(b, |c| c.public_url = "http://127.0.0.1:9".parse().unwrap()).await
    else {
        return;
    };
    let r = ip
        .app
        .post("/v1/auth/passkeys/login/start", json!({}))
        .await;
    let missing = problem(r, StatusCode::NOT_FOUND, "not_found").await;
    assert!(
        missing["detail"]
            .as_str()
            .unwrap()
            .contains("IDENTSPHERE_WEBAUTHN_RP_ID"),
        "{missing}"
    );
}
