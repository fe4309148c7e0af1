#!/usr/bin/env bash
# The load and soak run (bench/soak.rs): whole browser sign-ins through a
# fake upstream, code redemptions, refreshes, client_credentials,
# introspections, userinfo and JWKS fetches from WORKERS concurrent loops
# against the release binary, on SQLite, then on PostgreSQL. Reports
# throughput, p50/p99 latency, errors (must be 0) and the server's RSS over
# time (must stay flat); exits non-zero otherwise.
#
# Usage: bench/soak.sh [SECONDS_PER_DATABASE] [WORKERS]   (default 120, 16)
#        bench/soak.sh 600                                 # the 10-minute soak
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-120}"
WORKERS="${2:-16}"
PG="${TESSERA_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
OUT=bench/results
mkdir -p "$OUT"
REPORT="$OUT/soak-$(date -u +%Y%m%dT%H%M%SZ).md"
cargo build --release --quiet --bin tessera --example bench-soak
status=0
{
  echo "# bench/soak.sh $SECONDS_PER_RUN $WORKERS ($(date -u +%FT%TZ), $(nproc) cores)"
  echo "## SQLite"
  target/release/examples/bench-soak --bin target/release/tessera --seconds "$SECONDS_PER_RUN" \
    --workers "$WORKERS" || status=1
  echo "## PostgreSQL"
  target/release/examples/bench-soak --bin target/release/tessera --seconds "$SECONDS_PER_RUN" \
    --workers "$WORKERS" --database "$PG" || status=1
} 2>&1 | tee "$REPORT"
echo "report: $REPORT"
exit "$status"
