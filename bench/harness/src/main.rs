//! `identsphere-bench`: every figure of docs/BENCHMARKS.md in one run, so
//! that ratios compare numbers taken minutes apart on the same noisy machine.
//!
//!     identsphere-bench run [--postgres URL] [--peer bench/peers/better-auth]
//!                           [--oidc-peer bench/peers/oidc-provider] [--secs 10]
//!     identsphere-bench run --smoke        # CI: each scenario for a second, no errors allowed
//!     identsphere-bench cluster --postgres URL --redis URL [--secs 10] [--smoke]
//!     identsphere-bench run --postgres URL --seeded [URL2]   # and again on URL_seeded or URL2 (seed.rs)
//!     identsphere-bench seed --postgres URL [--users 1000000 --sessions 5000000 --orgs 100000]
//!     identsphere-bench profile --scenario refresh [--postgres URL] [--rate R]   # perf, whole machine
//!     identsphere-bench timing [--postgres URL] [--samples 200] [--strict | --smoke]   # issue 12 item 5
//!
//! The load generator runs in this process and shares the cores with the
//! server under test, as it would with wrk; the baselines are measured the
//! same way, so ratios are fair.
mod argon;
mod cluster;
mod load;
mod procs;
mod profile;
mod scenarios;
mod seed;
mod stats;
mod timing;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use load::{Load, Measured};
use procs::{Db, Server};
use scenarios::{Fixture, Scenario};
use std::{fmt::Write as _, path::PathBuf, time::Duration};

#[derive(Parser)]
#[command(about = "IdentSphere's benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the suite and prints the report (Markdown).
    Run {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Also measure on PostgreSQL: a database URL whose database is
        /// dropped and recreated for each server.
        #[arg(long)]
        postgres: Option<String>,
        /// The better-auth peer's directory (bench/peers/better-auth).
        #[arg(long)]
        peer: Option<PathBuf>,
        /// The oidc-provider peer's directory (bench/peers/oidc-provider):
        /// client_credentials token issuance, compared with `POST /v1/tokens`.
        #[arg(long)]
        oidc_peer: Option<PathBuf>,
        /// The `identsphere` binary (default: next to this one).
        #[arg(long)]
        server: Option<PathBuf>,
        /// One second per scenario, SQLite only; fails on any error. Checks
        /// the harness works, not the timings.
        #[arg(long)]
        smoke: bool,
        /// With --postgres: measure IdentSphere again on a seeded database
        /// (this URL; by default the --postgres URL's database name +
        /// `_seeded`), seeded once and then reused, and compare with the
        /// empty one.
        #[arg(long, requires = "postgres", num_args = 0..=1, value_name = "URL")]
        seeded: Option<Option<String>>,
        /// Rebuild the seeded database even if it was seeded with these counts.
        #[arg(long, requires = "seeded")]
        reseed: bool,
        #[command(flatten)]
        counts: seed::Counts,
    },
    /// Seeds a PostgreSQL database (created and migrated if needed) with
    /// users, sessions, organizations and what hangs off them, replacing
    /// its users and organizations.
    Seed {
        /// The database URL.
        #[arg(long)]
        postgres: String,
        /// The `identsphere` binary that migrates the database (default: next to this one).
        #[arg(long)]
        server: Option<PathBuf>,
        #[command(flatten)]
        counts: seed::Counts,
    },
    /// Three instances on one PostgreSQL and one Redis behind a round-robin
    /// client: revocation delays, shared rate-limit budgets, mixed load.
    Cluster(cluster::Args),
    /// Profiles one scenario with `perf record -a`: CPU by thread name over
    /// the whole machine, the server's functions, PostgreSQL's functions.
    Profile(profile::Args),
    /// Registered against unregistered addresses on forgot-password,
    /// resend-verification and sign-up: medians and Mann-Whitney p-values
    /// of interleaved requests (PASS when p > 0.01).
    Timing(timing::Args),
    /// Serves the bare Axum JSON handler (the HTTP ceiling).
    Baseline {
        /// Port on 127.0.0.1.
        #[arg(long)]
        port: u16,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Baseline { port } => baseline(port),
        Cmd::Cluster(args) => cluster::main(args),
        Cmd::Profile(args) => profile::main(args),
        Cmd::Timing(args) => timing::main(args),
        Cmd::Seed {
            postgres,
            server,
            counts,
        } => {
            let server = match server {
                Some(s) => s,
                None => std::env::current_exe()?.with_file_name("identsphere"),
            };
            println!("{}", seed::command(&postgres, &server, counts)?);
            Ok(())
        }
        Cmd::Run {
            secs,
            postgres,
            peer,
            oidc_peer,
            server,
            smoke,
            seeded,
            reseed,
            counts,
        } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let seeded = match (&postgres, seeded) {
                (Some(url), Some(seeded)) if !smoke => Some((
                    seeded.unwrap_or_else(|| seed::seeded_url(url)),
                    counts,
                    reseed,
                )),
                _ => None,
            };
            rt.block_on(suite(Suite {
                secs: if smoke { 1 } else { secs },
                postgres: if smoke { None } else { postgres },
                peer: if smoke { None } else { peer },
                oidc_peer: if smoke { None } else { oidc_peer },
                server: match server {
                    Some(s) => s,
                    None => std::env::current_exe()?.with_file_name("identsphere"),
                },
                smoke,
                seeded,
            }))
        }
    }
}

