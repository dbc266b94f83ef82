#!/usr/bin/env bash
# Installs what cpwatch needs on Debian/Ubuntu, idempotently. Sourced by run.sh and
# test.sh with the package groups they need:
#   base     a C compiler (SQLite is compiled in), pkg-config, curl, and Rust (rustup)
#            when no toolchain is present
#   desktop  the libraries the Tauri desktop app builds against
#   e2e      what the end-to-end tests drive: Xvfb, a D-Bus session, the dunst
#            notification daemon, a StatusNotifierWatcher, ImageMagick for
#            screenshots, Chromium and its WebDriver, mount, mkfs.ext4, e2fsck
#            and chattr for the storage-fault tests, nginx and openssl for the
#            reachability tests' TLS proxy (the tunnel's stand-in), and python3
#            for the suites and scripts that run it
#   lint     rustfmt and clippy (rustup components), for the checks scripts/test.sh runs
#   powercut fuse3 (fusermount3), to mount the file system that forgets in the
#            power-cut tests
#   package  what scripts/package.sh and its test need: dpkg-dev (cargo-deb's
#            dependency scan), lintian, desktop-file-utils, systemd (systemd-analyze),
#            debootstrap and systemd-container (systemd-nspawn) for the throwaway
#            Debian 12 machine, xz-utils, python3
set -euo pipefail

cpwatch_packages() {
  local group
  for group in "$@"; do
    case "$group" in
      base) echo build-essential pkg-config ca-certificates curl ;;
      desktop) echo libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev libssl-dev ;;
      lint) ;;
      powercut) echo fuse3 ;;
      package) echo dpkg-dev lintian desktop-file-utils systemd systemd-container debootstrap xz-utils python3 ;;
      e2e) echo xvfb xauth dbus dbus-x11 dunst libnotify-bin haskell-status-notifier-item-utils imagemagick chromium chromium-driver mount e2fsprogs nginx openssl python3 ;;
      *) echo "setup: unknown package group $group" >&2; return 1 ;;
    esac
  done
}

cpwatch_setup() {
  local missing=() pkg sudo_cmd=""
  for pkg in $(cpwatch_packages "$@"); do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    echo "setup: installing ${missing[*]}"
    # Wait for another apt run (an unattended upgrade, a parallel setup) instead of failing.
    $sudo_cmd apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
      export PATH="$HOME/.cargo/bin:$PATH"
    else
      echo "setup: installing the Rust toolchain (rustup)"
      curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
      export PATH="$HOME/.cargo/bin:$PATH"
    fi
  fi
  if [[ " $* " == *" lint "* ]] && ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
    if ! command -v rustup >/dev/null 2>&1; then
      echo "setup: cargo fmt and cargo clippy are missing, and there is no rustup to add them: install rustfmt and clippy for this toolchain" >&2
      return 1
    fi
    echo "setup: installing rustfmt and clippy"
    rustup component add rustfmt clippy
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  # Run directly: `bash scripts/setup.sh base desktop e2e`
  cpwatch_setup "${@:-base}"
fi
