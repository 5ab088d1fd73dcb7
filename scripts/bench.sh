#!/usr/bin/env bash
# Every benchmark at a size that fits a few minutes, and one table of their headline figures:
# the path, Headwater's figure, the ceiling or peer measured beside it in the same run, the
# ratio, the goal, and the change since the previous run, so a change that makes any path
# slower is seen.
#
#   scripts/bench.sh                    every bench (about 6 minutes on the 2-core machine)
#   scripts/bench.sh redis_sink kafka   only these
#   scripts/bench.sh --against FILE     compare with that results file (default: each path's
#                                       latest figure in earlier runs)
#
# Results: target/bench/<UTC time>.jsonl (one JSON line per figure, written by the benches
# through host/benches/common/figure.rs), <UTC time>.md (the table) and <UTC time>/<bench>.log
# (each bench's own report). Run it on an idle machine: a test suite or a soak running
# beside it makes every figure meaningless.
#
# Peers that are not part of this repository are used when they are there: genuine Debezium
# (../shared/tools/cdc-bench and the oracle's jars: ../shared/tools/debezium-oracle/run-oracle.sh
# once) for the CDC benches, PyFlink for the file window (FLINK_PYTHON=/path/to/python).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Each bench and the size it runs at here (HEADWATER_BENCH_* settings): the issue's sizes where
# one fits in a few minutes, smaller where the full size is a documented run of its own.
declare -A size=(
    [file_to_parquet]="HEADWATER_BENCH_ROWS=500000"
    [redis_sink]="HEADWATER_BENCH_ROWS=200000"
    [redis_sink_500k]="HEADWATER_BENCH_ROWS=500000"
    [wasm_step]="HEADWATER_BENCH_ROWS=300000"
    [window]="HEADWATER_BENCH_ROWS=1000000"
    [kafka]="HEADWATER_BENCH_ROWS=300000"
    [kafka_window]="HEADWATER_BENCH_ROWS=1000000"
    [file_window]="HEADWATER_BENCH_ROWS=1000000"
    [cdc]="HEADWATER_BENCH_ROWS=200000"
    [incremental_snapshot]="HEADWATER_BENCH_ROWS=200000"
    [query_batch]="HEADWATER_BENCH_ROWS=1000000"
    [changelog]="HEADWATER_BENCH_ROWS=300000"
    [console_cost]="HEADWATER_BENCH_ROWS=1000000 HEADWATER_BENCH_ROUNDS=2"
    [startup]="HEADWATER_BENCH_ROUNDS=5"
)
order=(file_to_parquet redis_sink redis_sink_500k wasm_step window kafka kafka_window file_window
    cdc incremental_snapshot query_batch changelog console_cost startup)

against=""
selected=()
while [ $# -gt 0 ]; do
    case "$1" in
        --against) against="$2"; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *)
            [ -n "${size[$1]+x}" ] || { echo "bench.sh: no bench named $1 (${order[*]})" >&2; exit 2; }
            selected+=("$1"); shift ;;
    esac
done
[ ${#selected[@]} -gt 0 ] || selected=("${order[@]}")

out_dir="target/bench"
mkdir -p "$out_dir"
stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
results="$PWD/$out_dir/$stamp.jsonl"
logs="$out_dir/$stamp"
mkdir -p "$logs"
: >"$results"

echo "bench: building the benches (release)"
cargo bench -p headwater --no-run --quiet 2>"$logs/build.log" || { cat "$logs/build.log" >&2; exit 1; }

failed=()
for bench in "${selected[@]}"; do
    target="${bench%_500k}"
    started=$SECONDS
    printf 'bench: %-22s ' "$bench"
    # shellcheck disable=SC2086 # the size is a list of NAME=VALUE words
    if env ${size[$bench]} HEADWATER_BENCH_RESULTS="$results" \
        cargo bench -p headwater --quiet --bench "$target" >"$logs/$bench.log" 2>&1; then
        echo "$((SECONDS - started)) s"
    else
        echo "FAILED after $((SECONDS - started)) s (its report: $logs/$bench.log)"
        tail -n 20 "$logs/$bench.log" | sed 's/^/    /'
        failed+=("$bench")
    fi
done

commit="$(git rev-parse --short HEAD)"
git diff --quiet HEAD || commit="$commit with uncommitted changes"
machine="$(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), \
$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
if [ -n "$against" ]; then compare=(--against "$against"); else compare=(--history "$out_dir"); fi
python3 scripts/bench_table.py "$results" "${compare[@]}" \
    --title "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, $machine" \
    | tee "$out_dir/$stamp.md"
echo
echo "bench: results in $results (each bench's report in $logs/)"
if [ ${#failed[@]} -gt 0 ]; then
    echo "bench: failed: ${failed[*]}" >&2
    exit 1
fi
