#!/usr/bin/env bash
# Starts and stops the real services tests and benchmarks talk to, on free loopback ports.
#
#   scripts/service.sh start postgres|redis|tansu STATE_DIR
#       Starts the service with its files under STATE_DIR, waits until it answers, and prints
#       KEY=VALUE lines: PORT, PID and URL (plus PGUSER for postgres). Exits non-zero with the
#       reason (and the service's log) if it cannot start.
#   scripts/service.sh stop STATE_DIR
#       Stops the service started in STATE_DIR (by its PID) and waits for it to exit.
#   scripts/service.sh restart STATE_DIR
#       Starts it again on the same port, with its data (Redis keeps an append-only file in
#       STATE_DIR, synced at every write, so a restart loses nothing that was acknowledged;
#       PostgreSQL recovers its data directory; tansu keeps its data only when it was started
#       with TANSU_STORAGE=sqlite).
#
# TANSU_STORAGE=sqlite starts tansu on a SQLite file in STATE_DIR instead of its memory store
# (which forgets every topic when the broker stops), so it can be killed and restarted.
#
# Install the services first with scripts/setup.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

die() { echo "service.sh: $*" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() { # PORT PID LOG SECONDS
    local port=$1 pid=$2 log=$3 deadline=$((SECONDS + $4))
    while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "--- log ($log) ---" >&2; tail -n 30 "$log" >&2 || true
            die "the service exited before listening on port $port"
        fi
        if [ $SECONDS -ge "$deadline" ]; then
            echo "--- log ($log) ---" >&2; tail -n 30 "$log" >&2 || true
            die "the service did not listen on port $port within $4 s"
        fi
        sleep 0.05
    done
}

pg_bin() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && { echo "$dir"; return; }
    done
    command -v initdb >/dev/null && { dirname "$(command -v initdb)"; return; }
    die "PostgreSQL is not installed (run scripts/setup.sh)"
}

# Runs a command as the postgres user when we are root (PostgreSQL refuses to run as root).
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start_postgres() {
    local state=$1 bin port
    bin="$(pg_bin)"
    port="$(free_port)"
    mkdir -p "$state/data"
    [ "$(id -u)" -eq 0 ] && chown -R postgres "$state"
    as_pg "$bin/initdb" -D "$state/data" -U postgres --auth=trust -E UTF8 >"$state/initdb.log" 2>&1 \
        || { cat "$state/initdb.log" >&2; die "initdb failed"; }
    cat >>"$state/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$state'
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
    # PG_TLS=yes: TLS only (plain connections are rejected), with a server certificate signed
    # by a test CA (CA= names it).
    if [ "${PG_TLS:-no}" = yes ]; then
        make_test_certificates "$state"
        chmod 600 "$state/key.pem"
        [ "$(id -u)" -eq 0 ] && chown postgres "$state/key.pem" "$state/cert.pem"
        cat >>"$state/data/postgresql.conf" <<CONF
ssl = on
ssl_cert_file = '$state/cert.pem'
ssl_key_file = '$state/key.pem'
CONF
        cat >"$state/data/pg_hba.conf" <<HBA
local all all trust
hostnossl all all 0.0.0.0/0 reject
hostssl all all 127.0.0.1/32 trust
HBA
    fi
    as_pg "$bin/pg_ctl" -D "$state/data" -l "$state/postgres.log" -w -t 30 start >/dev/null \
        || { tail -n 30 "$state/postgres.log" >&2; die "PostgreSQL did not start"; }
    local pid
    pid="$(head -n 1 "$state/data/postmaster.pid")"
    echo "$pid" >"$state/pid"
    echo postgres >"$state/kind"
    echo "PORT=$port"
    echo "PID=$pid"
    echo "PGUSER=postgres"
    if [ "${PG_TLS:-no}" = yes ]; then
        echo "URL=postgresql://postgres@127.0.0.1:$port/postgres?sslmode=require"
        echo "CA=$state/ca.pem"
    else
        echo "URL=postgresql://postgres@127.0.0.1:$port/postgres"
    fi
}

# A test CA and a server certificate for 127.0.0.1/localhost signed by it.
make_test_certificates() {
    local dir=$1
    {
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=headwater-test-ca" \
            -keyout "$dir/ca.key" -out "$dir/ca.pem" &&
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
            -keyout "$dir/key.pem" -out "$dir/server.csr" &&
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$dir/ext.cnf" &&
        openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
            -CAcreateserial -days 2 -extfile "$dir/ext.cnf" -out "$dir/cert.pem"
    } >/dev/null 2>&1 || die "openssl could not make test certificates"
}

