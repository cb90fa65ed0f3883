//! The scale check (issue 5): a PostgreSQL database seeded with a million
//! users, five million sessions and a hundred thousand organizations, on
//! which the scenarios run again and are compared with the empty database.
//!
//!     identsphere-bench seed --postgres URL [--users N --sessions N --orgs N]
//!     identsphere-bench run --postgres URL --seeded [--reseed]
//!
//! The rows are generated in PostgreSQL, set-based (`seed.sql`), in one
//! transaction; the harness migrates the database with the server's own
//! `identsphere migrate` first, so the schema is exactly the server's. All
//! database access goes through `psql`, as elsewhere in the harness.
use crate::{
    procs::{self, scratch, Db, Server},
    scenarios::{self, Scenario},
    Row, ServerFacts, Suite,
};
use anyhow::{bail, Context, Result};
use argon2::{
    password_hash::{rand_core::OsRng, PasswordHasher, SaltString},
    Algorithm, Argon2, Params, Version,
};
use identsphere_core::password::HashParams;
use std::{
    fmt::Write as _,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// The generator, run by `psql` with the counts and the password hash as variables.
const SQL: &str = include_str!("seed.sql");

/// The password of every seeded user (one shared hash, computed once).
pub const PASSWORD: &str = "seeded password 1";

/// The store name of the seeded database's rows in reports.
pub const STORE: &str = "PostgreSQL, seeded";

/// How much to seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct Counts {
    /// Users to seed.
    #[arg(long, default_value_t = 1_000_000)]
    pub users: u64,
    /// Sessions to seed (each with 1–3 refresh tokens).
    #[arg(long, default_value_t = 5_000_000)]
    pub sessions: u64,
    /// Organizations to seed (1–20 members each).
    #[arg(long, default_value_t = 100_000)]
    pub orgs: u64,
}

/// The seeded twin of a database URL: the same server, the database name
/// with `_seeded` appended.
pub fn seeded_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, query)) => format!("{base}_seeded?{query}"),
        None => format!("{url}_seeded"),
    }
}

/// `psql` on `url`, quiet, unaligned, without the user's `.psqlrc`.
fn psql(url: &str) -> Command {
    let mut cmd = Command::new("psql");
    cmd.args([url, "-XAtq", "-v", "ON_ERROR_STOP=1"]);
    cmd
}

