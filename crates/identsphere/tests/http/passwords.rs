//! The password policy on every path that sets a password, and imported
//! legacy hashes: they log in, and are replaced by Argon2id on the way.
use crate::support::{both_stores, problem, Backend, TestApp, PASSWORD};
use identsphere::core::{
    import::import_users,
    password::{CharClass, HashParams, PasswordHasher},
    Email,
};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};

both_stores! {
    imported_legacy_hashes_log_in_and_become_argon2id,
    weaker_argon2_hashes_are_rehashed_at_login,
    common_passwords_are_refused_wherever_a_password_is_set,
    character_classes_and_lengths_when_configured,
}

/// The plaintext of the vectors below.
const LEGACY_PASSWORD: &str = "Tr0ub4dor&3 legacy";

/// Made by independent implementations (see identsphere-core's
/// `password/legacy.rs` tests for the generators): python bcrypt 5.0.0,
/// PyNaCl 1.6.2 (libsodium), passlib 1.7.4, and hashlib formatted as PHC.
const LEGACY: &[(&str, &str)] = &[
    (
        "bcrypt@example.com",
        "$2b$04$ayYakpr31rlJxT7O3OkvsOLnfVyKP/gNd8xEeqLRCAwD38NPIULvK",
    ),
    (
        "bcrypt-2y@example.com",
        "$2y$04$WYWY998K9WGOf3UyBpdEROetx4hbq3kMOYwQM78poAXsIBpMLuU/i",
    ),
    (
        "scrypt-mcf@example.com",
        "$7$86..../....XoGdreX8TkvTww.YFOmT1pWOIK3uBph31rqp82Y4HuB$2bQ7kXBkMNLADQmwOxGIJWDMJbAQher.r7noD7hENE1",
    ),
    (
        "scrypt-phc@example.com",
        "$scrypt$ln=4,r=8,p=1$XevdG4MQwvgfo7T2PsdY6w$2tzdJCmf4r8pc4/EcaMImc/f/AlUi0nfuIdt2hoU89U",
    ),
    (
        "django@example.com",
        "pbkdf2_sha256$1000$q7QmVOm3C7lH$IiVN/qy6mFVRlwKlKObaBwz7c3aM5ENXA6r6+g30WPI=",
    ),
    (
        "pbkdf2-phc@example.com",
        "$pbkdf2-sha256$i=1200,l=32$77qqO9dkIuvAUs6jNKLt7g$52yYqSmz5MaWeZ1gxq3qVe7MK3hWjh2pbgg59dbrZNQ",
    ),
];

