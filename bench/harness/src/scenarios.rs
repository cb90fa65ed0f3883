//! The scenarios: what one request of each is, and what it needs prepared.
use crate::load::{client, run, Load, Measured};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

/// The benchmark account (IdentSphere and the peer alike).
pub const EMAIL: &str = "bench@example.com";
/// Its password.
pub const PASSWORD: &str = "correct horse battery staple";

/// The benchmark servers' master credentials (the client API).
pub const MASTER: (&str, &str) = ("bench", "bench master password");

/// A scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// `POST /v1/auth/login`: one Argon2id verification each.
    Login,
    /// `POST /v1/auth/refresh`, each connection following its own rotation chain.
    Refresh,
    /// `GET /v1/users/me` with `Authorization: Bearer`.
    MeBearer,
    /// `GET /v1/users/me` with the access-token cookie.
    MeCookie,
    /// `GET /v1/users/me` with an API key (`x-api-key`, scope `users:read`).
    ApiKey,
    /// `POST /v1/tokens`: a machine user's credentials for a stored token,
    /// signed with the server's default (HS256).
    Tokens,
    /// The same on a server signing with RS256, as the peer below does.
    TokensRs256,
    /// The bare Axum JSON handler.
    Baseline,
    /// better-auth: `POST /api/auth/sign-in/email`.
    PeerSignIn,
    /// better-auth: `GET /api/auth/get-session` with its session cookie.
    PeerSession,
    /// npm oidc-provider: `POST /token`, OAuth client_credentials, RS256 JWT.
    PeerClientCredentials,
}

impl Scenario {
    /// IdentSphere's scenarios, in report order.
    pub const OURS: [Self; 6] = [
        Self::Login,
        Self::Refresh,
        Self::MeBearer,
        Self::MeCookie,
        Self::ApiKey,
        Self::Tokens,
    ];

    /// Whether this is one of IdentSphere's scenarios (not a baseline or peer).
    pub fn ours(self) -> bool {
        Self::OURS.contains(&self) || self == Self::TokensRs256
    }

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Login => "password login",
            Self::Refresh => "refresh (rotation)",
            Self::MeBearer => "GET /v1/users/me, Bearer",
            Self::MeCookie => "GET /v1/users/me, cookie",
            Self::ApiKey => "GET /v1/users/me, API key",
            Self::Tokens => "POST /v1/tokens, HS256",
            Self::TokensRs256 => "POST /v1/tokens, RS256",
            Self::Baseline => "bare Axum JSON",
            Self::PeerSignIn => "better-auth sign-in",
            Self::PeerSession => "better-auth get-session",
            Self::PeerClientCredentials => "oidc-provider client_credentials, RS256",
        }
    }

    /// Whether each request hashes a password (bound by the hashing pool).
    pub fn hashes(self) -> bool {
        matches!(self, Self::Login | Self::PeerSignIn)
    }

    /// Connections at full load: a few for hashing (more only queue), many
    /// for the rest.
    pub fn connections(self) -> usize {
        if self.hashes() {
            4
        } else {
            32
        }
    }
}

/// What the scenarios of one server share: a signed-in session.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// IdentSphere: an access token; the peer: its cookie header.
    pub credential: String,
    /// An API key with scope `users:read` (IdentSphere only).
    pub api_key: Option<String>,
    /// A client key and one of its machine users' identifier and secret
    /// (IdentSphere only).
    pub machine: Option<(String, String, String)>,
}

impl Fixture {
    /// For servers that need no credentials (the baseline, oidc-provider's
    /// client is configured in its script).
    pub fn none() -> Self {
        Self {
            credential: String::new(),
            api_key: None,
            machine: None,
        }
    }
}

/// Where a scenario's requests go: one server, or several in turn (round
/// robin over every request of every connection, so consecutive requests of
/// one connection land on different servers).
#[derive(Debug, Clone)]
pub struct Targets {
    bases: Arc<[String]>,
    next: Arc<AtomicUsize>,
}

impl Targets {
    /// Every request to `base`.
    pub fn one(base: &str) -> Self {
        Self::round_robin(vec![base.to_owned()])
    }

