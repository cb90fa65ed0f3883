//! identsphere-jwt against a real IdentSphere server over HTTP, and against
//! JWKS endpoints the tests control (counting fetches, failing on demand).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod cache;
mod example;
#[cfg(feature = "axum")]
mod extract;
mod forged;
mod layer;
mod server;
