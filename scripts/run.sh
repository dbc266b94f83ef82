#!/usr/bin/env bash
# Builds and runs cpwatch: the desktop tray app where there is a display, the headless
# receiver and dashboard (`cpwatch serve`) otherwise. Extra arguments go to `cpwatch serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
target="${CARGO_TARGET_DIR:-target}"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ -d src-tauri ]; then
  cpwatch_setup base desktop
  cargo build --release --locked -p cpwatch-desktop
  exec "$target/release/cpwatch-desktop"
fi
cpwatch_setup base
cargo build --release --locked --bin cpwatch
exec "$target/release/cpwatch" serve "$@"
