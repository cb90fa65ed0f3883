//! IdentSphere as a library: the identity service as Axum routers.
//!
//! [`AuthService::router`] is the whole API (sign-up, sessions, organizations,
//! keys, JWKS, health, `/openapi.json`); each handler authenticates for itself,
//! so it is mounted as is. The host's own routes take the caller from the
//! [`CurrentUser`] extractor and are guarded by
//! [`AuthService::require_permission`]. Hosts that assemble the API from
//! [`routes`] themselves mount [`AuthService::public_router`] (accepting an
//! invitation, which must work before a session exists) outside their own
//! authentication middleware.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{routing::get, Json, Router};
//! use identsphere::{AuthService, AuthServiceConfig, CurrentUser};
//! use secrecy::SecretString;
//!
//! let mut config = AuthServiceConfig::new(
//!     "sqlite://identsphere.db",
//!     "http://localhost:8080".parse()?,
//!     SecretString::from("a secret of at least thirty-two bytes!"),
//! );
//! config.app_permissions = vec!["app:invoices.read".into()];
//! let auth = AuthService::new(config).await?;
//!
//! async fn invoices(user: CurrentUser) -> Json<Vec<String>> {
//!     // The guard let the request in: the caller holds app:invoices.read in
//!     // its active organization. Scope every query by that organization.
//!     Json(vec![format!("invoices of {:?}", user.org_id())])
//! }
//!
//! let app = Router::new()
//!     .route("/invoices", get(invoices))
//!     .route_layer(auth.require_permission("app:invoices.read"))
//!     .with_state(auth.state().clone())
//!     .merge(auth.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod config;
mod cookies;
mod dto;
pub mod error;
pub mod extract;
pub mod guard;
mod mail;
pub mod rate_limit;
pub mod routes;
mod state;
mod store;
mod timeouts;

pub use config::{AuthServiceConfig, ConfigError};
pub use extract::{Auth, CurrentUser};
pub use guard::RequirePermission;
pub use identsphere_core as core;
pub use state::AppState;

use identsphere_core::{
    jobs::JobWorker,
    password::PasswordHasher,
    secret::subkey,
    service::{Identity, IdentityConfig},
    store::Store,
    tokens::{JwtAlg, KeyRing, SigningSecret},
    CoreError,
};
use secrecy::ExposeSecret;
use std::sync::Arc;

