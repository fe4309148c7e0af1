#!/usr/bin/env bash
# Tessera's first benchmark: client_credentials and /jwks at 32 connections,
# on SQLite and PostgreSQL, against two references run in the same
# invocation on the same machine:
#   (a) a bare axum handler signing the same claims with the same key held
#       in memory (no database, no client authentication): the signing ceiling;
#   (b) a bare axum handler returning the same JWKS bytes.
# Each Tessera row runs between two runs of its reference (reference,
# Tessera, reference) and its ratio uses their mean.
# Reports requests/s, p50/p99, server CPU and RSS, ratios, idle RSS and
# start-up time. Ratios are what matter: the machine is shared and noisy.
#
# Usage: bench/run.sh [SECONDS_PER_RUN]   (default 10)
# Needs: wrk (installed from Debian's packages if missing), PostgreSQL at
# TESSERA_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
CONNS=32
THREADS=2
PG_ADMIN="${TESSERA_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
PUB=127.0.0.1:18080
ADM=127.0.0.1:18081
REF=127.0.0.1:18090
ADMIN_TOKEN=bench-admin-token-0123456789
WORK=$(mktemp -d)
OUT=bench/results
mkdir -p "$OUT"
REPORT="$OUT/report-$(date -u +%Y%m%dT%H%M%SZ).md"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet --bin tessera --example bench-reference
BIN=target/release/tessera
REFBIN=target/release/examples/bench-reference

wait_http() { for _ in $(seq 1 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "timeout waiting for $1" >&2; return 1; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }
TICKS=$(getconf CLK_TCK)

# run_wrk NAME PID URL [body basic] -> appends a row
declare -A RPS IDLE_RSS STARTUP
row() { printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$@" >> "$REPORT"; }
run_wrk() {
  local name=$1 pid=$2 url=$3
  local t0; t0=$(cpu_ticks "$pid")
  local res; res=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -s bench/wrk-report.lua "$url" | grep '^RESULT')
  local t1; t1=$(cpu_ticks "$pid")
  local rps p50 p99 err
  rps=$(sed -E 's/.*rps=([0-9.]+).*/\1/' <<<"$res"); p50=$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$res")
  p99=$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$res"); err=$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$res")
  local cpu; cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$TICKS" -v d="$DURATION" 'BEGIN{printf "%.0f%%", (b-a)/hz/d*100}')
  RPS[$name]=$rps
  row "$name" "$rps" "$p50" "$p99" "$err" "$cpu" "$(( $(hwm_kib "$pid") / 1024 )) MiB"
  echo "$name: $res cpu=$cpu" >&2
}

