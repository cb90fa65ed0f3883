//! `identsphere-bench timing`: do forgot-password, resend-verification and
//! sign-up take the same time whether or not the address is registered?
//! (Issue 12 item 5; docs/security.md "Address enumeration by timing".)
//!
//! For each store, a fresh server with rate limits off (loopback only) gets
//! some registered accounts; then, per endpoint, pairs of requests, one for
//! a registered address and one for an unregistered one, in a random order
//! within each pair, one at a time with a pause after each, so that the
//! machine's noise (and any work the server does after answering) falls on
//! both classes alike. Client-side latency is compared with a two-sided
//! Mann-Whitney U test: PASS when p > 0.01, i.e. the check cannot tell the
//! classes apart at that level.
use crate::{
    load::client,
    procs::{self, Db, Server},
    stats::{mann_whitney, median},
};
use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use std::{
    fmt::Write as _,
    path::PathBuf,
    time::{Duration, Instant},
};

const PASSWORD: &str = "timing password 1";
/// The verdict's threshold.
const ALPHA: f64 = 0.01;

/// The subcommand's options.
#[derive(clap::Args)]
pub struct Args {
    /// Also measure on PostgreSQL: a database URL whose database is dropped
    /// and recreated.
    #[arg(long)]
    postgres: Option<String>,
    /// The `identsphere` binary (default: next to this one).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Requests per class (registered, unregistered) per endpoint and store.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Registered accounts the registered requests cycle through.
    #[arg(long, default_value_t = 20)]
    accounts: usize,
    /// Pause after each request, in milliseconds.
    #[arg(long, default_value_t = 10)]
    pause_ms: u64,
    /// A few samples per class and no verdict: checks the subcommand works.
    #[arg(long)]
    smoke: bool,
    /// Exit non-zero when any p-value is at or below 0.01 (off by default:
    /// a shared machine's noise can fail a sound server now and then).
    #[arg(long)]
    strict: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Forgot,
    Resend,
    Signup,
}

impl Endpoint {
    const ALL: [Self; 3] = [Self::Forgot, Self::Resend, Self::Signup];

    fn name(self) -> &'static str {
        match self {
            Self::Forgot => "forgot-password",
            Self::Resend => "resend-verification",
            Self::Signup => "sign-up",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Self::Forgot => "/v1/auth/password/forgot",
            Self::Resend => "/v1/auth/email/verify/resend",
            Self::Signup => "/v1/auth/signup",
        }
    }

    fn body(self, email: &str) -> Value {
        match self {
            Self::Forgot | Self::Resend => json!({ "email": email }),
            Self::Signup => json!({ "email": email, "password": PASSWORD, "name": "Timing" }),
        }
    }
}

struct Outcome {
    store: &'static str,
    endpoint: Endpoint,
    registered: Vec<f64>,
    unregistered: Vec<f64>,
}

impl Outcome {
    fn p(&self) -> Option<f64> {
        mann_whitney(&self.registered, &self.unregistered).map(|r| r.p)
    }
}

