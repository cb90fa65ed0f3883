//! The binary's settings, layered: defaults, then the TOML file given with
//! `--config`, then `IDENTSPHERE_*` variables (the environment wins). Values are
//! parsed once, here, and every error names the environment variable and the
//! fix, so a bad value stops the start instead of misbehaving later.
//!
//! The environment comes in as an argument so tests never touch the process's.
use identsphere::{
    core::service::MasterCredentials,
    core::{
        rate_limit::{Limit, LimitKind},
        tokens::JwtAlg,
    },
    AuthServiceConfig,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::{
    collections::BTreeMap,
    fmt, fs,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};
use url::Url;

mod files;
use files::{per_install_secret, prepare_data_dir, random_secret, read_secret, sqlite_url};

const PREFIX: &str = "IDENTSPHERE_";
const DEFAULT_PUBLIC_URL: &str = "http://localhost:8080";
const DEFAULT_DATA_DIR: &str = "./identsphere-data";
const SECRET_FILE: &str = "jwt_secret";

/// Every setting, spelled as its TOML key; the variable is `IDENTSPHERE_` + the key
/// uppercased. A test keeps this in step with [`FileConfig`].
const KEYS: &[&str] = &[
    "listen",
    "max_connections",
    "header_read_timeout_secs",
    "idle_timeout_secs",
    "request_timeout_secs",
    "body_read_timeout_secs",
    "public_url",
    "data_dir",
    "database_url",
    "database_url_file",
    "db_max_connections",
    "jwt_secret",
    "jwt_secret_file",
    "jwt_alg",
    "access_expiry_secs",
    "refresh_expiry_secs",
    "refresh_reuse_grace_secs",
    "step_up_max_age_secs",
    "audience",
    "cookies_secure",
    "smtp_url",
    "smtp_url_file",
    "mail_from",
    "redis_url",
    "master_username",
    "master_password",
    "master_password_file",
    "require_email_verification",
    "password_min_length",
    "password_max_length",
    "password_require_classes",
    "password_common_list",
    "app_permissions",
    "api_keys_allow_wildcard",
    "rate_limits",
    "rate_limit_overrides",
    "webauthn_rp_id",
    "webauthn_origins",
    "log_format",
];

/// Ours but not settings: `--config`'s variable and the store test suites' database,
/// which developers keep exported; warning about them would be noise.
const OTHER_VARS: &[&str] = &[
    "IDENTSPHERE_CONFIG",
    "IDENTSPHERE_TEST_DATABASE_URL",
    "IDENTSPHERE_TEST_REDIS_URL",
];

/// A value that cannot work, named by its environment variable (or by the config
/// file, for a file that cannot be read or parsed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `IDENTSPHERE_…`, or `FILE:LINE`.
    pub name: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ConfigError {
    fn new(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The environment variable of a setting (also used for the library's field names,
/// which match the TOML keys).
pub fn var_name(key: &str) -> String {
    format!("{PREFIX}{}", key.to_ascii_uppercase())
}

/// How the log is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("expected text or json, got {other:?}")),
        }
    }
}

/// What to do when no JWT secret is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretMode {
    /// Read or create the per-install secret in the data directory (`serve`, `keys`).
    Persistent,
    /// Use a random in-memory one: `migrate` signs nothing, and a migration job
    /// should not leave a secret file behind (or fail on a read-only disk).
    Throwaway,
}

