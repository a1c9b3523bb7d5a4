#!/usr/bin/env bash
# The whole test suite (the README's second command). Every tier runs; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins
cargo test --workspace --all-targets --no-fail-fast
cargo test --workspace --doc
