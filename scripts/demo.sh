#!/usr/bin/env bash
# The demo: sample transactions (JSONL and CSV, date-partitioned) → FileSource → SMTs, a WASM
# feature transform and a WASM data-quality check → ParquetSink, the configs in connectors.d/,
# no external service. Runs until the offline store
# holds every good row, stops Headwater, and shows what landed where.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh --demo
echo "== building headwater (release)"
cargo build --release --quiet --bin headwater
echo "== building the WASM plugins (plugins/, wasm32-wasip2)"
cargo build --release --quiet --target wasm32-wasip2 --manifest-path plugins/Cargo.toml

echo "== fresh demo state under var/"
rm -rf var/demo var/offline var/offsets var/dlq var/connectors.json
python3 scripts/demo-data.py var/demo

echo "== headwater validate connectors.d/*.json"
target/release/headwater validate connectors.d/*.json

echo "== headwater run (log: var/demo/headwater.log)"
target/release/headwater run --connectors-dir connectors.d --data-dir var >var/demo/headwater.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT

# Done when the source's committed offsets reach the end of every input file: offsets are
# committed only after the Parquet sink has committed the rows.
python3 - <<'PY'
import json, os, sys, time, glob
inputs = {os.path.abspath(p): os.path.getsize(p) for p in glob.glob("var/demo/transactions/date=*/*")}
deadline = time.time() + 120
while time.time() < deadline:
    try:
        with open("var/offsets/transactions-source.json") as f:
            done = {o["partition"]["path"]: o["offset"]["position"] for o in json.load(f)["offsets"]}
        if all(done.get(p) == size for p, size in inputs.items()):
            sys.exit(0)
    except (OSError, ValueError, KeyError):
        pass
    time.sleep(0.2)
sys.exit("the demo did not finish within 120 s; see var/demo/headwater.log")
PY
kill -TERM $pid
wait $pid || true
trap - EXIT

echo "== offline store (var/offline)"
find var/offline -name '*.parquet' -printf '%P  %s bytes\n' | sort
echo "== dead letters (var/dlq)"
python3 - <<'PY'
import json
for name in ("transactions-source",):
    try:
        lines = [json.loads(l) for l in open(f"var/dlq/{name}.jsonl")]
    except OSError:
        lines = []
    print(f"{name}: {len(lines)} record(s)")
    for d in lines:
        h = {x["key"]: x["value"] for x in d["headers"]}
        print(f"  {h['__connect.errors.stage']}: {h['__connect.errors.exception.message'][:140]}")
PY
if python3 -c 'import pyarrow' 2>/dev/null; then
    echo "== rows per partition (pyarrow)"
    python3 - <<'PY'
import pyarrow.dataset as ds
t = ds.dataset("var/offline/transactions", format="parquet", partitioning="hive").to_table()
agg = t.group_by("date").aggregate([("amount", "count"), ("amount", "sum")]).sort_by("date")
for row in agg.to_pylist():
    print(f"  date={row['date']}  rows={row['amount_count']}  amount_sum={row['amount_sum']:.2f}")
print("schema:", ", ".join(f"{f.name}: {f.type}" for f in t.schema))
PY
fi
