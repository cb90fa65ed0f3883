//! The processes under test: started fresh for each measurement, timed from
//! spawn to ready, their resident memory sampled while they work.
use anyhow::{bail, Context, Result};
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio::process::{Child, Command};

/// A server process.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// From spawn to the first good answer of its readiness URL.
    pub ready_in: Duration,
    dir: Option<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A free loopback port.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A fresh scratch directory (this process's id and a counter name it).
pub fn scratch(tag: &str) -> Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "identsphere-bench-{tag}-{}-{n}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

impl Server {
    /// Spawns `cmd` and waits until `base + ready_path` answers 2xx.
    pub async fn start(
        mut cmd: Command,
        port: u16,
        ready_path: &str,
        dir: Option<PathBuf>,
    ) -> Result<Self> {
        let log = match &dir {
            Some(d) => Stdio::from(std::fs::File::create(d.join("server.log"))?),
            None => Stdio::null(),
        };
        let started = Instant::now();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {cmd:?}"))?;
        let base = format!("http://127.0.0.1:{port}");
        let mut server = Self {
            child,
            base,
            ready_in: Duration::ZERO,
            dir,
        };
        let probe = reqwest::Client::new();
        let url = format!("{}{ready_path}", server.base);
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(r) = probe.get(&url).send().await {
                if r.status().is_success() {
                    server.ready_in = started.elapsed();
                    return Ok(server);
                }
            }
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "{cmd:?} exited with {status}; see its log in {:?}",
                    server.dir
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        bail!("{url} was not ready within 60 s")
    }

    /// The last `lines` lines of the server's log (empty without a log).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self
            .dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join("server.log")).ok())
            .unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Resident memory now, in MB.
    pub fn rss_mb(&self) -> f64 {
        self.child.id().map_or(0.0, rss_mb)
    }

    /// Samples resident memory every 20 ms until the returned guard is
    /// stopped; the guard reports the peak.
    pub fn sample_rss(&self) -> RssPeak {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        if let Some(pid) = self.child.id() {
            let (peak, stop) = (Arc::clone(&peak), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let kb = (rss_mb(pid) * 1000.0) as u64;
                    peak.fetch_max(kb, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
        RssPeak { peak, stop }
    }
}

/// A running RSS sampler.
pub struct RssPeak {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssPeak {
    /// Stops sampling; the peak in MB.
    pub fn finish(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.peak.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

/// `VmRSS` of a process, in MB (0 when it cannot be read).
fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1000.0)
}

/// Which database a server uses.
#[derive(Debug, Clone)]
pub enum Db {
    /// A SQLite file in the server's scratch directory.
    Sqlite,
    /// A PostgreSQL database, recreated empty before each server starts.
    Postgres(String),
    /// A seeded PostgreSQL database (seed.rs), kept across servers and runs.
    Seeded(String),
}

impl Db {
    /// The store's name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres(_) => "PostgreSQL",
            Self::Seeded(_) => crate::seed::STORE,
        }
    }

    /// The PostgreSQL URL.
    pub fn url(&self) -> Option<&str> {
        match self {
            Self::Sqlite => None,
            Self::Postgres(url) | Self::Seeded(url) => Some(url),
        }
    }

    /// Drops and recreates the PostgreSQL database (through `psql`); on the
    /// seeded one, removes what an earlier run added.
    pub fn recreate(&self) -> Result<()> {
        let url = match self {
            Self::Sqlite => return Ok(()),
            Self::Seeded(url) => return crate::seed::reset(url),
            Self::Postgres(url) => url,
        };
        let (admin, name) = url
            .rsplit_once('/')
            .context("a database URL ends in /NAME")?;
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            let ok = std::process::Command::new("psql")
                .args([&format!("{admin}/postgres"), "-qc", &sql])
                .status()
                .context("running psql")?
                .success();
            if !ok {
                bail!("psql failed: {sql}");
            }
        }
        Ok(())
    }
}

