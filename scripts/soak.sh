#!/usr/bin/env bash
# The chaos soak: scripts/soak.sh MINUTES [SEED]
#
# Runs a realistic mix of pipelines (PostgreSQL CDC -> WASM -> Redis, files -> Parquet,
# Kafka -> window -> Redis, Kafka -> KafkaSink) under load for MINUTES while killing Headwater,
# PostgreSQL, Redis (append-only file on) and the Kafka broker (tansu on SQLite) with SIGKILL at
# random, and freezing the broker; then checks every output against the inputs and prints the
# faults survived, the records checked, lost and duplicated. Exits non-zero if anything was lost
# or differs. The driver is scripts/soak.py; services come from scripts/service.sh
# (scripts/setup.sh installs them). SEED replays a run's choice and timing of faults.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

minutes="${1:?usage: scripts/soak.sh MINUTES [SEED]}"
seed="${2:-$(date +%s)}"

cargo build -q -p headwater
cargo build -q --manifest-path plugins/Cargo.toml --release --target wasm32-wasip2 -p passthrough

work="$(mktemp -d "${TMPDIR:-/tmp}/headwater-soak.XXXXXX")"
# PostgreSQL runs as its own user (when we are root) and must reach its state directory.
chmod 755 "$work"
status=0
python3 scripts/soak.py "$minutes" --workdir "$work" --binary "$PWD/target/debug/headwater" \
    --seed "$seed" || status=$?
if [ "$status" -ne 0 ]; then
    echo "soak: failed (replay its faults with: scripts/soak.sh $minutes $seed); the host's errors:" >&2
    grep -E ' (ERROR|WARN) ' "$work/host/headwater.log" | tail -n 40 >&2 || true
    echo "soak: the host's whole log is kept in $work/host/headwater.log" >&2
else
    rm -rf "$work"
fi
exit "$status"
