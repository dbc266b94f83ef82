#!/usr/bin/env bash
# The load benchmark (issue 5): `cpwatch serve` against a no-op baseline, in one run on
# this machine, written to BENCHMARKS.md. It is not a test: nothing passes or fails on
# a timing. It fails only if a step breaks or if cpwatch stored a different number of
# deliveries than it acknowledged.
#
#   bash scripts/bench.sh           # quick run, about 3 minutes after the build
#   bash scripts/bench.sh --long    # adds the 10-minute memory run at the fixed rate
#
# Settings (environment): BENCH_DURATION measured seconds per phase (15),
# BENCH_WARMUP seconds before each (2), BENCH_CONNECTIONS for saturation (64),
# BENCH_RATE deliveries/s of the fixed-rate phase (500), BENCH_RATE_CONNECTIONS (32),
# BENCH_LONG=1 (same as --long), BENCH_LONG_SECONDS (600), BENCH_DATA_PARENT where the
# fresh data directory is made ($TMPDIR or /tmp: its disk is what fsync measures),
# BENCH_OUT (BENCHMARKS.md). Raw results stay in target/bench/ (latest: the last run).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

long=${BENCH_LONG:-0}
for arg in "$@"; do
  case $arg in
    --long) long=1 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "bench: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done
duration=${BENCH_DURATION:-15}
warmup=${BENCH_WARMUP:-2}
connections=${BENCH_CONNECTIONS:-64}
rate=${BENCH_RATE:-500}
rate_connections=${BENCH_RATE_CONNECTIONS:-32}
long_seconds=${BENCH_LONG_SECONDS:-600}
out=${BENCH_OUT:-$root/BENCHMARKS.md}
command_line="bash scripts/bench.sh"
[ "$long" = 1 ] && command_line="bash scripts/bench.sh --long"

source scripts/setup.sh
cpwatch_setup base

# Debian's wrk, an independent C load generator, checks that ours is not the bottleneck.
# Optional: without it (no apt, no network) the benchmark runs and says wrk did not.
if ! command -v wrk >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "bench: installing wrk"
  apt_get="$sudo_cmd apt-get -o DPkg::Lock::Timeout=600"
  DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq wrk >/dev/null 2>&1 ||
    { $apt_get update -qq >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq wrk >/dev/null 2>&1; } ||
    echo "bench: wrk could not be installed; that check is skipped"
fi

cargo build --release --locked -p cpwatch -p cpwatch-bench
bin="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release"
# One directory per run (two runs at once must not share one), `latest` pointing at it.
bench_dir="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/bench"
results="$bench_dir/$(date -u '+%Y%m%d-%H%M%S')-$$"
mkdir -p "$results"
ln -sfn "$(basename "$results")" "$bench_dir/latest"

work=$(mktemp -d "${BENCH_DATA_PARENT:-${TMPDIR:-/tmp}}/cpwatch-bench.XXXXXX")
data="$work/data"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Nothing from the user's own cpwatch setup may change what is measured.
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^CPWATCH_' || true)
: >"$work/config.toml"
export CPWATCH_CONFIG="$work/config.toml"
# A random passcode per run, handed over in the environment only.
BENCH_PASSCODE="bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export BENCH_PASSCODE

# start_server NAME PATTERN COMMAND...: starts a server in the background, waits for the
# stdout line that PATTERN (a sed expression printing the URL) recognises.
start_server() {
  local name=$1 pattern=$2
  shift 2
  # Made here, not by the background job's redirection, which may come after the first look.
  : >"$results/$name.out"
  "$@" >>"$results/$name.out" 2>"$results/$name.err" &
  server_pid=$!
  server_url=""
  for _ in $(seq 1 200); do
    server_url=$(sed -n "$pattern" "$results/$name.out" | head -n 1)
    [ -n "$server_url" ] && return 0
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "bench: $name did not start:" >&2
      cat "$results/$name.err" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "bench: $name printed no URL within 20 s" >&2
  exit 1
}

stop_server() {
  kill -TERM "$server_pid"
  wait "$server_pid" || { echo "bench: the server did not stop cleanly" >&2; exit 1; }
  server_pid=""
}

# load NAME ARGS...: one generator run; JSON to NAME.json, summary to the terminal.
load() {
  local name=$1
  shift
  "$bin/cpwatch-bench" load --url "$server_url" --passcode-env BENCH_PASSCODE --pid "$server_pid" \
    --warmup "$warmup" --label "$name" "$@" >"$results/$name.json"
}

saturation_requests() {
  # Enough pre-built deliveries for 60,000/s, more than this 2-core machine serves.
  echo $(((duration + warmup) * 60000))
}

echo "bench: results in $results, data directory $data"
mkdir -p "$data"
"$bin/cpwatch-bench" fsync --dir "$data" --count 200 >"$results/fsync.json"

# --- The no-op baseline ---------------------------------------------------------------
start_server noop 's/^no-op baseline listening at \(http:[^ ]*\).*/\1/p' "$bin/cpwatch-bench" noop --listen 127.0.0.1:0
load baseline-saturation --duration "$duration" --connections "$connections" --threads 2 \
  --max-requests "$(saturation_requests)"
# Is the generator the limit? Four times the connections, and one generator thread only.
load baseline-saturation-more-connections --duration "$duration" --connections $((connections * 4)) \
  --threads 2 --max-requests "$(saturation_requests)"
load baseline-saturation-one-thread --duration "$duration" --connections "$connections" --threads 1 \
  --max-requests "$(saturation_requests)"
