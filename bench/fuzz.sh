#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo fuzz, libFuzzer) for SECONDS each.
# CI runs it with 12 s per target (a minute in all); run it longer by hand:
#   bench/fuzz.sh 600
# The machine has one stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo fuzz
# use the nightly flags it needs. Installs cargo-fuzz from crates.io if
# missing. A crash stops the script; its input is in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-60}"
# Build flags: optimized with AddressSanitizer by default; CI passes
# FUZZ_BUILD="--dev --sanitizer none", which builds in a third of the time
# (a short run finds parser panics just as well).
read -r -a FLAGS <<<"${FUZZ_BUILD:--O}"
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo fuzz build "${FLAGS[@]}"
for target in $(cargo fuzz list); do
  mkdir -p "fuzz/corpus/$target"
  echo "== fuzz $target (${SECONDS_EACH}s)"
  log="fuzz/target/$target.log"
  if ! cargo fuzz run "${FLAGS[@]}" "$target" "fuzz/corpus/$target" -- \
      -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "FAIL: $target crashed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$log" || true
done