/// Why the service could not start or an administrative task failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration breaks a rule.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The database could not be opened, migrated or read.
    #[error("database: {0}")]
    Store(#[from] identsphere_core::store::StoreError),
    /// A domain operation failed.
    #[error("{0}")]
    Core(#[from] CoreError),
}

/// The identity service, ready to be mounted.
#[derive(Clone, Debug)]
pub struct AuthService {
    state: AppState,
}

/// Opens the configured store, applies pending migrations and folds
/// addresses stored under older rules (see
/// [`identsphere_core::addresses::refold_stored`]).
///
/// # Errors
/// An unreachable database or a failed migration.
pub async fn migrate(config: &AuthServiceConfig) -> Result<(), Error> {
    let store = store::connect(config).await?;
    migrate_store(store.as_ref(), config).await
}

/// Schema migrations, then the data step SQL cannot do: folding stored
/// addresses by the current rules (NFKC and IDNA), so their owners are found.
async fn migrate_store(store: &dyn Store, config: &AuthServiceConfig) -> Result<(), Error> {
    store.migrate().await?;
    identsphere_core::addresses::refold_stored(store, config.clock.as_ref()).await?;
    Ok(())
}

/// Imports users with their existing password hashes from JSON lines (see
/// [`identsphere_core::import::import_users`] for the format), after applying
/// pending migrations. Idempotent: addresses that already have an account are
/// skipped and counted. Imported bcrypt, scrypt and PBKDF2 hashes are replaced
/// by Argon2id at each user's next login.
///
/// # Errors
/// An unreachable database or a failing reader; bad lines are in the summary.
pub async fn import_users<R: tokio::io::AsyncBufRead + Unpin>(
    config: &AuthServiceConfig,
    reader: R,
) -> Result<identsphere_core::import::ImportSummary, Error> {
    let store = store::connect(config).await?;
    migrate_store(store.as_ref(), config).await?;
    Ok(
        identsphere_core::import::import_users(store.as_ref(), config.clock.as_ref(), reader)
            .await?,
    )
}

impl AuthService {
    /// Validates `config`, opens the store (migrating it unless told not to),
    /// loads the signing keys and starts following revocations.
    ///
    /// # Errors
    /// Invalid configuration, or a database that cannot be opened or read.
    pub async fn new(config: AuthServiceConfig) -> Result<Self, Error> {
        config.validate()?;
        let store = store::connect(&config).await?;
        if config.run_migrations {
            migrate_store(store.as_ref(), &config).await?;
        }
        Self::with_store(config, store).await
    }

    async fn with_store(config: AuthServiceConfig, store: Arc<dyn Store>) -> Result<Self, Error> {
        let clock = config.clock.clone();
        let now = clock.now();
        let secret = SigningSecret::new(config.jwt_secret.clone()).map_err(|m| ConfigError {
            field: "jwt_secret",
            message: m,
        })?;
        let issuer = config.public_url.as_str().trim_end_matches('/').to_owned();
        let access_ttl = chrono_duration(config.access_expiry);
        let keys = match config.jwt_alg {
            JwtAlg::Hs256 => KeyRing::hs256(&secret, &issuer, &config.audience, now),
            alg => {
                // A retired key stays published while tokens it signed may
                // still be valid: machine tokens live up to 30 days.
                KeyRing::asymmetric(
                    alg,
                    store.as_ref(),
                    &issuer,
                    &config.audience,
                    access_ttl.max(identsphere_core::service::MACHINE_TOKEN_TTL),
                    now,
                )
                .await?
            }
        };
        let csrf_key = subkey(secret.bytes(), "csrf");
        let mailer = mail::from_settings(&config.mail_from, config.smtp_url.as_ref())?;
        let identity = Identity::new(
            store,
            clock,
            PasswordHasher::new(config.password_hash, config.hash_concurrency)?,
            keys,
            mailer,
            IdentityConfig {
                public_url: config.public_url.clone(),
                audience: config.audience.clone(),
                access_ttl,
                refresh_ttl: chrono_duration(config.refresh_expiry),
                refresh_grace: chrono_duration(config.refresh_reuse_grace),
                step_up_max_age: chrono_duration(config.step_up_max_age),
                require_email_verification: config.require_email_verification,
                password_policy: config.password_policy.clone(),
                refresh_key: subkey(secret.bytes(), "refresh-successor"),
                totp_key: subkey(secret.bytes(), "totp"),
                app_permissions: config.parsed_app_permissions()?,
                allow_wildcard_api_key_scope: config.allow_wildcard_api_key_scope,
                rate_limits: config.rate_limits.clone(),
                limit_key: subkey(secret.bytes(), "rate-limit-keys"),
                passkeys: config.passkey_settings(),
                master: config.master.clone(),
            },
        )
        .await?;
        let identity = match &config.redis_url {
            Some(url) if config.rate_limits.enabled => {
                let limiter = rate_limit::RedisLimiter::connect(
                    url.expose_secret(),
                    config.redis_key_prefix.clone(),
                )
                .await
                .map_err(|m| ConfigError {
                    field: "redis_url",
                    message: m,
                })?;
                identity.with_rate_limiter(Arc::new(limiter))
            }
            _ => identity,
        };
        let identity = Arc::new(identity);
        // Started with the service, so that a host mounting the routers runs
        // the jobs they enqueue without doing anything more.
        let worker = JobWorker::start(
            identity.jobs().clone(),
            identity.clone(),
            config.jobs.clone(),
        );
        Ok(Self {
            state: AppState::new(identity, Arc::new(worker), &config, csrf_key),
        })
    }

    /// Stops the job worker cleanly: no new job is claimed, running ones
    /// finish (within `jobs.shutdown_grace`). Call it after the HTTP server
    /// has stopped taking requests; jobs left in the queue run at the next
    /// start, or on another instance. Dropping the service instead stops the
    /// worker at once, and its running jobs are retried when their leases
    /// run out.
    pub async fn shutdown(&self) {
        self.state.worker.shutdown().await;
    }

    /// Every route (API, JWKS, health, `/openapi.json`) with its layers, state applied.
    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
    }

    /// `POST /v1/auth/invitations/accept` alone, with its state applied, for
    /// hosts that mount IdentSphere's routes behind their own authentication
    /// middleware: this one must stay outside it, because invitees accept
    /// before they have a session (SECURITY.md rule 17). It carries the JSON
    /// body limit, the request and body timeouts and the `Cache-Control:
    /// no-store` and `nosniff` headers of [`Self::router`].
    /// [`Self::router`] already contains this route: mount
    /// one or the other, not both.
    pub fn public_router(&self) -> axum::Router {
        use axum::http::{header, HeaderValue};
        use tower_http::set_header::SetResponseHeaderLayer;
        let (routes, _) = routes::invitations::router_public().split_for_parts();
        let routes = routes.layer(axum::extract::DefaultBodyLimit::max(
            self.state.max_json_body,
        ));
        timeouts::apply(routes, self.state.timeouts)
            // The answer carries tokens.
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .with_state(self.state.clone())
    }

    /// A layer for the host's routes that admits only callers holding
    /// `permission` in their active organization; see [`RequirePermission`].
    ///
    /// ```no_run
    /// # fn mount(auth: identsphere::AuthService, reports: axum::Router<identsphere::AppState>) {
    /// let guarded = reports.route_layer(auth.require_permission("audit:read"));
    /// # }
    /// ```
    ///
    /// # Panics
    /// When `permission` is not a permission name, or is an `app:` permission
    /// missing from `app_permissions`: a programming error found when the
    /// router is built, like an invalid route path. [`RequirePermission::new`]
    /// returns the error instead.
    pub fn require_permission(&self, permission: &str) -> RequirePermission {
        match RequirePermission::new(self.state.clone(), permission) {
            Ok(guard) => guard,
            Err(e) => panic!("require_permission: {e}"),
        }
    }

    /// The OpenAPI document of [`Self::router`].
    pub fn openapi(&self) -> utoipa::openapi::OpenApi {
        routes::openapi()
    }

    /// The shared state, for hosts that mount individual routers.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Makes a new asymmetric signing key current; the old ones stay in the
    /// JWKS until the tokens they signed have expired.
    ///
    /// # Errors
    /// With HS256 (rotate `jwt_secret` instead) or a store failure.
    pub async fn rotate_signing_key(&self) -> Result<String, Error> {
        let identity = &self.state.identity;
        let now = identity.clock().now();
        Ok(identity
            .keys()
            .rotate(identity.store().as_ref(), now)
            .await?)
    }
}

fn chrono_duration(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Whether the configured database URL is SQLite (used by the binary's warnings).
pub fn is_sqlite(config: &AuthServiceConfig) -> bool {
    config.database_url.expose_secret().starts_with("sqlite:")
}