/// Everything the binary runs with.
pub struct Settings {
    /// Where `serve` listens.
    pub listen: SocketAddr,
    /// Connection limit and connection timeouts of `serve`.
    pub serve: ServeSettings,
    /// Holds the SQLite database and the per-install secret.
    pub data_dir: PathBuf,
    /// Text or JSON logs.
    pub log_format: LogFormat,
    /// `false` only for load tests.
    pub rate_limits: bool,
    /// Shared rate-limit budgets for several instances (also in `auth`).
    pub redis_url: Option<Url>,
    /// The library's configuration, validated.
    pub auth: AuthServiceConfig,
    /// Worth a warning at start; logged once the logger is up.
    pub warnings: Vec<String>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("serve", &self.serve)
            .field("data_dir", &self.data_dir)
            .field("log_format", &self.log_format)
            .field("rate_limits", &self.rate_limits)
            // A Redis URL may carry a password.
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<redacted>"))
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// How `serve` treats connections (the request and body timeouts are the
/// library's, in [`AuthServiceConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeSettings {
    /// Most client connections at once (before the open-file limit check).
    pub max_connections: usize,
    /// From accept, or from the first byte of a request, to the end of its head.
    pub header_read_timeout: Duration,
    /// Between a response and the next request on a kept-alive connection.
    pub idle_timeout: Duration,
}

const DEFAULT_MAX_CONNECTIONS: u64 = 4096;
const MAX_MAX_CONNECTIONS: u64 = 1_000_000;
const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;

/// The config file. Numbers and flags are typed by TOML; other values are text
/// parsed by the same functions as the environment, so both accept the same forms.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    max_connections: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    body_read_timeout_secs: Option<u64>,
    public_url: Option<String>,
    data_dir: Option<String>,
    database_url: Option<SecretString>,
    database_url_file: Option<String>,
    db_max_connections: Option<u32>,
    jwt_secret: Option<SecretString>,
    jwt_secret_file: Option<String>,
    jwt_alg: Option<String>,
    access_expiry_secs: Option<u64>,
    refresh_expiry_secs: Option<u64>,
    refresh_reuse_grace_secs: Option<u64>,
    step_up_max_age_secs: Option<u64>,
    audience: Option<String>,
    cookies_secure: Option<Flag>,
    smtp_url: Option<SecretString>,
    smtp_url_file: Option<String>,
    mail_from: Option<String>,
    redis_url: Option<String>,
    master_username: Option<String>,
    master_password: Option<SecretString>,
    master_password_file: Option<String>,
    require_email_verification: Option<Flag>,
    password_min_length: Option<u64>,
    password_max_length: Option<u64>,
    password_require_classes: Option<Vec<String>>,
    password_common_list: Option<Flag>,
    app_permissions: Option<Vec<String>>,
    api_keys_allow_wildcard: Option<Flag>,
    rate_limits: Option<Flag>,
    rate_limit_overrides: Option<BTreeMap<String, String>>,
    webauthn_rp_id: Option<String>,
    webauthn_origins: Option<Vec<String>>,
    log_format: Option<String>,
}

/// A TOML boolean that also takes the environment's spellings (`"off"`, `1`…).
#[derive(Clone, Copy, Deserialize)]
#[serde(try_from = "FlagRepr")]
struct Flag(bool);

#[derive(Deserialize)]
#[serde(untagged)]
enum FlagRepr {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl TryFrom<FlagRepr> for Flag {
    type Error = String;
    fn try_from(repr: FlagRepr) -> Result<Self, String> {
        match repr {
            FlagRepr::Bool(b) => Ok(Self(b)),
            FlagRepr::Int(i) => parse_bool(&i.to_string()).map(Self),
            FlagRepr::Text(s) => parse_bool(&s).map(Self),
        }
    }
}

/// The process's `IDENTSPHERE_*` variables. A value that is not UTF-8 is an error
/// (`std::env::vars` would panic on it).
pub fn process_env() -> Result<BTreeMap<String, String>, ConfigError> {
    let mut vars = BTreeMap::new();
    for (key, value) in std::env::vars_os() {
        let Some(key) = key.to_str().filter(|k| k.starts_with(PREFIX)) else {
            continue;
        };
        let value = value
            .into_string()
            .map_err(|_| ConfigError::new(key, "is not valid UTF-8"))?;
        vars.insert(key.to_owned(), value);
    }
    Ok(vars)
}

/// Builds the settings from the optional TOML file and the environment.
///
/// Side effects, on purpose: creates the data directory when the embedded
/// database or the per-install secret needs it, and that secret's file.
pub fn load<I, K, V>(file: Option<&Path>, env: I, mode: SecretMode) -> Result<Settings, ConfigError>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    let mut toml = match file {
        Some(path) => read_toml(path)?,
        None => FileConfig::default(),
    };
    let toml_policy = PolicyToml {
        min: toml.password_min_length.take(),
        max: toml.password_max_length.take(),
        classes: toml.password_require_classes.take(),
        common: flag(toml.password_common_list.take()),
    };
    let env: BTreeMap<String, String> = env
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .filter(|(k, _)| k.starts_with(PREFIX))
        .collect();
    let mut warnings = unknown_vars(&env);
    let mut l = Layers {
        env: &env,
        file,
        origins: BTreeMap::new(),
    };

