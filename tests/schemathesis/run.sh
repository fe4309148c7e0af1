#!/usr/bin/env bash
# Schemathesis against a running Tessera: every public and admin operation
# of GET /openapi.json is called with generated valid and invalid requests;
# no answer may be a 5xx, and every answer must match the document (status,
# content type, headers, body schema); schema-violating requests must be
# refused.
#
#   tests/schemathesis/run.sh [SECONDS]     # default 60
#
# Uses target/debug/tessera (or $TESSERA_BIN) on a fresh SQLite database,
# or on $TESSERA_DATABASE_URL when set. Installs Schemathesis into
# target/schemathesis-venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
bin="${TESSERA_BIN:-$PWD/target/debug/tessera}"
[ -x "$bin" ] || cargo build --quiet
venv=target/schemathesis-venv
[ -x "$venv/bin/schemathesis" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/schemathesis/requirements.txt

work="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
public_port="$(free_port)"; admin_port="$(free_port)"
export TESSERA_ISSUER="http://127.0.0.1:$public_port"
export TESSERA_LISTEN="127.0.0.1:$public_port"
export TESSERA_ADMIN_LISTEN="127.0.0.1:$admin_port"
export TESSERA_ADMIN_TOKEN="schemathesis-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export TESSERA_DATABASE_URL="${TESSERA_DATABASE_URL:-sqlite://$work/tessera.db}"
export TESSERA_KEYS_DIR="$work/keys"
export TESSERA_LOG="${TESSERA_LOG:-warn}"
"$bin" serve >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
admin="http://127.0.0.1:$admin_port"
for _ in $(seq 1 100); do
  curl -sf "$admin/healthz" >/dev/null && break
  sleep 0.1
done

# A confidential client for the operations that authenticate one, and an
# access token of it for /userinfo (refused there: no `openid`, so 403).
auth=(-H "Authorization: Bearer $TESSERA_ADMIN_TOKEN")
client="$(curl -sf "${auth[@]}" -H 'Content-Type: application/json' "$admin/admin/clients" \
  -d '{"client_name":"schemathesis","grant_types":["client_credentials"],"response_types":[]}')"
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
export ST_CLIENT_ID="$(field client_id <<<"$client")"
export ST_CLIENT_SECRET="$(field client_secret <<<"$client")"
export ST_ACCESS_TOKEN="$(curl -sf -u "$ST_CLIENT_ID:$ST_CLIENT_SECRET" \
  -d grant_type=client_credentials "$TESSERA_ISSUER/token" | field access_token)"

# One worker: with two, Schemathesis's threads parse Python source with
# `ast.parse` at the same time, which CPython 3.11 (this machine's) can
# answer with "SystemError: AST constructor recursion depth mismatch"
# (CPython gh-106905), a run error that has nothing to do with Tessera.
status=0
"$venv/bin/schemathesis" --config-file tests/schemathesis/schemathesis.toml --no-color \
  run "$admin/openapi.json" \
  --max-time "$seconds" --workers 1 --suppress-health-check too_slow \
  --generation-database none --warnings off || status=$?

if grep -q "panicked" "$work/server.log"; then
  echo "the server panicked:" >&2
  grep -A5 "panicked" "$work/server.log" >&2
  status=1
fi
exit "$status"