    /// Each request to the next of `bases` (at least one).
    pub fn round_robin(bases: Vec<String>) -> Self {
        Self {
            bases: bases.into(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The index of the server for the next request.
    fn pick(&self) -> usize {
        match self.bases.len() {
            0 | 1 => 0,
            n => self.next.fetch_add(1, Ordering::Relaxed) % n,
        }
    }

    /// The base URL for the next request.
    fn next_base(&self) -> &str {
        &self.bases[self.pick()]
    }

    /// `path` on each server, in [`Self::pick`] order.
    fn urls(&self, path: &str) -> Arc<[String]> {
        self.bases.iter().map(|b| format!("{b}{path}")).collect()
    }
}

async fn ok_json(r: reqwest::Response, what: &str) -> Result<Value> {
    let status = r.status();
    let body = r.text().await?;
    if !status.is_success() {
        bail!("{what}: {status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("{what}: not JSON: {body}"))
}

/// Signs the benchmark account in on `base`.
pub async fn login(base: &str) -> Result<Value> {
    let r = client()
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({ "email": EMAIL, "password": PASSWORD }))
        .send()
        .await?;
    ok_json(r, "login").await
}

/// A string field of a JSON answer.
pub fn field(v: &Value, name: &str) -> Result<String> {
    v[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no `{name}` in {v}"))
}

/// Creates the benchmark account on an IdentSphere server (email
/// verification is off there) and signs in.
pub async fn prepare_identsphere(base: &str) -> Result<Fixture> {
    let http = client();
    http.post(format!("{base}/v1/auth/signup"))
        .json(&json!({ "email": EMAIL, "password": PASSWORD }))
        .send()
        .await?;
    // The account is created by a job after the answer.
    crate::timing::wait_for_jobs(&http, base).await?;
    let access = field(&login(base).await?, "access_token")?;
    let r = http
        .post(format!("{base}/v1/api-keys"))
        .bearer_auth(&access)
        .json(&json!({ "name": "bench", "scopes": ["users:read"] }))
        .send()
        .await?;
    let key = field(&ok_json(r, "creating an API key").await?, "key")?;
    let r = http
        .post(format!("{base}/v1/clients"))
        .basic_auth(MASTER.0, Some(MASTER.1))
        .json(&json!({ "name": "bench" }))
        .send()
        .await?;
    let client_key = field(&ok_json(r, "creating a client").await?, "api_key")?;
    let r = http
        .post(format!("{base}/v1/clients/users"))
        .header("x-api-key", &client_key)
        .json(&json!({ "identifier": "bench-machine" }))
        .send()
        .await?;
    let secret = field(&ok_json(r, "creating a machine user").await?, "secret")?;
    Ok(Fixture {
        credential: access,
        api_key: Some(key),
        machine: Some((client_key, "bench-machine".into(), secret)),
    })
}

/// Signs in to the better-auth peer (its setup seeded the account).
pub async fn prepare_peer(base: &str) -> Result<Fixture> {
    let r = client()
        .post(format!("{base}/api/auth/sign-in/email"))
        .header("origin", base)
        .json(&json!({ "email": EMAIL, "password": PASSWORD }))
        .send()
        .await?;
    let cookies: Vec<String> = r
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next().map(str::to_owned))
        .collect();
    ok_json(r, "better-auth sign-in").await?;
    if cookies.is_empty() {
        bail!("better-auth sign-in set no cookie");
    }
    Ok(Fixture {
        credential: cookies.join("; "),
        api_key: None,
        machine: None,
    })
}

async fn success(r: reqwest::RequestBuilder) -> bool {
    r.send().await.is_ok_and(|r| r.status().is_success())
}

/// Runs `scenario` against `base` under `load`.
pub async fn measure(base: &str, scenario: Scenario, fx: &Fixture, load: Load) -> Measured {
    measure_on(&Targets::one(base), scenario, fx, load).await
}

/// Runs `scenario` against `targets` under `load`.
pub async fn measure_on(
    targets: &Targets,
    scenario: Scenario,
    fx: &Fixture,
    load: Load,
) -> Measured {
    let t = targets.clone();
    let credential = fx.credential.clone();
    match scenario {
        Scenario::Login | Scenario::PeerSignIn => {
            let urls = t.urls(if scenario == Scenario::Login {
                "/v1/auth/login"
            } else {
                "/api/auth/sign-in/email"
            });
            let body = json!({ "email": EMAIL, "password": PASSWORD });
            run(
                load,
                |_| async { client() },
                move |c| {
                    let i = t.pick();
                    let req = c.post(&urls[i]).header("origin", &t.bases[i]).json(&body);
                    async move { (c.clone(), success(req).await) }
                },
            )
            .await
        }
        Scenario::Tokens | Scenario::TokensRs256 => {
            let urls = t.urls("/v1/tokens");
            let (key, identifier, secret) = fx.machine.clone().unwrap_or_default();
            let body = json!({ "identifier": identifier, "secret": secret });
            run(
                load,
                |_| async { client() },
                move |c| {
                    let req = c
                        .post(&urls[t.pick()])
                        .header("x-api-key", &key)
                        .json(&body);
                    async move { (c.clone(), success(req).await) }
                },
            )
            .await
        }
        Scenario::PeerClientCredentials => {
            let urls = t.urls("/token");
            let form = [("grant_type", "client_credentials"), ("scope", "api")];
            run(
                load,
                |_| async { client() },
                move |c| {
                    let req = c
                        .post(&urls[t.pick()])
                        .basic_auth("bench", Some("bench-secret-0123456789"))
                        .form(&form);
                    async move { (c.clone(), success(req).await) }
                },
            )
            .await
        }
        Scenario::Refresh => {
            let urls = t.urls("/v1/auth/refresh");
            let init = |_| {
                let base = t.next_base().to_owned();
                async move {
                    let token = match login(&base).await {
                        Ok(l) => field(&l, "refresh_token").unwrap_or_default(),
                        Err(_) => String::new(),
                    };
                    (client(), token)
                }
            };
            let t = t.clone();
            run(load, init, move |(c, token)| {
                let req = c
                    .post(&urls[t.pick()])
                    .json(&json!({ "refresh_token": token }));
                async move {
                    let next = match req.send().await {
                        Ok(r) if r.status().is_success() => r
                            .json::<Value>()
                            .await
                            .ok()
                            .and_then(|v| v["refresh_token"].as_str().map(str::to_owned)),
                        _ => None,
                    };
                    match next {
                        Some(next) => ((c, next), true),
                        None => ((c, token), false),
                    }
                }
            })
            .await
        }
        Scenario::MeBearer
        | Scenario::MeCookie
        | Scenario::ApiKey
        | Scenario::Baseline
        | Scenario::PeerSession => {
            let (path, header, value) = match scenario {
                Scenario::MeBearer => (
                    "/v1/users/me",
                    "authorization",
                    format!("Bearer {credential}"),
                ),
                Scenario::MeCookie => (
                    "/v1/users/me",
                    "cookie",
                    format!("identsphere_access={credential}"),
                ),
                Scenario::ApiKey => (
                    "/v1/users/me",
                    "x-api-key",
                    fx.api_key.clone().unwrap_or_default(),
                ),
                Scenario::PeerSession => ("/api/auth/get-session", "cookie", credential),
                _ => ("/json", "accept", "application/json".to_owned()),
            };
            let urls = t.urls(path);
            // better-auth answers 200 with `null` for a session it does not know.
            let needs_user = scenario == Scenario::PeerSession;
            run(
                load,
                |_| async { client() },
                move |c| {
                    let req = c.get(&urls[t.pick()]).header(header, &value);
                    async move {
                        let ok = match req.send().await {
                            Ok(r) if r.status().is_success() && needs_user => {
                                r.bytes().await.is_ok_and(|b| b.starts_with(b"{\""))
                            }
                            Ok(r) => r.status().is_success(),
                            Err(_) => false,
                        };
                        (c.clone(), ok)
                    }
                },
            )
            .await
        }
    }
}
