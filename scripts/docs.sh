#!/usr/bin/env bash
# Builds the user book into docs/book: regenerates the reference pages from the code (the same
# pages the unit test `the_checked_in_reference_is_current` compares), then runs mdbook.
#
#   scripts/docs.sh          build docs/book
#   scripts/docs.sh serve    serve it on 127.0.0.1:3000, rebuilding on changes
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

scripts/setup.sh --docs
cargo run --quiet -p headwater -- docs --book docs/src
if [ "${1:-}" = "serve" ]; then
    exec "$(mdbook_bin)" serve docs --hostname 127.0.0.1
fi
"$(mdbook_bin)" build docs
echo "docs: built docs/book/index.html"
