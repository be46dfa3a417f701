#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a while: `scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET…]`
# (default 20 s each, all targets). Needs the nightly toolchain and cargo-fuzz; without them it
# says so and exits 0, so the test command can call it everywhere. Seeds come from
# fuzz/seeds/<target>/ (committed); new corpus entries go to fuzz/corpus/ (not committed).
# A crash, hang or over-allocation stops the run with libFuzzer's report and exit code.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(resp tensorset dag router acl snapshot aof rdb)
fi
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz: no nightly toolchain; skipped"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is not installed (cargo install cargo-fuzz); skipped"
    exit 0
fi
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
    echo "fuzz: $t for ${SECS}s"
    # -rss_limit_mb and -malloc_limit_mb catch over-allocation; -timeout catches hangs.
    cargo +nightly fuzz run --release "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$SECS" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
        -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|==|SUMMARY|Done)|ERROR|panicked" || true
    if [ "${PIPESTATUS[0]}" -ne 0 ]; then
        echo "fuzz: $t FAILED"
        exit 1
    fi
done
echo "fuzz: all targets ran clean"