start_redis() {
    local state=$1 port=${2:-}
    command -v redis-server >/dev/null || die "redis-server is not installed (run scripts/setup.sh)"
    [ -n "$port" ] || port="$(free_port)"
    mkdir -p "$state"
    rm -f "$state/redis.pid"
    # Durable by default (tests kill and restart it); REDIS_PERSIST=no for benchmarks.
    local persist=(--appendonly yes --appendfsync always --appenddirname aof)
    [ "${REDIS_PERSIST:-yes}" = no ] && persist=(--appendonly no)
    # REDIS_TLS=yes: TLS only, with a server certificate signed by a test CA (CA= names it).
    local listen=(--port "$port")
    if [ "${REDIS_TLS:-no}" = yes ]; then
        [ -f "$state/cert.pem" ] || make_test_certificates "$state"
        listen=(--port 0 --tls-port "$port" --tls-cert-file "$state/cert.pem"
            --tls-key-file "$state/key.pem" --tls-ca-cert-file "$state/ca.pem" --tls-auth-clients no)
    fi
    redis-server "${listen[@]}" --bind 127.0.0.1 --save '' "${persist[@]}" \
        --dir "$state" --daemonize yes --pidfile "$state/redis.pid" \
        --logfile "$state/redis.log" >/dev/null
    local deadline=$((SECONDS + 10))
    while [ ! -s "$state/redis.pid" ]; do
        [ $SECONDS -ge $deadline ] && { tail -n 30 "$state/redis.log" >&2; die "Redis did not start"; }
        sleep 0.05
    done
    local pid
    pid="$(cat "$state/redis.pid")"
    wait_for_port "$port" "$pid" "$state/redis.log" 10
    echo "$pid" >"$state/pid"
    echo "$port" >"$state/port"
    echo redis >"$state/kind"
    echo "PORT=$port"
    echo "PID=$pid"
    if [ "${REDIS_TLS:-no}" = yes ]; then
        echo "URL=rediss://127.0.0.1:$port"
        echo "CA=$state/ca.pem"
    else
        echo "URL=redis://127.0.0.1:$port"
    fi
}

start_tansu() {
    local state=$1 port=${2:-} bin storage
    bin="$(tansu_bin)"
    [ -x "$bin" ] || die "tansu is not built at $bin (run scripts/setup.sh)"
    [ -n "$port" ] || port="$(free_port)"
    mkdir -p "$state"
    state="$(cd "$state" && pwd)"  # tansu runs from it (below)
    case "${TANSU_STORAGE:-$(cat "$state/storage" 2>/dev/null || echo memory)}" in
        memory) storage=memory ;;
        sqlite) storage=sqlite ;;
        *) die "unknown TANSU_STORAGE '${TANSU_STORAGE:-}' (expected memory or sqlite)" ;;
    esac
    # tansu opens sqlite://HOST/PATH as a path relative to its working directory.
    local engine=memory://tansu/
    [ "$storage" = sqlite ] && { mkdir -p "$state/sqlite"; engine="sqlite://sqlite/tansu.db"; }
    (cd "$state" && exec setsid "$bin" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "$engine" --silent \
        >>"$state/tansu.log" 2>&1 </dev/null) &
    local pid=$!
    wait_for_port "$port" "$pid" "$state/tansu.log" 20
    echo "$pid" >"$state/pid"
    echo "$port" >"$state/port"
    echo "$storage" >"$state/storage"
    echo tansu >"$state/kind"
    echo "PORT=$port"
    echo "PID=$pid"
    echo "URL=127.0.0.1:$port"
}

stop_service() {
    local state=$1
    [ -f "$state/pid" ] || die "no service was started in $state"
    local pid kind
    pid="$(cat "$state/pid")"
    kind="$(cat "$state/kind" 2>/dev/null || echo unknown)"
    if [ "$kind" = postgres ]; then
        as_pg "$(pg_bin)/pg_ctl" -D "$state/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null; do
        if [ $SECONDS -ge $deadline ]; then kill -KILL "$pid" 2>/dev/null || true; break; fi
        sleep 0.05
    done
    rm -f "$state/pid"
}

# Starts a stopped or killed PostgreSQL again on its port (set in its postgresql.conf). After a
# kill -9 the old backends notice their postmaster is gone and exit; until they have, the old
# shared memory is in use and pg_ctl refuses to start, so it is retried for a while.
restart_postgres() {
    local state=$1 bin pid
    bin="$(pg_bin)"
    if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
        stop_service "$state"
    fi
    for _ in $(seq 1 40); do
        if as_pg "$bin/pg_ctl" -D "$state/data" -l "$state/postgres.log" -w -t 30 start >/dev/null 2>&1; then
            pid="$(head -n 1 "$state/data/postmaster.pid")"
            echo "$pid" >"$state/pid"
            echo "PID=$pid"
            return 0
        fi
        sleep 0.25
    done
    tail -n 30 "$state/postgres.log" >&2
    die "PostgreSQL did not restart"
}

case "${1:-}" in
    start)
        [ $# -eq 3 ] || die "usage: service.sh start postgres|redis|tansu STATE_DIR"
        case "$2" in
            postgres) start_postgres "$3" ;;
            redis) start_redis "$3" ;;
            tansu) start_tansu "$3" ;;
            *) die "unknown service '$2' (expected postgres, redis or tansu)" ;;
        esac
        ;;
    stop)
        [ $# -eq 2 ] || die "usage: service.sh stop STATE_DIR"
        stop_service "$2"
        ;;
    restart)
        [ $# -eq 2 ] || die "usage: service.sh restart STATE_DIR"
        case "$(cat "$2/kind" 2>/dev/null)" in
            redis)
                [ -f "$2/pid" ] && stop_service "$2"
                start_redis "$2" "$(cat "$2/port")"
                ;;
            postgres) restart_postgres "$2" ;;
            tansu)
                [ -f "$2/pid" ] && stop_service "$2"
                start_tansu "$2" "$(cat "$2/port")"
                ;;
            *) die "nothing was started in $2" ;;
        esac
        ;;
    *) die "usage: service.sh start postgres|redis|tansu STATE_DIR | stop STATE_DIR" ;;
esac
