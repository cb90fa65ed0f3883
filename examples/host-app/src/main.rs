//! A host application that embeds IdentSphere in-process.
//!
//! It serves the whole IdentSphere API (sign-up, sessions, organizations,
//! invitations, roles, API keys) next to two routes of its own:
//!
//! - `GET /invoices`: the invoices of the caller's active organization,
//!   behind `auth.require_permission("app:invoices.read")`. Owners and admins
//!   hold that permission; other members need a custom role that grants it.
//! - `GET /me`: the caller, its active organization, role and permissions.
//!
//! Environment:
//!
//! - `LISTEN` (default `127.0.0.1:0`): the address to bind. The public URL
//!   (token issuer, base of emailed links) is derived from the bound address.
//! - `HOST_APP_DATA`: directory for the SQLite database and the generated
//!   signing secret (mode 0600). Default: a temporary directory, removed when
//!   the app stops on Ctrl-C or SIGTERM.
//! - `IDENTSPHERE_SMTP_URL`: where verification and invitation mail goes.
//!   Without it, mail (links included) is logged to stderr under the
//!   `identsphere::dev_mail` target.
//! - `RUST_LOG` (default `info`): the log filter; logs go to stderr.
//!
//! Email verification stays on, as in production (SECURITY.md rule 11): new
//! accounts follow the emailed link before they can sign in.
//!
//! Once it accepts connections it prints `listening on http://ADDR` on stdout.
use anyhow::{bail, Context as _};
use axum::{
    extract::{FromRef, State},
    routing::get,
    Json, Router,
};
use identsphere::{
    config::is_loopback,
    core::{ids::OrgId, service::Caller, CoreError},
    error::ApiError,
    AppState, AuthService, AuthServiceConfig, CurrentUser,
};
use secrecy::SecretString;
use serde::Serialize;
use std::{
    collections::HashMap,
    fs,
    io::{self, Write as _},
    net::SocketAddr,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};
use tracing_subscriber::EnvFilter;

/// The one permission this application defines.
const INVOICES_READ: &str = "app:invoices.read";

/// The application's state; IdentSphere's extractors reach theirs through `FromRef`.
#[derive(Clone)]
struct App {
    auth: AppState,
    invoices: Arc<Invoices>,
}

impl FromRef<App> for AppState {
    fn from_ref(app: &App) -> Self {
        app.auth.clone()
    }
}

/// The application's own data, keyed by organization id (in memory here; a
/// real app keeps a table with an `org_id` column).
#[derive(Default)]
struct Invoices {
    by_org: Mutex<HashMap<OrgId, Vec<Invoice>>>,
}

#[derive(Clone, Serialize)]
struct Invoice {
    number: String,
    organization_id: String,
    customer: &'static str,
    amount_cents: u64,
    currency: &'static str,
}

impl Invoices {
    /// The organization's invoices; a new organization starts with two samples.
    fn of(&self, org: OrgId) -> Vec<Invoice> {
        let mut by_org = self.by_org.lock().unwrap_or_else(PoisonError::into_inner);
        by_org
            .entry(org)
            .or_insert_with(|| {
                [("Acme Corp", 12_900), ("Globex", 4_900)]
                    .into_iter()
                    .enumerate()
                    .map(|(i, (customer, amount_cents))| Invoice {
                        number: format!("INV-{:04}", i + 1),
                        organization_id: org.to_string(),
                        customer,
                        amount_cents,
                        currency: "EUR",
                    })
                    .collect()
            })
            .clone()
    }
}

#[derive(Serialize)]
struct InvoiceList {
    organization_id: String,
    invoices: Vec<Invoice>,
}

/// `GET /invoices`, behind the `app:invoices.read` guard.
async fn invoices(
    State(app): State<App>,
    user: CurrentUser,
) -> Result<Json<InvoiceList>, ApiError> {
    // The guard has already checked this on the same (cached) value; checking
    // again costs nothing and keeps the handler safe if it is ever mounted
    // without the guard.
    user.require(INVOICES_READ)?;
    let org = user
        .org_id()
        .ok_or_else(|| CoreError::Forbidden("no active organization".into()))?;
    Ok(Json(InvoiceList {
        organization_id: org.to_string(),
        invoices: app.invoices.of(org),
    }))
}