    let listen = l.text("listen", toml.listen, parse_listen)?;
    let listen = listen.unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)));
    let serve = serve_settings(
        &mut l,
        toml.max_connections,
        toml.header_read_timeout_secs,
        toml.idle_timeout_secs,
    )?;
    let request_timeout = timeout(&mut l, "request_timeout_secs", toml.request_timeout_secs)?;
    let body_read_timeout = timeout(
        &mut l,
        "body_read_timeout_secs",
        toml.body_read_timeout_secs,
    )?;
    let public_url = match l.text("public_url", toml.public_url, parse_url)? {
        Some(url) => url,
        None => parse_url(DEFAULT_PUBLIC_URL).map_err(|m| l.error("public_url", m))?,
    };
    let data_dir = l.text("data_dir", toml.data_dir, parse_string)?;
    let data_dir = PathBuf::from(data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into()));

    let database_url = l.secret("database_url", toml.database_url, toml.database_url_file)?;
    let jwt_secret = l.secret("jwt_secret", toml.jwt_secret, toml.jwt_secret_file)?;
    let per_install = jwt_secret.is_none() && mode == SecretMode::Persistent;
    if database_url.is_none() || per_install {
        let warning = prepare_data_dir(&data_dir).map_err(|m| l.error("data_dir", m))?;
        warnings.extend(warning);
    }
    let database_url = match database_url {
        Some(url) => url,
        None => SecretString::from(sqlite_url(&data_dir)),
    };
    let jwt_secret = match jwt_secret {
        Some(secret) => secret,
        None if per_install => {
            let path = data_dir.join(SECRET_FILE);
            let secret = per_install_secret(&path).map_err(|m| l.error("jwt_secret", m))?;
            l.origins
                .insert("jwt_secret", format!(" (read from {})", path.display()));
            secret
        }
        None => random_secret()
            .map_err(|e| l.error("jwt_secret", format!("cannot generate one: {e}")))?,
    };

    let mut auth = AuthServiceConfig::new(database_url.expose_secret(), public_url, jwt_secret);
    auth.request_timeout = request_timeout.unwrap_or(auth.request_timeout);
    auth.body_read_timeout = body_read_timeout.unwrap_or(auth.body_read_timeout);
    if let Some(n) = l.typed(
        "db_max_connections",
        toml.db_max_connections,
        parse_connections,
    )? {
        if n == 0 {
            return Err(l.error("db_max_connections", "must be at least 1"));
        }
        auth.database_max_connections = n;
    }
    if let Some(alg) = l.text("jwt_alg", toml.jwt_alg, JwtAlg::from_str)? {
        auth.jwt_alg = alg;
    }
    if let Some(audience) = l.text("audience", toml.audience, parse_string)? {
        auth.audience = audience;
    }
    if let Some(s) = l.typed("access_expiry_secs", toml.access_expiry_secs, parse_secs)? {
        auth.access_expiry = Duration::from_secs(s);
    }
    if let Some(s) = l.typed("refresh_expiry_secs", toml.refresh_expiry_secs, parse_secs)? {
        auth.refresh_expiry = Duration::from_secs(s);
    }
    let grace = l.typed(
        "refresh_reuse_grace_secs",
        toml.refresh_reuse_grace_secs,
        parse_secs,
    )?;
    if let Some(s) = grace {
        auth.refresh_reuse_grace = Duration::from_secs(s);
    }
    let step_up = l.typed(
        "step_up_max_age_secs",
        toml.step_up_max_age_secs,
        parse_secs,
    )?;
    if let Some(s) = step_up {
        auth.step_up_max_age = Duration::from_secs(s);
    }
    if let Some(on) = l.typed("cookies_secure", flag(toml.cookies_secure), parse_bool)? {
        auth.cookies_secure = on;
    }
    auth.smtp_url = l.secret("smtp_url", toml.smtp_url, toml.smtp_url_file)?;
    auth.mail_from = match l.text("mail_from", toml.mail_from, parse_string)? {
        Some(from) => from,
        None => default_mail_from(&auth.public_url),
    };
    let verify = flag(toml.require_email_verification);
    if let Some(on) = l.typed("require_email_verification", verify, parse_bool)? {
        auth.require_email_verification = on;
    }
    password_policy(&mut l, &toml_policy, &mut auth.password_policy)?;
    // A TOML list, or a comma-separated variable.
    let app_permissions = toml.app_permissions.map(|list| list.join(","));
    if let Some(list) = l.text("app_permissions", app_permissions, parse_string)? {
        auth.app_permissions = list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
    }
    let wildcard = flag(toml.api_keys_allow_wildcard);
    if let Some(on) = l.typed("api_keys_allow_wildcard", wildcard, parse_bool)? {
        auth.allow_wildcard_api_key_scope = on;
        if on {
            warnings.push(
                "IDENTSPHERE_API_KEYS_ALLOW_WILDCARD=true: API keys may carry every permission of their owner".into(),
            );
        }
    }
    auth.webauthn_rp_id = l.text("webauthn_rp_id", toml.webauthn_rp_id, parse_rp_id)?;
    // A TOML list, or a comma-separated variable.
    let origins = toml.webauthn_origins.map(|list| list.join(","));
    if let Some(list) = l.text("webauthn_origins", origins, parse_origins)? {
        auth.webauthn_origins = list;
    }
    if let Err(m) = auth.passkey_settings_check() {
        return Err(l.error("webauthn_rp_id", m));
    }
    let redis_url = l.text("redis_url", toml.redis_url, parse_redis_url)?;
    auth.redis_url = redis_url
        .as_ref()
        .map(|u| SecretString::from(u.as_str().to_owned()));
    let rate_limits = l
        .typed("rate_limits", flag(toml.rate_limits), parse_bool)?
        .unwrap_or(true);
    if !rate_limits {
        warnings.push(
            "IDENTSPHERE_RATE_LIMITS=off: RATE LIMITING IS DISABLED; use this only for load tests on loopback".into(),
        );
    }
    let overrides = toml.rate_limit_overrides.map(|table| {
        table
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    });
    if let Some(list) = l.text(
        "rate_limit_overrides",
        overrides,
        parse_rate_limit_overrides,
    )? {
        for (kind, limit) in list {
            auth.rate_limits.set(kind, limit);
        }
    }
    auth.rate_limits.enabled = rate_limits;
    auth.master = master_credentials(
        &mut l,
        toml.master_username,
        toml.master_password,
        toml.master_password_file,
    )?;
    auth.validate().map_err(|e| match e.field {
        "jwt_secret" => l.error(
            e.field,
            format!("{}; generate one with `openssl rand -hex 32`", e.message),
        ),
        field => l.error(field, e.message),
    })?;

    let log_format = l.text("log_format", toml.log_format, LogFormat::from_str)?;
    if per_install && !identsphere::is_sqlite(&auth) {
        warnings.push(format!(
            "the JWT secret comes from {}, which is per install: instances sharing this PostgreSQL \
             database must all use one IDENTSPHERE_JWT_SECRET",
            data_dir.join(SECRET_FILE).display()
        ));
    }

    Ok(Settings {
        listen,
        serve,
        data_dir,
        log_format: log_format.unwrap_or(LogFormat::Text),
        rate_limits,
        redis_url,
        auth,
        warnings,
    })
}

