#!/usr/bin/env bash
# Builds serin's Debian package and checks it.
#
#   scripts/package.sh                        # release build -> target/debian/serin_VERSION_ARCH.deb
#   scripts/package.sh --profile dev --no-build   # packs the binary the tests built (CI)
#
# Builds the binary (unless --no-build), generates the man pages and shell
# completions from it (packaging/out, not committed), packs them with the
# hardened systemd unit (packaging/systemd/serin.service) with cargo-deb,
# then checks the package: `dpkg-deb --info/--contents` (the files it must
# hold), `lintian` when installed, `systemd-analyze verify` on the unit when
# systemd is there.
#
# `scripts/test.sh` runs it with `--profile dev --no-build`: the package is
# checked on every CI run without paying for a release build; the release
# package differs only in the binary's optimisation.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

PROFILE=release
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) PROFILE=${2:?--profile needs a cargo profile}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) echo "usage: scripts/package.sh [--profile PROFILE] [--no-build]" >&2; exit 2 ;;
    esac
done
# Cargo's directory for a profile: dev builds go to target/debug.
PROFILE_DIR=$PROFILE
[ "$PROFILE" = dev ] && PROFILE_DIR=debug

if ! cargo deb --version >/dev/null 2>&1; then
    echo ">>> installing cargo-deb"
    cargo install cargo-deb --locked --version '^3'
fi

TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN="$TARGET_DIR/$PROFILE_DIR/serin"
if [ "$BUILD" = 1 ]; then
    echo ">>> building serin ($PROFILE)"
    cargo build --profile "$PROFILE" --locked -p serin
elif [ ! -x "$BIN" ]; then
    echo "no $BIN: build it first (cargo build -p serin), or drop --no-build" >&2
    exit 1
fi

echo ">>> man pages and completions"
OUT="$ROOT/packaging/out"
rm -rf "$OUT"
mkdir -p "$OUT/man" "$OUT/completions"
"$BIN" man --dir "$OUT/man"
gzip -9n "$OUT"/man/*.1
"$BIN" completions bash >"$OUT/completions/serin.bash"
"$BIN" completions zsh >"$OUT/completions/_serin"
"$BIN" completions fish >"$OUT/completions/serin.fish"

echo ">>> cargo deb"
# The dev profile's binary carries debug information: cargo-deb strips it
# as it does the release binary's.
FAST=()
[ "$PROFILE" = release ] || FAST=(--fast)
DEB=$(CARGO_TARGET_DIR="$TARGET_DIR" cargo deb -p serin --no-build --profile "$PROFILE" "${FAST[@]}" | tail -n 1)
echo "$DEB"

echo ">>> dpkg-deb --info"
dpkg-deb --info "$DEB"
echo ">>> dpkg-deb --contents"
CONTENTS=$(dpkg-deb --contents "$DEB")
echo "$CONTENTS"
missing=0
for path in ./usr/bin/serin \
    ./usr/share/man/man1/serin.1.gz ./usr/share/man/man1/serin-serve.1.gz \
    ./usr/share/bash-completion/completions/serin \
    ./usr/share/zsh/vendor-completions/_serin \
    ./usr/share/fish/vendor_completions.d/serin.fish \
    ./usr/share/doc/serin/examples/serin.yaml \
    ./usr/lib/systemd/system/serin.service; do
    if ! grep -q " $path\$" <<<"$CONTENTS"; then
        echo "missing from the package: $path" >&2
        missing=1
    fi
done
[ "$missing" = 0 ] || exit 1

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
dpkg-deb -x "$DEB" "$WORK"
"$WORK/usr/bin/serin" --version
# The example names certificate files this machine lacks: validate must
# get as far as refusing them (it exits non-zero, hence no pipe).
VALIDATE=$("$WORK/usr/bin/serin" validate "$WORK/usr/share/doc/serin/examples/serin.yaml" 2>&1 || true)
grep -q "certFile" <<<"$VALIDATE" \
    || { echo "the example should name its (absent) certificate files: $VALIDATE" >&2; exit 1; }

if command -v lintian >/dev/null 2>&1; then
    echo ">>> lintian"
    # Warnings are shown; errors fail the check.
    lintian --fail-on error "$DEB"
else
    echo ">>> lintian not installed; skipped"
fi

if command -v systemd-analyze >/dev/null 2>&1; then
    echo ">>> systemd-analyze verify"
    # The unit names /usr/bin/serin: verify against the packaged binary.
    UNIT="$WORK/usr/lib/systemd/system/serin.service"
    sed "s#/usr/bin/serin#$WORK/usr/bin/serin#" "$UNIT" >"$WORK/serin.service"
    # Documentation= names the packaged man pages: let man find them there.
    MANPATH="$WORK/usr/share/man" systemd-analyze verify "$WORK/serin.service"
    echo ">>> systemd-analyze security (exposure; lower is better)"
    systemd-analyze security --offline=true "$WORK/serin.service" | tail -n 1 || true
else
    echo ">>> systemd-analyze not installed; skipped"
fi
echo ">>> ok: $DEB"
