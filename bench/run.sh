#!/usr/bin/env bash
# The whole benchmark in one run (docs/BENCHMARKS.md): raw Argon2id, a bare
# Axum JSON handler, IdentSphere's scenarios on SQLite and PostgreSQL,
# better-auth on both, and npm oidc-provider's client_credentials (token
# issuance), each server started fresh. Prints a Markdown report.
#
#   bench/run.sh                  # 10 s per measurement
#   BENCH_SECS=30 bench/run.sh
#   BENCH_POSTGRES=postgres://postgres@127.0.0.1:5432/identsphere_bench bench/run.sh
#   BENCH_SEEDED=1 bench/run.sh   # also on a seeded database (…_seeded, reused; bench/README.md)
#
# The PostgreSQL database named in BENCH_POSTGRES is dropped and recreated.
set -euo pipefail
cd "$(dirname "$0")/.."
pg=${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/identsphere_bench}
cargo build --release --locked -q -p identsphere-server -p identsphere-bench
target=${CARGO_TARGET_DIR:-target}
exec "$target/release/identsphere-bench" run \
  --secs "${BENCH_SECS:-10}" \
  --postgres "$pg" \
  --peer bench/peers/better-auth \
  --oidc-peer bench/peers/oidc-provider \
  --server "$target/release/identsphere" \
  ${BENCH_SEEDED:+--seeded}
