#!/usr/bin/env bash
# Runs every fuzz target in turn on the stable toolchain.
# Usage: fuzz/run-all.sh [SECONDS_PER_TARGET] [TARGET...]
# New inputs go to fuzz/work/<target>/ (not committed); the committed seeds
# in fuzz/corpus/<target>/ are read, never written. Crashes land in
# fuzz/artifacts/<target>/: copy them to fuzz/regressions/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-120}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(block_decode segment_open active_recover footer_decode store_open otlp_json otlp_proto)
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build
for t in "${targets[@]}"; do
  mkdir -p "fuzz/work/$t" "fuzz/regressions/$t"
  echo "== $t (${secs}s)"
  cargo fuzz run "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -print_final_stats=1 2>&1 |
    grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|==[0-9]+==|SUMMARY)|panicked' ||
    true
  ls "fuzz/artifacts/$t" 2>/dev/null | sed "s|^|crash input: fuzz/artifacts/$t/|" || true
done