/// Runs the check and prints the report (Markdown).
pub fn main(args: Args) -> Result<()> {
    let server = match &args.server {
        Some(s) => s.clone(),
        None => std::env::current_exe()?.with_file_name("identsphere"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let samples = if args.smoke { 8 } else { args.samples };
    let accounts = if args.smoke { 3 } else { args.accounts.max(1) };
    let mut dbs = vec![Db::Sqlite];
    if let Some(url) = &args.postgres {
        dbs.push(Db::Postgres(url.clone()));
    }
    let mut outcomes = Vec::new();
    for db in &dbs {
        eprintln!("IdentSphere on {}", db.name());
        let started = rt.block_on(procs::identsphere(&server, db))?;
        let run = Run {
            base: started.base.clone(),
            http: client(),
            rng: Rng::seeded(),
            pause: Duration::from_millis(args.pause_ms),
            nonce: format!("{:x}", std::process::id()),
        };
        let measured = rt.block_on(run.store(db.name(), accounts, samples));
        report_failure(&started, &measured);
        outcomes.extend(measured?);
        drop(started);
    }
    println!("{}", report(&outcomes, samples, args.smoke));
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| o.p().is_none_or(|p| p <= ALPHA))
        .map(|o| format!("{} {}", o.store, o.endpoint.name()))
        .collect();
    if args.strict && !args.smoke && !failed.is_empty() {
        bail!("timing tells registered addresses apart (p ≤ {ALPHA}): {failed:?}");
    }
    Ok(())
}

fn report_failure<T>(server: &Server, measured: &Result<T>) {
    if measured.is_err() {
        eprintln!("server log (tail):\n{}", server.log_tail(20));
    }
}

struct Run {
    base: String,
    http: reqwest::Client,
    rng: Rng,
    pause: Duration,
    /// Keeps this run's fresh addresses apart from an earlier run's.
    nonce: String,
}

impl Run {
    async fn store(
        mut self,
        store: &'static str,
        accounts: usize,
        samples: usize,
    ) -> Result<Vec<Outcome>> {
        let registered: Vec<String> = (0..accounts)
            .map(|i| format!("timing-{i}@example.com"))
            .collect();
        for email in &registered {
            self.send(Endpoint::Signup, email).await?;
        }
        self.settle().await?;
        // Warm up connections, caches and the worker on both classes.
        for (i, endpoint) in Endpoint::ALL.iter().cycle().take(30).enumerate() {
            let fresh = format!("warm-{}-{i}@example.com", self.nonce);
            self.send(*endpoint, &registered[i % accounts]).await?;
            self.send(*endpoint, &fresh).await?;
        }
        self.settle().await?;
        let mut outcomes = Vec::new();
        for endpoint in Endpoint::ALL {
            let mut outcome = Outcome {
                store,
                endpoint,
                registered: Vec::with_capacity(samples),
                unregistered: Vec::with_capacity(samples),
            };
            for i in 0..samples {
                // Fresh unregistered addresses each time: sign-up registers them.
                let fresh = format!("fresh-{}-{}-{i}@example.com", self.nonce, endpoint.name());
                let known = &registered[i % accounts];
                if self.rng.coin() {
                    outcome.registered.push(self.timed(endpoint, known).await?);
                    outcome
                        .unregistered
                        .push(self.timed(endpoint, &fresh).await?);
                } else {
                    outcome
                        .unregistered
                        .push(self.timed(endpoint, &fresh).await?);
                    outcome.registered.push(self.timed(endpoint, known).await?);
                }
            }
            eprintln!(
                "  {:<20} median registered {:.3} ms, unregistered {:.3} ms, p = {:.3}",
                endpoint.name(),
                median(&outcome.registered),
                median(&outcome.unregistered),
                outcome.p().unwrap_or(f64::NAN)
            );
            outcomes.push(outcome);
            self.settle().await?;
        }
        Ok(outcomes)
    }

    /// One request's latency in milliseconds, answer read in full; then the pause.
    async fn timed(&self, endpoint: Endpoint, email: &str) -> Result<f64> {
        let started = Instant::now();
        self.send(endpoint, email).await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        tokio::time::sleep(self.pause).await;
        Ok(ms)
    }

    async fn send(&self, endpoint: Endpoint, email: &str) -> Result<()> {
        let r = self
            .http
            .post(format!("{}{}", self.base, endpoint.path()))
            .json(&endpoint.body(email))
            .send()
            .await?;
        let status = r.status();
        let body = r.bytes().await?;
        ensure!(
            status.is_success(),
            "{} answered {status}: {}",
            endpoint.name(),
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }

    /// Waits until the server's job queue is empty (`/readyz`), so that
    /// the next measurement does not share the machine with earlier work.
    async fn settle(&self) -> Result<()> {
        wait_for_jobs(&self.http, &self.base).await
    }
}

/// Polls `/readyz` until no job is pending (10 s at most). Servers without
/// a job queue report none and return at once.
pub async fn wait_for_jobs(http: &reqwest::Client, base: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready: Value = http
            .get(format!("{base}/readyz"))
            .send()
            .await?
            .json()
            .await
            .context("/readyz is not JSON")?;
        if ready["checks"]["jobs"]["pending"].as_u64().unwrap_or(0) == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("jobs still pending after 10 s: {ready}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn report(outcomes: &[Outcome], samples: usize, smoke: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Timing of address-dependent endpoints: {samples} registered and {samples} unregistered requests per row, interleaved.\n"
    );
    let _ = writeln!(
        out,
        "| store | endpoint | n (reg / unreg) | median registered ms | median unregistered ms | Mann-Whitney p | verdict (p > {ALPHA}) |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |");
    for o in outcomes {
        let p = o.p();
        let verdict = match p {
            _ if smoke => "- (smoke)",
            Some(p) if p > ALPHA => "PASS",
            _ => "FAIL",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} / {} | {:.3} | {:.3} | {} | {verdict} |",
            o.store,
            o.endpoint.name(),
            o.registered.len(),
            o.unregistered.len(),
            median(&o.registered),
            median(&o.unregistered),
            p.map_or("-".into(), |p| format!("{p:.3e}")),
        );
    }
    out
}

/// xorshift64*: the order within each pair needs no more than this.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Self(nanos | 1)
    }

    fn coin(&mut self) -> bool {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 63) == 1
    }
}
