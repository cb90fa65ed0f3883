#!/usr/bin/env bash
# Idempotent setup of the better-auth benchmark peer for one database:
#   bench/peers/better-auth/setup.sh sqlite:/tmp/peer.db
#   bench/peers/better-auth/setup.sh postgres://postgres@127.0.0.1:5432/bench_peer
# 1. npm ci if node_modules is missing (better-sqlite3 compiles from source here: ~2 min,
#    needs gcc/g++/make/python3; its prebuilt binary download is unreachable offline),
# 2. for postgres://, creates the database if it does not exist (needs psql),
# 3. node migrate.mjs: better-auth's programmatic schema migration + seeds
#    bench@example.com / "correct horse battery staple" (skipped if present).
set -euo pipefail
cd "$(dirname "$0")"

db_url="${1:-${PEER_DB:-}}"
if [ -z "$db_url" ]; then
  echo "usage: $0 sqlite:/path/file.db | postgres://user@host:port/db" >&2
  exit 2
fi

if [ ! -d node_modules/better-auth ] || [ ! -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ]; then
  npm ci --no-audit --no-fund
fi

case "$db_url" in
  postgres://*|postgresql://*)
    # Create the target database if missing, by connecting to the "postgres" maintenance DB.
    dbname="${db_url##*/}"; dbname="${dbname%%\?*}"
    admin_url="${db_url%/*}/postgres"
    if command -v psql >/dev/null; then
      if [ "$(psql "$admin_url" -tAc "select 1 from pg_database where datname = '$dbname'")" != "1" ]; then
        psql "$admin_url" -qc "create database \"$dbname\"" && echo "setup: created database $dbname"
      fi
    fi
    ;;
  sqlite:*)
    f="${db_url#sqlite:}"; f="${f#//}"
    mkdir -p "$(dirname "$f")"
    ;;
esac

PEER_DB="$db_url" node migrate.mjs
