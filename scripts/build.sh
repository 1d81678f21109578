#!/usr/bin/env bash
# build.sh — installs what is missing (as root), then configures and builds
# Shoal in Release with Ninja and ccache.
#
# Usage: scripts/build.sh [TARGET...]     (default: everything)
# Environment: SHOAL_BUILD_DIR (default: build), SHOAL_SKIP_INSTALL=1 to skip
# the package check.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${SHOAL_BUILD_DIR:-$root/build}

if [ "${SHOAL_SKIP_INSTALL:-0}" != 1 ]; then
  "$root/scripts/install-deps.sh"
fi

jobs=$(nproc)
# Each LibTorch translation unit needs ~1.5 GB to compile; keep headroom.
mem_gb=$(awk '/MemTotal/ {print int($2 / 1048576)}' /proc/meminfo)
if [ "$mem_gb" -lt $((jobs * 2)) ]; then jobs=$(( mem_gb / 2 > 0 ? mem_gb / 2 : 1 )); fi

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
start=$(date +%s)
if [ "$#" -gt 0 ]; then
  cmake --build "$build" -j "$jobs" --target "$@"
else
  cmake --build "$build" -j "$jobs"
fi
echo "build.sh: built in $(( $(date +%s) - start )) s (build dir: $build)"