/// The layers of one load, and where each value not taken from the environment
/// came from, so errors about it say where to look.
struct Layers<'a> {
    env: &'a BTreeMap<String, String>,
    file: Option<&'a Path>,
    origins: BTreeMap<&'static str, String>,
}

impl Layers<'_> {
    fn error(&self, key: &str, message: impl fmt::Display) -> ConfigError {
        let origin = self.origins.get(key).map_or("", String::as_str);
        ConfigError::new(var_name(key), format!("{message}{origin}"))
    }

    fn note_file_origin(&mut self, key: &'static str) {
        if let Some(file) = self.file {
            self.origins
                .insert(key, format!(" (set as `{key}` in {})", file.display()));
        }
    }

    /// A text value: the variable if set, else the TOML one, through one parser.
    fn text<T>(
        &mut self,
        key: &'static str,
        toml: Option<String>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let env = self.env;
        let raw = match (env.get(&var_name(key)), toml) {
            (Some(value), _) => value.clone(),
            (None, Some(value)) => {
                self.note_file_origin(key);
                value
            }
            (None, None) => return Ok(None),
        };
        parse(&raw).map(Some).map_err(|m| self.error(key, m))
    }

    /// A number or flag: TOML has typed it already (and its errors name the key).
    fn typed<T>(
        &mut self,
        key: &'static str,
        toml: Option<T>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let env = self.env;
        if let Some(raw) = env.get(&var_name(key)) {
            return parse(raw).map(Some).map_err(|m| self.error(key, m));
        }
        if toml.is_some() {
            self.note_file_origin(key);
        }
        Ok(toml)
    }

    /// A secret, given inline or as a file to read (`IDENTSPHERE_X_FILE` or `x_file`,
    /// as Docker and systemd credentials provide them).
    fn secret(
        &mut self,
        key: &'static str,
        toml: Option<SecretString>,
        toml_file: Option<String>,
    ) -> Result<Option<SecretString>, ConfigError> {
        let env = self.env;
        let var = var_name(key);
        let path = match (env.get(&var), env.get(&format!("{var}_FILE"))) {
            (Some(_), Some(_)) => {
                return Err(self.error(key, format!("set {var} or {var}_FILE, not both")))
            }
            (Some(value), None) => return Ok(Some(SecretString::from(value.clone()))),
            (None, Some(path)) => path.clone(),
            (None, None) => match (toml, toml_file) {
                (Some(_), Some(_)) => {
                    let message =
                        format!("set `{key}` or `{key}_file` in the config file, not both");
                    return Err(self.error(key, message));
                }
                (Some(value), None) => {
                    self.note_file_origin(key);
                    return Ok(Some(value));
                }
                (None, Some(path)) => path,
                (None, None) => return Ok(None),
            },
        };
        let secret = read_secret(Path::new(&path)).map_err(|m| self.error(key, m))?;
        self.origins.insert(key, format!(" (read from {path})"));
        Ok(Some(secret))
    }
}

