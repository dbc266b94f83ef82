#!/usr/bin/env bash
# Builds cpwatch and runs the receiver (`cpwatch serve`) with any extra arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release --locked --bin cpwatch
exec "${CARGO_TARGET_DIR:-target}/release/cpwatch" serve "$@"
