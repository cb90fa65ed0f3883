//! The library's configuration: a typed value that hosts build in code.
//! The library never reads the environment; the `identsphere` binary does.
use identsphere_core::{
    clock::{Clock, SystemClock},
    password::{HashParams, PasswordPolicy, PolicyError},
    permissions::Permission,
    rate_limit::RateLimits,
    service::MasterCredentials,
    tokens::{JwtAlg, SigningSecret},
};
use secrecy::SecretString;
use std::{net::IpAddr, sync::Arc, time::Duration};
use url::Url;

/// The shortest master password accepted: it is the one credential that
/// reaches every client, and it is guessed over HTTP.
pub const MASTER_PASSWORD_MIN_CHARS: usize = 16;

/// A configuration value that cannot work, named by its field
/// (the field names match the TOML keys of the binary's config file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// The field, e.g. `jwt_secret`.
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ConfigError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Everything [`crate::AuthService`] needs.
#[derive(Clone)]
pub struct AuthServiceConfig {
    /// `sqlite://PATH` or `postgres://…`.
    pub database_url: SecretString,
    /// PostgreSQL only: keep the tables in this schema (created if missing).
    pub database_schema: Option<String>,
    /// PostgreSQL only: connection pool size.
    pub database_max_connections: u32,
    /// Apply pending migrations in [`crate::AuthService::new`].
    pub run_migrations: bool,
    /// Public base URL: the token issuer and the base of emailed links.
    pub public_url: Url,
    /// The server secret: the HS256 key, and the root of internal keys. At least 32 bytes.
    pub jwt_secret: SecretString,
    /// Access-token signing algorithm.
    pub jwt_alg: JwtAlg,
    /// `aud` of access tokens.
    pub audience: String,
    /// Access-token lifetime.
    pub access_expiry: Duration,
    /// Refresh-token lifetime.
    pub refresh_expiry: Duration,
    /// How long a retired refresh token still yields its successor (zero turns it off).
    pub refresh_reuse_grace: Duration,
    /// How recent a sign-in or step-up must be for sensitive operations.
    pub step_up_max_age: Duration,
    /// Mark cookies `Secure`; may be off only for a loopback public URL.
    pub cookies_secure: bool,
    /// `smtp://host:port` or `smtps://user:pass@host:port`; `None` writes mail to the log.
    pub smtp_url: Option<SecretString>,
    /// Sender of outgoing mail.
    pub mail_from: String,
    /// Refuse password login until the email is verified.
    pub require_email_verification: bool,
    /// Rules for new passwords.
    pub password_policy: PasswordPolicy,
    /// Argon2id parameters.
    pub password_hash: HashParams,
    /// Most password hashes computed at once (defaults to the number of CPUs).
    pub hash_concurrency: usize,
    /// Largest JSON request body, in bytes.
    pub max_json_body: usize,
    /// How long a request may take from the moment it reaches the router
    /// (headers read) to its response, body read included; past it the
    /// answer is `503` `response_timeout`. Bounds every handler, so a
    /// stalled database or mail server cannot hold connections forever.
    pub request_timeout: Duration,
    /// How long the whole request body may take to arrive, counted from
    /// the moment the request reaches the router; past it the answer is
    /// `408` `request_timeout`. With the JSON body limit this is a minimum
    /// rate (64 KiB in 10 s by default), which stops bodies dripped a byte
    /// at a time. Must be shorter than `request_timeout`.
    pub body_read_timeout: Duration,
    /// The clock (tests inject a manual one).
    pub clock: Arc<dyn Clock>,
    /// Permissions the host application defines (`app:` names, e.g.
    /// `app:invoices.read`): owners and admins hold them, custom roles and
    /// API-key scopes may name them.
    pub app_permissions: Vec<String>,
    /// Whether API keys may have the scope `*` (all of the owner's
    /// permissions). Off by default: keys should carry what they need.
    pub allow_wildcard_api_key_scope: bool,
    /// Rate limits: on (the default) or off, and each limit's budget
    /// (defaults in README's rate-limit table). Off only for load tests.
    pub rate_limits: RateLimits,
    /// `redis://…` or `rediss://…`: share rate-limit budgets with every
    /// instance using the same Redis. `None` keeps them in this process.
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis key (instances sharing budgets use the same one).
    pub redis_key_prefix: String,
    /// WebAuthn relying-party id: the domain passkeys belong to. `None` takes
    /// the public URL's host; a parent domain (`example.com` for
    /// `auth.example.com`) lets the passkeys work on sibling subdomains.
    pub webauthn_rp_id: Option<String>,
    /// Origins besides the public URL whose pages run passkey ceremonies
    /// (the host app's front end), each on the RP id or a subdomain of it.
    pub webauthn_origins: Vec<Url>,
    /// HTTP Basic credentials of the client API (`/v1/clients`); `None`
    /// (the default) turns it off. The password needs 16 characters or more.
    pub master: Option<MasterCredentials>,
    /// The job worker: polling, leases, retries and dead letters.
    pub jobs: identsphere_core::jobs::JobSettings,
}