start_tessera() { # store alg dir -> sets TPID
  local db=$1 alg=$2 dir=$3
  TESSERA_DATABASE_URL="$db" TESSERA_KEYS_DIR="$dir/keys" TESSERA_LISTEN=$PUB TESSERA_ADMIN_LISTEN=$ADM \
    TESSERA_ISSUER="http://$PUB" TESSERA_ADMIN_TOKEN=$ADMIN_TOKEN TESSERA_ACCESS_TOKEN_ALG="$alg" \
    TESSERA_RATE_LIMIT_PER_IP=0 TESSERA_LOG=warn "$BIN" serve >"$dir/tessera.log" 2>&1 &
  TPID=$!; PIDS+=("$TPID")
  wait_http "http://$PUB/readyz"
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

{
  echo "# Tessera bench $(date -u +%FT%TZ)"
  echo
  echo "\`bench/run.sh $DURATION\` — wrk -t$THREADS -c$CONNS -d${DURATION}s, server and load generator on one $(nproc)-core machine."
  echo
  echo "| run | req/s | p50 ms | p99 ms | errors | server CPU | server peak RSS |"
  echo "|---|---|---|---|---|---|---|"
} > "$REPORT"

# References, same key material, same claims, run right before and right
# after each Tessera row it is compared with (reference, Tessera,
# reference): the ratio uses the mean of the two, so the machine's drift
# during the run (shared, noisy) cancels out row by row.
REFKEYS="$WORK/ref"; mkdir -p "$REFKEYS/keys"
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/${REF%:*}/${REF#*:}) 2>/dev/null && return 0; sleep 0.05; done; }
ref_key() { # alg -> PEM file of that key type
  for f in "$REFKEYS"/*.pem; do
    if [ "$1" = RS256 ] && openssl pkey -in "$f" -noout -text 2>/dev/null | grep -q 'Private-Key: (2048'; then echo "$f"; fi
    if [ "$1" = ES256 ] && openssl pkey -in "$f" -noout -text 2>/dev/null | grep -q 'prime256v1\|P-256'; then echo "$f"; fi
  done | head -1
}
run_ref() { # kind (sign-RS256 | sign-ES256 | jwks) label
  if [ "$1" = jwks ]; then
    "$REFBIN" jwks "$REFKEYS/jwks.json" "$REF" & RPID=$!
  else
    "$REFBIN" sign "$(ref_key "${1#sign-}")" "${1#sign-}" "$REF" "http://$PUB" & RPID=$!
  fi
  PIDS+=("$RPID")
  wait_port
  run_wrk "$2" "$RPID" "http://$REF/${3:-token}"
  stop "$RPID"
}
# measure NAME PID URL REFKIND: reference, Tessera, reference.
measure() {
  local path=token; [ "$4" = jwks ] && path=jwks
  run_ref "$4" "$1 — reference before" "$path"
  run_wrk "$1" "$2" "$3"
  run_ref "$4" "$1 — reference after" "$path"
}

# Key material for the references: the same generator, the same key types.
start_tessera "sqlite://$REFKEYS/t.db" ES256 "$REFKEYS"
curl -fs "http://$PUB/jwks" > "$REFKEYS/jwks.json"
stop "$TPID"
cp "$REFKEYS"/keys/*.pem "$REFKEYS"/
PGNAME="tessera_bench_$$"
psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PGNAME WITH (FORCE)" -c "CREATE DATABASE $PGNAME" >/dev/null

for store in sqlite postgres; do
  dir="$WORK/$store"; mkdir -p "$dir/keys"
  if [ "$store" = sqlite ]; then db="sqlite://$dir/tessera.db"; else
    db="${PG_ADMIN%/*}/$PGNAME"
  fi
  for alg in RS256 ES256; do
    start_tessera "$db" "$alg" "$dir"
    if [ "$alg" = RS256 ]; then
      IDLE_RSS[$store]=$(( $(rss_kib "$TPID") / 1024 ))
      created=$(curl -fs -H "Authorization: Bearer $ADMIN_TOKEN" -d '{"grant_types":["client_credentials"],"scope":"api:read"}' "http://$ADM/admin/clients")
      cid=$(python3 -c 'import json,sys;print(json.load(sys.stdin)["client_id"])' <<<"$created")
      csec=$(python3 -c 'import json,sys;print(json.load(sys.stdin)["client_secret"])' <<<"$created")
      export WRK_BASIC; WRK_BASIC=$(printf '%s:%s' "$cid" "$csec" | base64 -w0)
    fi
    export WRK_BODY="grant_type=client_credentials&scope=api:read"
    curl -fs -u "$cid:$csec" -d "$WRK_BODY" "http://$PUB/token" >/dev/null
    measure "$store client_credentials $alg" "$TPID" "http://$PUB/token" "sign-$alg"
    unset WRK_BODY
    if [ "$alg" = ES256 ]; then   # two keys published, like the reference's JWKS
      measure "$store /jwks" "$TPID" "http://$PUB/jwks" jwks
    fi
    stop "$TPID"
  done
  # Start-up with an existing database and keys.
  t0=$(date +%s%N); start_tessera "$db" RS256 "$dir"; t1=$(date +%s%N)
  STARTUP[$store]=$(( (t1 - t0) / 1000000 ))
  stop "$TPID"
done

ratio() { awk -v a="${RPS[$1]}" -v b="${RPS[$1 — reference before]}" -v c="${RPS[$1 — reference after]}" 'BEGIN{printf "%.0f%%", a/((b+c)/2)*100}'; }
{
  echo
  echo "| ratio | SQLite | PostgreSQL | target |"
  echo "|---|---|---|---|"
  echo "| client_credentials RS256 / reference (a) RS256 | $(ratio 'sqlite client_credentials RS256') | $(ratio 'postgres client_credentials RS256') | ≥ 85% |"
  echo "| client_credentials ES256 / reference (a) ES256 | $(ratio 'sqlite client_credentials ES256') | $(ratio 'postgres client_credentials ES256') | ≥ 75% |"
  echo "| /jwks / reference (b) | $(ratio 'sqlite /jwks') | $(ratio 'postgres /jwks') | ≥ 85% |"
  echo
  echo "| | SQLite | PostgreSQL | target |"
  echo "|---|---|---|---|"
  echo "| idle RSS after start | ${IDLE_RSS[sqlite]} MiB | ${IDLE_RSS[postgres]} MiB | ≤ 32 MiB |"
  echo "| start-up to /readyz, existing database and keys | ${STARTUP[sqlite]} ms | ${STARTUP[postgres]} ms | ≤ 250 ms |"
} >> "$REPORT"
psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS tessera_bench_$$ WITH (FORCE)" >/dev/null || true
cat "$REPORT"
