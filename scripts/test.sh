#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then checks formatting, lints,
# the SDK's docs, and runs every test (unit and end-to-end, against real services). The layer
# rules, the typed-error rule and the book's generated reference are unit tests
# (host/src/code_rules.rs, host/src/cli/docs.rs). Last, a 3-minute chaos soak (scripts/soak.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path plugins/Cargo.toml --all -- --check

echo "== cargo deny: dependencies' licenses (permissive only), bans and sources (deny.toml)"
for manifest in Cargo.toml plugins/Cargo.toml; do
    if ! out=$("$(cargo_deny_bin)" --manifest-path "$manifest" check licenses bans sources 2>&1); then
        echo "$out" >&2
        exit 1
    fi
done

echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
cargo clippy --manifest-path plugins/Cargo.toml --release --target wasm32-wasip2 --quiet -- -D warnings

echo "== plugins: unit tests (native), then the wasm32-wasip2 components the tests load"
if ! out=$(cargo test --manifest-path plugins/Cargo.toml --quiet 2>&1); then
    echo "$out" >&2
    exit 1
fi
cargo build --manifest-path plugins/Cargo.toml --release --target wasm32-wasip2 --quiet

echo "== docs: the SDK's API docs build without warnings"
if ! out=$(RUSTDOCFLAGS="-D warnings" cargo doc -p headwater-sdk --no-deps --quiet 2>&1); then
    echo "$out" >&2
    exit 1
fi

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --cargo-quiet --no-fail-fast --status-level fail --final-status-level fail
    # nextest does not run doc tests (the SDK's examples).
    if ! out=$(cargo test --doc --workspace --quiet 2>&1); then
        echo "$out" >&2
        exit 1
    fi
else
    cargo test --workspace --quiet
fi

echo "== chaos soak: 3 minutes of kill -9 under load, every output checked (scripts/soak.sh)"
if ! out=$(scripts/soak.sh 3 2>&1); then
    echo "$out" >&2
    exit 1
fi
echo "$out" | tail -n 1
