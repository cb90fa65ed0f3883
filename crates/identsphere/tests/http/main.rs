//! HTTP tests: the real server on a loopback port, over SQLite always and
//! PostgreSQL when `IDENTSPHERE_TEST_DATABASE_URL` is set, with a real SMTP
//! listener receiving the mail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod account_jobs;
mod recorder;
mod support;

mod accounts;
mod addresses;
mod api_keys;
mod audit;
mod bad_input;
mod clients;
mod instances;
mod invitations;
mod jobs;
mod mfa;
mod openapi;
mod org_mfa;
mod organizations;
mod passkeys;
mod passwords;
mod rate_limits;
mod refresh;
mod security;
mod sessions;
mod slow_clients;
mod tokens;
mod transports;
