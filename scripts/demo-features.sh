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
#
#   scripts/demo-features.sh kafka
# runs the book chapter's streaming job instead (examples/features/kafka/connectors.d): the same
# clicks produced to a 4-partition Kafka topic `clicks` on a local tansu broker, windowed by the
# Redis sink connector that reads it (clicks-stream) into `user:<id>` hashes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
echo "== building headwater (release)"
cargo build --release --quiet --bin headwater

if [ "${1:-}" = kafka ]; then
    rm -rf var/features-kafka
    mkdir -p var/features-kafka
    services=()
    stop_services() {
        for dir in "${services[@]}"; do scripts/service.sh stop "$dir" >/dev/null 2>&1 || true; done
    }
    trap stop_services EXIT
    start() { # KIND PREFIX: starts a service, sets PREFIX_PORT, PREFIX_URL, ...
        local dir="$PWD/var/features-kafka/$1" out
        out=$(scripts/service.sh start "$1" "$dir")
        services+=("$dir")
        eval "$(sed "s/^/$2_/" <<<"$out")"
    }
    echo "== starting Redis and tansu under var/features-kafka"
    start redis REDIS
    start tansu KAFKA
    rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
    printf '[kafka]\nbootstrap_servers = "%s"\n' "$KAFKA_URL" >var/features-kafka/worker.toml
    examples/features/clicks.py var/features-kafka/clicks.jsonl
    echo "== producing $(wc -l <var/features-kafka/clicks.jsonl) clicks to Kafka topic clicks (4 partitions, keyed by user)"
    python3 examples/features/kafka/produce.py "$KAFKA_URL" clicks var/features-kafka/clicks.jsonl
    echo "== headwater run --connectors-dir examples/features/kafka/connectors.d (log: var/features-kafka/headwater.log)"
    HEADWATER_REDIS_URI="redis://127.0.0.1:$REDIS_PORT" target/release/headwater run \
        --config var/features-kafka/worker.toml \
        --connectors-dir examples/features/kafka/connectors.d --data-dir var/features-kafka/data \
        --rest-listen 127.0.0.1:0 >var/features-kafka/headwater.log 2>&1 &
    pid=$!
    trap 'kill $pid 2>/dev/null || true; stop_services' EXIT
    for _ in $(seq 1 300); do
        [ "$(rcli --scan --pattern 'user:*' | wc -l)" -ge 200 ] && break
        sleep 0.2
    done
    sleep 3 # the last windows of the topic
    kill -TERM $pid
    wait $pid || true
    echo "== Redis: newest fired 5-minute window per user (3 of $(rcli --scan --pattern 'user:*' | wc -l))"
    for key in user:u000 user:u001 user:u002; do
        echo "  $key  $(rcli hgetall "$key" | paste -sd' ')"
    done
    dead=var/features-kafka/data/dlq/clicks-stream.jsonl
    echo "== dead letters: clicks past allowed lateness ($([ -f $dead ] && wc -l <$dead || echo 0))"
    exit 0
fi

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
