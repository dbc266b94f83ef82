#!/usr/bin/env bash
# The dashboard benchmark (issue 5, item 3): seeds a data directory with about a million
# deliveries across 20 studies, starts `cpwatch serve` on it, and times the dashboard's
# API over loopback: a filtered uploads page, the unfiltered first page and a later page,
# the overview, and the CSV export of one study; and (issue 11) the compliance of a study
# of 5,000 subjects x 365 days, without and with the compliance view's 28- and 14-day
# ranges. Prints a Markdown table (median and p95 of N runs, and the budget where a query
# has one) on stdout, or writes it to the file given as first argument; exits 1 when a
# median is over its budget.
#   bash scripts/bench-dashboard.sh [OUT.md]      (BENCH_DASHBOARD_RUNS, default 30)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${1:-/dev/stdout}"
runs="${BENCH_DASHBOARD_RUNS:-30}"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="$target/release"
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  source scripts/setup.sh
  cpwatch_setup base
  cargo build --release --locked -p cpwatch -p cpwatch-bench >&2
fi
command -v curl >/dev/null || { echo "bench-dashboard: curl is needed" >&2; exit 1; }

work="$(mktemp -d)"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/cpwatch-bench" seed --data-dir "$work/data" --deliveries 1000000 --studies 20 >&2
printf '' >"$work/config.toml"
"$bin/cpwatch" --config "$work/config.toml" --data-dir "$work/data" -q serve \
  --listen 127.0.0.1:0 --dashboard-listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
server=$!
dashboard=""
for _ in $(seq 1 600); do
  dashboard=$(sed -n 's/^dashboard: \(http:[^ ]*\)$/\1/p' "$work/serve.out" | head -n 1)
  [ -n "$dashboard" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
  sleep 0.1
done
[ -n "$dashboard" ] || { echo "bench-dashboard: the dashboard did not start" >&2; exit 1; }
dashboard="${dashboard%/}"

# A later page: the cursor where the 20th page of 50 ends.
cursor=""
for _ in $(seq 1 20); do
  page=$(curl -sf "$dashboard/api/uploads?limit=50${cursor:+&cursor=$cursor}")
  cursor=$(printf '%s' "$page" | python3 -c 'import json,sys,urllib.parse; c=json.load(sys.stdin)["next_cursor"]; print(urllib.parse.quote(c or ""))')
done

# Median and p95 (nearest rank) of `runs` timings of one URL, in milliseconds, and whether
# the median is within the budget (ms, when given); a query over budget is noted in
# $work/over.
measure() {
  local label="$1" url="$2" budget="${3:-}" times
  curl -sf -o /dev/null "$url" # warm-up
  times=$(for _ in $(seq 1 "$runs"); do curl -sf -o /dev/null -w '%{time_total}\n' "$url"; done | sort -n)
  python3 - "$times" "$budget" "$label" "$work/over" <<'PY'
import math, sys
t = [float(x) * 1000 for x in sys.argv[1].split()]
budget, label, over = sys.argv[2], sys.argv[3], sys.argv[4]
med = t[(len(t) - 1) // 2] if len(t) % 2 else (t[len(t) // 2 - 1] + t[len(t) // 2]) / 2
p95 = t[max(0, math.ceil(0.95 * len(t)) - 1)]
met = ""
if budget:
    met = "yes" if med < float(budget) else "**NO**"
    if med >= float(budget):
        with open(over, "a") as f:
            f.write(f"{label}: median {med:.1f} ms, budget {budget} ms\n")
    budget = f"< {budget}"
print(f"{med:.1f} | {p95:.1f} | {budget} | {met}")
PY
}

# The compliance view's ranges: the last 28 and 14 days up to today (the local date, as
# the server takes it).
today=$(date +%F)
from28=$(date -d "$today -27 days" +%F)
from14=$(date -d "$today -13 days" +%F)

rows=(
  "uploads page, filtered by study and status|/api/uploads?study=1005&status=error&limit=50"
  "uploads page, filtered by subject|/api/uploads?study=1005&subject=50100&limit=50"
  "uploads page, search in error messages|/api/uploads?q=monitor%20100501&limit=50"
  "uploads page, unfiltered, first|/api/uploads?limit=50"
  "uploads page, unfiltered, 21st (keyset cursor)|/api/uploads?limit=50&cursor=$cursor"
  "overview (21 study cards, 30-day charts)|/api/overview"
  "export of one study, CSV (25,000 uploads)|/api/export?format=csv&study=1005"
  "compliance, 5,000 x 365 days (5,100 subjects)|/api/studies/2000/compliance|100"
  "compliance with 28 days of columns|/api/studies/2000/compliance?from=$from28&to=$today|100"
  "compliance with 14 days of columns|/api/studies/2000/compliance?from=$from14&to=$today|100"
)
{
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), \`bash scripts/bench-dashboard.sh\`: about 1,000,000 deliveries (500,000 uploads) across 20 studies and 4,000 subjects, and a compliance study of 5,000 subjects with 365 days each (about 1.7 million subject-days), a roster (100 members never synced) and a protocol, seeded by \`cpwatch-bench seed\`; each query $runs times over loopback with curl, after one warm-up; times include HTTP and JSON."
  echo
  echo "| query | median (ms) | p95 (ms) | budget, median (ms) | met |"
  echo "| --- | ---: | ---: | ---: | --- |"
  for row in "${rows[@]}"; do
    IFS='|' read -r label path budget <<<"$row"
    echo "| $label | $(measure "$label" "$dashboard$path" "$budget") |"
  done
} >"$out"
if [ -s "$work/over" ]; then
  echo "bench-dashboard: over budget:" >&2
  cat "$work/over" >&2
  exit 1
fi
