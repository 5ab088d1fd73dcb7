#!/usr/bin/env bash
# The CDC demo: a local PostgreSQL with users and orders, and the Debezium PostgresConnector
# config in examples/cdc/connectors.d capturing them with no JVM and no Kafka. Changes are
# routed to `<table>-cdc` (RegexRouter): users-cdc is mirrored to a JSON-lines file, orders-cdc
# unwrapped (ExtractNewRecordState) into Parquet. Snapshots, applies examples/cdc/changes.sql,
# waits for every change, stops, and shows what landed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh --cdc-demo
echo "== building headwater (release)"
cargo build --release --quiet --bin headwater

rm -rf var/cdc var/cdc-data var/cdc-pg
mkdir -p var
echo "== starting PostgreSQL (wal_level=logical) under var/cdc-pg"
started=$(scripts/service.sh start postgres "$PWD/var/cdc-pg")
eval "$(sed 's/^/PG_/' <<<"$started")"
trap 'scripts/service.sh stop "$PWD/var/cdc-pg" >/dev/null 2>&1 || true' EXIT
pg() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }
pg -c "CREATE DATABASE app"
pg -d app -f examples/cdc/schema.sql

echo "== headwater run --connectors-dir examples/cdc/connectors.d (log: var/cdc-headwater.log)"
HEADWATER_PG_PORT=$PG_PORT HEADWATER_PG_PASSWORD=postgres \
    target/release/headwater run --connectors-dir examples/cdc/connectors.d \
    --data-dir var/cdc-data --rest-listen 127.0.0.1:0 >var/cdc-headwater.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; scripts/service.sh stop "$PWD/var/cdc-pg" >/dev/null 2>&1 || true' EXIT

wait_lines() { # FILE N
    for _ in $(seq 1 600); do
        [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ] && return 0
        sleep 0.1
    done
    echo "timed out waiting for $2 lines in $1; see var/cdc-headwater.log" >&2
    exit 1
}
wait_lines var/cdc/users-cdc.jsonl 3
echo "== snapshot done; applying examples/cdc/changes.sql"
pg -d app -f examples/cdc/changes.sql
wait_lines var/cdc/users-cdc.jsonl 7
sleep 2 # the Parquet sink commits its files every second
kill -TERM $pid
wait $pid || true

echo "== users-cdc (var/cdc/users-cdc.jsonl): Debezium envelopes"
python3 - <<'PY'
import json
for line in open("var/cdc/users-cdc.jsonl"):
    r = json.loads(line)
    v = r["value"]
    if v is None:
        print(f"  key={json.dumps(r['key']['payload'])}  tombstone")
        continue
    p = v["payload"]
    print(f"  op={p['op']}  key={json.dumps(r['key']['payload'])}  after={json.dumps(p['after'])}")
PY
echo "== orders-cdc in the offline store (var/cdc/orders)"
find var/cdc/orders -name '*.parquet' -printf '  %P  %s bytes\n' | sort
if python3 -c 'import pyarrow' 2>/dev/null; then
    python3 - <<'PY'
import pyarrow.dataset as ds
t = ds.dataset("var/cdc/orders", format="parquet", partitioning="hive").to_table()
for row in t.to_pylist():
    print("  ", {k: row[k] for k in ("id", "user_id", "amount", "status", "__op", "__deleted") if k in row})
PY
fi
