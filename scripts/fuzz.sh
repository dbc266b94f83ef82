#!/usr/bin/env bash
# Coverage-guided fuzzing of cpwatch's parsing surfaces with cargo-fuzz (libFuzzer):
# seeds fuzz/corpus/ from tests/fixtures, then runs each target for SECONDS seconds
# (default 300). The same properties run briefly in CI through tests/it/fuzz_props.rs;
# this is the long run. Crashes land in fuzz/artifacts/TARGET/ and the command fails.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]     targets: signature headers payload
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cpwatch_setup base
seconds="${1:-300}"
shift || true
targets=("$@")
((${#targets[@]})) || targets=(signature headers payload)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
# cargo-fuzz builds with sanitizer and coverage flags (-Z...) that only nightly
# compilers accept; RUSTC_BOOTSTRAP lets the stable toolchain accept them too.
rustc --version | grep -q nightly || export RUSTC_BOOTSTRAP=1
CPWATCH_FUZZ_CORPUS="$PWD/fuzz/corpus" \
  cargo test --locked -p cpwatch --test it fuzz_props::every_seed_from_the_fixtures_holds_every_property
cd fuzz
for target in "${targets[@]}"; do
  echo "fuzz: $target for ${seconds}s"
  cargo fuzz run "$target" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096
done
