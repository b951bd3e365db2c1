#!/usr/bin/env bash
# The whole test suite, as on a fresh machine: installs missing system packages, then
# runs formatting, the tests (unit + end-to-end against real services) and clippy.
# Usage: ops/test.sh            (from anywhere inside the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

# System packages the end-to-end tests start for real. Each entry: "command package".
# clamd scans uploads (the tests start their own instance with a signature database made
# by sigtool from the EICAR test file; Debian's clamd service and freshclam are not used).
PREREQS=(
  "python3 python3"
  "chromium chromium"
  "chromedriver chromium-driver"
  "clamd clamav-daemon"
  "sigtool clamav"
)

missing=()
# clamd lives in /usr/sbin, which a non-root PATH may lack.
has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
for entry in "${PREREQS[@]}"; do
  cmd=${entry%% *}; pkg=${entry#* }
  has "$cmd" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing missing packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "error: missing packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
for entry in "${PREREQS[@]}"; do
  cmd=${entry%% *}
  has "$cmd" || { echo "error: $cmd still missing after install" >&2; exit 1; }
done

# Python modules the tests import (the SMTP server is aiosmtpd). The tests look for a
# python3 that imports it (PATH first, then Debian's /usr/bin/python3).
has_aiosmtpd() {
  python3 -c 'import aiosmtpd' >/dev/null 2>&1 || /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1
}
if ! has_aiosmtpd; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing python3-aiosmtpd (SMTP server for the mail tests)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-aiosmtpd
  fi
  if ! has_aiosmtpd; then
    echo "error: Python's aiosmtpd is missing; the mail tests need a real SMTP server" >&2
    echo "install it with: sudo apt-get install -y python3-aiosmtpd   (or: pip install aiosmtpd)" >&2
    exit 1
  fi
fi

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo test --workspace"
cargo test --workspace --all-targets

say "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

say "all checks passed"