if command -v wrk >/dev/null 2>&1; then
  # The same request as the generator's first (the baseline checks no signature).
  {
    echo 'wrk.method = "POST"'
    echo 'wrk.headers["Content-Type"] = "application/json"'
    echo 'wrk.headers["User-Agent"] = "ActiGraph-Hookshot/1.0"'
    echo 'wrk.headers["X-ActiGraph-Event"] = "upload"'
    echo 'wrk.headers["X-ActiGraph-Delivery"] = "7c1d2e44-5a0b-4c7e-9f31-0b8e2d6a1f02"'
    echo 'wrk.headers["X-ActiGraph-Webhook-Id"] = "15"'
    echo 'wrk.headers["X-ActiGraph-Signature"] = "Ri20SCicySZmIf2D4kCY5KWEJrsqI7W8sWXMADj1RaQ="'
    echo 'wrk.headers["X-Client-Cert-Used"] = "false"'
    echo 'wrk.body = [[{'
    echo '    "status" : "completed",'
    echo '    "firstEpochUTC":"2016-06-14T20:46:00.0000000",'
    echo '    "firstEpochSubjectTZ":"2016-06-14T15:46:00.0000000",'
    echo '    "lastEpochUTC":"2016-06-14T20:47:00.0000000",'
    echo '    "lastEpochSubjectTZ":"2016-06-14T15:47:00.0000000",'
    echo '    "uploadId" : "120000000",'
    echo '    "subjectId" : "90000",'
    echo '    "studyId" : "100"'
    echo '}]]'
  } >"$work/post.lua"
  wrk_command="wrk -t1 -c$connections -d${duration}s -s post.lua URL"
  { echo "command: $wrk_command"; wrk -t1 -c"$connections" -d"${duration}s" -s "$work/post.lua" "$server_url"; } \
    >"$results/wrk-baseline.txt" 2>&1 || echo "bench: wrk failed (see $results/wrk-baseline.txt)"
  grep -E 'Requests/sec' "$results/wrk-baseline.txt" | sed 's/^/wrk: /' || true
fi
load baseline-rate --rate "$rate" --duration "$duration" --connections "$rate_connections"
stop_server

# --- cpwatch serve ----------------------------------------------------------------------
CPWATCH_SECRET="$BENCH_PASSCODE" "$bin/cpwatch" --data-dir "$data" webhooks add 15 --auth passcode \
  --secret-env CPWATCH_SECRET --label "benchmark" >/dev/null
# Its dashboard, where this cpwatch has one, on a free port so a running cpwatch is no obstacle.
CPWATCH_DASHBOARD_LISTEN=127.0.0.1:0 start_server cpwatch \
  's/^cpwatch is receiving CentrePoint deliveries at \(http:[^ ]*\).*/\1/p' \
  "$bin/cpwatch" --data-dir "$data" serve --listen 127.0.0.1:0
load cpwatch-saturation --duration "$duration" --connections "$connections" --threads 2 \
  --max-requests "$(saturation_requests)" --first-upload-id 100000000
load cpwatch-rate --rate "$rate" --duration "$duration" --connections "$rate_connections" \
  --first-upload-id 200000000
if [ "$long" = 1 ]; then
  echo "bench: the ${long_seconds}-second memory run at $rate/s"
  load cpwatch-long --rate "$rate" --duration "$long_seconds" --connections "$rate_connections" \
    --rss-interval 5 --first-upload-id 300000000
fi
stop_server
"$bin/cpwatch" --data-dir "$data" status --json >"$results/cpwatch-status.json"
du -sh "$data" | sed 's/^/bench: data directory size: /'

# --- The dashboard with a million deliveries (issue 5, item 3) ---------------------------
echo "bench: the dashboard benchmark (seeding about a million deliveries first)"
CARGO_TARGET_DIR="$(dirname "$bin")" BENCH_SKIP_BUILD=1 bash "$root/scripts/bench-dashboard.sh" "$results/dashboard.md" ||
  echo "bench: the dashboard benchmark failed or missed a budget (its section has what it measured)"

# --- The machine, for the reader ---------------------------------------------------------
{
  echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) cores online"
  echo "memory: $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "kernel: $(uname -sr); $(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown OS}")"
  source_dev=$(findmnt -no SOURCE -T "$data" 2>/dev/null || echo "?")
  disk=$(lsblk -no PKNAME "$source_dev" 2>/dev/null | head -n 1 || true)
  [ -n "$disk" ] || disk=$(basename "$source_dev")
  disk_info=$(lsblk -dno MODEL,ROTA "/dev/$disk" 2>/dev/null |
    awk '{rota = $NF; $NF = ""; print $0 (rota == 1 ? "reported rotational" : "reported non-rotational")}' || true)
  echo "data directory: a fresh directory under $(dirname "$work"), on $source_dev" \
    "($(findmnt -no FSTYPE -T "$data" 2>/dev/null || echo "?")), disk $disk: ${disk_info:-?}"
  echo "load average when the run ended: $(cut -d' ' -f1-3 /proc/loadavg) (other people's builds share these cores: see the noise rows)"
  echo "cpwatch: commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' with uncommitted changes in src/'), $(rustc --version)"
} >"$results/machine.txt"

"$bin/cpwatch-bench" report --results "$results" --out "$out" --command "$command_line" \
  --date "$(date -u '+%Y-%m-%d %H:%M UTC')"
echo "bench: wrote $out"
