//! The pieces the tests run against: a real IdentSphere server, a JWKS
//! server the test controls (serving its own keys, or counting and relaying
//! the real server's), and locally generated signing keys.
use axum::{extract::State, routing::get, Json, Router};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use identsphere::{
    core::{clock::Clock, password::HashParams, tokens::JwtAlg},
    AuthService, AuthServiceConfig,
};
use identsphere_jwt::{Validator, ValidatorBuilder};
use jsonwebtoken::{EncodingKey, Header};
use ring::{
    rand::SystemRandom,
    signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING},
};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

pub const PASSWORD: &str = "correct horse battery staple";

/// A real IdentSphere server on a loopback port, over SQLite in a temp dir.
pub struct Server {
    /// `http://127.0.0.1:PORT`: the base URL and the issuer.
    pub base: String,
    pub auth: AuthService,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// What a login answered.
pub struct Login {
    pub access_token: String,
    pub user_id: String,
    pub session_id: String,
}

impl Server {
    pub async fn spawn(alg: JwtAlg) -> Self {
        Self::spawn_with(alg, |_| {}).await
    }

    pub async fn spawn_with(alg: JwtAlg, tweak: impl FnOnce(&mut AuthServiceConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Bind first: the port is part of the issuer.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut config = AuthServiceConfig::new(
            format!("sqlite://{}/db.sqlite?mode=rwc", dir.path().display()),
            base.parse().unwrap(),
            SecretString::from("x".repeat(40)),
        );
        config.jwt_alg = alg;
        config.cookies_secure = false;
        config.require_email_verification = false;
        // Cheap hashes: these tests are about tokens, not passwords.
        config.password_hash = HashParams {
            m_cost: 1024,
            t_cost: 1,
            p_cost: 1,
        };
        tweak(&mut config);
        let auth = AuthService::new(config).await.unwrap();
        let router = auth.router();
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Self {
            base,
            auth,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.base)
    }

    /// A validator for this server with the default configuration.
    pub fn validator(&self) -> Validator {
        Validator::builder(&self.base, "identsphere")
            .build()
            .unwrap()
    }

    /// Signs `email` up and logs in over HTTP.
    pub async fn login(&self, email: &str) -> Login {
        let r = self
            .http
            .post(format!("{}/v1/auth/signup", self.base))
            .json(&json!({ "email": email, "password": PASSWORD, "name": "Test" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        self.jobs_drained().await;
        self.login_again(email).await
    }

    /// Waits until the server's jobs have run (`/readyz`): sign-up creates
    /// the account in a job after its answer.
    async fn jobs_drained(&self) {
        for _ in 0..200 {
            let ready: Value = self
                .http
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if ready["checks"]["jobs"]["pending"] == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("jobs still pending after 5 s");
    }

    /// Logs an existing user in (a new session, signed with the current key).
    pub async fn login_again(&self, email: &str) -> Login {
        let r = self
            .http
            .post(format!("{}/v1/auth/login", self.base))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "ok", "{body}");
        Login {
            access_token: body["access_token"].as_str().unwrap().to_owned(),
            user_id: body["user"]["id"].as_str().unwrap().to_owned(),
            session_id: body["session_id"].as_str().unwrap().to_owned(),
        }
    }

    /// The published JWK Set.
    pub async fn jwks(&self) -> Value {
        self.http
            .get(self.jwks_url())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// A JWKS endpoint under the test's control: it serves a set the test gives
/// it, or relays an upstream one; it counts requests and can be made to fail
/// or to answer slowly.
#[derive(Clone)]
pub struct KeyServer {
    url: String,
    state: Arc<KeyState>,
}

struct KeyState {
    upstream: Option<String>,
    keys: Mutex<Value>,
    fetches: AtomicUsize,
    failing: AtomicBool,
    delay: Mutex<Duration>,
    http: reqwest::Client,
}

impl KeyServer {
    /// Serves the JWK Set made of `jwks`.
    pub async fn serving(jwks: Vec<Value>) -> Self {
        Self::start(None, json!({ "keys": jwks })).await
    }

    /// Relays `upstream` (a real server's JWKS URL), counting requests.
    pub async fn relaying(upstream: String) -> Self {
        Self::start(Some(upstream), Value::Null).await
    }

    async fn start(upstream: Option<String>, keys: Value) -> Self {
        let state = Arc::new(KeyState {
            upstream,
            keys: Mutex::new(keys),
            fetches: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
            delay: Mutex::new(Duration::ZERO),
            http: reqwest::Client::new(),
        });
        let app = Router::new()
            .route("/jwks.json", get(serve_keys))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests received so far.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// Answer 500 from now on (or stop doing so).
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    pub fn set_keys(&self, jwks: Vec<Value>) {
        self.set_body(json!({ "keys": jwks }));
    }

    /// Serve `body` as it is (for documents that are not JWK Sets).
    pub fn set_body(&self, body: Value) {
        *self.state.keys.lock().unwrap() = body;
    }

    /// A validator builder for `issuer` fetching from this server.
    pub fn builder(&self, issuer: &str) -> ValidatorBuilder {
        Validator::builder(issuer, "identsphere").jwks_url(self.url.clone())
    }
}

async fn serve_keys(
    State(state): State<Arc<KeyState>>,
) -> Result<Json<Value>, axum::http::StatusCode> {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let delay = *state.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    if state.failing.load(Ordering::SeqCst) {
        return Err(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    }
    match &state.upstream {
        Some(url) => {
            let r = state.http.get(url).send().await.unwrap();
            Ok(Json(r.json().await.unwrap()))
        }
        None => Ok(Json(state.keys.lock().unwrap().clone())),
    }
}

/// A signing key generated by the test, with its public JWK.
pub struct Signer {
    pub kid: String,
    alg: jsonwebtoken::Algorithm,
    key: EncodingKey,
    jwk: Value,
}

impl Signer {
    pub fn ed25519(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            kid: kid.into(),
            alg: jsonwebtoken::Algorithm::EdDSA,
            key: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            }),
        }
    }

    pub fn es256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // Uncompressed point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        Self {
            kid: kid.into(),
            alg: jsonwebtoken::Algorithm::ES256,
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            }),
        }
    }

    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// A token over `claims` with this key's `alg` and `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(Some(&self.kid), claims)
    }

    /// A token with this key's `alg` and the given `kid` (or none).
    pub fn sign_as(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Valid IdentSphere access-token claims from `issuer`, expiring in 10 minutes.
pub fn claims(issuer: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer, "sub": "user-1", "aud": "identsphere", "exp": now + 600,
        "iat": now, "jti": "jti-1", "sid": "session-1", "amr": ["pwd"], "auth_time": now,
    })
}

/// `claims` with `key` set to `value` (or removed, for `Value::Null`).
pub fn with(mut claims: Value, key: &str, value: Value) -> Value {
    let map = claims.as_object_mut().unwrap();
    if value.is_null() {
        map.remove(key);
    } else {
        map.insert(key.into(), value);
    }
    claims
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token's header, as JSON.
pub fn header_of(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A token's payload, as JSON.
pub fn payload_of(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A clock for a server whose tokens must come out already expired.
pub fn clock_in_the_past(ago: Duration) -> Arc<dyn Clock> {
    Arc::new(identsphere::core::clock::ManualClock::new(
        chrono::Utc::now() - chrono::Duration::from_std(ago).unwrap(),
    ))
}
