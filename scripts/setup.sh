#!/usr/bin/env bash
# Installs what Headwater's demo, tests and benchmarks need on a fresh machine.
# Idempotent: every step checks first and does nothing when already done.
#
#   scripts/setup.sh           everything (tests need all of it)
#   scripts/setup.sh --demo    only what the demo needs (build tools, python3, wasm32-wasip2)
#   scripts/setup.sh --cdc-demo  what the CDC demo needs (build tools, PostgreSQL)
#   scripts/setup.sh --docs    mdbook, to build the user book (not needed by the tests: the
#                              book's generated reference is checked without it)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

mode="${1:-all}"

log() { printf 'setup: %s\n' "$*" >&2; }

need_cmd() { command -v "$1" >/dev/null 2>&1; }

# apt-get's own chatter (debconf notes) goes to a log; failures still show it.
apt_log="${TMPDIR:-/tmp}/headwater-setup-apt.log"

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
        cat "$apt_log" >&2
        echo "setup: installing ${missing[*]} failed" >&2
        exit 1
    fi
}

if ! need_cmd cargo; then
    echo "setup: cargo not found; install a Rust toolchain (rustup) first" >&2
    exit 1
fi

# Build tools for crates that compile C (zstd, librdkafka and its zlib); python3 makes the
# demos' sample data.
apt_install build-essential pkg-config zlib1g-dev python3

# WASM plugins are built for this target.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    log "adding Rust target wasm32-wasip2"
    rustup target add wasm32-wasip2 >/dev/null
fi

if [ "$mode" = "--demo" ]; then
    exit 0
fi

# mdbook is no Debian package here: it compiles from crates.io (a few minutes, once).
if [ "$mode" = "--docs" ]; then
    if [ ! -x "$(mdbook_bin)" ]; then
        log "building mdbook into $(headwater_cache_dir) (once, a few minutes)"
        cargo install mdbook --version 0.5.4 --locked --root "$(headwater_cache_dir)/mdbook" --quiet
    fi
    exit 0
fi

if [ "$mode" = "--cdc-demo" ]; then
    apt_install postgresql
    exit 0
fi

# The tools built from crates.io, outside the work tree, once each. They compile in the
# background, side by side, while apt and pip below download and unpack (a crate build rarely
# keeps both cores busy all along, and those wait on the network); setup waits for them at the
# end.
builds=()
# If setup stops early (a failed apt or pip step), the builds stop with it.
trap 'jobs -p | xargs -r kill 2>/dev/null || true' EXIT
build_tool() { # NAME LOG cargo install ARGS...
    local name=$1 out=$2
    shift 2
    ( "$@" >"$out" 2>&1 || { cat "$out" >&2; echo "setup: building $name failed" >&2; exit 1; } ) &
    builds+=($!)
}
tool_log() { printf '%s/headwater-setup-%s.log' "${TMPDIR:-/tmp}" "$1"; }
# tansu: a Kafka-protocol broker written in Rust (see shared/reference/kafka-broker.md), with its
# memory store and its SQLite one (libsql: a broker that keeps its topics when killed, for the
# chaos soak). Debug build without debug info: minutes less than a release, same throughput for
# tests; but SQLite itself (C, in libsql-ffi) is optimised: at -O0 a fetch over a large
# partition took over librdkafka's 60 s request timeout.
if [ ! -x "$(tansu_bin)" ]; then
    log "building the tansu broker into $(headwater_cache_dir) (once, ~7 min)"
    build_tool tansu "$(tool_log tansu)" env CARGO_PROFILE_DEV_DEBUG=0 \
        cargo --config 'profile.dev.package.libsql-ffi.opt-level=3' \
        install tansu --version 0.6.0 --locked --features dynostore,libsql --debug \
        --root "$(dirname "$(dirname "$(tansu_bin)")")" --quiet
fi
# cargo-deny: the suite checks the licenses, bans and sources of every dependency (its advisory
# database cannot be fetched here).
if [ ! -x "$(cargo_deny_bin)" ]; then
    log "building cargo-deny into $(headwater_cache_dir) (once, ~4 min)"
    build_tool cargo-deny "$(tool_log cargo-deny)" \
        cargo install cargo-deny --version 0.20.2 --locked \
        --root "$(dirname "$(dirname "$(cargo_deny_bin)")")" --quiet
fi
# Services the integration tests start on loopback ports; Chromium and its driver run the web
# console's browser tests (about 100 MB, some 15 s on this machine's mirror).
apt_install postgresql redis-server redis-tools openssl curl chromium chromium-driver

# Other tools read what we write in the tests: pyarrow and duckdb our Parquet, Feast's own SDK
# our Redis `feast` layout; Kafka's Python client (confluent-kafka, with its Avro serializer and
# schema registry client) produces and consumes on the other side of our Kafka code;
# kafka-connect-py (a Kafka Connect REST client, pure Python) calls our REST API; selenium drives
# Chromium through the console's pages (given Debian's chromedriver: it downloads nothing).
if ! python3 -c 'import pyarrow, duckdb, feast, redis, confluent_kafka, fastavro, kafka_connect, selenium' >/dev/null 2>&1; then
    log "installing pyarrow, duckdb, feast, confluent-kafka, kafka-connect-py and selenium (pip)"
    pip_args=(--quiet --disable-pip-version-check --root-user-action=ignore pyarrow duckdb "feast[redis]"
        "confluent-kafka[avro,schemaregistry]" kafka-connect-py==1.0.0 selenium==4.51.0)
    python3 -m pip install "${pip_args[@]}" 2>/dev/null \
        || python3 -m pip install "${pip_args[@]}" --break-system-packages
fi

for pid in "${builds[@]}"; do
    wait "$pid"  # a failed build has printed its log; set -e stops here
done
log "ready"
