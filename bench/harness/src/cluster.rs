//! `identsphere-bench cluster`: three `identsphere serve` processes on one
//! PostgreSQL database and one Redis, behind a round-robin client, behave as
//! one service.
//!
//! 1. **Revocation.** Round after round, a session is signed in and revoked
//!    (logout, or `DELETE /v1/auth/sessions/{id}` from another session)
//!    through one instance while the other two are polled with its access
//!    token; the time from the revoke's answer to each peer's first 401 is
//!    recorded. Every one must be under 100 ms. The same is then measured
//!    during the load run, for information.
//!    Likewise, a profile change through one instance must show on the others
//!    (they cache users) within 100 ms.
//! 2. **Shared budgets.** With small login budgets, failed logins spread over
//!    the three must be refused after the configured total, not three times it.
//! 3. **Load.** Refresh chains, `GET /v1/users/me` by Bearer, cookie and API
//!    key, and paced logins, all at once, each request to the next instance:
//!    no errors allowed.
//!
//! Each part's instances share a fresh random secret (HS256), so the Redis
//! keys of a run are its own; they are removed when the part ends.
use crate::{
    load::{client, Load, Measured},
    procs::{free_port, scratch, serve_command, Db, Server},
    scenarios::{self, field, Fixture, Scenario, Targets, EMAIL, PASSWORD},
};
use anyhow::{bail, ensure, Context, Result};
use identsphere_core::{
    rate_limit::LimitKind,
    secret::{derive_token, subkey},
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::{
    fmt::Write as _,
    io::Read as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// Arguments of `identsphere-bench cluster`.
#[derive(clap::Args)]
pub struct Args {
    /// PostgreSQL database URL. The database is dropped and recreated: name
    /// one of its own (e.g. `.../identsphere_bench_cluster`).
    #[arg(long)]
    postgres: String,
    /// Redis URL (`redis://HOST:PORT`). Only the keys this run created are
    /// removed afterwards.
    #[arg(long)]
    redis: String,
    /// Seconds of mixed load.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// The `identsphere` binary (default: next to this one).
    #[arg(long)]
    server: Option<PathBuf>,
    /// A few revocation rounds and two seconds of load: checks that the
    /// cluster works (CI), with the same assertions.
    #[arg(long)]
    smoke: bool,
}

/// How many `serve` processes.
const INSTANCES: usize = 3;
/// A peer must refuse a revoked session within this.
const REVOCATION_BOUND: Duration = Duration::from_millis(100);
/// After this, a peer that still accepts the session is a failure.
const NEVER: Duration = Duration::from_secs(2);
/// The client address the servers see.
const CLIENT_IP: &str = "127.0.0.1";
/// Budgets of the shared-budget part: every login attempt from one address,
/// and failed logins for one account from one address. Per hour, so nothing
/// refills while the part runs, even on a slow debug build.
const LOGIN_IP_BUDGET: u32 = 15;
const ACCOUNT_IP_BUDGET: u32 = 4;
/// Rate limits stay on for the revocation and load parts (budgets in Redis,
/// as in production), with a login budget no single client address reaches.
const GENEROUS: &str = "login_ip=1000/s,1000";

/// Runs the three parts; fails on any error or broken bound.
pub fn main(args: Args) -> Result<()> {
    let server = match &args.server {
        Some(s) => s.clone(),
        None => std::env::current_exe()?.with_file_name("identsphere"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(&args, &server))
}

async fn run(args: &Args, bin: &Path) -> Result<()> {
    let db = Db::Postgres(args.postgres.clone());
    let redis = Redis::connect(&args.redis).await?;
    let (rounds, secs) = if args.smoke { (6, 2) } else { (60, args.secs) };
    let mut report = String::new();

    eprintln!("{INSTANCES} instances, rate limits in Redis ({GENEROUS})");
    let cluster = Cluster::start(bin, &db, &args.redis, GENEROUS).await?;
    let part = async {
        let fx = scenarios::prepare_identsphere(&cluster.bases[0]).await?;
        let idle = revocation_rounds(&cluster.bases, &fx.credential, Some(rounds)).await?;
        let idle_line = distribution("idle", &idle.delays);
        eprintln!("  revocation seen by the other instances, {idle_line}");
        let profile = profile_rounds(&cluster.bases, &fx.credential, rounds).await?;
        let profile_line = distribution("idle", &profile);
        eprintln!("  profile change seen by the other instances, {profile_line}");
        let (rows, under_load) = mixed_load(&cluster, &fx, secs).await?;
        let load_line = distribution("under the load below", &under_load.delays);
        eprintln!("  revocation seen by the other instances, {load_line}");
        Ok::<_, anyhow::Error>((
            idle,
            idle_line,
            profile,
            profile_line,
            rows,
            under_load,
            load_line,
        ))
    }
    .await;
    let removed = redis.remove(&cluster.limit_keys(&[EMAIL])).await;
    // Failed requests under load may have left their reason in the logs.
    cluster.show_logs_if(part.as_ref().map_or(true, |(_, _, _, _, rows, ..)| {
        rows.iter().any(|(_, _, m)| m.errors > 0)
    }));
    drop(cluster);
    let (idle, idle_line, profile, profile_line, rows, under_load, load_line) = part?;
    let removed = removed?;

    eprintln!("{INSTANCES} instances, small login budgets in Redis");
    let overrides =
        format!("login_ip={LOGIN_IP_BUDGET}/h;login_failures_account_ip={ACCOUNT_IP_BUDGET}/h");
    let cluster = Cluster::start(bin, &db, &args.redis, &overrides).await?;
    let budgets = shared_budgets(&cluster).await;
    let removed_too = redis.remove(&cluster.limit_keys(&budget_addresses())).await;
    cluster.show_logs_if(budgets.is_err());
    drop(cluster);
    let budgets = budgets?;
    eprintln!(
        "  {budgets}\n  removed {} Redis keys of this run",
        removed + removed_too?
    );

    let _ = writeln!(
        report,
        "{INSTANCES} `identsphere serve` processes, one PostgreSQL database, one Redis; \
         every request to the next instance.\n"
    );
    let _ = writeln!(
        report,
        "Revocation (round robin: sign in and revoke through one instance, by logout or \
         `DELETE /v1/auth/sessions/{{id}}`, poll `GET /v1/users/me` on the other two; \
         time from the revoke's answer to each one's first 401):\n"
    );
    let _ = writeln!(report, "- {idle_line}");
    let _ = writeln!(report, "- {load_line}\n");
    let _ = writeln!(
        report,
        "Profile changes (each instance caches users for `GET /v1/users/me`: rename \
         through one instance, poll the other two until they show the new name):\n\n- {profile_line}\n"
    );
    let _ = writeln!(report, "Shared budgets: {budgets}\n");
    let _ = writeln!(
        report,
        "Mixed load for {secs} s, all scenarios at once (rate limits on, budgets in Redis):\n"
    );
    report.push_str(&load_table(&rows));
    println!("{report}");

    let slow: Vec<_> = idle
        .delays
        .iter()
        .filter(|d| **d > REVOCATION_BOUND)
        .collect();
    if !slow.is_empty() {
        bail!(
            "{} of {} revocations took over {REVOCATION_BOUND:?} to reach a peer: {slow:?}",
            slow.len(),
            idle.delays.len()
        );
    }
    if let Some(slow) = profile.iter().find(|d| **d > REVOCATION_BOUND) {
        bail!("a profile change took {slow:?} to show on a peer (bound {REVOCATION_BOUND:?})");
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|(_, _, m)| m.errors > 0 || m.ok == 0)
        .map(|(s, _, _)| s.name())
        .collect();
    if !failed.is_empty() {
        bail!("scenarios with errors or no successful request under round robin: {failed:?}");
    }
    ensure!(
        under_load.rounds > 0,
        "no revocation round completed during the load"
    );
    Ok(())
}

/// Three servers on one database and one Redis, sharing a secret; each is
/// killed when the cluster is dropped.
struct Cluster {
    servers: Vec<Server>,
    bases: Vec<String>,
    secret: String,
}

impl Cluster {
    /// Recreates the database, then starts the instances at once (they race
    /// on the migrations, as a rolling deployment's would) and waits until
    /// each one's revocation feed is live and its limits are in Redis.
    async fn start(bin: &Path, db: &Db, redis: &str, overrides: &str) -> Result<Self> {
        db.recreate()?;
        let Db::Postgres(url) = db else {
            bail!("a cluster needs PostgreSQL");
        };
        let secret = random_secret()?;
        let start = |_| async {
            let port = free_port()?;
            let dir = scratch("cluster")?;
            let mut cmd = serve_command(bin, port, &dir);
            cmd.env("IDENTSPHERE_DATABASE_URL", url)
                .env("IDENTSPHERE_JWT_SECRET", &secret)
                .env("IDENTSPHERE_REDIS_URL", redis)
                .env("IDENTSPHERE_RATE_LIMIT_OVERRIDES", overrides);
            Server::start(cmd, port, "/readyz", Some(dir)).await
        };
        let (a, b, c) = tokio::join!(start(0), start(1), start(2));
        let servers = vec![a?, b?, c?];
        let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
        for base in &bases {
            await_ready(base).await?;
        }
        let ready: Vec<String> = servers
            .iter()
            .map(|s| format!("{:.0} ms", s.ready_in.as_secs_f64() * 1000.0))
            .collect();
        eprintln!("  started {bases:?}, ready in {}", ready.join(", "));
        Ok(Self {
            servers,
            bases,
            secret,
        })
    }

    /// Prints the end of each instance's log when a part failed (the logs
    /// go with the instances).
    fn show_logs_if(&self, failed: bool) {
        if failed {
            for s in &self.servers {
                eprintln!("--- log of {} (last lines)\n{}", s.base, s.log_tail(30));
            }
        }
    }

    /// The Redis keys the instances may have written for logins and sign-ups
    /// from this client with `addresses`: the servers' own derivation (HMAC
    /// under the secret's rate-limit sub-key; `identsphere:rl:` is the
    /// server's prefix), so nothing else in Redis is touched.
    fn limit_keys(&self, addresses: &[&str]) -> Vec<String> {
        let sub = subkey(self.secret.as_bytes(), "rate-limit-keys");
        let key = |kind: LimitKind, text: String| {
            let name = kind.as_str();
            let mac = derive_token(&sub, "", &format!("{name}\0{text}"));
            format!("identsphere:rl:{name}:{mac}")
        };
        let mut keys = vec![
            key(LimitKind::LoginIp, format!("ip\0{CLIENT_IP}")),
            key(LimitKind::SignupIp, format!("ip\0{CLIENT_IP}")),
        ];
        for a in addresses {
            keys.push(key(
                LimitKind::LoginFailuresAccountIp,
                format!("addr-ip\0{a}\0{CLIENT_IP}"),
            ));
            keys.push(key(LimitKind::LoginFailuresAccount, format!("addr\0{a}")));
        }
        keys
    }
}

/// 32 random bytes from the OS, hex-encoded.
fn random_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Waits until `base` reports a live revocation feed and budgets in Redis.
async fn await_ready(base: &str) -> Result<()> {
    let http = client();
    let started = Instant::now();
    loop {
        let ready: Value = http
            .get(format!("{base}/readyz"))
            .send()
            .await?
            .json()
            .await?;
        let checks = &ready["checks"];
        if checks["revocation_feed"] == "live" && checks["rate_limits"] == "redis" {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(10) {
            bail!("{base}/readyz: {ready} (wanted revocation_feed live, rate_limits redis: is Redis reachable?)");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A connection to the Redis the instances share: checked at start, used to
/// remove the run's keys.
struct Redis(redis::aio::MultiplexedConnection);

impl Redis {
    async fn connect(url: &str) -> Result<Self> {
        let client = redis::Client::open(url).with_context(|| format!("Redis URL {url}"))?;
        let mut conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .with_context(|| format!("Redis at {url} does not answer"))?
        .with_context(|| format!("Redis at {url} is unreachable"))?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .with_context(|| format!("Redis at {url} does not answer PING"))?;
        Ok(Self(conn))
    }

    /// Deletes `keys` (those that exist); how many there were.
    async fn remove(&self, keys: &[String]) -> Result<u64> {
        let mut conn = self.0.clone();
        Ok(redis::cmd("DEL").arg(keys).query_async(&mut conn).await?)
    }
}

/// Revocation delays: from a revoke's answer to a peer's first refusal.
#[derive(Debug, Default)]
struct Revocations {
    rounds: usize,
    delays: Vec<Duration>,
}

/// Revocation rounds over `bases`, `rounds` of them, or (`None`) until
/// `stop` says so. Round `r` signs in and revokes through instance `r % 3`:
/// by logout on even rounds, by `DELETE /v1/auth/sessions/{id}` with the
/// `admin` session on odd ones.
async fn revocation_rounds(
    bases: &[String],
    admin: &str,
    rounds: Option<usize>,
) -> Result<Revocations> {
    revocation_until(bases, admin, rounds, &tokio::sync::watch::channel(false).1).await
}

async fn revocation_until(
    bases: &[String],
    admin: &str,
    rounds: Option<usize>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<Revocations> {
    let http = client();
    let mut out = Revocations::default();
    for round in 0.. {
        if rounds.is_some_and(|n| round >= n) || *stop.borrow() {
            break;
        }
        let n = bases.len();
        let own = &bases[round % n];
        let peers = [&bases[(round + 1) % n], &bases[(round + 2) % n]];
        let login = scenarios::login(own).await?;
        let token = field(&login, "access_token")?;
        let session = field(&login, "session_id")?;
        for peer in peers {
            let status = me(&http, peer, &token).await?;
            ensure!(
                status == StatusCode::OK,
                "{peer} answers {status} to a fresh session signed in on {own}"
            );
        }
        let r = if round % 2 == 0 {
            http.post(format!("{own}/v1/auth/logout"))
                .bearer_auth(&token)
                .json(&json!({}))
                .send()
                .await?
        } else {
            http.delete(format!("{own}/v1/auth/sessions/{session}"))
                .bearer_auth(admin)
                .send()
                .await?
        };
        let revoked = Instant::now();
        ensure!(
            r.status() == StatusCode::NO_CONTENT,
            "revoking through {own}: {}",
            r.status()
        );
        let (a, b) = tokio::join!(
            refused_after(peers[0], &token, revoked),
            refused_after(peers[1], &token, revoked)
        );
        out.delays.extend([a?, b?]);
        let status = me(&http, own, &token).await?;
        ensure!(
            status == StatusCode::UNAUTHORIZED,
            "{own} answers {status} to the session it revoked"
        );
        out.rounds += 1;
    }
    Ok(out)
}

/// Profile rounds: round `r` renames the user of `token` through instance
/// `r % 3` (after every instance has cached the old name) and polls the other
/// two until they show the new one; the delays from the rename's answer.
async fn profile_rounds(bases: &[String], token: &str, rounds: usize) -> Result<Vec<Duration>> {
    let http = client();
    let mut delays = Vec::new();
    for round in 0..rounds {
        let n = bases.len();
        for base in bases {
            name_on(&http, base, token).await?;
        }
        let name = json!(format!("Bench {round}"));
        let r = http
            .patch(format!("{}/v1/users/me", bases[round % n]))
            .bearer_auth(token)
            .json(&json!({ "name": name }))
            .send()
            .await?;
        let renamed = Instant::now();
        ensure!(r.status() == StatusCode::OK, "renaming: {}", r.status());
        let (a, b) = tokio::join!(
            shows_name_after(&http, &bases[(round + 1) % n], token, &name, renamed),
            shows_name_after(&http, &bases[(round + 2) % n], token, &name, renamed)
        );
        delays.extend([a?, b?]);
    }
    Ok(delays)
}

/// The name `GET /v1/users/me` shows on `base`.
async fn name_on(http: &reqwest::Client, base: &str, token: &str) -> Result<Value> {
    let r = http
        .get(format!("{base}/v1/users/me"))
        .bearer_auth(token)
        .send()
        .await?;
    ensure!(
        r.status() == StatusCode::OK,
        "{base}/v1/users/me: {}",
        r.status()
    );
    Ok(r.json::<Value>().await?["name"].clone())
}

/// Polls `base` back to back until it shows `name`; the time from `since`.
async fn shows_name_after(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &Value,
    since: Instant,
) -> Result<Duration> {
    while name_on(http, base, token).await? != *name {
        if since.elapsed() > NEVER {
            bail!("{base} still shows an old name {NEVER:?} after a rename");
        }
    }
    Ok(since.elapsed())
}

async fn me(http: &reqwest::Client, base: &str, token: &str) -> Result<StatusCode> {
    Ok(http
        .get(format!("{base}/v1/users/me"))
        .bearer_auth(token)
        .send()
        .await?
        .status())
}

/// Polls `base` with `token` back to back until it answers 401; the time
/// from `since` to that answer.
async fn refused_after(base: &str, token: &str, since: Instant) -> Result<Duration> {
    let http = client();
    loop {
        match me(&http, base, token).await? {
            StatusCode::UNAUTHORIZED => return Ok(since.elapsed()),
            StatusCode::OK => {}
            other => bail!("{base} answers {other} while the revocation spreads"),
        }
        if since.elapsed() > NEVER {
            bail!("{base} still accepts a session revoked {NEVER:?} ago");
        }
    }
}

/// `n`, min, median, p90, p99 and max in ms (nearest rank).
fn distribution(label: &str, delays: &[Duration]) -> String {
    if delays.is_empty() {
        return format!("{label}: no samples");
    }
    let mut d = delays.to_vec();
    d.sort();
    let at = |q: f64| {
        let rank = ((q * d.len() as f64).ceil() as usize).clamp(1, d.len());
        d[rank - 1].as_secs_f64() * 1000.0
    };
    format!(
        "{label}: n={} min {:.2} ms, median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        d.len(),
        at(0.0),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}

/// The mixed load's scenarios: connections, and a pace for logins (they
/// hash, so they come now and then rather than saturate the cores).
const MIX: [(Scenario, usize, Option<f64>); 6] = [
    (Scenario::Refresh, 8, None),
    (Scenario::MeBearer, 8, None),
    (Scenario::MeCookie, 8, None),
    (Scenario::ApiKey, 4, None),
    (Scenario::Tokens, 4, None),
    (Scenario::Login, 2, Some(4.0)),
];

type LoadRow = (Scenario, usize, Measured);

/// Every scenario of [`MIX`] at once for `secs`, each request to the next
/// instance, while revocation rounds run alongside.
async fn mixed_load(c: &Cluster, fx: &Fixture, secs: u64) -> Result<(Vec<LoadRow>, Revocations)> {
    let targets = Targets::round_robin(c.bases.clone());
    let runs = MIX.map(|(scenario, connections, rate)| {
        let targets = targets.clone();
        async move {
            let load = Load {
                connections,
                duration: Duration::from_secs(secs),
                rate,
            };
            let m = scenarios::measure_on(&targets, scenario, fx, load).await;
            (scenario, connections, m)
        }
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = async {
        let rows = futures::future::join_all(runs).await;
        let _ = stop.send(true);
        rows
    };
    let revocations = async {
        // The load's connections sign in first; then revoke alongside.
        tokio::time::sleep(Duration::from_millis(300)).await;
        revocation_until(&c.bases, &fx.credential, None, &stopped).await
    };
    let (rows, revoked) = tokio::join!(load, revocations);
    Ok((rows, revoked?))
}

fn load_table(rows: &[LoadRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | conns | req/s | p50 ms | p99 ms | errors |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
    let mut total = 0.0;
    for (scenario, conns, m) in rows {
        let paced = MIX
            .iter()
            .find(|(s, ..)| s == scenario)
            .and_then(|(_, _, r)| *r)
            .map(|r| format!(", paced at {r}/s"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {}{paced} | {conns} | {:.1} | {:.2} | {:.2} | {} |",
            scenario.name(),
            m.rps,
            m.p50_ms,
            m.p99_ms,
            m.errors
        );
        total += m.rps;
    }
    let _ = writeln!(out, "| all | | {total:.1} | | | |");
    out
}

/// The unknown addresses the shared-budget part tries.
fn budget_addresses() -> Vec<&'static str> {
    vec![
        EMAIL,
        "nobody0@example.com",
        "nobody1@example.com",
        "nobody2@example.com",
        "nobody3@example.com",
        "nobody4@example.com",
        "nobody5@example.com",
        "nobody6@example.com",
        "nobody7@example.com",
        "nobody8@example.com",
        "nobody9@example.com",
        "nobody10@example.com",
    ]
}

/// Login attempts round robin over the instances, against budgets of
/// [`ACCOUNT_IP_BUDGET`] failures for one account and [`LOGIN_IP_BUDGET`]
/// attempts in all from this address. Per-process budgets would allow three
/// times each.
async fn shared_budgets(c: &Cluster) -> Result<String> {
    let http = client();
    let base0 = &c.bases[0];
    let r = http
        .post(format!("{base0}/v1/auth/signup"))
        .json(&json!({ "email": EMAIL, "password": PASSWORD }))
        .send()
        .await?;
    ensure!(r.status().is_success(), "signup: {}", r.status());
    // The account is created by a job after the answer.
    crate::timing::wait_for_jobs(&http, base0).await?;
    let mut attempt = 0usize;
    let mut expected = Vec::new();
    let mut got = Vec::new();
    let mut try_login = |email: &'static str, password: &'static str, want: StatusCode| {
        let base = c.bases[attempt % c.bases.len()].clone();
        attempt += 1;
        expected.push(want.as_u16());
        let http = http.clone();
        async move {
            let r = http
                .post(format!("{base}/v1/auth/login"))
                .json(&json!({ "email": email, "password": password }))
                .send()
                .await?;
            let status = r.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                ensure!(
                    r.headers().contains_key("retry-after"),
                    "429 without Retry-After from {base}"
                );
            }
            Ok::<_, anyhow::Error>(status.as_u16())
        }
    };
    // Wrong passwords for one account until its failure budget is spent;
    // then the right password is refused too, on every instance.
    for _ in 0..ACCOUNT_IP_BUDGET {
        got.push(try_login(EMAIL, "wrong password, surely", StatusCode::UNAUTHORIZED).await?);
    }
    for _ in 0..INSTANCES {
        got.push(try_login(EMAIL, PASSWORD, StatusCode::TOO_MANY_REQUESTS).await?);
    }
    // Every attempt so far counted against the address's budget; unknown
    // accounts use up the rest, then every instance refuses.
    let spent = ACCOUNT_IP_BUDGET as usize + INSTANCES;
    let unknown = budget_addresses();
    for i in 0..(LOGIN_IP_BUDGET as usize - spent + INSTANCES) {
        let want = if spent + i < LOGIN_IP_BUDGET as usize {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        got.push(
            try_login(
                unknown[1 + i % (unknown.len() - 1)],
                "wrong password, surely",
                want,
            )
            .await?,
        );
    }
    if got != expected {
        bail!(
            "login statuses round robin over {INSTANCES} instances:\n  expected {expected:?}\n  got      {got:?}"
        );
    }
    Ok(format!(
        "{ACCOUNT_IP_BUDGET} failed logins for one account, round robin, locked it on all {INSTANCES} \
         instances (429 to the right password on each); with login_ip={LOGIN_IP_BUDGET}/h the \
         {}th attempt and those after were refused (429, Retry-After) on every instance, \
         where per-process budgets would have allowed {} attempts. Statuses in order: {got:?}",
        LOGIN_IP_BUDGET + 1,
        LOGIN_IP_BUDGET as usize * INSTANCES
    ))
}
