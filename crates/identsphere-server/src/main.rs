//! The `identsphere` binary: reads the configuration, then serves the identity
//! service, applies migrations or runs an administrative task.
mod config;
mod serve;
mod telemetry;

use anyhow::{anyhow, bail};
use clap::{Parser, Subcommand};
use config::{SecretMode, Settings};
use identsphere::{core::tokens::JwtAlg, AuthService};
use std::path::PathBuf;
use tracing::{info, warn};

/// IdentSphere identity server.
///
/// Configured by IDENTSPHERE_* environment variables, optionally on top of a TOML
/// file (--config); the environment wins.
#[derive(Parser)]
#[command(name = "identsphere", version)]
struct Cli {
    /// TOML configuration file; IDENTSPHERE_* variables override its values
    #[arg(long, global = true, value_name = "FILE", env = "IDENTSPHERE_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (applies pending migrations first)
    Serve,
    /// Apply pending database migrations and exit
    Migrate,
    /// Manage the token signing keys
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Bring in data from another system
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Import users with their bcrypt, scrypt, PBKDF2-SHA256 or Argon2 password
    /// hashes from JSON lines; idempotent (existing addresses are skipped).
    /// Exits 2 when some lines were invalid.
    ///
    /// Each line: {"email": "...", "password_hash": "...", "name"?: "...",
    /// "email_verified"?: bool, "id"?: "uuid", "created_at"?: "RFC 3339"}
    Users {
        /// The JSON-lines file, or - for standard input
        #[arg(value_name = "FILE.jsonl")]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new RS256/EdDSA signing key current and print its kid
    Rotate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mode = match cli.command {
        // Neither signs anything: no per-install secret is needed or created.
        Command::Migrate | Command::Import(_) => SecretMode::Throwaway,
        Command::Serve | Command::Keys(_) => SecretMode::Persistent,
    };
    // Config errors go out through `main`'s error: one line naming the variable.
    let settings = config::load(cli.config.as_deref(), config::process_env()?, mode)?;
    telemetry::init(settings.log_format)?;
    for warning in &settings.warnings {
        warn!("{warning}");
    }
    match cli.command {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::Keys(KeysCommand::Rotate) => rotate_key(settings).await,
        Command::Import(ImportCommand::Users { file }) => import_users(settings, &file).await,
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let store = store_kind(&settings);
    let alg = settings.auth.jwt_alg.as_str();
    let public_url = settings.auth.public_url.to_string();
    // Before the database opens its files: the check raises the soft limit.
    let budget = serve::fit_to_fd_limit(
        settings.serve.max_connections,
        serve::REFUSAL_SLOTS,
        settings.auth.database_max_connections,
    )
    .map_err(|m| anyhow!("IDENTSPHERE_MAX_CONNECTIONS: {m}"))?;
    if let Some(warning) = &budget.warning {
        warn!("{warning}");
    }
    let limits = serve::ServeLimits {
        timeouts: serve::ConnTimeouts {
            header_read: settings.serve.header_read_timeout,
            idle: settings.serve.idle_timeout,
        },
        max_connections: budget.max_connections,
    };
    let service = AuthService::new(settings.auth)
        .await
        .map_err(service_error)?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| {
            anyhow!(
                "IDENTSPHERE_LISTEN: cannot listen on {}: {e}",
                settings.listen
            )
        })?;
    let addr = listener.local_addr()?;
    info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %addr,
        %public_url,
        store,
        data_dir = %settings.data_dir.display(),
        jwt_alg = alg,
        rate_limits = settings.rate_limits,
        rate_limit_store = service.state().identity().rate_limiter().backend(),
        max_connections = limits.max_connections,
        open_file_limit = budget.nofile,
        "identsphere is listening"
    );
    serve::run(listener, service.router(), limits, shutdown_signal()).await;
    // Requests are done; the jobs they enqueued finish or stay queued.
    service.shutdown().await;
    info!("stopped");
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    info!(store = store_kind(&settings), "applying migrations");
    identsphere::migrate(&settings.auth)
        .await
        .map_err(service_error)?;
    info!("migrations applied");
    Ok(())
}

async fn import_users(settings: Settings, file: &std::path::Path) -> anyhow::Result<()> {
    let summary = if file.as_os_str() == "-" {
        let stdin = tokio::io::BufReader::new(tokio::io::stdin());
        identsphere::import_users(&settings.auth, stdin).await
    } else {
        let opened = tokio::fs::File::open(file)
            .await
            .map_err(|e| anyhow!("cannot open {}: {e}", file.display()))?;
        identsphere::import_users(&settings.auth, tokio::io::BufReader::new(opened)).await
    }
    .map_err(service_error)?;
    // The report is the command's output, for the operator: not log lines.
    for bad in &summary.invalid {
        eprintln!("line {}: {}", bad.line, bad.reason);
    }
    println!(
        "imported: {}, skipped existing: {}, invalid: {}",
        summary.imported,
        summary.skipped_existing,
        summary.invalid.len()
    );
    if !summary.invalid.is_empty() {
        std::process::exit(2);
    }
    Ok(())
}

async fn rotate_key(settings: Settings) -> anyhow::Result<()> {
    if settings.auth.jwt_alg == JwtAlg::Hs256 {
        bail!(
            "IDENTSPHERE_JWT_ALG: `keys rotate` needs RS256 or EdDSA; with HS256 tokens are \
             signed with IDENTSPHERE_JWT_SECRET, so rotate that secret instead"
        );
    }
    let service = AuthService::new(settings.auth)
        .await
        .map_err(service_error)?;
    let kid = service.rotate_signing_key().await.map_err(service_error)?;
    info!(%kid, "new signing key is current");
    println!("{kid}");
    Ok(())
}

fn store_kind(settings: &Settings) -> &'static str {
    if identsphere::is_sqlite(&settings.auth) {
        "sqlite"
    } else {
        "postgres"
    }
}

/// The library names config fields by their TOML key; users set variables.
fn service_error(error: identsphere::Error) -> anyhow::Error {
    match error {
        identsphere::Error::Config(e) => anyhow!("{}: {}", config::var_name(e.field), e.message),
        other => anyhow!(other),
    }
}

/// Ctrl-C or SIGTERM (what `docker stop` and Kubernetes send): stop accepting,
/// let requests in flight finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    info!("shutting down");
}
