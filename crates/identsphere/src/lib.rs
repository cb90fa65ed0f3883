//! IdentSphere as a library: the identity service as Axum routers.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use identsphere::{AuthService, AuthServiceConfig};
//! use secrecy::SecretString;
//!
//! let config = AuthServiceConfig::new(
//!     "sqlite://identsphere.db",
//!     "http://localhost:8080".parse()?,
//!     SecretString::from("a secret of at least thirty-two bytes!"),
//! );
//! let auth = AuthService::new(config).await?;
//! let app = axum::Router::new().merge(auth.router());
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
mod mail;
pub mod routes;
mod state;
mod store;

pub use config::{AuthServiceConfig, ConfigError};
pub use extract::Auth;
pub use identsphere_core as core;
pub use state::AppState;

use identsphere_core::{
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

/// Opens the configured store and applies pending migrations.
///
/// # Errors
/// An unreachable database or a failed migration.
pub async fn migrate(config: &AuthServiceConfig) -> Result<(), Error> {
    let store = store::connect(config).await?;
    store.migrate().await?;
    Ok(())
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
            store.migrate().await?;
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
                KeyRing::asymmetric(
                    alg,
                    store.as_ref(),
                    &issuer,
                    &config.audience,
                    access_ttl,
                    now,
                )
                .await?
            }
        };
        let mailer = mail::from_config(&config)?;
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
                require_email_verification: config.require_email_verification,
                password_policy: config.password_policy.clone(),
                refresh_key: subkey(secret.bytes(), "refresh-successor"),
                app_permissions: config.parsed_app_permissions()?,
                allow_wildcard_api_key_scope: config.allow_wildcard_api_key_scope,
            },
        )
        .await?;
        Ok(Self {
            state: AppState::new(Arc::new(identity), &config),
        })
    }

    /// Every route (API, JWKS, health, `/openapi.json`) with its layers, state applied.
    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
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
