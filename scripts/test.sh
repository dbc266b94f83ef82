#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo test --workspace --locked "$@"
