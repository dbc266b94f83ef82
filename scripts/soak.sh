#!/usr/bin/env bash
# The long run of the power-cut test: the receiver's power is cut 100 times (or the
# first argument's count) while deliveries flow, and every acknowledged delivery must
# survive each cut exactly once. Then the deliberately weakened receiver (commits not
# synced) is cut until it loses one, to show how quickly the test catches it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cpwatch_setup base desktop powercut
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME}/.cache/cpwatch/target}"
export CPWATCH_POWER_CUTS="${1:-${CPWATCH_POWER_CUTS:-100}}"
cargo test --workspace --locked --test it -- powercut:: --nocapture --test-threads 1 2>&1 |
  grep -E '^(cut [0-9]+:|power cuts:|synchronous=NORMAL:|test |test result)|panicked' || true
test "${PIPESTATUS[0]}" -eq 0