fn baseline(port: u16) -> Result<()> {
    use axum::{routing::get, Json, Router};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = Router::new().route(
            "/json",
            get(|| async { Json(serde_json::json!({ "id": "01J0000000000000000000000", "email": "bench@example.com", "email_verified": true })) }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

/// The server's hashing pool has one thread per core; raw Argon2id runs on as many.
fn hashing_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

struct Suite {
    secs: u64,
    postgres: Option<String>,
    peer: Option<PathBuf>,
    oidc_peer: Option<PathBuf>,
    server: PathBuf,
    smoke: bool,
    /// The seeded database's URL, its counts, and whether to rebuild it.
    seeded: Option<(String, seed::Counts, bool)>,
}

/// One row of the report.
struct Row {
    store: &'static str,
    scenario: Scenario,
    peak: Measured,
    /// Latency at half the peak rate (non-hashing scenarios).
    half: Option<Measured>,
    /// Hashing scenarios: raw Argon2id hashes/s measured just before and just
    /// after, because this machine's speed drifts by tens of percent within
    /// minutes (two raw runs seconds apart gave 90 and 62 hashes/s).
    raw_around: Option<(f64, f64)>,
}

/// One server's figures besides the rows.
struct ServerFacts {
    store: &'static str,
    ready_ms: f64,
    idle_rss: f64,
    peak_rss: f64,
}

impl Suite {
    fn load(&self, scenario: Scenario) -> Load {
        Load {
            connections: scenario.connections(),
            duration: Duration::from_secs(self.secs),
            rate: None,
        }
    }

    /// Measures `scenarios` on a started server: its rows, and its start,
    /// idle and peak memory figures.
    async fn server_run(
        &self,
        server: Server,
        store: &'static str,
        label: &'static str,
        scenarios: &[Scenario],
    ) -> Result<(Vec<Row>, ServerFacts)> {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_rss = server.rss_mb();
        let sampler = server.sample_rss();
        let fx = if scenarios.iter().any(|s| s.ours()) {
            scenarios::prepare_identsphere(&server.base).await?
        } else if scenarios.contains(&Scenario::PeerClientCredentials) {
            Fixture::none()
        } else {
            scenarios::prepare_peer(&server.base).await?
        };
        let mut rows = Vec::new();
        for &scenario in scenarios {
            rows.push(self.row(&server, store, scenario, &fx).await?);
        }
        let facts = ServerFacts {
            store: label,
            ready_ms: server.ready_in.as_secs_f64() * 1000.0,
            idle_rss,
            peak_rss: sampler.finish(),
        };
        Ok((rows, facts))
    }

    /// Raw Argon2id hashes/s on `threads` threads (as many as the server hashes with).
    async fn raw_argon(&self, threads: usize) -> Result<f64> {
        let secs = self.secs;
        tokio::task::spawn_blocking(move || {
            argon::hashes_per_sec(threads, Duration::from_secs(secs))
        })
        .await?
    }

    /// One row: for a hashing scenario, raw Argon2id before, the load, raw
    /// Argon2id after; otherwise full load, then half of the rate reached.
    async fn row(
        &self,
        server: &Server,
        store: &'static str,
        scenario: Scenario,
        fx: &Fixture,
    ) -> Result<Row> {
        let before = if scenario.hashes() {
            Some(self.raw_argon(hashing_threads()).await?)
        } else {
            None
        };
        let (peak, half) = self.both(server, scenario, fx).await;
        let raw_around = match before {
            Some(before) => {
                let after = self.raw_argon(hashing_threads()).await?;
                eprintln!("  raw Argon2id around it: {before:.1} → {after:.1} hashes/s");
                Some((before, after))
            }
            None => None,
        };
        Ok(Row {
            store,
            scenario,
            peak,
            half,
            raw_around,
        })
    }

    /// Full load, then (unless hashing or smoke) half of the rate reached, for latency.
    async fn both(
        &self,
        server: &Server,
        scenario: Scenario,
        fx: &Fixture,
    ) -> (Measured, Option<Measured>) {
        let peak = scenarios::measure(&server.base, scenario, fx, self.load(scenario)).await;
        eprintln!(
            "  {:<28} {:>9.1} req/s  p50 {:>6.2} ms  p99 {:>7.2} ms  errors {}",
            scenario.name(),
            peak.rps,
            peak.p50_ms,
            peak.p99_ms,
            peak.errors
        );
        if scenario.hashes() || self.smoke || peak.rps < 1.0 {
            return (peak, None);
        }
        let load = Load {
            rate: Some(peak.rps / 2.0),
            ..self.load(scenario)
        };
        let half = scenarios::measure(&server.base, scenario, fx, load).await;
        eprintln!(
            "  {:<28} at {:>8.1} req/s: p50 {:>6.2} ms  p99 {:>7.2} ms  errors {}",
            "  half load", half.rps, half.p50_ms, half.p99_ms, half.errors
        );
        (peak, Some(half))
    }
}

async fn suite(s: Suite) -> Result<()> {
    let threads = hashing_threads();
    let mut rows = Vec::new();
    let mut facts = Vec::new();

    // Seeding takes minutes: done first, so that the empty and the seeded
    // measurements follow each other.
    let mut seeding = None;
    if let Some((url, counts, reseed)) = &s.seeded {
        eprintln!("seeded database {url}");
        seeding = seed::ensure(url, &s.server, *counts, *reseed)?;
    }

    eprintln!("raw Argon2id, {threads} threads");
    let argon = s.raw_argon(threads).await?;
    eprintln!("  {argon:.1} hashes/s");

    eprintln!("bare Axum JSON");
    let base = procs::baseline().await?;
    rows.push(
        s.row(&base, "-", Scenario::Baseline, &Fixture::none())
            .await?,
    );
    drop(base);

    let mut dbs = vec![Db::Sqlite];
    if let Some(url) = &s.postgres {
        dbs.push(Db::Postgres(url.clone()));
    }
    for db in &dbs {
        if s.seeded.is_some() && matches!(db, Db::Postgres(_)) {
            continue; // measured in pairs with the seeded database below
        }
        eprintln!("IdentSphere on {}", db.name());
        let server = procs::identsphere(&s.server, db).await?;
        let (r, f) = s
            .server_run(server, db.name(), db.name(), &Scenario::OURS)
            .await?;
        rows.extend(r);
        facts.push(f);
    }
    // Token issuance signed as the peer signs (RS256), on servers of its own.
    for db in &dbs {
        eprintln!("IdentSphere on {}, RS256", db.name());
        let server = procs::identsphere_signing(&s.server, db, "RS256").await?;
        let label = if matches!(db, Db::Sqlite) {
            "SQLite, RS256"
        } else {
            "PostgreSQL, RS256"
        };
        let (r, f) = s
            .server_run(server, db.name(), label, &[Scenario::TokensRs256])
            .await?;
        rows.extend(r);
        facts.push(f);
    }
    if let (Some(empty), Some((seeded, ..))) = (&s.postgres, &s.seeded) {
        let (r, f) = seed::paired(&s, empty, seeded).await?;
        rows.extend(r);
        facts.extend(f);
    }
    if let Some(peer) = &s.peer {
        for db in &dbs {
            eprintln!("better-auth on {}", db.name());
            let server = procs::better_auth(peer, db).await?;
            let label = if matches!(db, Db::Sqlite) {
                "better-auth, SQLite"
            } else {
                "better-auth, PostgreSQL"
            };
            let peer_scenarios = [Scenario::PeerSignIn, Scenario::PeerSession];
            let (r, f) = s
                .server_run(server, db.name(), label, &peer_scenarios)
                .await?;
            rows.extend(r);
            facts.push(f);
        }
    }

    if let Some(dir) = &s.oidc_peer {
        eprintln!("oidc-provider (in memory)");
        let server = procs::oidc_provider(dir).await?;
        let (r, f) = s
            .server_run(
                server,
                "-",
                "oidc-provider (in memory)",
                &[Scenario::PeerClientCredentials],
            )
            .await?;
        rows.extend(r);
        facts.push(f);
    }

    println!("{}", report(argon, threads, &rows, &facts));
    if let Some((_, counts, _)) = &s.seeded {
        println!(
            "On {} users, {} sessions and {} organizations against the empty database:",
            counts.users, counts.sessions, counts.orgs
        );
        println!("{}", seed::comparison(&rows));
    }
    if let Some(seeding) = seeding {
        println!("{seeding}");
    }
    let failed: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            r.peak.errors > 0 || r.peak.ok == 0 || r.half.as_ref().is_some_and(|h| h.errors > 0)
        })
        .collect();
    if !failed.is_empty() {
        let names: Vec<&str> = failed.iter().map(|r| r.scenario.name()).collect();
        bail!("scenarios with errors or no successful request: {names:?}");
    }
    Ok(())
}

fn report(argon: f64, threads: usize, rows: &[Row], facts: &[ServerFacts]) -> String {
    let ceiling = rows
        .iter()
        .find(|r| r.scenario == Scenario::Baseline)
        .map_or(0.0, |r| r.peak.rps);
    let peer = |store: &str, sc: Scenario| {
        rows.iter()
            .find(|r| r.store == store && r.scenario == sc)
            .map(|r| r.peak.rps)
    };
    let mut out = String::new();
    let _ = writeln!(out, "Raw Argon2id (m=19456 KiB, t=2, p=1) on {threads} threads: **{argon:.1} hashes/s**. Bare Axum JSON: **{ceiling:.0} req/s**.\n");
    let _ = writeln!(out, "| store | scenario | conns | req/s | ratio | p50 ms | p99 ms | p99 ms at half rate | errors |");
    let _ = writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for r in rows {
        let ratio = match r.scenario {
            Scenario::Login | Scenario::PeerSignIn => {
                let (before, after) = r.raw_around.unwrap_or((argon, argon));
                format!(
                    "{:.0}% of raw Argon2id ({before:.1} → {after:.1} around it)",
                    200.0 * r.peak.rps / (before + after)
                )
            }
            Scenario::Baseline => "ceiling".into(),
            _ => format!("{:.0}% of bare Axum", 100.0 * r.peak.rps / ceiling),
        };
        let versus = match r.scenario {
            Scenario::Login => peer(r.store, Scenario::PeerSignIn).map(|p| (p, "better-auth")),
            Scenario::MeCookie => peer(r.store, Scenario::PeerSession).map(|p| (p, "better-auth")),
            // The peer keeps no database: compared with every store.
            Scenario::TokensRs256 => {
                peer("-", Scenario::PeerClientCredentials).map(|p| (p, "oidc-provider"))
            }
            _ => None,
        }
        .map(|(p, name)| format!("; {:.1}× {name}", r.peak.rps / p))
        .unwrap_or_default();
        let half = r.half.as_ref().map_or("-".into(), |h| {
            format!("{:.2} (at {:.0}/s)", h.p99_ms, h.rps)
        });
        let errors = r.peak.errors + r.half.as_ref().map_or(0, |h| h.errors);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} | {ratio}{versus} | {:.2} | {:.2} | {half} | {errors} |",
            r.store,
            r.scenario.name(),
            r.scenario.connections(),
            r.peak.rps,
            r.peak.p50_ms,
            r.peak.p99_ms,
        );
    }
    let _ = writeln!(
        out,
        "\n| server | start to ready | idle RSS | peak RSS under load |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for f in facts {
        let _ = writeln!(
            out,
            "| {} | {:.0} ms | {:.1} MB | {:.1} MB |",
            f.store, f.ready_ms, f.idle_rss, f.peak_rss
        );
    }
    out
}
