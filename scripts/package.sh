#!/usr/bin/env bash
# Builds cpwatch's release artefacts into dist/, in release mode, from this checkout:
#   cpwatch-desktop_<version>_amd64.deb   the tray app and the command line (Tauri's bundler)
#   cpwatch_<version>_amd64.deb           the server: the command line, the systemd service
#                                         and a user unit (cargo-deb); no GTK
#   cpwatch-<version>-x86_64-linux.tar.gz the command line alone, for other distributions
#   SHA256SUMS                            over the three
# The bundlers (tauri-cli, cargo-deb) are installed at pinned versions into
# $CPWATCH_TOOLS (default ~/.cache/cpwatch/tools) on first use.
# Options (environment): CPWATCH_PACKAGE_ONLY=server builds the server package alone;
# CPWATCH_DEB_VERSION overrides the server package's version (the upgrade test's older one).
# (In a function, so that bash reads the whole script before running any of it: an
# edit during a long build cannot break the run.)
main() {
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
source scripts/setup.sh
only="${CPWATCH_PACKAGE_ONLY:-all}"
if [ "$only" = server ]; then cpwatch_setup base package; else cpwatch_setup base desktop package; fi

TAURI_CLI_VERSION=2.11.5
CARGO_DEB_VERSION=3.8.0
tools="${CPWATCH_TOOLS:-$HOME/.cache/cpwatch/tools}"
export PATH="$tools/bin:$PATH"
install_tool() { # crate version binary
  if ! "$tools/bin/$3" --version 2>/dev/null | grep -qF "$2"; then
    echo "package: installing $1 $2 into $tools"
    cargo install --locked --quiet --root "$tools" "$1" --version "=$2"
  fi
}
install_tool cargo-deb "$CARGO_DEB_VERSION" cargo-deb
[ "$only" = server ] || install_tool tauri-cli "$TAURI_CLI_VERSION" cargo-tauri

target="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$target"
target="$(cd "$target" && pwd)"
export CARGO_TARGET_DIR="$target"
# The same commit in both binaries, also when built from a copy without .git.
CPWATCH_COMMIT="${CPWATCH_COMMIT:-$(git rev-parse --short=9 HEAD 2>/dev/null || echo unknown)}"
export CPWATCH_COMMIT
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
dist="$root/dist"
stage="$target/package-stage"
rm -rf "$stage"
mkdir -p "$dist" "$stage"

echo "package: cpwatch $version (commit $CPWATCH_COMMIT), release build"
cargo build --release --locked --bin cpwatch

# The server package.
deb_version="${CPWATCH_DEB_VERSION:-$version}"
rm -f "$dist"/cpwatch_*_amd64.deb
cargo deb --no-build --locked --deb-version "$deb_version" --output "$dist/cpwatch_${deb_version}_amd64.deb"

if [ "$only" != server ]; then
  # The desktop package: Tauri's bundler, with the package-only settings layered over
  # src-tauri/tauri.conf.json (the app's own settings stay those of a source build).
  { echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: cpwatch"
    echo
    echo "Files: *"
    echo "Copyright: 2026, the cpwatch developers"
    echo "License: MIT"
    sed -e 's/^$/./' -e 's/^/ /' LICENSE
  } >"$stage/copyright"
  # The bundler lists WebKitGTK and GTK (no appindicator library: the tray speaks D-Bus
  # itself); the C library the two binaries need comes from dpkg-shlibdeps on the command
  # line the package ships (the app's other needs come in with WebKitGTK and GTK).
  mkdir -p "$stage/shlibdeps/debian"
  printf 'Source: cpwatch\n\nPackage: cpwatch-desktop\nArchitecture: any\n' >"$stage/shlibdeps/debian/control"
  shlibs="$(cd "$stage/shlibdeps" && dpkg-shlibdeps -O --warnings=0 "$target/release/cpwatch")"
  shlibs="${shlibs#shlibs:Depends=}"
  depends_json="$(python3 -c 'import json,sys; print(json.dumps([d.strip() for d in sys.argv[1].split(",") if d.strip()]))' "$shlibs")"
  sed -e "s|@ROOT@|$root|g" -e "s|@TARGET@|$target|g" -e "s|@STAGE@|$stage|g" -e "s|@DEPENDS@|$depends_json|" \
    packaging/tauri.deb.json.in >"$stage/tauri.deb.json"
  rm -f "$dist"/cpwatch-desktop_*_amd64.deb "$target"/release/bundle/deb/*.deb
  (cd src-tauri && cargo tauri build --ci --bundles deb --config "$stage/tauri.deb.json" -- --locked)
  cp "$target"/release/bundle/deb/cpwatch-desktop_"$version"_amd64.deb "$dist/"

  # The command line for other distributions.
  name="cpwatch-$version-x86_64-linux"
  mkdir -p "$stage/$name/systemd"
  # (Already stripped: the release profile strips.)
  install -m 0755 "$target/release/cpwatch" "$stage/$name/cpwatch"
  install -m 0644 LICENSE README.md "$stage/$name/"
  install -m 0644 packaging/config.toml "$stage/$name/config.example.toml"
  install -m 0644 packaging/systemd/cpwatch.service "$stage/$name/systemd/cpwatch.service"
  install -m 0644 packaging/systemd/cpwatch.sysusers "$stage/$name/systemd/cpwatch.sysusers.conf"
  install -m 0644 packaging/systemd/user/cpwatch.service "$stage/$name/systemd/cpwatch.user.service"
  # Reproducible: fixed owner, order and times (the commit's).
  mtime="$(git log -1 --format=%cI 2>/dev/null || date -u +%FT%TZ)"
  tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="$mtime" -czf "$dist/$name.tar.gz" "$name"
fi

cd "$dist"
shopt -s nullglob
built=(*.deb *.tar.gz)
sha256sum -- "${built[@]}" >SHA256SUMS
echo "package: built in $dist:"
ls -l -- "${built[@]}"
}
main "$@"
