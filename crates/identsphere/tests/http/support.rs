//! `TestApp`: one server per test, on a fresh store, with its own SMTP sink.
use identsphere::{AuthService, AuthServiceConfig};
use identsphere_testkit::SmtpSink;
use reqwest::{header::HeaderMap, Response, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// Runs each named `async fn(Backend)` once per store.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(crate::support::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(crate::support::Backend::Postgres).await
                }
            }
        )*
    };
}
pub(crate) use both_stores;

/// Every test client is 127.0.0.1, so per-address budgets would couple the
/// unrelated steps of one test; they are raised here. Account budgets keep
/// their defaults, and `rate_limits.rs` restores every default.
fn relax_ip_limits(config: &mut AuthServiceConfig) {
    use identsphere::core::rate_limit::{Limit, LimitKind};
    for kind in [
        LimitKind::LoginIp,
        LimitKind::SignupIp,
        LimitKind::PasswordForgotIp,
        LimitKind::PasswordResetIp,
        LimitKind::VerificationResendIp,
        LimitKind::MfaVerifyIp,
        LimitKind::PasswordConfirmIp,
    ] {
        config
            .rate_limits
            .set(kind, Limit::per_minute(10_000, 10_000));
    }
}

/// The Redis for shared-limit tests: `IDENTSPHERE_TEST_REDIS_URL`, else the
/// local one (CI starts it).
pub fn redis_url() -> String {
    std::env::var("IDENTSPHERE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const PASSWORD: &str = "correct horse battery staple";

/// The master credentials of [`with_master`].
pub const MASTER_USER: &str = "platform";
pub const MASTER_PASSWORD: &str = "a master password for tests";

/// Turns the client API on (it answers 404 without master credentials).
pub fn with_master(c: &mut AuthServiceConfig) {
    c.master = Some(identsphere::core::service::MasterCredentials {
        username: MASTER_USER.into(),
        password: MASTER_PASSWORD.to_owned().into(),
    });
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub mail: SmtpSink,
    pub service: AuthService,
    _dir: tempfile::TempDir,
    schema: Option<(String, String)>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some((url, schema)) = self.schema.take() {
            // Drop is synchronous: clean the schema up on a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let _ = rt.block_on(identsphere_store_postgres::PostgresStore::drop_schema(
                    &url, &schema,
                ));
            })
            .join();
        }
    }
}