fn serve_settings(
    l: &mut Layers<'_>,
    max_connections: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
) -> Result<ServeSettings, ConfigError> {
    let max = l.typed("max_connections", max_connections, parse_connection_count)?;
    let max = max.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if !(1..=MAX_MAX_CONNECTIONS).contains(&max) {
        return Err(l.error(
            "max_connections",
            format!("must be between 1 and {MAX_MAX_CONNECTIONS}"),
        ));
    }
    let header = timeout(l, "header_read_timeout_secs", header_read_timeout_secs)?;
    let idle = timeout(l, "idle_timeout_secs", idle_timeout_secs)?;
    Ok(ServeSettings {
        max_connections: usize::try_from(max).unwrap_or(usize::MAX),
        header_read_timeout: header
            .unwrap_or(Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS)),
        idle_timeout: idle.unwrap_or(Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS)),
    })
}

/// A timeout in whole seconds: zero would mean "never" to some readers and
/// "at once" to others, so it is refused, like anything past an hour.
fn timeout(
    l: &mut Layers<'_>,
    key: &'static str,
    toml: Option<u64>,
) -> Result<Option<Duration>, ConfigError> {
    let max = identsphere::config::MAX_TIMEOUT.as_secs();
    match l.typed(key, toml, parse_secs)? {
        Some(secs) if (1..=max).contains(&secs) => Ok(Some(Duration::from_secs(secs))),
        Some(_) => Err(l.error(key, format!("must be between 1 and {max} seconds"))),
        None => Ok(None),
    }
}

