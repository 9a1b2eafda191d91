# Helpers the bench scripts share (sourced, not run).
BIN=${BIN:-target/release/ltx-serve}
LOAD=target/release/examples/bench_load
HELLO=target/release/examples/bench_hello
OUT=$(mktemp -d)
# Extra cleanup (a database to drop) goes in CLEANUP; background processes and OUT always go.
CLEANUP=":"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"; eval "$CLEANUP"' EXIT

# Waits until URL answers 2xx (a server starting), or stops the script.
wait_url() { for _ in $(seq 300); do curl -sf -o /dev/null -m 1 "$1" && return 0; sleep 0.1; done; echo "$1 never answered" >&2; exit 1; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
# User + system CPU seconds of a process so far.
cpu_s() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
# FIELD of the JSON object on stdin.
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
# Submits one job (BASE KEY) and prints its id.
submit_one() {
  curl -sS "$1/generate/video/lightricks/ltx-video-2.3-22b" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
    -d '{"prompt": "the job that is polled", "num_frames": 9}' | json_field job_id
}
# Creates an account with high limits in a store (ADMIN_ARGS: --data-dir …, --database-url …)
# and prints its API key. Its rate limit is lifted far above any rate here (not switched off:
# the limiter and its headers stay in the measured path); with the default 600/min, wrk would
# measure 429 answers.
bench_account() {
  local created
  created=$("$BIN" admin "$@" account create --name bench --credits-usd 1000000 \
    --max-concurrent 1000000000 --max-backlog 1000000000)
  "$BIN" admin "$@" limits set --account "$(echo "$created" | json_field account_id)" \
    --rate-limit-per-minute 1000000000 > /dev/null
  echo "$created" | json_field api_key
}
# A fresh PostgreSQL database for this script in PG_URL, dropped at exit.
bench_database() {
  local admin db="ltx_bench_$1_$$"
  admin="$(scripts/ensure-postgres)"
  psql "$admin" -qc "CREATE DATABASE $db"
  CLEANUP="psql '$admin' -qc 'DROP DATABASE IF EXISTS $db WITH (FORCE)' >/dev/null 2>&1 || true"
  PG_URL="${admin%/*}/$db"
}
