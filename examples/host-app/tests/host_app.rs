//! Runs the compiled `host-app` binary and drives it over real HTTP, with a
//! real SMTP listener catching the verification and invitation mail.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use identsphere::{AuthService, AuthServiceConfig, RequirePermission};
use identsphere_testkit::SmtpSink;
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::{process::Stdio, time::Duration};
use tempfile::TempDir;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

const PASSWORD: &str = "correct horse battery staple";

/// The running binary; killed when the test ends, passing or not.
struct HostApp {
    base: String,
    http: reqwest::Client,
    mail: SmtpSink,
    _child: Child,
    _data: TempDir,
}

impl HostApp {
    async fn start() -> Self {
        let mail = SmtpSink::start().await;
        let data = TempDir::new().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_host-app"))
            .env("LISTEN", "127.0.0.1:0")
            .env("HOST_APP_DATA", data.path())
            .env("IDENTSPHERE_SMTP_URL", mail.url())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("host-app starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("host-app prints its address within 60 s")
            .unwrap()
            .expect("host-app exited before printing its address");
        let base = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        // Keep draining stdout so the child can never block on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            base,
            http: reqwest::Client::new(),
            mail,
            _child: child,
            _data: data,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str, token: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn get_with_key(&self, path: &str, key: &str) -> Response {
        self.http
            .get(self.url(path))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }

    async fn patch(&self, path: &str, token: &str, body: Value) -> Response {
        self.http
            .patch(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Signs up, follows the emailed verification link, signs in; returns the access token.
    async fn user(&self, email: &str) -> String {
        let r = self
            .post(
                "/v1/auth/signup",
                None,
                json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        let token = self
            .mail
            .first_to(email)
            .await
            .token()
            .expect("verification link");
        let r = self
            .post(
                "/v1/auth/email/verify",
                None,
                json!({ "token": token, "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let r = self
            .post(
                "/v1/auth/login",
                None,
                json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        let body = ok_json(r).await;
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Makes `org` the session's active organization; returns the new access token.
    async fn switch(&self, token: &str, org: &str) -> String {
        let r = self
            .post(
                "/v1/auth/switch-organization",
                Some(token),
                json!({ "org_id": org }),
            )
            .await;
        ok_json(r).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates an API key as `token`'s user; returns its secret.
    async fn api_key(&self, token: &str, scopes: &[&str], org: Option<&str>) -> String {
        let r = self
            .post(
                "/v1/api-keys",
                Some(token),
                json!({ "name": "reports", "scopes": scopes, "org_id": org }),
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        let body: Value = r.json().await.unwrap();
        body["key"].as_str().unwrap().to_owned()
    }
}

async fn ok_json(r: Response) -> Value {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Asserts a problem+json answer with `status` and `code`; returns the body.
async fn problem(r: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16());
    body
}

fn permissions(me: &Value) -> Vec<&str> {
    me["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_app_guards_its_routes_by_organization_permissions() {
    let app = HostApp::start().await;

    // No credential, or a bad one: 401 problem+json, from the guard and the extractor.
    for path in ["/invoices", "/me"] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
        problem(
            app.get(path, "not-a-token").await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
        problem(
            app.get_with_key(path, "isk_not_a_key").await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    // The guard sits on routes, not on the whole app: unknown paths are 404.
    problem(
        app.http.get(app.url("/nope")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // Signed in, but no active organization: no permissions at all.
    let alice = app.user("alice@example.com").await;
    let me = ok_json(app.get("/me", &alice).await).await;
    assert_eq!(me["credential"], "session");
    assert!(me["organization"].is_null(), "{me}");
    assert!(permissions(&me).is_empty(), "{me}");
    let body = problem(
        app.get("/invoices", &alice).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("app:invoices.read"),
        "{body}"
    );

    // Creating an organization does not make it active.
    let r = app
        .post("/v1/organizations", Some(&alice), json!({ "name": "Acme" }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let org = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    problem(
        app.get("/invoices", &alice).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // Switched to it, the owner holds the app's permission.
    let alice = app.switch(&alice, &org).await;
    let invoices = ok_json(app.get("/invoices", &alice).await).await;
    assert_eq!(invoices["organization_id"], org.as_str());
    let list = invoices["invoices"].as_array().unwrap();
    assert!(!list.is_empty());
    assert!(list.iter().all(|i| i["organization_id"] == org.as_str()));
    let me = ok_json(app.get("/me", &alice).await).await;
    assert_eq!(me["organization"]["id"], org.as_str());
    assert_eq!(me["organization"]["role"], "owner");
    assert!(permissions(&me).contains(&"app:invoices.read"), "{me}");

    // The access cookie works through the guard too (GET needs no CSRF echo).
    let r = app
        .http
        .get(app.url("/invoices"))
        .header("cookie", format!("identsphere_access={alice}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Bob joins as a plain member: he may not read invoices.
    let r = app
        .post(
            &format!("/v1/organizations/{org}/invitations"),
            Some(&alice),
            json!({ "email": "bob@example.com", "role": "member" }),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let invitation = app
        .mail
        .first_to("bob@example.com")
        .await
        .token()
        .expect("invitation link");
    let accepted = ok_json(
        app.post(
            "/v1/auth/invitations/accept",
            None,
            json!({ "token": invitation, "password": PASSWORD }),
        )
        .await,
    )
    .await;
    let bob_id = accepted["user"]["id"].as_str().unwrap().to_owned();
    let bob = accepted["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = app.switch(&bob, &org).await;
    let me = ok_json(app.get("/me", &bob).await).await;
    assert_eq!(me["organization"]["role"], "member");
    assert!(!permissions(&me).contains(&"app:invoices.read"), "{me}");
    problem(
        app.get("/invoices", &bob).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // A custom role granting the app's permission lets him in, with the same
    // token: permissions are read from the membership on every request.
    let r = app
        .post(
            &format!("/v1/organizations/{org}/roles"),
            Some(&alice),
            json!({ "name": "invoice-reader", "permissions": ["org:read", "app:invoices.read"] }),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let r = app
        .patch(
            &format!("/v1/organizations/{org}/members/{bob_id}"),
            &alice,
            json!({ "role": "invoice-reader" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let invoices = ok_json(app.get("/invoices", &bob).await).await;
    assert_eq!(invoices["organization_id"], org.as_str());
    let me = ok_json(app.get("/me", &bob).await).await;
    assert_eq!(me["organization"]["role"], "invoice-reader");
    let mut held = permissions(&me);
    held.sort_unstable();
    assert_eq!(held, ["app:invoices.read", "org:read"]);

    // An organization key with the scope works, in x-api-key and as Bearer;
    // its permissions are its owner's, narrowed to its scopes.
    let key = app
        .api_key(&alice, &["app:invoices.read"], Some(&org))
        .await;
    let invoices = ok_json(app.get_with_key("/invoices", &key).await).await;
    assert_eq!(invoices["organization_id"], org.as_str());
    assert_eq!(app.get("/invoices", &key).await.status(), StatusCode::OK);
    let me = ok_json(app.get_with_key("/me", &key).await).await;
    assert_eq!(me["credential"], "api_key");
    assert_eq!(me["organization"]["id"], org.as_str());
    assert_eq!(permissions(&me), ["app:invoices.read"]);

    // A key without the scope, and a personal key (no organization), are refused.
    let narrow = app.api_key(&alice, &["org:read"], Some(&org)).await;
    problem(
        app.get_with_key("/invoices", &narrow).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let personal = app.api_key(&alice, &["app:invoices.read"], None).await;
    problem(
        app.get_with_key("/invoices", &personal).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let me = ok_json(app.get_with_key("/me", &personal).await).await;
    assert!(me["organization"].is_null(), "{me}");

    // Removed from the organization, Bob loses access at once.
    let r = app
        .http
        .delete(app.url(&format!("/v1/organizations/{org}/members/{bob_id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "{}",
        r.text().await.unwrap()
    );
    problem(
        app.get("/invoices", &bob).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_answers_mfa_required_where_the_organization_requires_mfa() {
    use identsphere_testkit::totp::{base32_decode, totp_at};
    let app = HostApp::start().await;
    let password_only = app.user("alice@example.com").await;
    let r = app
        .post(
            "/v1/organizations",
            Some(&password_only),
            json!({ "name": "Acme" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let org = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let password_only = app.switch(&password_only, &org).await;
    ok_json(app.get("/invoices", &password_only).await).await;

    // Alice enrolls TOTP and signs in again with a recovery code: amr holds mfa.
    let r = app
        .post("/v1/auth/mfa/totp/enroll", Some(&password_only), json!({}))
        .await;
    let secret = base32_decode(ok_json(r).await["secret"].as_str().unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = totp_at(&secret, i64::try_from(now).unwrap());
    let r = app
        .post(
            "/v1/auth/mfa/totp/confirm",
            Some(&password_only),
            json!({ "code": code }),
        )
        .await;
    let recovery = ok_json(r).await["recovery_codes"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "email": "alice@example.com", "password": PASSWORD }),
        )
        .await;
    let mfa_token = ok_json(r).await["mfa_token"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/v1/auth/mfa/verify",
            None,
            json!({ "mfa_token": mfa_token, "recovery_code": recovery }),
        )
        .await;
    let with_mfa = ok_json(r).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let with_mfa = app.switch(&with_mfa, &org).await;
    let r = app
        .patch(
            &format!("/v1/organizations/{org}"),
            &with_mfa,
            json!({ "require_mfa": true }),
        )
        .await;
    assert_eq!(ok_json(r).await["require_mfa"], true);

    // The password-only session holds nothing there now: the guard says why,
    // and CurrentUser shows no organization.
    let body = problem(
        app.get("/invoices", &password_only).await,
        StatusCode::FORBIDDEN,
        "mfa_required",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("second factor"),
        "{body}"
    );
    let me = ok_json(app.get("/me", &password_only).await).await;
    assert!(me["organization"].is_null(), "{me}");
    assert!(permissions(&me).is_empty(), "{me}");
    // The session signed in with a second factor is let through.
    let invoices = ok_json(app.get("/invoices", &with_mfa).await).await;
    assert_eq!(invoices["organization_id"], org.as_str());
}

#[tokio::test]
async fn guards_refuse_permissions_nobody_can_hold() {
    let dir = TempDir::new().unwrap();
    let mut config = AuthServiceConfig::new(
        format!("sqlite://{}", dir.path().join("db.sqlite").display()),
        "http://localhost:8080".parse().unwrap(),
        SecretString::from("test-secret-that-is-at-least-32-bytes-long"),
    );
    config.app_permissions = vec!["app:invoices.read".into()];
    let auth = AuthService::new(config).await.unwrap();
    let state = || auth.state().clone();

    for ok in ["app:invoices.read", "members:read"] {
        let guard = RequirePermission::new(state(), ok).unwrap();
        assert_eq!(guard.permission(), ok);
    }
    for bad in ["invoices.read", "app:invoices.write", "*", ""] {
        let e = RequirePermission::new(state(), bad).unwrap_err();
        assert_eq!(e.field, "permission", "{bad}");
    }
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        auth.require_permission("app:unregistered")
    }));
    assert!(panicked.is_err());
}