fn parse_connection_count(s: &str) -> Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("expected a number of connections, got {s:?}"))
}

/// The password-policy settings of the config file.
struct PolicyToml {
    min: Option<u64>,
    max: Option<u64>,
    classes: Option<Vec<String>>,
    common: Option<bool>,
}

/// Lengths, required character classes (a TOML list or `lower,upper,digit,symbol`;
/// empty for none) and the common-password list; the library refuses a
/// minimum below 8 or a maximum above 1024, and the error names the variable.
fn password_policy(
    l: &mut Layers<'_>,
    toml: &PolicyToml,
    policy: &mut identsphere::core::password::PasswordPolicy,
) -> Result<(), ConfigError> {
    if let Some(n) = l.typed("password_min_length", toml.min, parse_length)? {
        policy.min_chars = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(n) = l.typed("password_max_length", toml.max, parse_length)? {
        policy.max_chars = usize::try_from(n).unwrap_or(usize::MAX);
    }
    let classes = toml.classes.as_ref().map(|list| list.join(","));
    if let Some(classes) = l.text("password_require_classes", classes, parse_classes)? {
        policy.required_classes = classes;
    }
    if let Some(on) = l.typed("password_common_list", toml.common, parse_bool)? {
        policy.refuse_common = on;
    }
    Ok(())
}

fn parse_length(s: &str) -> Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("expected a number of characters, got {s:?}"))
}

fn parse_classes(s: &str) -> Result<Vec<identsphere::core::password::CharClass>, String> {
    let mut classes = Vec::new();
    for class in s.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let class = class.parse()?;
        if !classes.contains(&class) {
            classes.push(class);
        }
    }
    Ok(classes)
}

fn master_credentials(
    l: &mut Layers<'_>,
    username: Option<String>,
    password: Option<SecretString>,
    password_file: Option<String>,
) -> Result<Option<MasterCredentials>, ConfigError> {
    let username = l.text("master_username", username, parse_nonempty)?;
    let password = l.secret("master_password", password, password_file)?;
    match (username, password) {
        (Some(username), Some(password)) if !password.expose_secret().is_empty() => {
            Ok(Some(MasterCredentials { username, password }))
        }
        (Some(_), Some(_)) => Err(l.error("master_password", "must not be empty")),
        (None, None) => Ok(None),
        (Some(_), None) => Err(l.error(
            "master_password",
            "must be set with IDENTSPHERE_MASTER_USERNAME (both or neither)",
        )),
        (None, Some(_)) => Err(l.error(
            "master_username",
            "must be set with IDENTSPHERE_MASTER_PASSWORD (both or neither)",
        )),
    }
}

fn unknown_vars(env: &BTreeMap<String, String>) -> Vec<String> {
    let known: Vec<String> = KEYS.iter().map(|k| var_name(k)).collect();
    env.keys()
        .filter(|var| !known.contains(var) && !OTHER_VARS.contains(&var.as_str()))
        .map(|var| format!("{var} is not a known setting and is ignored (check its spelling)"))
        .collect()
}