impl std::fmt::Debug for AuthServiceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServiceConfig")
            .field("public_url", &self.public_url.as_str())
            .field("jwt_alg", &self.jwt_alg)
            .field("audience", &self.audience)
            .field("access_expiry", &self.access_expiry)
            .field("refresh_expiry", &self.refresh_expiry)
            .field("refresh_reuse_grace", &self.refresh_reuse_grace)
            .field("step_up_max_age", &self.step_up_max_age)
            .field("request_timeout", &self.request_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("cookies_secure", &self.cookies_secure)
            .field("app_permissions", &self.app_permissions)
            .field("rate_limits", &self.rate_limits)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<redacted>"))
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("webauthn_rp_id", &self.webauthn_rp_id)
            .field(
                "webauthn_origins",
                &self
                    .webauthn_origins
                    .iter()
                    .map(Url::as_str)
                    .collect::<Vec<_>>(),
            )
            .field(
                "require_email_verification",
                &self.require_email_verification,
            )
            .field("master", &self.master)
            .field("jobs", &self.jobs)
            .finish_non_exhaustive()
    }
}

impl AuthServiceConfig {
    /// A configuration with the documented defaults (API.md §1).
    pub fn new(database_url: impl Into<String>, public_url: Url, jwt_secret: SecretString) -> Self {
        Self {
            database_url: SecretString::from(database_url.into()),
            database_schema: None,
            database_max_connections: 16,
            run_migrations: true,
            public_url,
            jwt_secret,
            jwt_alg: JwtAlg::Hs256,
            audience: "identsphere".into(),
            access_expiry: Duration::from_secs(900),
            refresh_expiry: Duration::from_secs(2_592_000),
            refresh_reuse_grace: Duration::from_secs(10),
            step_up_max_age: Duration::from_secs(300),
            cookies_secure: true,
            smtp_url: None,
            mail_from: "IdentSphere <no-reply@localhost>".into(),
            require_email_verification: true,
            password_policy: PasswordPolicy::default(),
            password_hash: HashParams::default(),
            hash_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_json_body: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(10),
            clock: Arc::new(SystemClock),
            app_permissions: Vec::new(),
            allow_wildcard_api_key_scope: false,
            rate_limits: RateLimits::default(),
            redis_url: None,
            redis_key_prefix: "identsphere:rl:".into(),
            webauthn_rp_id: None,
            webauthn_origins: Vec::new(),
            master: None,
            jobs: Default::default(),
        }
    }

    /// Whether the passkey settings fit the public URL: explicit settings
    /// must work; without any, a public URL on an IP address just turns
    /// passkeys off.
    ///
    /// # Errors
    /// Why the RP id does not cover every origin.
    pub fn passkey_settings_check(&self) -> Result<(), String> {
        if self.webauthn_rp_id.is_none() && self.webauthn_origins.is_empty() {
            return Ok(());
        }
        let settings = self.passkey_settings();
        match identsphere_core::passkeys::RelyingParty::new(&self.public_url, &settings) {
            Ok(_) => Ok(()),
            Err(identsphere_core::CoreError::Validation(errors)) => Err(errors
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
                .join("; ")),
            Err(e) => Err(e.to_string()),
        }
    }

    pub(crate) fn passkey_settings(&self) -> identsphere_core::passkeys::PasskeySettings {
        identsphere_core::passkeys::PasskeySettings {
            rp_id: self.webauthn_rp_id.clone(),
            extra_origins: self.webauthn_origins.clone(),
        }
    }

