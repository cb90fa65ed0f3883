#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
use super::*;
use std::os::unix::fs::PermissionsExt;
use tempfile::TempDir;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// Loads with `vars` plus a data directory inside `dir`, never the process env.
fn load_in(
    dir: &TempDir,
    toml: Option<&str>,
    vars: &[(&str, &str)],
) -> Result<Settings, ConfigError> {
    let data_dir = dir.path().join("data");
    let mut env = vec![(
        "IDENTSPHERE_DATA_DIR".to_owned(),
        data_dir.to_string_lossy().into_owned(),
    )];
    env.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let file = toml.map(|text| {
        let path = dir.path().join("identsphere.toml");
        fs::write(&path, text).unwrap();
        path
    });
    load(file.as_deref(), env, SecretMode::Persistent)
}

fn err_in(dir: &TempDir, toml: Option<&str>, vars: &[(&str, &str)]) -> ConfigError {
    load_in(dir, toml, vars).unwrap_err()
}

#[test]
fn defaults_give_embedded_sqlite_and_documented_values() {
    let dir = TempDir::new().unwrap();
    let s = load_in(&dir, None, &[]).unwrap();
    assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(s.auth.public_url.as_str(), "http://localhost:8080/");
    let db = format!(
        "sqlite://{}/identsphere.db",
        dir.path().join("data").display()
    );
    assert_eq!(s.auth.database_url.expose_secret(), db);
    assert_eq!(s.auth.jwt_alg, JwtAlg::Hs256);
    assert_eq!(s.auth.access_expiry, Duration::from_secs(900));
    assert_eq!(s.auth.refresh_expiry, Duration::from_secs(2_592_000));
    assert_eq!(s.auth.refresh_reuse_grace, Duration::from_secs(10));
    assert_eq!(s.auth.audience, "identsphere");
    assert!(s.auth.cookies_secure && s.auth.require_email_verification && s.rate_limits);
    assert_eq!(s.auth.mail_from, "IdentSphere <no-reply@localhost>");
    assert_eq!(s.auth.database_max_connections, 16);
    assert_eq!(s.log_format, LogFormat::Text);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let mode = fs::metadata(dir.path().join("data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn env_beats_toml_beats_default() {
    let dir = TempDir::new().unwrap();
    let toml = "audience = \"from-file\"\naccess_expiry_secs = 600\ncookies_secure = \"off\"\n";
    let s = load_in(&dir, Some(toml), &[("IDENTSPHERE_AUDIENCE", "from-env")]).unwrap();
    assert_eq!(s.auth.audience, "from-env");
    assert_eq!(s.auth.access_expiry, Duration::from_secs(600));
    assert!(!s.auth.cookies_secure);
    assert_eq!(s.auth.refresh_expiry, Duration::from_secs(2_592_000));
}

#[test]
fn unknown_toml_key_is_refused() {
    let dir = TempDir::new().unwrap();
    let e = err_in(
        &dir,
        Some("listen = \"127.0.0.1:1\"\naudiense = \"x\"\n"),
        &[],
    );
    assert!(e.name.ends_with("identsphere.toml:2"), "{e}");
    assert!(e.message.contains("unknown field `audiense`"), "{e}");
}

#[test]
fn every_toml_key_has_a_known_variable() {
    // serde lists the accepted fields when it refuses one; they must equal KEYS.
    let dir = TempDir::new().unwrap();
    let e = err_in(&dir, Some("nope = 1\n"), &[]);
    let listed: Vec<&str> = e.message.split('`').skip(3).step_by(2).collect();
    assert_eq!(listed, KEYS, "{e}");
}

#[test]
fn bad_values_name_the_variable() {
    let cases = [
        ("IDENTSPHERE_LISTEN", "localhost"),
        ("IDENTSPHERE_PUBLIC_URL", "not a url"),
        ("IDENTSPHERE_JWT_ALG", "HS512"),
        ("IDENTSPHERE_ACCESS_EXPIRY_SECS", "15m"),
        ("IDENTSPHERE_REFRESH_REUSE_GRACE_SECS", "-1"),
        ("IDENTSPHERE_COOKIES_SECURE", "maybe"),
        ("IDENTSPHERE_RATE_LIMITS", "sometimes"),
        ("IDENTSPHERE_REDIS_URL", "http://cache:6379"),
        ("IDENTSPHERE_LOG_FORMAT", "xml"),
        ("IDENTSPHERE_DB_MAX_CONNECTIONS", "0"),
        ("IDENTSPHERE_DATABASE_URL", "mysql://db"),
        ("IDENTSPHERE_SMTP_URL", "ftp://mail"),
        ("IDENTSPHERE_ACCESS_EXPIRY_SECS", "1"),
    ];
    for (var, value) in cases {
        let dir = TempDir::new().unwrap();
        let e = err_in(&dir, None, &[(var, value)]);
        assert_eq!(e.name, var, "{var}={value}: {e}");
    }
}

#[test]
fn bad_toml_value_names_the_variable_and_the_file() {
    let dir = TempDir::new().unwrap();
    let e = err_in(&dir, Some("jwt_alg = \"none\"\n"), &[]);
    assert_eq!(e.name, "IDENTSPHERE_JWT_ALG");
    assert!(e.message.contains("set as `jwt_alg` in"), "{e}");
}

#[test]
fn booleans_take_every_spelling() {
    for (value, expected) in [
        ("true", true),
        ("1", true),
        ("on", true),
        ("false", false),
        ("0", false),
        ("OFF", false),
    ] {
        let dir = TempDir::new().unwrap();
        let s = load_in(
            &dir,
            None,
            &[("IDENTSPHERE_REQUIRE_EMAIL_VERIFICATION", value)],
        )
        .unwrap();
        assert_eq!(s.auth.require_email_verification, expected, "{value}");
    }
}

#[test]
fn secret_file_is_created_0600_and_reused() {
    let dir = TempDir::new().unwrap();
    let first = load_in(&dir, None, &[]).unwrap();
    let path = dir.path().join("data/jwt_secret");
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let stored = fs::read_to_string(&path).unwrap();
    assert_eq!(stored.len(), 64);
    assert!(
        stored.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
        "{stored}"
    );
    assert_eq!(first.auth.jwt_secret.expose_secret(), stored);

    let second = load_in(&dir, None, &[]).unwrap();
    assert_eq!(second.auth.jwt_secret.expose_secret(), stored);
}

#[test]
fn readable_secret_file_is_refused() {
    let dir = TempDir::new().unwrap();
    load_in(&dir, None, &[]).unwrap();
    let path = dir.path().join("data/jwt_secret");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let e = err_in(&dir, None, &[]);
    assert_eq!(e.name, "IDENTSPHERE_JWT_SECRET");
    assert!(
        e.message.contains("chmod 600") && e.message.contains("jwt_secret"),
        "{e}"
    );
}

#[test]
fn configured_secret_creates_no_file_and_migrate_needs_none() {
    let dir = TempDir::new().unwrap();
    load_in(&dir, None, &[("IDENTSPHERE_JWT_SECRET", SECRET)]).unwrap();
    assert!(!dir.path().join("data/jwt_secret").exists());

    let data_dir = dir
        .path()
        .join("migrate-data")
        .to_string_lossy()
        .into_owned();
    let env = [
        ("IDENTSPHERE_DATABASE_URL", "postgres://db/identsphere"),
        ("IDENTSPHERE_DATA_DIR", data_dir.as_str()),
    ];
    let s = load(None, env, SecretMode::Throwaway).unwrap();
    assert_eq!(s.auth.jwt_secret.expose_secret().len(), 64);
    assert!(
        !Path::new(&data_dir).exists(),
        "migrate against PostgreSQL made a data dir"
    );
}

#[test]
fn short_secret_is_refused() {
    let dir = TempDir::new().unwrap();
    let e = err_in(&dir, None, &[("IDENTSPHERE_JWT_SECRET", "too-short")]);
    assert_eq!(e.name, "IDENTSPHERE_JWT_SECRET");
    assert!(e.message.contains("32 bytes"), "{e}");
}

#[test]
fn secret_file_variable_is_read_without_its_newline() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("secret");
    fs::write(&path, format!("{SECRET}\n")).unwrap();
    let path = path.to_string_lossy().into_owned();
    let s = load_in(&dir, None, &[("IDENTSPHERE_JWT_SECRET_FILE", &path)]).unwrap();
    assert_eq!(s.auth.jwt_secret.expose_secret(), SECRET);

    let both = [
        ("IDENTSPHERE_JWT_SECRET_FILE", path.as_str()),
        ("IDENTSPHERE_JWT_SECRET", SECRET),
    ];
    assert_eq!(err_in(&dir, None, &both).name, "IDENTSPHERE_JWT_SECRET");
}

#[test]
fn insecure_cookies_only_for_a_loopback_public_url() {
    let dir = TempDir::new().unwrap();
    let public = ("IDENTSPHERE_PUBLIC_URL", "https://auth.example.com");
    let e = err_in(
        &dir,
        None,
        &[public, ("IDENTSPHERE_COOKIES_SECURE", "false")],
    );
    assert_eq!(e.name, "IDENTSPHERE_COOKIES_SECURE");
    let local = [
        ("IDENTSPHERE_PUBLIC_URL", "http://127.0.0.1:8080"),
        ("IDENTSPHERE_COOKIES_SECURE", "false"),
    ];
    assert!(!load_in(&dir, None, &local).unwrap().auth.cookies_secure);
}

#[test]
fn mail_from_defaults_to_the_public_host() {
    let dir = TempDir::new().unwrap();
    let s = load_in(
        &dir,
        None,
        &[("IDENTSPHERE_PUBLIC_URL", "https://auth.example.com")],
    )
    .unwrap();
    assert_eq!(s.auth.mail_from, "IdentSphere <no-reply@auth.example.com>");
}

#[test]
fn master_credentials_come_in_pairs() {
    let dir = TempDir::new().unwrap();
    let e = err_in(&dir, None, &[("IDENTSPHERE_MASTER_USERNAME", "admin")]);
    assert_eq!(e.name, "IDENTSPHERE_MASTER_PASSWORD");
    let both = [
        ("IDENTSPHERE_MASTER_USERNAME", "admin"),
        ("IDENTSPHERE_MASTER_PASSWORD", "correct horse battery"),
    ];
    assert_eq!(
        load_in(&dir, None, &both)
            .unwrap()
            .auth
            .master
            .unwrap()
            .username,
        "admin"
    );
    // The one credential that reaches every client must not be guessable.
    let short = [
        ("IDENTSPHERE_MASTER_USERNAME", "admin"),
        ("IDENTSPHERE_MASTER_PASSWORD", "hunter2hunter2"),
    ];
    let e = err_in(&dir, None, &short);
    assert_eq!(e.name, "IDENTSPHERE_MASTER_PASSWORD");
    assert!(e.message.contains("16 characters"), "{}", e.message);
}

#[test]
fn unknown_variables_and_risky_settings_warn() {
    let dir = TempDir::new().unwrap();
    let vars = [
        ("IDENTSPHERE_LISTN", "x"),
        ("IDENTSPHERE_TEST_DATABASE_URL", "postgres://x"),
        ("IDENTSPHERE_RATE_LIMITS", "off"),
        ("IDENTSPHERE_REDIS_URL", "redis://cache:6379"),
        ("IDENTSPHERE_DATABASE_URL", "postgres://db/identsphere"),
    ];
    let s = load_in(&dir, None, &vars).unwrap();
    let all = s.warnings.join("\n");
    assert!(all.contains("IDENTSPHERE_LISTN"), "{all}");
    assert!(!all.contains("TEST_DATABASE_URL"), "{all}");
    assert!(all.contains("RATE LIMITING IS DISABLED"), "{all}");
    assert!(
        all.contains("must all use one IDENTSPHERE_JWT_SECRET"),
        "{all}"
    );
    assert!(!s.rate_limits);
    assert!(!s.auth.rate_limits.enabled);
    assert_eq!(
        s.auth.redis_url.as_ref().unwrap().expose_secret(),
        "redis://cache:6379"
    );
}

#[test]
fn rate_limit_overrides_from_env_and_toml() {
    use identsphere::core::rate_limit::{Limit, LimitKind};
    let dir = TempDir::new().unwrap();
    let s = load_in(&dir, None, &[]).unwrap();
    assert!(s.auth.rate_limits.enabled);
    assert_eq!(
        s.auth.rate_limits.get(LimitKind::LoginIp),
        Limit::per_minute(20, 10)
    );
    assert!(s.auth.redis_url.is_none());

    let toml = "[rate_limit_overrides]\nlogin_ip = \"30/min,15\"\nsignup_ip = \"5/h\"\n";
    let s = load_in(&dir, Some(toml), &[]).unwrap();
    assert_eq!(
        s.auth.rate_limits.get(LimitKind::LoginIp),
        Limit::per_minute(30, 15)
    );
    assert_eq!(
        s.auth.rate_limits.get(LimitKind::SignupIp),
        Limit::per_hour(5, 5)
    );
    // The variable wins over the file, and kinds it does not name keep their defaults.
    let vars = [("IDENTSPHERE_RATE_LIMIT_OVERRIDES", "login_ip=2/s,4")];
    let s = load_in(&dir, Some(toml), &vars).unwrap();
    assert_eq!(
        s.auth.rate_limits.get(LimitKind::LoginIp),
        Limit::per(2, Duration::from_secs(1), 4)
    );
    assert_eq!(
        s.auth.rate_limits.get(LimitKind::SignupIp),
        LimitKind::SignupIp.default_limit()
    );

    for bad in ["login=20/min", "login_ip=20", "login_ip"] {
        let e = err_in(&dir, None, &[("IDENTSPHERE_RATE_LIMIT_OVERRIDES", bad)]);
        assert_eq!(e.name, "IDENTSPHERE_RATE_LIMIT_OVERRIDES", "{bad}");
    }
    let e = err_in(&dir, None, &[("IDENTSPHERE_REDIS_URL", "http://cache")]);
    assert_eq!(e.name, "IDENTSPHERE_REDIS_URL");
}

#[test]
fn debug_shows_no_secret() {
    let dir = TempDir::new().unwrap();
    let vars = [
        ("IDENTSPHERE_JWT_SECRET", SECRET),
        (
            "IDENTSPHERE_DATABASE_URL",
            "postgres://user:dbpass@db/identsphere",
        ),
        ("IDENTSPHERE_SMTP_URL", "smtps://user:smtppass@mail:465"),
        ("IDENTSPHERE_REDIS_URL", "redis://:redispass@cache:6379"),
        ("IDENTSPHERE_MASTER_USERNAME", "admin"),
        ("IDENTSPHERE_MASTER_PASSWORD", "masterpass-0123456789"),
    ];
    let debug = format!("{:?}", load_in(&dir, None, &vars).unwrap());
    for secret in [
        SECRET,
        "dbpass",
        "smtppass",
        "redispass",
        "masterpass-0123456789",
    ] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
}

#[test]
fn app_permissions_and_wildcard_keys() {
    let dir = TempDir::new().unwrap();
    let s = load_in(
        &dir,
        Some("app_permissions = [\"app:invoices.read\", \"app:invoices.write\"]\n"),
        &[],
    )
    .unwrap();
    assert_eq!(
        s.auth.app_permissions,
        ["app:invoices.read", "app:invoices.write"]
    );
    assert!(!s.auth.allow_wildcard_api_key_scope);

    let s = load_in(
        &dir,
        None,
        &[
            ("IDENTSPHERE_APP_PERMISSIONS", "app:a, app:b.c"),
            ("IDENTSPHERE_API_KEYS_ALLOW_WILDCARD", "true"),
        ],
    )
    .unwrap();
    assert_eq!(s.auth.app_permissions, ["app:a", "app:b.c"]);
    assert!(s.auth.allow_wildcard_api_key_scope);
    assert!(s.warnings.iter().any(|w| w.contains("ALLOW_WILDCARD")));

    for bad in ["org:read", "invoices", "app:Bad"] {
        let e = err_in(&dir, None, &[("IDENTSPHERE_APP_PERMISSIONS", bad)]);
        assert_eq!(e.name, "IDENTSPHERE_APP_PERMISSIONS", "{bad}");
    }
}

#[test]
fn password_policy_from_toml_and_env() {
    use identsphere::core::password::CharClass;
    let dir = TempDir::new().unwrap();
    let s = load_in(&dir, None, &[]).unwrap();
    let p = &s.auth.password_policy;
    assert_eq!((p.min_chars, p.max_chars), (10, 128));
    assert!(p.required_classes.is_empty() && p.refuse_common);

    let toml = "password_min_length = 12\npassword_max_length = 200\n\
                password_require_classes = [\"upper\", \"digit\"]\npassword_common_list = false\n";
    let s = load_in(&dir, Some(toml), &[]).unwrap();
    let p = &s.auth.password_policy;
    assert_eq!((p.min_chars, p.max_chars), (12, 200));
    assert_eq!(p.required_classes, [CharClass::Upper, CharClass::Digit]);
    assert!(!p.refuse_common);

    let s = load_in(
        &dir,
        Some(toml),
        &[
            ("IDENTSPHERE_PASSWORD_MIN_LENGTH", "16"),
            (
                "IDENTSPHERE_PASSWORD_REQUIRE_CLASSES",
                "lower, upper,digit,symbol",
            ),
            ("IDENTSPHERE_PASSWORD_COMMON_LIST", "on"),
        ],
    )
    .unwrap();
    let p = &s.auth.password_policy;
    assert_eq!((p.min_chars, p.max_chars), (16, 200));
    assert_eq!(p.required_classes, CharClass::ALL);
    assert!(p.refuse_common);
    // An empty list turns the class rules off.
    let s = load_in(
        &dir,
        Some(toml),
        &[("IDENTSPHERE_PASSWORD_REQUIRE_CLASSES", "")],
    )
    .unwrap();
    assert!(s.auth.password_policy.required_classes.is_empty());
}

#[test]
fn weak_or_impossible_password_policies_are_refused() {
    let dir = TempDir::new().unwrap();
    let e = err_in(&dir, None, &[("IDENTSPHERE_PASSWORD_MIN_LENGTH", "7")]);
    assert_eq!(e.name, "IDENTSPHERE_PASSWORD_MIN_LENGTH");
    assert!(e.message.contains("at least 8"), "{e}");
    let e = err_in(&dir, None, &[("IDENTSPHERE_PASSWORD_MAX_LENGTH", "1025")]);
    assert_eq!(e.name, "IDENTSPHERE_PASSWORD_MAX_LENGTH");
    let e = err_in(
        &dir,
        None,
        &[
            ("IDENTSPHERE_PASSWORD_MIN_LENGTH", "20"),
            ("IDENTSPHERE_PASSWORD_MAX_LENGTH", "12"),
        ],
    );
    assert_eq!(e.name, "IDENTSPHERE_PASSWORD_MAX_LENGTH");
    let e = err_in(
        &dir,
        None,
        &[("IDENTSPHERE_PASSWORD_REQUIRE_CLASSES", "lower,emoji")],
    );
    assert_eq!(e.name, "IDENTSPHERE_PASSWORD_REQUIRE_CLASSES");
    assert!(e.message.contains("\"emoji\""), "{e}");
    let e = err_in(&dir, Some("password_min_length = 4\n"), &[]);
    assert_eq!(e.name, "IDENTSPHERE_PASSWORD_MIN_LENGTH");
    assert!(e.message.contains("identsphere.toml"), "{e}");
    let e = err_in(&dir, None, &[("IDENTSPHERE_PASSWORD_COMMON_LIST", "maybe")]);
    assert_eq!(e.name, "IDENTSPHERE_PASSWORD_COMMON_LIST");
}

#[test]
fn passkey_relying_party_from_toml_and_env() {
    let dir = TempDir::new().unwrap();
    let s = load_in(&dir, None, &[]).unwrap();
    assert_eq!(s.auth.webauthn_rp_id, None);
    assert!(s.auth.webauthn_origins.is_empty());

    let s = load_in(
        &dir,
        Some("public_url = \"https://auth.example.com\"\nwebauthn_origins = [\"https://app.example.com\", \"https://example.com\"]\n"),
        &[("IDENTSPHERE_WEBAUTHN_RP_ID", "Example.com")],
    )
    .unwrap();
    assert_eq!(s.auth.webauthn_rp_id.as_deref(), Some("example.com"));
    let origins: Vec<&str> = s.auth.webauthn_origins.iter().map(|u| u.as_str()).collect();
    assert_eq!(
        origins,
        ["https://app.example.com/", "https://example.com/"]
    );

    let https = ("IDENTSPHERE_PUBLIC_URL", "https://auth.example.com");
    for (var, bad) in [
        ("IDENTSPHERE_WEBAUTHN_RP_ID", "https://example.com"),
        ("IDENTSPHERE_WEBAUTHN_RP_ID", "10.0.0.1"),
        // Not a domain the public URL is on.
        ("IDENTSPHERE_WEBAUTHN_RP_ID", "example.org"),
        (
            "IDENTSPHERE_WEBAUTHN_ORIGINS",
            "https://app.example.com/login",
        ),
        ("IDENTSPHERE_WEBAUTHN_ORIGINS", "not a url"),
    ] {
        let e = err_in(&dir, None, &[https, (var, bad)]);
        assert!(
            e.name.starts_with("IDENTSPHERE_WEBAUTHN_"),
            "{var}={bad}: {e}"
        );
    }
    // An origin on another site than the RP id.
    let e = err_in(
        &dir,
        None,
        &[
            https,
            ("IDENTSPHERE_WEBAUTHN_ORIGINS", "https://app.example.org"),
        ],
    );
    assert_eq!(e.name, "IDENTSPHERE_WEBAUTHN_RP_ID", "{e}");
}

#[test]
fn slow_client_limits_have_safe_defaults_and_come_from_env_and_toml() {
    let dir = TempDir::new().unwrap();
    let s = load_in(&dir, None, &[]).unwrap();
    assert_eq!(
        s.serve,
        ServeSettings {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    );
    assert_eq!(s.auth.request_timeout, Duration::from_secs(30));
    assert_eq!(s.auth.body_read_timeout, Duration::from_secs(10));

    let toml = "max_connections = 100\nheader_read_timeout_secs = 5\nidle_timeout_secs = 20\n\
                request_timeout_secs = 15\nbody_read_timeout_secs = 4\n";
    let s = load_in(&dir, Some(toml), &[("IDENTSPHERE_IDLE_TIMEOUT_SECS", "30")]).unwrap();
    assert_eq!(s.serve.max_connections, 100);
    assert_eq!(s.serve.header_read_timeout, Duration::from_secs(5));
    assert_eq!(s.serve.idle_timeout, Duration::from_secs(30));
    assert_eq!(s.auth.request_timeout, Duration::from_secs(15));
    assert_eq!(s.auth.body_read_timeout, Duration::from_secs(4));
}

#[test]
fn zero_or_huge_slow_client_limits_are_refused_by_name() {
    let vars = [
        "IDENTSPHERE_MAX_CONNECTIONS",
        "IDENTSPHERE_HEADER_READ_TIMEOUT_SECS",
        "IDENTSPHERE_IDLE_TIMEOUT_SECS",
        "IDENTSPHERE_REQUEST_TIMEOUT_SECS",
        "IDENTSPHERE_BODY_READ_TIMEOUT_SECS",
    ];
    for var in vars {
        for value in ["0", "-1", "10s", "99999999"] {
            let dir = TempDir::new().unwrap();
            let e = err_in(&dir, None, &[(var, value)]);
            assert_eq!(e.name, var, "{var}={value}: {e}");
        }
        // The same in the file, which TOML types as a number.
        let key = var.trim_start_matches("IDENTSPHERE_").to_ascii_lowercase();
        let dir = TempDir::new().unwrap();
        let e = err_in(&dir, Some(&format!("{key} = 0\n")), &[]);
        assert_eq!(e.name, var, "{key} = 0: {e}");
        assert!(e.message.contains("identsphere.toml"), "{e}");
    }
    // A body timeout that the request timeout would pre-empt.
    let dir = TempDir::new().unwrap();
    let e = err_in(
        &dir,
        None,
        &[
            ("IDENTSPHERE_REQUEST_TIMEOUT_SECS", "5"),
            ("IDENTSPHERE_BODY_READ_TIMEOUT_SECS", "5"),
        ],
    );
    assert_eq!(e.name, "IDENTSPHERE_BODY_READ_TIMEOUT_SECS", "{e}");
    assert!(
        e.message.contains("IDENTSPHERE_REQUEST_TIMEOUT_SECS"),
        "{e}"
    );
}
