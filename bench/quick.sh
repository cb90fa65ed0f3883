#!/usr/bin/env bash
# Quick, repeatable load figures on this machine: password-login latency and
# authenticated GET /v1/users/me throughput (Bearer). The full harness with
# peers and ratios is bench/README (issue 5); this one needs only wrk.
#
#   bench/quick.sh                      # SQLite in a temp dir
#   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench bench/quick.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || apt-get install -y wrk
command -v jq >/dev/null || apt-get install -y jq
cargo build --release -q -p identsphere-server

port=18080
dir=$(mktemp -d)
env=(IDENTSPHERE_LISTEN=127.0.0.1:$port IDENTSPHERE_DATA_DIR="$dir" IDENTSPHERE_RATE_LIMITS=off
     IDENTSPHERE_REQUIRE_EMAIL_VERIFICATION=false RUST_LOG=warn)
if [ -n "${BENCH_DATABASE_URL:-}" ]; then
  env+=(IDENTSPHERE_DATABASE_URL="$BENCH_DATABASE_URL" IDENTSPHERE_JWT_SECRET=bench-secret-0123456789abcdef0123456789)
fi
env "${env[@]}" target/release/identsphere serve >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

base=http://127.0.0.1:$port
curl -s "$base/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"bench password 0123"}' >/dev/null
token=$(curl -s "$base/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"bench password 0123"}' | jq -r .access_token)

echo "== password login (Argon2id m=19456 t=2 p=1), 4 connections, 10 s"
wrk -t2 -c4 -d10s --latency -s bench/login.lua "$base/v1/auth/login"
echo "== GET /v1/users/me with Bearer, 32 connections, 10 s"
wrk -t2 -c32 -d10s --latency -H "authorization: Bearer $token" "$base/v1/users/me"
echo "== peak RSS of the server: $(grep VmHWM /proc/$pid/status)"
