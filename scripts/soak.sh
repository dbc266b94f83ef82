#!/usr/bin/env bash
# The long runs of the reliability tests, not in CI: the receiver is SIGKILLed 100 times
# under 8 concurrent senders (tests/it/crash.rs), and its power is cut 100 times while
# deliveries flow (tests/it/powercut.rs); every acknowledged delivery must survive each
# exactly once. The deliberately weakened receiver (commits not synced) is then cut
# until it loses one, to show how quickly the test catches it.
#   bash scripts/soak.sh [CUTS [KILLS]]     (default 100 and 100)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cpwatch_setup base desktop powercut
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME}/.cache/cpwatch/target}"
export CPWATCH_POWER_CUTS="${1:-${CPWATCH_POWER_CUTS:-100}}"
export CPWATCH_KILLS="${2:-${CPWATCH_KILLS:-100}}"
cargo test --workspace --locked --test it -- powercut:: crash:: --nocapture --test-threads 1 2>&1 |
  grep -E '^(cut [0-9]+:|kill [0-9]+:|power cuts:|synchronous=NORMAL:|[0-9]+ deliveries acknowledged|test |test result)|panicked' || true
test "${PIPESTATUS[0]}" -eq 0
