#!/usr/bin/env bash
# The whole test suite: installs what it needs (build tools, the desktop libraries,
# Xvfb, D-Bus, dunst, Chromium and its driver, FUSE), checks the formatting and the lints
# (clippy, warnings as errors), then runs every test of the workspace, then the packages'
# test (scripts/package-test.sh: release packages installed in a Debian 12 machine).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cpwatch_setup base desktop e2e lint powercut
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked "$@"
if (($#)); then
  echo "test: a subset of the tests was asked for ($*): not running scripts/package-test.sh"
else
  bash scripts/package-test.sh
fi
