#!/bin/sh
# Fuzzes the CRUSH text parser (and the mapper on every map it accepts) for SECONDS
# (default 300), seeding the corpus with the test maps. Needs `cargo install cargo-fuzz`;
# runs on stable Rust (no sanitizer: safe Rust needs none to find panics and hangs).
# Crashes land in artifacts/parse_text/; replay one with
#   cargo fuzz run --sanitizer none parse_text artifacts/parse_text/crash-...
set -eu
cd "$(dirname "$0")"
mkdir -p corpus/parse_text
cp ../crush/tests/data/maps/*.txt corpus/parse_text/
exec cargo fuzz run --sanitizer none parse_text corpus/parse_text -- \
    -dict=parse_text.dict -max_total_time="${1:-300}" -timeout=30 -rss_limit_mb=4096
