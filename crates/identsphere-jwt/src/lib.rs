//! Validate IdentSphere access tokens in your own service, without calling
//! the IdentSphere server: signatures are checked against the public keys it
//! publishes at `/.well-known/jwks.json` (fetched once and cached), and the
//! claims against your configuration (`iss`, `aud`, `exp`, `nbf`).
//!
//! The server must sign with an asymmetric algorithm (`IDENTSPHERE_JWT_ALG`
//! `RS256` or `EdDSA`): an `HS256` server publishes no keys.
//!
//! ```no_run
//! use axum::{routing::get, Extension, Router};
//! use identsphere_jwt::{Claims, RequireAuthLayer, Validator};
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let validator = Validator::builder("https://auth.example.com", "identsphere")
//!     .cache_ttl(Duration::from_secs(300))
//!     .build()?;
//!
//! // Validate a token yourself...
//! # let token = "";
//! let claims = validator.validate(token).await?;
//! println!("user {} in session {}", claims.sub, claims.sid);
//!
//! // ...or protect a whole router: 401 problem+json without a valid token.
//! async fn whoami(Extension(claims): Extension<Claims>) -> String {
//!     claims.sub
//! }
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .layer(RequireAuthLayer::new(validator));
//! # Ok(()) }
//! ```
//!
//! # What is checked
//!
//! See [`Validator`] for the order of the checks and [`ValidatorBuilder`]
//! for how the keys are cached and refreshed. In short:
//!
//! - `alg` must be one of the accepted asymmetric algorithms ([`Algorithm`];
//!   `none` and `HS*` cannot even be configured) and fit the key's type.
//! - The token must name its key with `kid`. IdentSphere always does, so a
//!   token without one is refused ([`ValidationError::MissingKeyId`]) rather
//!   than tried against every key.
//! - An unknown `kid` triggers one refetch of the JWKS (a rotated-in key),
//!   at most once per cooldown; concurrent validations share one fetch.
//! - When the JWKS cannot be fetched, a cached copy keeps being used for a
//!   bounded time; with none, validation fails with
//!   [`ValidationError::JwksUnavailable`] (HTTP 503 from the layer, not 401).
//!
//! A validator that never calls the server cannot see revoked sessions: a
//! revoked session's tokens stay valid here until they expire (15 minutes
//! by default).
//!
//! # Features
//!
//! - `axum` (off by default): `Claims` becomes an extractor reading what
//!   [`RequireAuthLayer`] stored, and `Authenticated` validates by itself
//!   with a `Validator` from the router state.
#![deny(missing_docs)]

mod algorithm;
#[cfg(feature = "axum")]
mod axum;
mod claims;
mod error;
mod jwks;
mod layer;
mod validator;

pub use algorithm::{Algorithm, UnsupportedAlgorithm};
#[cfg(feature = "axum")]
pub use axum::Authenticated;
pub use claims::{Actor, Claims};
pub use error::{BuildError, JwksError, ValidationError};
pub use layer::{AuthRejection, RequireAuth, RequireAuthLayer};
pub use validator::{Validator, ValidatorBuilder};
