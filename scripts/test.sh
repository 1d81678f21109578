#!/usr/bin/env bash
# test.sh — README command 2: installs, builds, and runs the whole test suite
# (unit and integration tests, GoogleTest through CTest), then fuzzes every
# parser of outside input for a bounded time (scripts/fuzz.sh; its own build
# directory, build-fuzz).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${SHOAL_BUILD_DIR:-$root/build}
"$root/scripts/build.sh"
cd "$build"
# Integration tests start several processes each: run two tests at a time.
ctest --output-on-failure -j 2 --timeout 900
# 15 s per target keeps a cold build-fuzz plus the runs near 7 minutes on 2
# cores (docs/security-fuzzing.md, "CI budget").
"$root/scripts/fuzz.sh" "${SHOAL_FUZZ_SECONDS:-15}"