    /// Checks every rule; [`crate::AuthService::new`] calls it too.
    ///
    /// # Errors
    /// The first rule broken, naming its field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        SigningSecret::new(self.jwt_secret.clone())
            .map_err(|m| ConfigError::new("jwt_secret", m))?;
        let url = self.database_url.expose_secret();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return Err(ConfigError::new(
                "database_url",
                "must start with sqlite: or postgres:",
            ));
        }
        if !matches!(self.public_url.scheme(), "http" | "https")
            || self.public_url.host_str().is_none()
        {
            return Err(ConfigError::new(
                "public_url",
                "must be an http(s) URL with a host",
            ));
        }
        if !self.cookies_secure && !is_loopback(&self.public_url) {
            return Err(ConfigError::new(
                "cookies_secure",
                "false is allowed only when the public URL's host is localhost or a loopback address",
            ));
        }
        if let Some(master) = &self.master {
            if master.username.trim().is_empty()
                || master.username.chars().any(|c| c == ':' || c.is_control())
            {
                return Err(ConfigError::new(
                    "master_username",
                    "must not be empty, nor contain `:` or control characters (HTTP Basic)",
                ));
            }
            if master.password.expose_secret().chars().count() < MASTER_PASSWORD_MIN_CHARS {
                return Err(ConfigError::new(
                    "master_password",
                    format!("must be at least {MASTER_PASSWORD_MIN_CHARS} characters: it guards every client"),
                ));
            }
        }
        if self.audience.trim().is_empty() {
            return Err(ConfigError::new("audience", "must not be empty"));
        }
        if self.access_expiry < Duration::from_secs(10)
            || self.access_expiry > Duration::from_secs(86_400)
        {
            return Err(ConfigError::new(
                "access_expiry_secs",
                "must be between 10 and 86400 seconds",
            ));
        }
        if self.refresh_expiry <= self.access_expiry {
            return Err(ConfigError::new(
                "refresh_expiry_secs",
                "must be longer than the access expiry",
            ));
        }
        if self.refresh_reuse_grace > Duration::from_secs(300) {
            return Err(ConfigError::new(
                "refresh_reuse_grace_secs",
                "must be at most 300 seconds",
            ));
        }
        if self.step_up_max_age.is_zero() || self.step_up_max_age > Duration::from_secs(86_400) {
            return Err(ConfigError::new(
                "step_up_max_age_secs",
                "must be between 1 and 86400 seconds",
            ));
        }
        if let Some(smtp) = &self.smtp_url {
            crate::mail::SmtpMailer::parse_url(smtp.expose_secret())
                .map_err(|m| ConfigError::new("smtp_url", m))?;
        }
        if self.mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError::new(
                "mail_from",
                "must be an address like `Name <no-reply@example.com>`",
            ));
        }
        self.password_policy.validate().map_err(|e| match e {
            PolicyError::MinLength(m) => ConfigError::new("password_min_length", m),
            PolicyError::MaxLength(m) => ConfigError::new("password_max_length", m),
        })?;
        check_timeouts(self.request_timeout, self.body_read_timeout)?;
        if self.hash_concurrency == 0 {
            return Err(ConfigError::new("hash_concurrency", "must be at least 1"));
        }
        self.parsed_app_permissions()?;
        self.passkey_settings_check()
            .map_err(|m| ConfigError::new("webauthn_rp_id", m))?;
        if let Some(redis) = &self.redis_url {
            let ok = Url::parse(redis.expose_secret())
                .is_ok_and(|u| matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some());
            if !ok {
                // No echo of the value: it may carry a password.
                return Err(ConfigError::new(
                    "redis_url",
                    "expected redis://HOST:PORT or rediss://HOST:PORT",
                ));
            }
        }
        Ok(())
    }
}

impl AuthServiceConfig {
    pub(crate) fn parsed_app_permissions(&self) -> Result<Vec<Permission>, ConfigError> {
        self.app_permissions
            .iter()
            .map(|raw| match Permission::parse(raw) {
                Ok(p) if p.as_str().starts_with("app:") => Ok(p),
                _ => Err(ConfigError::new(
                    "app_permissions",
                    format!(
                        "{raw:?} is not an app permission: use app: followed by a-z, 0-9, _ . : -"
                    ),
                )),
            })
            .collect()
    }
}

