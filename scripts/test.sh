#!/usr/bin/env bash
# The whole test suite: installs what it needs (build tools, the desktop libraries,
# Xvfb, D-Bus, dunst, Chromium and its driver), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cpwatch_setup base desktop e2e
cargo test --workspace --locked "$@"
