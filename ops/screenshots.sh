#!/usr/bin/env bash
# Screenshots of the main pages at 1366x900, 1920x1080 and 390x844 into docs/screenshots/:
# builds the binary, then ops/screenshots.py starts `kollegium demo` in a temporary data
# directory and drives headless Chromium through chromedriver. Re-run when the UI changes.
# Needs chromium and chromium-driver (as the browser tests); optipng shrinks the PNGs if present.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bin kollegium
exec python3 ops/screenshots.py --binary target/debug/kollegium --out docs/screenshots "$@"