async fn stored_hash(app: &TestApp, email: &str) -> String {
    app.service
        .state()
        .identity()
        .store()
        .find_user_by_email(&Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap()
}

async fn import(app: &TestApp, lines: &str) {
    let identity = app.service.state().identity();
    let summary = import_users(
        identity.store().as_ref(),
        identity.clock().as_ref(),
        lines.as_bytes(),
    )
    .await
    .unwrap();
    assert!(summary.invalid.is_empty(), "{:?}", summary.invalid);
}

fn current_argon2id_prefix() -> String {
    let p = HashParams::default();
    format!(
        "$argon2id$v=19$m={},t={},p={}$",
        p.m_cost, p.t_cost, p.p_cost
    )
}

async fn imported_legacy_hashes_log_in_and_become_argon2id(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let lines: String = LEGACY
        .iter()
        .map(|(email, hash)| {
            json!({ "email": email, "password_hash": hash, "email_verified": true }).to_string()
                + "\n"
        })
        .collect();
    import(&app, &lines).await;
    for (email, hash) in LEGACY {
        // A wrong password is refused and leaves the legacy hash alone.
        let r = app.login(email, "Tr0ub4dor&3 legacY").await;
        problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        assert_eq!(stored_hash(&app, email).await, *hash);

        let r = app.login(email, LEGACY_PASSWORD).await;
        assert_eq!(r.status(), StatusCode::OK, "{email}");
        let body: Value = r.json().await.unwrap();
        assert!(body["access_token"].is_string());
        let upgraded = stored_hash(&app, email).await;
        assert!(
            upgraded.starts_with(&current_argon2id_prefix()),
            "{email}: {upgraded}"
        );

        // The old password still works, now against the Argon2id hash, which stays.
        assert_eq!(
            app.login(email, LEGACY_PASSWORD).await.status(),
            StatusCode::OK
        );
        assert_eq!(stored_hash(&app, email).await, upgraded);
        let r = app.login(email, "not the password").await;
        problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
}

async fn weaker_argon2_hashes_are_rehashed_at_login(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let weak = PasswordHasher::new(
        HashParams {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
        },
        1,
    )
    .unwrap()
    .hash(&SecretString::from(LEGACY_PASSWORD))
    .await
    .unwrap();
    let line =
        json!({ "email": "weak@example.com", "password_hash": weak, "email_verified": true });
    import(&app, &line.to_string()).await;
    assert_eq!(
        app.login("weak@example.com", LEGACY_PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    let now = stored_hash(&app, "weak@example.com").await;
    assert_ne!(now, weak);
    assert!(now.starts_with(&current_argon2id_prefix()), "{now}");
}

fn assert_common(body: &Value, field: &str) {
    let errors = body["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e["field"] == field
            && e["message"]
                .as_str()
                .unwrap()
                .contains("is one of the most common passwords")),
        "{body}"
    );
}

async fn common_passwords_are_refused_wherever_a_password_is_set(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    // Sign-up, in any case and with stray spaces.
    for common in ["qwertyuiop", " QwertyUiop ", "password123"] {
        let r = app
            .post(
                "/v1/auth/signup",
                json!({ "email": "new@example.com", "password": common }),
            )
            .await;
        let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_common(&body, "password");
    }

    // Change.
    let login = app.user("ann@example.com").await;
    let access = login["access_token"].as_str().unwrap();
    let r = app
        .post_bearer(
            "/v1/auth/password/change",
            access,
            json!({ "current_password": PASSWORD, "new_password": "1q2w3e4r5t" }),
        )
        .await;
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_common(&body, "new_password");

    // Reset.
    app.post(
        "/v1/auth/password/forgot",
        json!({ "email": "ann@example.com" }),
    )
    .await;
    let token = app.mail.nth_to("ann@example.com", 1).await.token().unwrap();
    let r = app
        .post(
            "/v1/auth/password/reset",
            json!({ "token": token, "new_password": "iloveyou12" }),
        )
        .await;
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_common(&body, "new_password");
    // The link was not burnt by the refusal.
    let r = app
        .post(
            "/v1/auth/password/reset",
            json!({ "token": token, "new_password": "a fresh uncommon passphrase" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // Invitation accept, creating the account.
    let owner = app.user("owner@example.com").await;
    let owner = owner["access_token"].as_str().unwrap();
    let org = app.org(owner, "Acme").await;
    let invite = app
        .invite(owner, &org, "invitee@example.com", "member")
        .await;
    let r = app
        .post(
            "/v1/auth/invitations/accept",
            json!({ "token": invite, "password": "football12" }),
        )
        .await;
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_common(&body, "password");
}

async fn character_classes_and_lengths_when_configured(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| {
        c.password_policy.required_classes = CharClass::ALL.to_vec();
        c.password_policy.min_chars = 16;
    })
    .await
    else {
        return;
    };
    let r = app
        .post(
            "/v1/auth/signup",
            json!({ "email": "ann@example.com", "password": "only lowercase" }),
        )
        .await;
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let messages: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|e| assert_eq!(e["field"], "password"))
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "must be at least 16 characters",
            "must contain an uppercase letter",
            "must contain a digit",
            "must contain a symbol (not a letter, digit or space)"
        ]
    );
    let r = app
        .post(
            "/v1/auth/signup",
            json!({ "email": "ann@example.com", "password": "Correct horse 9 staple!" }),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
}
