#!/usr/bin/env bash
# The streaming-features demo: the configs in examples/features/connectors.d, with a local
# Redis it starts under var/features-redis.
#   clicks-windows      click events (examples/features/clicks.py, out of order, some late)
#                       → 5-minute tumbling windows per user (headwater.window.Aggregate):
#                       click_count_5min, unique_pages_5min → click-features
#   clicks-online       click-features → Redis hash user:<id> (newest window wins)
#   transactions-daily  the demo's transactions → daily windows per user: count, sum, avg,
#                       max, distinct merchants → user-daily
#   daily-offline       user-daily → Parquet under var/features/daily (date partitions)
# Window state is durable under var/features-data/state: stop and start again, nothing is
# counted twice.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
echo "== building headwater (release)"
cargo build --release --quiet --bin headwater

rm -rf var/features var/features-data var/features-redis
mkdir -p var/features/clicks
examples/features/clicks.py var/features/clicks/clicks.jsonl
python3 scripts/demo-data.py var/features >/dev/null
started=$(scripts/service.sh start redis "$PWD/var/features-redis")
eval "$(sed 's/^/REDIS_/' <<<"$started")"
trap 'scripts/service.sh stop "$PWD/var/features-redis" >/dev/null 2>&1 || true' EXIT
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

echo "== headwater run --connectors-dir examples/features/connectors.d (log: var/features-headwater.log)"
HEADWATER_REDIS_URI="redis://127.0.0.1:$REDIS_PORT" target/release/headwater run \
    --connectors-dir examples/features/connectors.d --data-dir var/features-data \
    --rest-listen 127.0.0.1:0 >var/features-headwater.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; scripts/service.sh stop "$PWD/var/features-redis" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 300); do
    if [ "$(rcli --scan --pattern 'user:*' | wc -l)" -ge 200 ] \
        && find var/features/daily -name '*.parquet' 2>/dev/null | grep -q .; then
        break
    fi
    sleep 0.2
done
sleep 2 # the last windows' results and the Parquet commit
kill -TERM $pid
wait $pid || true

echo "== Redis: newest closed 5-minute window per user (3 of $(rcli --scan --pattern 'user:*' | wc -l))"
for key in user:u000 user:u001 user:u002; do
    echo "  $key  $(rcli hgetall "$key" | paste -sd' ')"
done
echo "== dead letters: clicks past allowed lateness ($(wc -l <var/features-data/dlq/clicks-windows.jsonl))"
echo "== offline store: daily aggregates per user (days 1 and 2 closed; day 3 waits for later events)"
find var/features/daily -name '*.parquet' -printf '  %P  %s bytes\n' | sort
if python3 -c 'import pyarrow' 2>/dev/null; then
    python3 - <<'PY'
import pyarrow.dataset as ds
t = ds.dataset("var/features/daily", format="parquet", partitioning="hive").to_table()
rows = sorted(t.to_pylist(), key=lambda r: (r["user_id"], r["window_start"]))
print(f"  {len(rows)} rows; first three:")
for r in rows[:3]:
    print("  ", {k: r[k] for k in ("user_id", "window_start", "tx_count_1d", "amount_sum_1d", "amount_avg_1d", "amount_max_1d", "merchants_1d")})
PY
fi