/// `identsphere serve` on 127.0.0.1:`port` with its data in `dir`, as every
/// benchmark runs it: a clean environment, email verification off (the
/// harness signs in straight after signing up), one-hour access tokens and
/// warnings only in the log. Callers add the store and limit settings.
pub fn serve_command(bin: &Path, port: u16, dir: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("IDENTSPHERE_LISTEN", format!("127.0.0.1:{port}"))
        .env("IDENTSPHERE_DATA_DIR", dir)
        .env("IDENTSPHERE_REQUIRE_EMAIL_VERIFICATION", "false")
        .env("IDENTSPHERE_ACCESS_EXPIRY_SECS", "3600")
        .env("IDENTSPHERE_MASTER_USERNAME", crate::scenarios::MASTER.0)
        .env("IDENTSPHERE_MASTER_PASSWORD", crate::scenarios::MASTER.1)
        .env("RUST_LOG", "warn");
    cmd
}

/// Starts `identsphere serve` on `db`, with rate limits off (load from one
/// address would hit them).
pub async fn identsphere(bin: &Path, db: &Db) -> Result<Server> {
    identsphere_signing(bin, db, "HS256").await
}

/// [`identsphere`], signing tokens with `alg` (`HS256`, `RS256`, `EdDSA`).
pub async fn identsphere_signing(bin: &Path, db: &Db, alg: &str) -> Result<Server> {
    db.recreate()?;
    let port = free_port()?;
    let dir = scratch("server")?;
    let mut cmd = serve_command(bin, port, &dir);
    cmd.env("IDENTSPHERE_RATE_LIMITS", "off")
        .env("IDENTSPHERE_JWT_ALG", alg);
    if let Some(url) = db.url() {
        cmd.env("IDENTSPHERE_DATABASE_URL", url).env(
            "IDENTSPHERE_JWT_SECRET",
            "bench-secret-0123456789abcdef0123456789",
        );
    }
    Server::start(cmd, port, "/readyz", Some(dir)).await
}

/// Starts this binary's bare Axum JSON server: the HTTP ceiling.
pub async fn baseline() -> Result<Server> {
    let port = free_port()?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["baseline", "--port", &port.to_string()]);
    Server::start(cmd, port, "/json", None).await
}

/// Starts the better-auth peer (bench/peers/better-auth) on `db`.
pub async fn better_auth(peer_dir: &Path, db: &Db) -> Result<Server> {
    db.recreate()?;
    let port = free_port()?;
    let dir = scratch("peer")?;
    let url = match db {
        Db::Sqlite => format!("sqlite:{}", dir.join("peer.db").display()),
        Db::Postgres(url) | Db::Seeded(url) => url.clone(),
    };
    let setup = Command::new(peer_dir.join("setup.sh"))
        .arg(&url)
        .stdout(Stdio::null())
        .status()
        .await
        .context("running the better-auth setup")?;
    if !setup.success() {
        bail!("bench/peers/better-auth/setup.sh {url} failed");
    }
    let mut cmd = Command::new("node");
    cmd.arg(peer_dir.join("server.mjs"))
        .env("PEER_DB", &url)
        .env("PEER_PORT", port.to_string());
    Server::start(cmd, port, "/api/auth/ok", Some(dir)).await
}

/// Starts the oidc-provider peer (bench/peers/oidc-provider), installing its
/// pinned packages first if they are missing. It keeps no database.
pub async fn oidc_provider(peer_dir: &Path) -> Result<Server> {
    if !peer_dir.join("node_modules/oidc-provider").exists() {
        let install = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(peer_dir)
            .stdout(Stdio::null())
            .status()
            .await
            .context("running npm ci for oidc-provider")?;
        if !install.success() {
            bail!("npm ci in {} failed", peer_dir.display());
        }
    }
    let port = free_port()?;
    let mut cmd = Command::new("node");
    cmd.arg(peer_dir.join("server.mjs"))
        .env("PORT", port.to_string());
    Server::start(cmd, port, "/.well-known/openid-configuration", None).await
}