/// The longest request or body timeout accepted: an hour is far past any
/// legitimate request, and a bound keeps deadline arithmetic from overflowing.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

fn check_timeouts(request: Duration, body: Duration) -> Result<(), ConfigError> {
    let in_range = |d: Duration| d >= Duration::from_secs(1) && d <= MAX_TIMEOUT;
    if !in_range(request) {
        return Err(ConfigError::new(
            "request_timeout_secs",
            "must be between 1 and 3600 seconds",
        ));
    }
    if !in_range(body) {
        return Err(ConfigError::new(
            "body_read_timeout_secs",
            "must be between 1 and 3600 seconds",
        ));
    }
    // Otherwise a slow body would run into the request timeout first and be
    // answered 503 (our fault) instead of 408 (the client's).
    if body >= request {
        return Err(ConfigError::new(
            "body_read_timeout_secs",
            "must be shorter than the request timeout (IDENTSPHERE_REQUEST_TIMEOUT_SECS)",
        ));
    }
    Ok(())
}

/// Whether the URL's host is `localhost` or a loopback address.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> AuthServiceConfig {
        AuthServiceConfig::new(
            "sqlite://x.db",
            url.parse().unwrap(),
            SecretString::from("k".repeat(32)),
        )
    }

    #[test]
    fn defaults_validate() {
        assert_eq!(config("http://localhost:8080").validate(), Ok(()));
    }

    #[test]
    fn short_secret_refused() {
        let mut c = config("http://localhost:8080");
        c.jwt_secret = SecretString::from("k".repeat(31));
        assert_eq!(c.validate().unwrap_err().field, "jwt_secret");
    }

    #[test]
    fn insecure_cookies_only_on_loopback() {
        for ok in [
            "http://localhost:8080",
            "http://127.0.0.1",
            "http://[::1]:9000",
            "http://app.localhost",
        ] {
            let mut c = config(ok);
            c.cookies_secure = false;
            assert_eq!(c.validate(), Ok(()), "{ok}");
        }
        for bad in [
            "https://auth.example.com",
            "http://10.0.0.1",
            "http://localhost.example.com",
        ] {
            let mut c = config(bad);
            c.cookies_secure = false;
            assert_eq!(c.validate().unwrap_err().field, "cookies_secure", "{bad}");
        }
    }

    #[test]
    fn bad_redis_url_refused() {
        let mut c = config("http://localhost:8080");
        c.redis_url = Some(SecretString::from("http://x:6379"));
        assert_eq!(c.validate().unwrap_err().field, "redis_url");
        c.redis_url = Some(SecretString::from("redis://127.0.0.1:6379"));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn weak_password_policies_refused() {
        let mut c = config("http://localhost:8080");
        c.password_policy.min_chars = 7;
        assert_eq!(c.validate().unwrap_err().field, "password_min_length");
        let mut c = config("http://localhost:8080");
        c.password_policy.max_chars = 1025;
        assert_eq!(c.validate().unwrap_err().field, "password_max_length");
        let mut c = config("http://localhost:8080");
        c.password_policy.min_chars = 8;
        c.password_policy.max_chars = 1024;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn timeouts_are_bounded_and_the_body_one_is_shorter() {
        let secs = Duration::from_secs;
        let cases = [
            (secs(0), secs(10), Some("request_timeout_secs")),
            (secs(3601), secs(10), Some("request_timeout_secs")),
            (secs(30), secs(0), Some("body_read_timeout_secs")),
            (secs(30), secs(30), Some("body_read_timeout_secs")),
            (secs(5), secs(10), Some("body_read_timeout_secs")),
            (secs(2), secs(1), None),
            (secs(3600), secs(3599), None),
        ];
        for (request, body, field) in cases {
            let mut c = config("http://localhost:8080");
            c.request_timeout = request;
            c.body_read_timeout = body;
            assert_eq!(
                c.validate().err().map(|e| e.field),
                field,
                "{request:?} {body:?}"
            );
        }
    }

    #[test]
    fn bad_smtp_url_refused() {
        let mut c = config("http://localhost:8080");
        c.smtp_url = Some(SecretString::from("ftp://x"));
        assert_eq!(c.validate().unwrap_err().field, "smtp_url");
    }
}
