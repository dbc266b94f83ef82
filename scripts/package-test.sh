#!/usr/bin/env bash
# The packages' test, run by scripts/test.sh (so by CI): builds the release artefacts
# (scripts/package.sh), checks them (contents, lintian, desktop-file-validate), then
# boots a throwaway Debian 12 machine (debootstrap, then systemd-nspawn: a real systemd
# as PID 1) and, inside it, as an admin would:
#   - installs the server package built at the previous commit, configures a webhook's
#     passcode with `sudo cpwatch webhooks add`, `systemctl enable --now cpwatch`, and
#     sends every fixture with `cpwatch send`;
#   - upgrades to this commit's package: the data and the edited configuration are kept,
#     the service restarts on the new binary and migrates the database;
#   - removes it (the data stays), reinstalls it (the data is back), purges it (gone);
#   - installs the desktop package with `apt install ./cpwatch-desktop_*.deb`, starts the
#     app as its menu entry says under Xvfb with dunst, as a normal user, posts a failed
#     upload and sees the notification.
# `--no-build` tests the packages already in dist/ (they must be this commit's);
# CPWATCH_UPGRADE_FROM=<commit> starts the upgrade from that commit instead.
# Needs root (debootstrap, nspawn); installs what it lacks. Nothing is skipped: a step
# that cannot run fails the test. The Debian root and the downloaded packages are
# cached under ~/.cache/cpwatch (CPWATCH_CACHE).
# (In a function, so that bash reads the whole script before running any of it: an
# edit during a long build cannot break the run.)
main() {
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
say() { printf 'package-test: %s\n' "$*"; }
fail() { printf 'package-test: FAILED: %s\n' "$*" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
  # As scripts/setup.sh does for apt: sudo when there is one, else a clear refusal.
  command -v sudo >/dev/null || fail "run as root: it builds a Debian root with debootstrap and boots it with systemd-nspawn"
  exec sudo --preserve-env=CARGO_TARGET_DIR,CPWATCH_CACHE,CPWATCH_UPGRADE_FROM,PATH bash "$0" "$@"
fi
source scripts/setup.sh
cpwatch_setup base desktop package
cache="${CPWATCH_CACHE:-$HOME/.cache/cpwatch}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
work="$(mktemp -d /var/tmp/cpwatch-package-test.XXXXXX)"
machine="$work/machine"
nspawn_pid=""

stop_machine() {
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
    wait "$nspawn_pid" 2>/dev/null || true
  fi
  nspawn_pid=""
}
cleanup() {
  local status=$?
  stop_machine
  if [ "$status" -ne 0 ] && [ -f "$work/machine.log" ]; then
    echo "package-test: the machine's console (last 60 lines):" >&2
    tail -n 60 "$work/machine.log" >&2 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# ---- 1. build ----
if [ "${1:-}" = --no-build ]; then say "testing the packages in dist/ as they are"; else bash scripts/package.sh; fi
dist="$root/dist"
server_deb="$dist/cpwatch_${version}_amd64.deb"
desktop_deb="$dist/cpwatch-desktop_${version}_amd64.deb"
tarball="$dist/cpwatch-${version}-x86_64-linux.tar.gz"
for f in "$server_deb" "$desktop_deb" "$tarball" "$dist/SHA256SUMS"; do [ -f "$f" ] || fail "package.sh did not build $f"; done
(cd "$dist" && sha256sum --check --quiet SHA256SUMS) || fail "SHA256SUMS does not match what was built"
commit="$(git rev-parse --short=9 HEAD)"

# ---- 2. what the packages hold ----
say "checking the packages' contents"
# Every path as /usr/..., whether the archive names it ./usr/... (cargo-deb) or usr/... (Tauri).
files_of() { dpkg-deb --fsys-tarfile "$1" | tar -t | sed -e 's|^\./|/|' -e 's|^\([^/]\)|/\1|'; }
expect_files() { # deb file...
  local deb="$1" list; shift
  list="$(files_of "$deb")"
  for f in "$@"; do grep -qxF "$f" <<<"$list" || fail "$(basename "$deb") lacks $f (it holds: $(tr '\n' ' ' <<<"$list"))"; done
  # No build paths, no test artefacts, nothing from a developer's checkout.
  if grep -E '(^|/)(target|tests?|fixtures|\.git|src|dist)(/|$)|^/(root|work|tmp|home)/|\.(rs|orig|rej|sqlite3)$' <<<"$list"; then
    fail "$(basename "$deb") holds build or test files (above)"
  fi
}
expect_files "$server_deb" /usr/bin/cpwatch /etc/cpwatch/config.toml \
  /usr/lib/systemd/system/cpwatch.service /usr/lib/systemd/user/cpwatch.service \
  /usr/lib/sysusers.d/cpwatch.conf /usr/share/doc/cpwatch/copyright /usr/share/doc/cpwatch/changelog.Debian.gz \
  /usr/share/doc/cpwatch/README.md
expect_files "$desktop_deb" /usr/bin/cpwatch-desktop /usr/bin/cpwatch \
  /usr/share/applications/cpwatch-desktop.desktop /usr/share/icons/hicolor/128x128/apps/cpwatch-desktop.png \
  /usr/share/doc/cpwatch-desktop/copyright /usr/share/doc/cpwatch-desktop/changelog.gz
dpkg-deb --info "$server_deb" conffiles | grep -qxF /etc/cpwatch/config.toml ||
  fail "the server package does not mark /etc/cpwatch/config.toml as a conffile"
server_depends="$(dpkg-deb --field "$server_deb" Depends)"
desktop_depends="$(dpkg-deb --field "$desktop_deb" Depends)"
say "cpwatch depends on: $server_depends"
say "cpwatch-desktop depends on: $desktop_depends"
if grep -Eiq 'gtk|webkit|appindicator|x11' <<<"$server_depends"; then fail "the server package depends on desktop libraries"; fi
for dep in libwebkit2gtk-4.1-0 libgtk-3-0; do
  grep -q "$dep" <<<"$desktop_depends" || fail "the desktop package does not depend on $dep"
done
[ "$(dpkg-deb --field "$server_deb" Version)" = "$version" ] || fail "the server package's version is not $version"
# The binaries name no path of this checkout (panic locations are relative to it).
for deb in "$server_deb" "$desktop_deb"; do
  mkdir -p "$work/x" && dpkg-deb --extract "$deb" "$work/x"
done
for bin in "$work"/x/usr/bin/*; do
  if grep -qaF "$root/" "$bin"; then fail "$(basename "$bin") holds the build's path $root/"; fi
done
# Ubuntu 22.04 has glibc 2.35: no binary may need a newer symbol version.
for bin in "$work"/x/usr/bin/*; do
  need="$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)"
  say "$(basename "$bin") needs $need at most"
  [ "$(printf '%s\n' "$need" GLIBC_2.35 | sort -V | tail -n 1)" = GLIBC_2.35 ] || fail "$(basename "$bin") needs $need, newer than Ubuntu 22.04's glibc 2.35"
done
"$work/x/usr/bin/cpwatch" --version | grep -qF "(commit $commit)" || fail "cpwatch --version does not name commit $commit"
tar -tzf "$tarball" | sed 's|^[^/]*/||' | sort >"$work/tar.list"
for f in cpwatch LICENSE README.md config.example.toml systemd/cpwatch.service; do
  grep -qxF "$f" "$work/tar.list" || fail "the tarball lacks $f"
done

say "lintian"
# Overrides ship in the packages (packaging/lintian/), each with its reason.
lintian --fail-on error,warning --display-info "$server_deb" "$desktop_deb" || fail "lintian found problems (above)"
say "desktop-file-validate"
desktop-file-validate "$work/x/usr/share/applications/cpwatch-desktop.desktop" || fail "the desktop entry is not valid"

# ---- 3. the package built at the previous commit ----
# CPWATCH_UPGRADE_FROM=<commit> upgrades from another commit than the previous one.
previous="$(git rev-parse --short=9 "${CPWATCH_UPGRADE_FROM:-HEAD^}")"
old_version="${version}~prev.${previous}"
old_deb="$cache/packages/cpwatch_${old_version}_amd64.deb"
if [ ! -f "$old_deb" ]; then
  say "building the server package at the previous commit $previous"
  mkdir -p "$cache/packages"
  git worktree prune
  git worktree add --detach "$work/previous" "$previous" >/dev/null
  if [ -f "$work/previous/scripts/package.sh" ] && grep -q CPWATCH_PACKAGE_ONLY "$work/previous/scripts/package.sh"; then
    (cd "$work/previous" && CARGO_TARGET_DIR="$cache/target-previous" CPWATCH_PACKAGE_ONLY=server \
      CPWATCH_DEB_VERSION="$old_version" bash scripts/package.sh)
    cp "$work/previous/dist/cpwatch_${old_version}_amd64.deb" "$old_deb"
  else
    # Before packaging existed: that commit's binary in this commit's package layout.
    (cd "$work/previous" && CARGO_TARGET_DIR="$cache/target-previous" cargo build --release --locked --bin cpwatch)
    CARGO_TARGET_DIR="$cache/target-previous" PATH="$cache/tools/bin:$PATH" \
      cargo deb --no-build --locked --deb-version "$old_version" --output "$old_deb"
  fi
  git worktree remove --force "$work/previous"
fi
dpkg-deb --field "$old_deb" Version | grep -qxF "$old_version" || fail "the previous package is not version $old_version"

# ---- 4. a Debian 12 machine ----
base="$cache/debian12-systemd.tar"
mirror="$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
mirror="${mirror:-http://deb.debian.org/debian}"
if [ ! -f "$base" ]; then
  say "creating a Debian 12 root with debootstrap from $mirror (cached in $base)"
  rm -rf "$work/base"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,ca-certificates,curl bookworm "$work/base" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
  tar -C "$work/base" -cf "$base.partial" . && mv "$base.partial" "$base"
  rm -rf "$work/base"
fi
mkdir -p "$machine" "$cache/apt-archives/partial"
tar -C "$machine" -xf "$base"
printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" \
  >"$machine/etc/apt/sources.list.d/debian.sources"
rm -f "$machine/etc/apt/sources.list"
echo cpwatch-test >"$machine/etc/hostname"
# The console is not a terminal: no getty on it.
ln -sf /dev/null "$machine/etc/systemd/system/console-getty.service"
mkdir -p "$machine/root/pkg"
cp "$old_deb" "$server_deb" "$desktop_deb" "$machine/root/pkg/"
cp tests/fixtures/*.http "$machine/root/pkg/"

say "booting it (systemd-nspawn)"
systemd-nspawn --quiet --directory="$machine" --boot --register=no --keep-unit --console=read-only \
  --resolv-conf=copy-host --bind="$cache/apt-archives:/var/cache/apt/archives" \
  >"$work/machine.log" 2>&1 </dev/null &
nspawn_pid=$!
# The machine's init is the child of systemd-nspawn that is PID 1 in its own namespace
# ("NSpid: <host pid> 1"). Not just the first child: while the machine starts, nspawn
# has a short-lived helper child too, and commands aimed at it fail once it is gone.
machine_init() {
  local child
  for child in $(pgrep -P "$nspawn_pid" || true); do
    if awk '/^NSpid:/ { found = (NF > 2 && $NF == 1) } END { exit !found }' "/proc/$child/status" 2>/dev/null; then
      echo "$child"
      return 0
    fi
  done
}
init_pid=""
for _ in $(seq 1 300); do
  init_pid="$(machine_init)"
  [ -n "$init_pid" ] && break
  kill -0 "$nspawn_pid" 2>/dev/null || fail "systemd-nspawn exited"
  sleep 0.2
done
[ -n "$init_pid" ] || fail "the machine did not start"
# A command inside the machine, as root with a clean environment.
in_machine() {
  nsenter --target "$init_pid" --mount --uts --ipc --pid --root --wd -- \
    /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"
}
# (systemctl fails at once until systemd's socket exists, so ask again until it says.)
state=""
for _ in $(seq 1 240); do
  state="$(in_machine systemctl is-system-running 2>/dev/null || true)"
  case "$state" in running | degraded | maintenance | stopping) break ;; esac
  kill -0 "$nspawn_pid" 2>/dev/null || fail "the machine stopped while booting"
  sleep 0.5
done
case "$state" in
  running | degraded) say "the machine is up ($state)" ;;
  *) in_machine systemctl --failed --no-pager || true; fail "the machine did not boot (state: ${state:-none})" ;;
esac
apt_get() { in_machine apt-get -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confold -y -q "$@"; }
apt_get update >"$work/apt.log" 2>&1 || { tail -n 20 "$work/apt.log" >&2; fail "apt-get update failed in the machine"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
receiver_port="$(free_port)"
dashboard_port="$(free_port)"
schema_of_file() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("pragma user_version").fetchone()[0])' "$machine/var/lib/cpwatch/cpwatch.sqlite3"; }
stored() { in_machine cpwatch status --json --data-dir /var/lib/cpwatch | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"]["deliveries"])'; }
wait_for() { # what command...
  local what="$1"; shift
  for _ in $(seq 1 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  fail "timed out waiting for $what"
}
# Every webhook id the fixtures use, each with the same passcode, set by `$1 webhooks add`.
webhook_ids="$(grep -hio '^x-actigraph-webhook-id: *[0-9]*' tests/fixtures/*.http | awk '{print $2}' | sort -u)"
configure_webhooks() {
  local id
  for id in $webhook_ids; do
    in_machine sh -c "cd / && printf package-test-passcode | $1 webhooks add $id --auth passcode --secret-stdin" >/dev/null ||
      fail "$1 webhooks add $id failed"
  done
}
send_fixtures() {
  local sent=0 f
  for f in "$machine"/root/pkg/*.http; do
    in_machine env CPWATCH_PASSCODE=package-test-passcode cpwatch send --fixture "/root/pkg/$(basename "$f")" \
      --delivery-id "$(cat /proc/sys/kernel/random/uuid)" --passcode-env CPWATCH_PASSCODE "http://127.0.0.1:$receiver_port/webhook" >>"$work/send.log" 2>&1 ||
      { cat "$work/send.log" >&2; fail "cpwatch send $(basename "$f") was refused"; }
    sent=$((sent + 1))
  done
  echo "$sent"
}

# ---- 5. the server: install the previous package, configure, enable, send ----
say "installing the server package built at $previous"
apt_get install "/root/pkg/$(basename "$old_deb")" >"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; fail "apt install of the previous server package failed"; }
in_machine id cpwatch >/dev/null || fail "the package did not create the cpwatch system user"
in_machine sh -c "printf 'listen = \"127.0.0.1:$receiver_port\"\ndashboard_listen = \"127.0.0.1:$dashboard_port\"\n' >>/etc/cpwatch/config.toml"
# The webhook's passcode, set as the service's user (the previous binary may not know
# the service's paths yet; this commit's admin path is tested after the purge below).
configure_webhooks "runuser -u cpwatch -- cpwatch --data-dir /var/lib/cpwatch"
enable_service() {
  in_machine systemctl enable --now cpwatch >/dev/null 2>&1 || { in_machine journalctl -u cpwatch --no-pager | tail -n 30 >&2; fail "systemctl enable --now cpwatch failed"; }
  wait_for "the service's receiver" curl -fsS "http://127.0.0.1:$receiver_port/healthz"
}
enable_service
sent="$(send_fixtures)"
count="$(stored)"
[ "$count" -eq "$sent" ] || fail "the service stored $count deliveries of $sent sent"
say "the previous package's service stored all $sent fixtures"
old_schema="$(schema_of_file)"

# ---- 6. upgrade ----
say "upgrading to this commit's package"
apt_get install "/root/pkg/$(basename "$server_deb")" >"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; fail "the upgrade failed"; }
grep -q "127.0.0.1:$receiver_port" "$machine/etc/cpwatch/config.toml" || fail "the upgrade lost the edited configuration"
in_machine cpwatch --version | grep -qF "(commit $commit)" || fail "the upgraded cpwatch is not commit $commit"
wait_for "the upgraded service" sh -c "curl -fsS http://127.0.0.1:$dashboard_port/api/version | grep -q $commit"
wait_for "the upgraded service's receiver" curl -fsS "http://127.0.0.1:$receiver_port/healthz"
# Read before any command of the new binary opens the file: the service migrated it.
new_schema="$(schema_of_file)"
expected_schema="$(in_machine cpwatch status --json --data-dir /var/lib/cpwatch | python3 -c 'import json,sys; print(json.load(sys.stdin)["schema_version"])')"
[ "$new_schema" -eq "$expected_schema" ] || fail "the upgraded service left the database at schema $new_schema, not $expected_schema"
say "upgrade: the database is at schema $new_schema (was $old_schema), as the restarted service left it"
[ "$(stored)" -eq "$sent" ] || fail "the upgrade lost deliveries"
more="$(send_fixtures)"
[ "$(stored)" -eq $((sent + more)) ] || fail "the upgraded service did not store new deliveries"
in_machine systemd-analyze verify cpwatch.service || fail "systemd-analyze verify cpwatch.service found problems"
in_machine sh -c 'mkdir -p -m 0700 /run/user/0 && XDG_RUNTIME_DIR=/run/user/0 systemd-analyze --user verify /usr/lib/systemd/user/cpwatch.service' ||
  fail "systemd-analyze verify of the user unit found problems"
say "hardening: $(in_machine systemd-analyze security cpwatch.service --no-pager 2>/dev/null | tail -n 1)"

# ---- 7. remove keeps the data, purge deletes it; a fresh install as the README says ----
apt_get remove cpwatch >"$work/apt.log" 2>&1 || fail "apt remove cpwatch failed"
in_machine test -f /var/lib/cpwatch/cpwatch.sqlite3 || fail "apt remove deleted the data"
in_machine test -f /etc/cpwatch/config.toml || fail "apt remove deleted the configuration"
apt_get install "/root/pkg/$(basename "$server_deb")" >"$work/apt.log" 2>&1 || fail "reinstalling failed"
[ "$(stored)" -eq $((sent + more)) ] || fail "the data did not survive remove and reinstall"
apt_get purge cpwatch >"$work/apt.log" 2>&1 || fail "apt purge cpwatch failed"
in_machine test ! -e /var/lib/cpwatch || fail "apt purge left /var/lib/cpwatch"
in_machine test ! -e /etc/cpwatch/config.toml || fail "apt purge left /etc/cpwatch/config.toml"
say "installing this commit's package afresh: the admin configures it, then enables it"
apt_get install "/root/pkg/$(basename "$server_deb")" >"$work/apt.log" 2>&1 || fail "installing after the purge failed"
in_machine sh -c "printf 'listen = \"127.0.0.1:$receiver_port\"\ndashboard_listen = \"127.0.0.1:$dashboard_port\"\n' >>/etc/cpwatch/config.toml"
# As root, with no --data-dir: the service's data, created for the service's user.
configure_webhooks cpwatch
in_machine test ! -e /root/.local/share/cpwatch || fail "sudo cpwatch webhooks add wrote root's own data, not the service's"
enable_service
fresh="$(send_fixtures)"
[ "$(in_machine cpwatch status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"]["deliveries"])')" -eq "$fresh" ] ||
  fail "sudo cpwatch status does not show the service's deliveries"
for f in cpwatch.sqlite3 cpwatch.sqlite3-wal cpwatch.sqlite3-shm cpwatch.lock; do
  owner="$(in_machine stat -c %U "/var/lib/cpwatch/$f" 2>/dev/null || echo cpwatch)"
  [ "$owner" = cpwatch ] || fail "root's cpwatch commands left /var/lib/cpwatch/$f owned by $owner"
done
in_machine systemctl restart cpwatch
wait_for "the restarted service" curl -fsS "http://127.0.0.1:$receiver_port/healthz"
apt_get purge cpwatch >"$work/apt.log" 2>&1 || fail "apt purge cpwatch failed"
say "server package: install, enable, upgrade, remove, purge and a fresh install behave"

# ---- 8. the desktop app ----
say "installing the desktop package (its dependencies come from Debian)"
apt_get install "/root/pkg/$(basename "$desktop_deb")" >"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; fail "apt install ./cpwatch-desktop_*.deb failed"; }
apt_get install --no-install-recommends xvfb xauth dbus-x11 dunst >"$work/apt.log" 2>&1 || fail "cannot install Xvfb and dunst in the machine"
in_machine useradd --create-home researcher
exec_line="$(sed -n 's/^Exec=//p' "$machine/usr/share/applications/cpwatch-desktop.desktop")"
[ -n "$exec_line" ] || fail "the desktop entry has no Exec line"
cat >"$machine/home/researcher/session.sh" <<EOF
#!/bin/sh
# The researcher's session: a notification daemon, then the app as the menu starts it.
dunst >/home/researcher/dunst.log 2>&1 &
sleep 1
CPWATCH_LISTEN=127.0.0.1:$receiver_port CPWATCH_DASHBOARD_LISTEN=127.0.0.1:$dashboard_port $exec_line >/home/researcher/app.log 2>&1 &
app=\$!
for i in \$(seq 1 150); do curl -fsS http://127.0.0.1:$receiver_port/healthz >/dev/null 2>&1 && break; sleep 0.2; done
cpwatch send --status error --message 'Device clock invalid' --subject 4242 http://127.0.0.1:$receiver_port/webhook >/home/researcher/send.log 2>&1
for i in \$(seq 1 300); do
  dunstctl close-all 2>/dev/null
  if dunstctl history 2>/dev/null | grep -q 'Device clock invalid'; then echo NOTIFIED; break; fi
  sleep 0.2
done
dunstctl history >/home/researcher/history.json 2>&1
kill \$app; wait \$app
EOF
chmod 755 "$machine/home/researcher/session.sh"
in_machine chown -R researcher: /home/researcher
out="$(in_machine timeout 180 runuser -u researcher -- env HOME=/home/researcher \
  dbus-run-session -- xvfb-run -a -s '-screen 0 1280x800x24' /home/researcher/session.sh 2>&1 || true)"
if ! grep -q NOTIFIED <<<"$out"; then
  echo "$out" >&2
  for f in app.log send.log history.json dunst.log; do echo "--- $f" >&2; tail -n 30 "$machine/home/researcher/$f" >&2 || true; done
  fail "the installed desktop app did not show a notification for a failed upload"
fi
say "desktop package: installed with its dependencies, started from its menu entry, notified a failed upload"
say "passed"
}
main "$@"
