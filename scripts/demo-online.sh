#!/usr/bin/env bash
# The online-store demo: the configs in examples/online-store/connectors.d, run with a local
# PostgreSQL, Redis and Kafka-protocol broker (tansu) that it starts under var/online/.
#   users-cdc      PostgreSQL `users` captured by the Debezium connector (no JVM), to users-cdc
#   users-online   users-cdc → ExtractNewRecordState → user-features (WASM) → drop email
#                  → Redis hash `user:<id>`; deletes remove the hash
#   clicks-online  Kafka topic `clicks` → Redis hash `user_clicks:<user>`, the newest click
#                  per user (late clicks never overwrite newer ones)
# Snapshots the users, applies examples/cdc/changes.sql, produces clicks (some late), waits
# until Redis holds the expected state, stops, and prints it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
echo "== building headwater and the WASM plugins (release)"
cargo build --release --quiet --bin headwater
cargo build --release --quiet --target wasm32-wasip2 --manifest-path plugins/Cargo.toml

rm -rf var/online
mkdir -p var/online
services=()
stop_services() {
    for dir in "${services[@]}"; do scripts/service.sh stop "$dir" >/dev/null 2>&1 || true; done
}
trap stop_services EXIT
start() { # KIND PREFIX: starts a service, sets PREFIX_PORT, PREFIX_URL, ...
    local dir="$PWD/var/online/$1" out
    out=$(scripts/service.sh start "$1" "$dir")
    services+=("$dir")
    eval "$(sed "s/^/$2_/" <<<"$out")"
}
echo "== starting PostgreSQL, Redis and tansu under var/online"
start postgres PG
start redis REDIS
start tansu KAFKA
pg() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
pg -c "CREATE DATABASE app"
pg -d app -f examples/cdc/schema.sql
printf '[kafka]\nbootstrap_servers = "%s"\n' "$KAFKA_URL" >var/online/worker.toml

echo "== headwater run --connectors-dir examples/online-store/connectors.d (log: var/online/headwater.log)"
HEADWATER_PG_PORT=$PG_PORT HEADWATER_PG_PASSWORD=postgres \
    HEADWATER_REDIS_URI="redis://127.0.0.1:$REDIS_PORT" \
    target/release/headwater run --config var/online/worker.toml \
    --connectors-dir examples/online-store/connectors.d --data-dir var/online/data \
    --rest-listen 127.0.0.1:0 >var/online/headwater.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; stop_services' EXIT

wait_until() { # WHAT CONDITION (shell code, evaluated at each try)
    for _ in $(seq 1 600); do
        eval "$2" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "timed out waiting for $1; see var/online/headwater.log" >&2
    exit 1
}
wait_until "the users snapshot in Redis" '[ "$(rcli exists user:1 user:2 user:3)" = 3 ]'
echo "== snapshot done; applying examples/cdc/changes.sql"
pg -d app -f examples/cdc/changes.sql
wait_until "the users changes in Redis" \
    '[ "$(rcli exists user:4):$(rcli exists user:3):$(rcli hget user:1 name)" = "1:0:Ada Lovelace" ]'

echo "== producing 200 click events (every fifth one late) to the Kafka topic clicks"
expected=$(examples/online-store/clicks.py "$KAFKA_URL" clicks 200)
newest_ts() { # the newest click time of each user, from Redis or from the producer's output
    if [ $# -eq 0 ]; then
        for u in 1 2 3 4; do echo -n "$(rcli hget "user_clicks:$u" last_click_ts) "; done
    else
        python3 -c 'import json,sys; e=json.loads(sys.argv[1]); print(" ".join(str(e[u]["ts"]) for u in "1234"), end=" ")' "$1"
    fi
}
wait_until "the clicks in Redis" '[ "$(newest_ts)" = "$(newest_ts "$expected")" ]'
kill -TERM $pid
wait $pid || true

echo "== Redis: user:<id> (profile features from PostgreSQL CDC; user 3 was deleted)"
for key in $(rcli --scan --pattern 'user:*' | sort); do
    echo "  $key  $(rcli hgetall "$key" | paste -sd' ')"
done
echo "== Redis: user_clicks:<user> (newest click per user; expected $expected)"
for key in $(rcli --scan --pattern 'user_clicks:*' | sort); do
    echo "  $key  $(rcli hgetall "$key" | paste -sd' ')  ttl=$(rcli ttl "$key")s"
done
