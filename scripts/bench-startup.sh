#!/usr/bin/env bash
# Size and start-up of release binaries, for tuning the release profile (BENCHMARKS.md,
# "Release profile"). Usage: bash scripts/bench-startup.sh DIR [RUNS]
# where DIR holds cpwatch (and cpwatch-desktop, measured when a display can be made).
# Prints: file sizes; `cpwatch --version` (process start alone); `cpwatch serve` from
# exec to its /healthz answering; `cpwatch-desktop --hidden` from exec to its dashboard
# answering, under Xvfb with a private D-Bus session. Medians of RUNS (default 20).
set -euo pipefail
dir="$(cd "${1:?usage: bench-startup.sh DIR [RUNS]}" && pwd)"
runs="${2:-20}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for bin in cpwatch cpwatch-desktop; do
  if [ -f "$dir/$bin" ]; then awk -v b="$bin" -v s="$(stat -c %s "$dir/$bin")" 'BEGIN { printf "%-16s %8.1f MiB\n", b, s / 1048576 }'; fi
done
python3 - "$dir" "$runs" "$work" <<'EOF'
import os, socket, statistics, subprocess, sys, time, urllib.request

bin_dir, runs, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port

def until_answers(url, proc, limit=30.0):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if proc.poll() is not None:
            raise SystemExit(f"exited early: {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=0.5).read(); return
        except Exception:
            time.sleep(0.002)
    raise SystemExit(f"{url} did not answer")

def median_ms(samples):
    return f"{statistics.median(samples) * 1000:7.1f} ms (min {min(samples) * 1000:.1f}, {len(samples)} runs)"

cpwatch = os.path.join(bin_dir, "cpwatch")
samples = []
for _ in range(runs):
    t = time.monotonic(); subprocess.run([cpwatch, "--version"], check=True, capture_output=True); samples.append(time.monotonic() - t)
print(f"cpwatch --version          {median_ms(samples)}")

samples = []
for i in range(runs):
    listen, dash = free_port(), free_port()
    env = dict(os.environ, CPWATCH_DATA_DIR=f"{work}/serve-{i}", CPWATCH_LISTEN=f"127.0.0.1:{listen}",
               CPWATCH_DASHBOARD_LISTEN=f"127.0.0.1:{dash}", CPWATCH_CONFIG="/dev/null")
    t = time.monotonic()
    proc = subprocess.Popen([cpwatch, "-q", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    until_answers(f"http://127.0.0.1:{listen}/healthz", proc)
    samples.append(time.monotonic() - t)
    proc.terminate(); proc.wait()
print(f"cpwatch serve to /healthz  {median_ms(samples)}")
EOF
desktop="$dir/cpwatch-desktop"
if [ -f "$desktop" ]; then
  command -v xvfb-run >/dev/null && command -v dbus-run-session >/dev/null ||
    { echo "bench-startup: cpwatch-desktop needs xvfb-run and dbus-run-session (bash scripts/setup.sh e2e)" >&2; exit 1; }
  cat >"$work/desktop.py" <<'EOF'
import os, socket, statistics, subprocess, sys, time, urllib.request
desktop, runs, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
samples = []
for i in range(runs):
    ports = []
    for _ in range(2):
        s = socket.socket(); s.bind(("127.0.0.1", 0)); ports.append(s.getsockname()[1]); s.close()
    env = dict(os.environ, CPWATCH_DATA_DIR=f"{work}/desktop-{i}", CPWATCH_LISTEN=f"127.0.0.1:{ports[0]}",
               CPWATCH_DASHBOARD_LISTEN=f"127.0.0.1:{ports[1]}", CPWATCH_CONFIG="/dev/null",
               XDG_RUNTIME_DIR=f"{work}/run-{i}", XDG_CONFIG_HOME=f"{work}/config-{i}")
    os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700)
    t = time.monotonic()
    proc = subprocess.Popen([desktop, "-q", "--hidden"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"cpwatch-desktop exited early: {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{ports[1]}/api/version", timeout=0.5).read(); break
        except Exception:
            time.sleep(0.002)
    samples.append(time.monotonic() - t)
    proc.terminate(); proc.wait()
print(f"cpwatch-desktop to its dashboard {statistics.median(samples) * 1000:7.1f} ms (min {min(samples) * 1000:.1f}, {len(samples)} runs)")
EOF
  dbus-run-session -- xvfb-run -a python3 "$work/desktop.py" "$desktop" "$runs" "$work"
fi
