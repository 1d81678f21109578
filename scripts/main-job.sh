#!/usr/bin/env bash
# main-job.sh — README command 1: installs, builds, and runs the main job, a
# real federated training run: one server and five client processes on
# 127.0.0.1 train the FedAvg CNN on Fashion-MNIST, non-IID (Dirichlet 0.5).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" shoal
cd "$root"
exec examples/fashion_mnist/run.sh "${SHOAL_BUILD_DIR:-$root/build}/cli/shoal" \
  examples/fashion_mnist/config.json