#[derive(Serialize)]
struct Me {
    user_id: String,
    /// `session` or `api_key`.
    credential: &'static str,
    organization: Option<MeOrganization>,
    permissions: Vec<String>,
}

#[derive(Serialize)]
struct MeOrganization {
    id: String,
    role: String,
}

/// `GET /me`: any signed-in caller, with or without an organization.
async fn me(user: CurrentUser) -> Json<Me> {
    Json(Me {
        user_id: user.user_id().to_string(),
        credential: match user.caller {
            Caller::Session(_) => "session",
            Caller::ApiKey(_) => "api_key",
        },
        organization: user.organization.as_ref().map(|o| MeOrganization {
            id: o.org_id.to_string(),
            role: o.role.to_string(),
        }),
        permissions: user.permissions().iter().map(|p| p.to_string()).collect(),
    })
}

/// The application's routes and IdentSphere's, in one router.
fn app(auth: &AuthService) -> Router {
    let state = App {
        auth: auth.state().clone(),
        invoices: Arc::default(),
    };
    Router::new()
        .route("/invoices", get(invoices))
        // `route_layer` guards the routes added above it: /me stays open to
        // every signed-in caller, and unknown paths still answer 404.
        .route_layer(auth.require_permission(INVOICES_READ))
        .route("/me", get(me))
        .with_state(state)
        // IdentSphere's handlers authenticate for themselves, the public
        // invitation-accept route included, so the API is mounted as is.
        .merge(auth.router())
}

/// `HOST_APP_DATA`, or a temporary directory that lives as long as the guard.
fn data_dir() -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match std::env::var_os("HOST_APP_DATA").filter(|d| !d.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            Ok((dir, None))
        }
        None => {
            let temp = tempfile::Builder::new().prefix("host-app-").tempdir()?;
            Ok((temp.path().to_owned(), Some(temp)))
        }
    }
}

/// The per-install signing secret: 32 CSPRNG bytes in `<dir>/jwt_secret`,
/// created with mode 0600 on first start.
fn signing_secret(dir: &Path) -> anyhow::Result<SecretString> {
    let path = dir.join("jwt_secret");
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            use rand::RngCore as _;
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng
                .try_fill_bytes(&mut bytes)
                .map_err(io::Error::other)?;
            let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            file.write_all(secret.as_bytes())?;
            file.sync_all()?;
            Ok(SecretString::from(secret))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let mode = fs::metadata(&path)?.permissions().mode();
            if mode & 0o077 != 0 {
                bail!(
                    "{} is readable by other users; chmod 600 it",
                    path.display()
                );
            }
            let secret = fs::read_to_string(&path)?;
            Ok(SecretString::from(secret.trim().to_owned()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

fn config(addr: SocketAddr, data: &Path) -> anyhow::Result<AuthServiceConfig> {
    let public_url: url::Url = if addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
    .parse()?;
    let database = format!("sqlite://{}", data.join("identsphere.db").display());
    let mut config = AuthServiceConfig::new(database, public_url.clone(), signing_secret(data)?);
    // Plain HTTP: cookies without `Secure`, which IdentSphere allows on
    // loopback only. Elsewhere, serve HTTPS in front (Bearer tokens still work).
    config.cookies_secure = !is_loopback(&public_url);
    config.app_permissions = vec![INVOICES_READ.to_owned()];
    config.smtp_url = std::env::var("IDENTSPHERE_SMTP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .map(SecretString::from);
    Ok(config)
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(io::stderr)
        .init();
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot bind {listen}"))?;
    let addr = listener.local_addr()?;
    let (data, _temp) = data_dir()?;
    let auth = AuthService::new(config(addr, &data)?).await?;
    let app = app(&auth);

    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}")?;
    stdout.flush()?;
    drop(stdout);

    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown())
    .await?;
    Ok(())
}