impl TestApp {
    /// A server with the default configuration, or `None` when the backend is not configured.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(
        backend: Backend,
        tweak: impl FnOnce(&mut AuthServiceConfig),
    ) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let (url, schema) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("db.sqlite").display()),
                None,
            ),
            Backend::Postgres => {
                let Ok(url) = std::env::var("IDENTSPHERE_TEST_DATABASE_URL") else {
                    eprintln!("skipped: IDENTSPHERE_TEST_DATABASE_URL is not set");
                    return None;
                };
                (
                    url.clone(),
                    Some((url, format!("http_{}", uuid::Uuid::now_v7().simple()))),
                )
            }
        };
        let mail = SmtpSink::start().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = AuthServiceConfig::new(
            url,
            format!("http://localhost:{}", addr.port()).parse().unwrap(),
            SecretString::from("test-secret-that-is-at-least-32-bytes-long"),
        );
        config.database_schema = schema.as_ref().map(|(_, s)| s.clone());
        config.smtp_url = Some(SecretString::from(mail.url()));
        config.cookies_secure = false;
        relax_ip_limits(&mut config);
        tweak(&mut config);
        let service = AuthService::new(config).await.expect("service starts");
        let router = service.router();
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Some(Self {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            mail,
            service,
            _dir: dir,
            schema,
        })
    }

    /// Another instance on the same PostgreSQL schema (several `serve` processes on one database).
    pub async fn spawn_peer(&self) -> Self {
        self.spawn_peer_with(|_| {}).await
    }

    pub async fn spawn_peer_with(&self, tweak: impl FnOnce(&mut AuthServiceConfig)) -> Self {
        let (_, schema) = self.schema.clone().expect("peers need PostgreSQL");
        let issuer = format!("http://localhost:{}", self.base.rsplit(':').next().unwrap());
        let mut peer = Self::spawn_with(Backend::Postgres, |c| {
            c.database_schema = Some(schema);
            c.public_url = issuer.parse().unwrap();
            tweak(c);
        })
        .await
        .unwrap();
        peer.schema = None; // the first instance owns the schema
        peer
    }

    /// Holds a write lock on the users table until the returned connection
    /// is dropped, as a stuck transaction or a long migration would: writes
    /// to it wait, reads go on. The jobs table is locked with it: sign-up's
    /// only write before its answer is its job.
    pub async fn lock_users_table(&self) -> Box<dyn std::any::Any + Send> {
        use sqlx::Connection;
        match &self.schema {
            Some((url, schema)) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
                let lock =
                    format!("LOCK TABLE \"{schema}\".users, \"{schema}\".jobs IN EXCLUSIVE MODE");
                sqlx::query(&lock).execute(&mut conn).await.unwrap();
                Box::new(conn)
            }
            None => {
                let url = format!("sqlite://{}", self._dir.path().join("db.sqlite").display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Box::new(conn)
            }
        }
    }

    /// Runs `sql` on this app's PostgreSQL schema, as an operator would.
    /// (On SQLite: its database file.)
    pub async fn sql(&self, sql: &str) {
        let Some((url, schema)) = self.schema.as_ref() else {
            let url = format!("sqlite://{}", self._dir.path().join("db.sqlite").display());
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
            return;
        };
        let store = identsphere_store_postgres::PostgresStore::connect_in_schema(url, schema, 1)
            .await
            .unwrap();
        sqlx::query(sql).execute(store.pool()).await.unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path` and its JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET path` as `token`; asserts 200 and returns the JSON body.
    pub async fn get_json_bearer(&self, path: &str, token: &str) -> Value {
        body(self.get_bearer(path, token).await, StatusCode::OK).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `POST path` with a `Cookie` header, as a browser holding `cookie` would.
    pub async fn post_with_cookie(&self, path: &str, cookie: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .header("cookie", cookie)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Signs up as a browser would; returns the sign-up cookie it keeps
    /// (`identsphere_signup=…`), with which that browser verifies.
    pub async fn signup_browser(&self, email: &str, password: &str) -> String {
        let r = self
            .post(
                "/v1/auth/signup",
                json!({ "email": email, "password": password, "name": "Test" }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let proof = cookie_value(r.headers(), "identsphere_signup").expect("sign-up cookie");
        format!("identsphere_signup={proof}")
    }

    pub async fn post_bearer(&self, path: &str, token: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete_bearer(&self, path: &str, token: &str) -> Response {
        self.http
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch_bearer(&self, path: &str, token: &str, body: Value) -> Response {
        self.http
            .patch(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Renames `token`'s user through this instance, which must show the new
    /// name to its caller at once (its user cache forgets the row on write).
    pub async fn rename(&self, token: &str, name: &str) {
        let r = self
            .patch_bearer("/v1/users/me", token, json!({ "name": name }))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            self.get_json_bearer("/v1/users/me", token).await["name"],
            name
        );
    }

    /// Creates an organization as `token`'s user; returns its id.
    pub async fn org(&self, token: &str, name: &str) -> String {
        let r = self
            .post_bearer("/v1/organizations", token, json!({ "name": name }))
            .await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        let body: Value = r.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    /// Invites `email` into `org` as `role` (by `inviter`) and returns the
    /// emailed token.
    pub async fn invite(&self, inviter: &str, org: &str, email: &str, role: &str) -> String {
        let before = self.mail.count_to(email);
        let r = self
            .post_bearer(
                &format!("/v1/organizations/{org}/invitations"),
                inviter,
                json!({ "email": email, "role": role }),
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        self.mail
            .nth_to(email, before)
            .await
            .token()
            .expect("invitation link")
    }

    /// A new user who joins `org` as `role` through an invitation; returns
    /// `(access_token, user_id)`.
    pub async fn member(
        &self,
        inviter: &str,
        org: &str,
        email: &str,
        role: &str,
    ) -> (String, String) {
        let token = self.invite(inviter, org, email, role).await;
        let r = self
            .post(
                "/v1/auth/invitations/accept",
                json!({ "token": token, "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let body: Value = r.json().await.unwrap();
        (
            body["tokens"]["access_token"].as_str().unwrap().to_owned(),
            body["user"]["id"].as_str().unwrap().to_owned(),
        )
    }

    /// Signs up and verifies through the emailed link, in the browser that signed up.
    pub async fn signup_verified(&self, email: &str) {
        let cookie = self.signup_browser(email, PASSWORD).await;
        let token = self
            .mail
            .first_to(email)
            .await
            .token()
            .expect("verification link");
        let r = self
            .post_with_cookie("/v1/auth/email/verify", &cookie, json!({ "token": token }))
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post(
            "/v1/auth/login",
            json!({ "email": email, "password": password }),
        )
        .await
    }

    /// The audit log (up to 100 events), of one action or all.
    pub async fn audit(
        &self,
        action: Option<identsphere::core::audit::AuditAction>,
    ) -> Vec<identsphere::core::audit::AuditEvent> {
        let filter = identsphere::core::audit::AuditFilter {
            action,
            ..Default::default()
        };
        let page = identsphere::core::store::PageRequest {
            after: None,
            limit: 100,
        };
        let store = self.service.state().identity().store().clone();
        store.list_audit(&filter, page).await.unwrap()
    }

    /// Signs up, verifies and logs in; returns the login body.
    pub async fn user(&self, email: &str) -> Value {
        self.signup_verified(email).await;
        let r = self.login(email, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }
}

/// Asserts `status` and returns the JSON body (the text is shown when the status differs).
pub async fn body(r: Response, status: StatusCode) -> Value {
    let got = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// The access token of a login or token-pair body.
pub fn token(login: &Value) -> String {
    login["access_token"].as_str().unwrap().to_owned()
}

/// The `field`s of a `validation_failed` problem.
pub fn field_errors(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

/// The `items` of a page.
pub fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().unwrap()
}

/// Asserts a problem+json answer with `status` and `code`; returns the body.
pub async fn problem(r: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16());
    assert!(body["type"].as_str().unwrap().ends_with(code));
    body
}

/// The `name=value` pairs of the response's Set-Cookie headers, with their attributes.
pub fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    set_cookies(headers)
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap()[name.len() + 1..].to_owned())
}

/// The `kid` in a JWT's header.
pub fn header_kid(token: &str) -> String {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// The claims of a JWT, unverified (the tests check what the server put in).
pub fn claims(jwt: &str) -> Value {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}