fn read_toml(path: &Path) -> Result<FileConfig, ConfigError> {
    let name = path.display().to_string();
    let text = fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&name, format!("cannot read the config file: {e}")))?;
    toml::from_str(&text).map_err(|e| {
        // toml's Display spans several lines; the start error stays on one.
        let line = e
            .span()
            .and_then(|s| text.get(..s.start))
            .map(|before| before.matches('\n').count() + 1);
        let name = line.map_or(name, |line| format!("{}:{line}", path.display()));
        ConfigError::new(name, e.message().trim_end())
    })
}

fn default_mail_from(public_url: &Url) -> String {
    // A dotless host (`localhost`, an IP) makes no deliverable sender domain.
    let host = match public_url.host() {
        Some(url::Host::Domain(domain)) if domain.contains('.') => domain,
        _ => "localhost",
    };
    format!("IdentSphere <no-reply@{host}>")
}

fn flag(value: Option<Flag>) -> Option<bool> {
    value.map(|Flag(on)| on)
}

fn parse_string(s: &str) -> Result<String, String> {
    Ok(s.to_owned())
}

fn parse_nonempty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(s.to_owned())
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("expected an IP address and port like 127.0.0.1:8080 or [::]:8080, got {s:?}")
    })
}

fn parse_url(s: &str) -> Result<Url, String> {
    Url::parse(s.trim())
        .map_err(|e| format!("{e}: expected a URL like https://auth.example.com, got {s:?}"))
}

fn parse_rp_id(s: &str) -> Result<String, String> {
    let id = s.trim().to_ascii_lowercase();
    let host = url::Host::parse(&id)
        .map_err(|e| format!("{e}: expected a domain name like example.com"))?;
    match host {
        url::Host::Domain(_) if !id.contains(['/', ':']) => Ok(id),
        _ => Err(format!(
            "expected a domain name like example.com (no scheme, port or IP address), got {s:?}"
        )),
    }
}

fn parse_origins(s: &str) -> Result<Vec<Url>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            let url = parse_url(o)?;
            if url.path() != "/" || url.query().is_some() {
                return Err(format!(
                    "{o:?} is not an origin: give scheme, host and port only"
                ));
            }
            Ok(url)
        })
        .collect()
}

fn parse_redis_url(s: &str) -> Result<Url, String> {
    // No echo of the value: a Redis URL may carry a password.
    let expected = "expected redis://HOST:PORT or rediss://HOST:PORT";
    let url = Url::parse(s.trim()).map_err(|e| format!("{e}: {expected}"))?;
    if !matches!(url.scheme(), "redis" | "rediss") || url.host_str().is_none() {
        return Err(expected.into());
    }
    Ok(url)
}

/// `KIND=RATE/UNIT[,BURST]` entries separated by `;`, e.g.
/// `login_ip=30/min,15;signup_ip=5/h`.
fn parse_rate_limit_overrides(s: &str) -> Result<Vec<(LimitKind, Limit)>, String> {
    s.split(';')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (name, value) = entry
                .split_once('=')
                .ok_or_else(|| format!("expected KIND=RATE/UNIT[,BURST], got {entry:?}"))?;
            let kind = LimitKind::parse(name.trim()).ok_or_else(|| {
                let known: Vec<_> = LimitKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown limit {:?}; known: {}",
                    name.trim(),
                    known.join(", ")
                )
            })?;
            let limit = Limit::parse(value).map_err(|m| format!("{}: {m}", kind.as_str()))?;
            Ok((kind, limit))
        })
        .collect()
}

fn parse_secs(s: &str) -> Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("expected a whole number of seconds, got {s:?}"))
}

fn parse_connections(s: &str) -> Result<u32, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("expected a number of connections, got {s:?}"))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" => Ok(true),
        "false" | "0" | "off" => Ok(false),
        _ => Err(format!("expected true/false, 1/0 or on/off, got {s:?}")),
    }
}

#[cfg(test)]
mod tests;