/// Runs `sql` on `url` and returns its output.
fn query(url: &str, sql: &str) -> Result<String> {
    let out = psql(url)
        .args(["-c", sql])
        .stderr(Stdio::piped())
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!(
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The server's maintenance database URL and the database's name.
fn split(url: &str) -> Result<(String, String)> {
    let path = url.split('?').next().unwrap_or(url);
    let (admin, name) = path
        .rsplit_once('/')
        .context("a database URL ends in /NAME")?;
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!("database name {name:?}: use a-z, 0-9 and _");
    }
    Ok((format!("{admin}/postgres"), name.to_owned()))
}

/// Creates the database if it does not exist (answers whether it did not).
fn ensure_database(url: &str) -> Result<bool> {
    let (admin, name) = split(url)?;
    let exists = query(
        &admin,
        &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
    )?;
    if exists.is_empty() {
        query(&admin, &format!("CREATE DATABASE {name}"))?;
    }
    Ok(exists.is_empty())
}

/// Drops and recreates the database.
fn recreate_database(url: &str) -> Result<()> {
    let (admin, name) = split(url)?;
    query(
        &admin,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )?;
    query(&admin, &format!("CREATE DATABASE {name}"))?;
    Ok(())
}

/// Applies the server's migrations with `identsphere migrate`.
fn migrate(server: &Path, url: &str) -> Result<()> {
    let dir = scratch("migrate")?;
    let out = Command::new(server)
        .arg("migrate")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("IDENTSPHERE_DATABASE_URL", url)
        .env("IDENTSPHERE_DATA_DIR", &dir)
        .env("RUST_LOG", "warn")
        .output()
        .with_context(|| format!("running {} migrate", server.display()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = out?;
    if !out.status.success() {
        bail!(
            "{} migrate failed: {}",
            server.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// An Argon2id hash of [`PASSWORD`] with the server's parameters, as the
/// server stores it.
fn password_hash() -> Result<String> {
    let p = HashParams::default();
    let params = Params::new(p.m_cost, p.t_cost, p.p_cost, None).map_err(anyhow::Error::msg)?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon
        .hash_password(PASSWORD.as_bytes(), &salt)
        .map_err(anyhow::Error::msg)?
        .to_string())
}

/// What seeding with `n` marks the database with (`seed.sql` writes it
/// as the database's comment, in the seeding transaction).
fn marker(n: Counts) -> String {
    format!(
        "identsphere-bench seed: users={} sessions={} orgs={}",
        n.users, n.sessions, n.orgs
    )
}

/// The database's seeding marker, if any.
fn seeded_with(url: &str) -> Result<String> {
    query(
        url,
        "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database \
         WHERE datname = current_database()",
    )
}

/// Removes what benchmark runs add to a seeded database: the benchmark
/// account, and with it its sessions, refresh tokens and API keys (its audit
/// events stay, as the store keeps them for deleted users too).
pub fn reset(url: &str) -> Result<()> {
    query(
        url,
        &format!(
            "DELETE FROM users WHERE email = '{}'",
            crate::scenarios::EMAIL
        ),
    )?;
    Ok(())
}

/// Seeds the (migrated) database at `url` with `n`, replacing its users and
/// organizations, then vacuums and analyzes it. Progress goes to stderr; the
/// answer is a Markdown summary: time per step, rows and size per table.
pub fn seed(url: &str, n: Counts) -> Result<String> {
    let started = Instant::now();
    let hash = password_hash()?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Seeded {} users, {} sessions, {} organizations.\n",
        n.users, n.sessions, n.orgs
    );
    let _ = writeln!(out, "| step | seconds |\n| --- | --- |");
    let mut child = psql(url)
        .args(["-v", &format!("users={}", n.users)])
        .args(["-v", &format!("sessions={}", n.sessions)])
        .args(["-v", &format!("orgs={}", n.orgs)])
        .args(["-v", &format!("hash={hash}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running psql")?;
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().context("psql's stdin")?;
        stdin.write_all(SQL.as_bytes())?;
    }
    let stdout = child.stdout.take().context("psql's stdout")?;
    let mut step: Option<(String, Instant)> = None;
    let finish = |step: &mut Option<(String, Instant)>, out: &mut String| {
        if let Some((name, at)) = step.take() {
            let secs = at.elapsed().as_secs_f64();
            eprintln!("  {name:<20} {secs:>7.1} s");
            let _ = writeln!(out, "| {name} | {secs:.1} |");
        }
    };
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(name) = line.strip_prefix("step ") {
            finish(&mut step, &mut out);
            step = Some((name.to_owned(), Instant::now()));
        }
    }
    let status = child.wait()?;
    finish(&mut step, &mut out);
    if !status.success() {
        bail!("seeding failed (psql exited with {status}); the database is unchanged");
    }
    let at = Instant::now();
    // Frozen and with a visibility map, as a long-lived database would be:
    // the measurements should not pay for the first reads' hint-bit writes.
    query(url, "VACUUM (FREEZE, ANALYZE)")?;
    finish(&mut Some(("vacuum, analyze".into(), at)), &mut out);
    let total = started.elapsed().as_secs_f64();
    eprintln!("  seeded in {total:.0} s");
    let _ = writeln!(out, "| **total** | **{total:.1}** |\n");
    out.push_str(&sizes(url)?);
    Ok(out)
}

/// Rows and on-disk size (with indexes) of every table, and the database's size.
pub fn sizes(url: &str) -> Result<String> {
    let rows = query(
        url,
        "SELECT c.relname, c.reltuples::bigint, pg_size_pretty(pg_table_size(c.oid)), \
         pg_size_pretty(pg_indexes_size(c.oid)) \
         FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace \
         ORDER BY pg_total_relation_size(c.oid) DESC",
    )?;
    let total = query(
        url,
        "SELECT pg_size_pretty(pg_database_size(current_database()))",
    )?;
    let mut out =
        String::from("| table | rows (estimate) | table | indexes |\n| --- | --- | --- | --- |\n");
    for line in rows.lines() {
        let cols: Vec<&str> = line.split('|').collect();
        if let [name, n, table, indexes] = cols[..] {
            let _ = writeln!(out, "| {name} | {n} | {table} | {indexes} |");
        }
    }
    let _ = writeln!(out, "\nDatabase size: {total}.");
    Ok(out)
}

/// `identsphere-bench seed`: creates the database if needed, migrates it
/// with `server`, seeds it.
pub fn command(url: &str, server: &Path, n: Counts) -> Result<String> {
    if ensure_database(url)? {
        eprintln!("created the database");
    }
    migrate(server, url)?;
    eprintln!(
        "seeding {} users, {} sessions, {} organizations",
        n.users, n.sessions, n.orgs
    );
    seed(url, n)
}

/// For `run --seeded`: makes sure the database at `url` is migrated and
/// was seeded with `n` (seeding it if not, from scratch if `reseed`), and
/// removes what earlier runs added. Answers the seeding summary when it
/// seeded.
pub fn ensure(url: &str, server: &Path, n: Counts, reseed: bool) -> Result<Option<String>> {
    if reseed {
        recreate_database(url)?;
    } else {
        ensure_database(url)?;
    }
    migrate(server, url)?;
    reset(url)?;
    let have = seeded_with(url)?;
    if have == marker(n) {
        eprintln!(
            "reusing the seeded database ({} users, {} sessions, {} organizations; --reseed to rebuild it)",
            n.users, n.sessions, n.orgs
        );
        return Ok(None);
    }
    if !have.is_empty() {
        eprintln!("the database was seeded differently ({have}): reseeding");
    }
    eprintln!(
        "seeding {} users, {} sessions, {} organizations",
        n.users, n.sessions, n.orgs
    );
    seed(url, n).map(Some)
}

/// Measures IdentSphere's scenarios on the empty database (`empty`,
/// recreated) and on the seeded one in pairs: both servers run, and each
/// scenario is measured on one right after the other, the first alternating
/// from scenario to scenario, so that on a noisy machine the ratio compares
/// figures taken seconds apart rather than minutes. Answers the empty
/// database's rows, then the seeded one's, and both servers' facts.
pub async fn paired(s: &Suite, empty: &str, seeded: &str) -> Result<(Vec<Row>, Vec<ServerFacts>)> {
    let dbs = [
        Db::Postgres(empty.to_owned()),
        Db::Seeded(seeded.to_owned()),
    ];
    eprintln!(
        "IdentSphere on {} and {}, in pairs",
        dbs[0].name(),
        dbs[1].name()
    );
    let mut servers: Vec<Server> = Vec::new();
    for db in &dbs {
        servers.push(procs::identsphere(&s.server, db).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle: Vec<f64> = servers.iter().map(Server::rss_mb).collect();
    let samplers: Vec<_> = servers.iter().map(Server::sample_rss).collect();
    let mut fixtures = Vec::new();
    for server in &servers {
        fixtures.push(scenarios::prepare_identsphere(&server.base).await?);
    }
    let mut rows: [Vec<Row>; 2] = [Vec::new(), Vec::new()];
    for (i, &scenario) in Scenario::OURS.iter().enumerate() {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            eprintln!(" {}", dbs[k].name());
            rows[k].push(
                s.row(&servers[k], dbs[k].name(), scenario, &fixtures[k])
                    .await?,
            );
        }
    }
    let facts = samplers
        .into_iter()
        .zip(&servers)
        .zip(&dbs)
        .zip(idle)
        .map(|(((sampler, server), db), idle_rss)| ServerFacts {
            store: db.name(),
            ready_ms: server.ready_in.as_secs_f64() * 1000.0,
            idle_rss,
            peak_rss: sampler.finish(),
        })
        .collect();
    let [empty_rows, seeded_rows] = rows;
    Ok((empty_rows.into_iter().chain(seeded_rows).collect(), facts))
}

/// Each IdentSphere scenario's throughput on the seeded database against the
/// empty one (issue 5: within 10%).
pub fn comparison(rows: &[Row]) -> String {
    let mut out = String::from(
        "\n| scenario | empty req/s | seeded req/s | seeded / empty | within 10% | p99 ms empty → seeded |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    for seeded in rows.iter().filter(|r| r.store == STORE) {
        let Some(empty) = rows
            .iter()
            .find(|r| r.store == "PostgreSQL" && r.scenario == seeded.scenario)
        else {
            continue;
        };
        let ratio = seeded.peak.rps / empty.peak.rps;
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.0}% | {} | {:.2} → {:.2} |",
            seeded.scenario.name(),
            empty.peak.rps,
            seeded.peak.rps,
            100.0 * ratio,
            if ratio >= 0.9 { "yes" } else { "**no**" },
            empty.peak.p99_ms,
            seeded.peak.p99_ms,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeded_database_is_named_after_the_empty_one() {
        assert_eq!(
            seeded_url("postgres://u@h:5432/bench"),
            "postgres://u@h:5432/bench_seeded"
        );
        assert_eq!(
            seeded_url("postgres://u@h/bench?sslmode=disable"),
            "postgres://u@h/bench_seeded?sslmode=disable"
        );
        let (admin, name) = split("postgres://u@h/bench_seeded?sslmode=disable").unwrap();
        assert_eq!(
            (admin.as_str(), name.as_str()),
            ("postgres://u@h/postgres", "bench_seeded")
        );
        assert!(split("postgres://u@h/Robert'); DROP").is_err());
    }

    #[test]
    fn the_marker_is_the_one_seed_sql_writes() {
        let n = Counts {
            users: 1,
            sessions: 2,
            orgs: 3,
        };
        assert_eq!(
            marker(n),
            "identsphere-bench seed: users=1 sessions=2 orgs=3"
        );
        assert!(SQL.contains(
            "'identsphere-bench seed: users=%s sessions=%s orgs=%s', :users, :sessions, :orgs"
        ));
    }

    #[test]
    fn the_shared_hash_is_the_servers_argon2id() {
        let hash = password_hash().unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
    }
}
