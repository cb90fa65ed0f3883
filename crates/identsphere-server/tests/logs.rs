//! A full account flow against the real binary, with verbose logging: no
//! password, token, link token, secret or email address may reach the log.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use identsphere_testkit::{
    totp::{base32_decode, totp_at},
    SmtpSink,
};
use serde_json::{json, Value};
use std::{
    io::Read,
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SECRET: &str = "log-test-secret-0123456789abcdef0123456789";
const PASSWORD: &str = "first password of ann";
const NEW_PASSWORD: &str = "second password of ann";
const RESET_PASSWORD: &str = "third password of ann";
const EMAIL: &str = "ann.secretive@example.com";
/// An imported user with a bcrypt hash (python bcrypt 5.0.0) of LEGACY_PASSWORD.
const LEGACY_EMAIL: &str = "imported.person@example.com";
const LEGACY_PASSWORD: &str = "Tr0ub4dor&3 legacy";
const MASTER_PASSWORD: &str = "master password of the platform";
const LEGACY_HASH: &str = "$2b$04$ayYakpr31rlJxT7O3OkvsOLnfVyKP/gNd8xEeqLRCAwD38NPIULvK";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mail = SmtpSink::start().await;
    // Import a user with a legacy hash first, logging as verbosely as the server.
    let users = dir.path().join("users.jsonl");
    let line =
        json!({ "email": LEGACY_EMAIL, "email_verified": true, "password_hash": LEGACY_HASH });
    std::fs::write(&users, format!("{line}\n")).unwrap();
    let import = Command::new(env!("CARGO_BIN_EXE_identsphere"))
        .args(["import", "users"])
        .arg(&users)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "trace")
        .env("IDENTSPHERE_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(import.status.success(), "{import:?}");
    let import_log =
        String::from_utf8(import.stdout).unwrap() + &String::from_utf8(import.stderr).unwrap();
    assert!(import_log.contains("imported: 1"), "{import_log}");
    let child = Command::new(env!("CARGO_BIN_EXE_identsphere"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(
            "RUST_LOG",
            "debug,identsphere=trace,identsphere_core=trace,hyper=info,h2=info",
        )
        .env("IDENTSPHERE_LISTEN", format!("127.0.0.1:{port}"))
        .env("IDENTSPHERE_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("IDENTSPHERE_DATA_DIR", dir.path())
        .env("IDENTSPHERE_JWT_SECRET", SECRET)
        .env("IDENTSPHERE_SMTP_URL", mail.url())
        .env("IDENTSPHERE_COOKIES_SECURE", "false")
        .env("IDENTSPHERE_MASTER_USERNAME", "platform")
        .env("IDENTSPHERE_MASTER_PASSWORD", MASTER_PASSWORD)
        // Nothing listens there: limits fall back to this process, which the
        // log must say without showing the Redis password.
        .env(
            "IDENTSPHERE_REDIS_URL",
            "redis://:redis-pass-xyzzy@127.0.0.1:1",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = KillOnDrop(child);
    // Drain the pipes while the server runs: a full pipe buffer would block
    // the server's logging, and with it every request.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = String::new();
            let _ = pipe.read_to_string(&mut out);
            out
        })
    };
    let stdout = drain(Box::new(server.0.stdout.take().unwrap()));
    let stderr = drain(Box::new(server.0.stderr.take().unwrap()));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let start = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut req = http.post(format!("{base}{path}")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let mut secrets: Vec<String> = vec![
        SECRET.into(),
        PASSWORD.into(),
        NEW_PASSWORD.into(),
        RESET_PASSWORD.into(),
        EMAIL.into(),
    ];

    post(
        "/v1/auth/signup",
        None,
        json!({ "email": EMAIL, "password": PASSWORD }),
    )
    .await
    .unwrap();
    let verify = mail.first_to(EMAIL).await.token().unwrap();
    secrets.push(verify.clone());
    assert!(
        // Not the signing-up browser: the password is chosen with the link.
        post(
            "/v1/auth/email/verify",
            None,
            json!({ "token": verify, "password": PASSWORD })
        )
        .await
        .unwrap()
        .status()
        .is_success()
    );
    // A failed login, then a good one.
    post(
        "/v1/auth/login",
        None,
        json!({ "email": EMAIL, "password": "wrong password here" }),
    )
    .await
    .unwrap();
    secrets.push("wrong password here".into());
    let r = post(
        "/v1/auth/login",
        None,
        json!({ "email": EMAIL, "password": PASSWORD }),
    )
    .await
    .unwrap();
    // The imported user: a wrong password, then the right one (which rehashes).
    for password in ["wrong legacy password", LEGACY_PASSWORD] {
        post(
            "/v1/auth/login",
            None,
            json!({ "email": LEGACY_EMAIL, "password": password }),
        )
        .await
        .unwrap();
    }
    secrets.extend([
        LEGACY_EMAIL.into(),
        LEGACY_PASSWORD.into(),
        LEGACY_HASH.into(),
        "wrong legacy password".into(),
    ]);
    let csrf: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let login: Value = r.json().await.unwrap();
    let access = login["access_token"].as_str().unwrap().to_owned();
    secrets.extend([
        access.clone(),
        login["refresh_token"].as_str().unwrap().to_owned(),
    ]);
    secrets.extend(
        csrf.iter()
            .filter(|c| c.starts_with("identsphere_csrf="))
            .map(|c| c[17..].split(';').next().unwrap().to_owned()),
    );
    http.get(format!("{base}/v1/users/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    let refreshed: Value = post(
        "/v1/auth/refresh",
        None,
        json!({ "refresh_token": login["refresh_token"] }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    secrets.extend([
        access.clone(),
        refreshed["refresh_token"].as_str().unwrap().to_owned(),
    ]);
    // Organizations: the invitation token, the invitee's address and
    // password, and the API key stay out of the log.
    let org: Value = post(
        "/v1/organizations",
        Some(&access),
        json!({ "name": "Acme" }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let org = org["id"].as_str().unwrap().to_owned();
    post(
        &format!("/v1/organizations/{org}/invitations"),
        Some(&access),
        json!({ "email": "bob@example.com", "role": "member" }),
    )
    .await
    .unwrap();
    let invitation = mail.first_to("bob@example.com").await.token().unwrap();
    let r = post(
        "/v1/auth/invitations/accept",
        None,
        json!({ "token": invitation, "password": "bobs own passphrase" }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    secrets.extend([
        invitation,
        "bob@example.com".into(),
        "bobs own passphrase".into(),
    ]);
    let key: Value = post(
        "/v1/api-keys",
        Some(&access),
        json!({ "name": "ci", "scopes": ["members:read"], "org_id": org }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    let r = http
        .get(format!("{base}/v1/organizations/{org}/members"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    http.get(format!("{base}/v1/users/me"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    secrets.push(key);
    // MFA: the TOTP secret, recovery codes and MFA token stay out of the
    // log. (Six-digit codes are not searched for: digits occur naturally.)
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let enrollment: Value = post("/v1/auth/mfa/totp/enroll", Some(&access), json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b32 = enrollment["secret"].as_str().unwrap().to_owned();
    let totp_secret = base32_decode(&b32);
    secrets.extend([b32, enrollment["otpauth_uri"].as_str().unwrap().to_owned()]);
    let confirmed: Value = post(
        "/v1/auth/mfa/totp/confirm",
        Some(&access),
        json!({ "code": totp_at(&totp_secret, now()) }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let recovery: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    secrets.extend(recovery.iter().cloned());
    let challenge: Value = post(
        "/v1/auth/login",
        None,
        json!({ "email": EMAIL, "password": PASSWORD }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(challenge["status"], "mfa_required");
    let mfa_token = challenge["mfa_token"].as_str().unwrap().to_owned();
    secrets.push(mfa_token.clone());
    let r = post(
        "/v1/auth/mfa/verify",
        None,
        json!({ "mfa_token": mfa_token, "recovery_code": "wrong-recovery-code" }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    secrets.push("wrong-recovery-code".into());
    let mfa_login: Value = post(
        "/v1/auth/mfa/verify",
        None,
        json!({ "mfa_token": mfa_token, "recovery_code": recovery[0] }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    secrets.extend([
        mfa_login["access_token"].as_str().unwrap().to_owned(),
        mfa_login["refresh_token"].as_str().unwrap().to_owned(),
    ]);
    // An account with a second factor steps up with it (the next time
    // step: the current one was spent confirming the authenticator).
    let step_up_code = totp_at(&totp_secret, now() + 30);
    let stepped: Value = post(
        "/v1/auth/step-up",
        Some(&access),
        json!({ "code": step_up_code }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    secrets.extend([
        stepped["access_token"].as_str().unwrap().to_owned(),
        stepped["refresh_token"].as_str().unwrap().to_owned(),
    ]);
    let regenerated: Value = post(
        "/v1/auth/mfa/recovery-codes",
        Some(&access),
        json!({ "password": PASSWORD }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    secrets.extend(
        regenerated["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned()),
    );
    let r = post(
        "/v1/auth/mfa/disable",
        Some(&access),
        json!({ "password": PASSWORD }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    post(
        "/v1/auth/password/change",
        Some(&access),
        json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }),
    )
    .await
    .unwrap();
    post(
        "/v1/auth/email/change",
        Some(&access),
        json!({ "new_email": "ann.new@example.com", "password": NEW_PASSWORD }),
    )
    .await
    .unwrap();
    secrets.push("ann.new@example.com".into());
    secrets.push(mail.first_to("ann.new@example.com").await.token().unwrap());
    post("/v1/auth/password/forgot", None, json!({ "email": EMAIL }))
        .await
        .unwrap();
    let reset = mail.nth_to(EMAIL, 2).await.token().unwrap();
    secrets.push(reset.clone());
    let r = post(
        "/v1/auth/password/reset",
        None,
        json!({ "token": reset, "new_password": RESET_PASSWORD }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    // The client API: the master password (right and wrong), the client key,
    // a machine user's secret and its token stay out of the log.
    secrets.extend([MASTER_PASSWORD.into(), "wrong master password".into()]);
    for password in ["wrong master password", MASTER_PASSWORD] {
        http.post(format!("{base}/v1/clients"))
            .basic_auth("platform", Some(password))
            .json(&json!({ "name": "fleet" }))
            .send()
            .await
            .unwrap();
    }
    let clients: Value = http
        .get(format!("{base}/v1/clients"))
        .basic_auth("platform", Some(MASTER_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = clients["items"][0]["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotated: Value = http
        .post(format!("{base}/v1/clients/{client_id}/rotate-key"))
        .basic_auth("platform", Some(MASTER_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_key = rotated["api_key"].as_str().unwrap().to_owned();
    let as_client = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .header("x-api-key", &client_key)
            .json(&body)
            .send()
    };
    let machine: Value = as_client("/v1/clients/users", json!({ "identifier": "sensor-7" }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let machine_secret = machine["secret"].as_str().unwrap().to_owned();
    as_client(
        "/v1/tokens",
        json!({ "identifier": "sensor-7", "secret": "iscs_wrong-secret-here" }),
    )
    .await
    .unwrap();
    let issued: Value = as_client(
        "/v1/tokens",
        json!({ "identifier": "sensor-7", "secret": machine_secret }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let machine_token = issued["access_token"].as_str().unwrap().to_owned();
    let introspected: Value = as_client("/v1/tokens/introspect", json!({ "token": machine_token }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["active"], true);
    secrets.extend([
        client_key.clone(),
        machine_secret,
        "iscs_wrong-secret-here".into(),
        machine_token,
    ]);
    // A 4xx with secrets in the body.
    post(
        "/v1/auth/signup",
        None,
        json!({ "email": EMAIL, "password": PASSWORD, "extra": SECRET }),
    )
    .await
    .unwrap();
    // A rate-limit hit (three reset links an hour per address; one was sent).
    for _ in 0..3 {
        post("/v1/auth/password/forgot", None, json!({ "email": EMAIL }))
            .await
            .unwrap();
    }
    let r = post("/v1/auth/password/forgot", None, json!({ "email": EMAIL }))
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    secrets.push("redis-pass-xyzzy".into());
    tokio::time::sleep(Duration::from_millis(300)).await;

    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let log = stdout.join().unwrap() + &stderr.join().unwrap();
    assert!(
        log.contains("login succeeded"),
        "the log is empty or unexpected:\n{log}"
    );
    assert!(
        log.contains("/v1/auth/login"),
        "requests are not logged:\n{log}"
    );
    assert!(
        log.contains("rate limits are kept in this process") && log.contains("rate limit reached"),
        "the Redis fallback and the limit hit are not logged:\n{log}"
    );
    assert!(
        log.contains("password hash upgraded to argon2id"),
        "the legacy hash was not upgraded:\n{log}"
    );
    let log = import_log + &log;
    // No password hash of any scheme, imported or fresh.
    for scheme in ["$2b$", "$argon2", "ayYakpr31"] {
        assert!(!log.contains(scheme), "a {scheme} hash appears in the log");
    }
    for secret in &secrets {
        assert!(!secret.is_empty());
        assert!(
            !log.contains(secret.as_str()),
            "{secret:?} appears in the log:\n{log}"
        );
    }
    // No fragment of a token either (a truncated JWT is still a credential).
    assert!(!log.contains("eyJ"), "a JWT fragment appears in the log");
    assert!(!log.contains("isk_"), "an API key appears in the log");
    assert!(
        !log.contains("rt_"),
        "a refresh-token fragment appears in the log"
    );
}
