//! `identsphere-bench profile`: where the CPU goes while one scenario runs.
//!
//! The whole machine is sampled with `perf record -a` (software clock, so it
//! works where hardware counters are not exposed) while the scenario runs,
//! and three flat profiles are printed: CPU time by thread name over every
//! process (the server's async workers, its hashing pool, PostgreSQL, the load
//! generator, the kernel), the server's own functions, and PostgreSQL's
//! functions when it is the store. The recording is kept for `perf report -i`.
use crate::{
    load::Load,
    procs::{self, Db},
    scenarios::{self, Scenario},
};
use anyhow::{bail, Context, Result};
use std::{path::PathBuf, process::Command, time::Duration};

/// What to profile.
#[derive(clap::Args)]
pub struct Args {
    /// The scenario.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Seconds of recorded load (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Requests per second; by default as fast as the server answers.
    #[arg(long)]
    rate: Option<f64>,
    /// A PostgreSQL database URL (dropped and recreated); SQLite otherwise.
    #[arg(long, conflicts_with = "seeded")]
    postgres: Option<String>,
    /// A database seeded by `identsphere-bench seed` (kept; what earlier runs
    /// added is removed first).
    #[arg(long)]
    seeded: Option<String>,
    /// The `identsphere` binary (default: next to this one).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Where the recording is written.
    #[arg(long, default_value = "target/profile")]
    out: PathBuf,
}

/// Samples per second per CPU: enough for percentages, small enough not to
/// disturb the run.
const FREQUENCY: &str = "499";

pub fn main(args: Args) -> Result<()> {
    if !args.scenario.ours() {
        bail!(
            "profile runs IdentSphere's scenarios: {:?} and {:?}",
            Scenario::OURS,
            Scenario::TokensRs256
        );
    }
    let perf_works = Command::new("perf")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !perf_works {
        bail!("`perf` is needed (Debian: apt-get install linux-perf)");
    }
    let server_bin = match &args.server {
        Some(s) => s.clone(),
        None => std::env::current_exe()?.with_file_name("identsphere"),
    };
    std::fs::create_dir_all(&args.out)?;
    let db = match (&args.postgres, &args.seeded) {
        (Some(url), _) => Db::Postgres(url.clone()),
        (None, Some(url)) => Db::Seeded(url.clone()),
        (None, None) => Db::Sqlite,
    };
    let slug = format!(
        "{:?}-{}",
        args.scenario,
        match db {
            Db::Sqlite => "sqlite",
            Db::Postgres(_) => "postgres",
            Db::Seeded(_) => "seeded",
        }
    )
    .to_lowercase();
    let data = args.out.join(format!("{slug}.perf.data"));
    // The generator's threads get a name of their own, so that the report
    // tells them from the server's `tokio-runtime-w` workers.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-load")
        .enable_all()
        .build()?;
    let scenario = args.scenario;
    let (measured, server_pid) = rt.block_on(async {
        let alg = if scenario == Scenario::TokensRs256 {
            "RS256"
        } else {
            "HS256"
        };
        let server = procs::identsphere_signing(&server_bin, &db, alg).await?;
        let fx = scenarios::prepare_identsphere(&server.base).await?;
        let load = |secs| Load {
            connections: scenario.connections(),
            duration: Duration::from_secs(secs),
            rate: args.rate,
        };
        scenarios::measure(&server.base, scenario, &fx, load(1)).await;
        let mut perf = Command::new("perf")
            .args(["record", "-a", "-F", FREQUENCY, "-q", "-o"])
            .arg(&data)
            .args(["--", "sleep", &args.secs.to_string()])
            .spawn()
            .context("starting perf record")?;
        let measured = scenarios::measure(&server.base, scenario, &fx, load(args.secs)).await;
        if !perf.wait()?.success() {
            bail!("perf record failed");
        }
        let pid = server.pid().context("the server exited")?;
        anyhow::Ok((measured, pid))
    })?;

    println!(
        "{} on {}: {:.1} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors; recording: {}\n",
        scenario.name(),
        db.name(),
        measured.rps,
        measured.p50_ms,
        measured.p99_ms,
        measured.errors,
        data.display()
    );
    report(
        &data,
        "CPU by thread name, whole machine",
        &["--sort", "comm"],
        0.5,
    )?;
    report(
        &data,
        "IdentSphere's functions (self time, share of all samples on the machine)",
        &["--pid", &server_pid.to_string(), "--sort", "dso,sym"],
        0.7,
    )?;
    if db.url().is_some() {
        report(
            &data,
            "PostgreSQL's functions (share of its samples)",
            &["--comms", "postgres", "--sort", "dso,sym"],
            0.7,
        )?;
    }
    Ok(())
}

/// Prints one flat `perf report` table, without its comment header.
fn report(data: &std::path::Path, title: &str, how: &[&str], min_percent: f64) -> Result<()> {
    let out = Command::new("perf")
        .args(["report", "--stdio", "--no-children", "-i"])
        .arg(data)
        .args(how)
        .args(["--percent-limit", &min_percent.to_string()])
        .output()
        .context("running perf report")?;
    if !out.status.success() {
        bail!("perf report: {}", String::from_utf8_lossy(&out.stderr));
    }
    println!("## {title}\n");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if !line.starts_with('#') && !line.trim().is_empty() {
            println!("    {line}");
        }
    }
    println!();
    Ok(())
}
