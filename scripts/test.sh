#!/usr/bin/env bash
# Runs serin's whole test suite on a fresh Debian machine: installs what the
# tests talk to (real servers on loopback, no mocks), then format, lint, test.
#
#   scripts/test.sh            # everything
#   SERIN_SKIP_INSTALL=1 scripts/test.sh   # when the packages are known to be there
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the integration tests start as real processes.
packages=(curl prometheus hey chromium openssl apache2-utils procps python3 python3-venv haproxy nginx-light)
# The Debian package's checks (scripts/package.sh): lintian, and
# systemd-analyze (package systemd) to verify the unit.
packages+=(lintian systemd)
need_install=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || need_install+=("$p")
done
if [ "${SERIN_SKIP_INSTALL:-0}" != 1 ] && [ ${#need_install[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_install[@]}"
fi

# moto_server (PyPI `moto[server]`): the AWS APIs the ALB router and the
# CloudWatch metrics are tested against, in a virtual environment reused
# when present.
venv="${SERIN_VENV:-$HOME/.cache/serin/venv}"
if [ ! -x "$venv/bin/moto_server" ]; then
  if [ "${SERIN_SKIP_INSTALL:-0}" != 1 ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'moto[server]'
  fi
fi
export SERIN_MOTO_SERVER="$venv/bin/moto_server"

# cargo-deb builds the .deb checked at the end; installed once into
# ~/.cargo/bin, so a warm run skips it.
if ! cargo deb --version >/dev/null 2>&1 && [ "${SERIN_SKIP_INSTALL:-0}" != 1 ]; then
  cargo install cargo-deb --locked --version '^3'
fi

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi

echo "== Debian package"
# Packs the binary the tests just built (no release build): contents,
# lintian, systemd-analyze verify of the unit.
cargo build -p serin --locked
scripts/package.sh --profile dev --no-build
