//! IdentSphere's domain: accounts, sessions, tokens and the policies around them.
//!
//! This crate knows nothing of HTTP, SQL or the process environment. Storage is a
//! set of traits ([`store`]) implemented by the `identsphere-store-*` crates; the
//! HTTP layer lives in the `identsphere` crate and calls [`service::Identity`].
#![deny(missing_docs)]

pub mod addresses;
pub mod audit;
pub mod clock;
pub mod email;
pub mod error;
pub mod ids;
pub mod import;
pub mod jobs;
pub mod live_cache;
pub mod mail;
pub mod mfa;
pub mod passkeys;
pub mod password;
pub mod permissions;
pub mod rate_limit;
pub mod secret;
pub mod service;
pub mod store;
pub mod text;
pub mod tokens;

pub use clock::{Clock, ManualClock, SystemClock};
pub use email::Email;
pub use error::{CoreError, FieldError, Result};
pub use ids::{OrgId, SessionId, UserId};
