#!/usr/bin/env bash
# test.sh — README command 2: installs, builds, and runs the whole test suite
# (unit and integration tests, GoogleTest through CTest).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${SHOAL_BUILD_DIR:-$root/build}
"$root/scripts/build.sh"
cd "$build"
# Integration tests start several processes each: run two tests at a time.
ctest --output-on-failure -j 2 --timeout 900
