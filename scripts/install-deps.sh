#!/usr/bin/env bash
# install-deps.sh — installs every Debian 12 package Shoal's build, tests,
# benchmarks and main job use. Idempotent and non-interactive; run as root.
#
# Why each non-obvious package is here:
#   libopenblas0-pthread  LibTorch on Debian's reference BLAS trains ~20x slower.
#   dataset-fashion-mnist the real data the main job and integration tests use.
#   python3-torch         the tests script a small TorchScript model with it.
#   python3-numpy         computes the strategies' golden test values.
#   nlohmann-json3-dev    JSON for config files and metrics history.
#   libcli11-dev          subcommand-aware CLI parsing for the `shoal` tool.
#   libspdlog-dev         leveled, thread-safe logging.
#   openssl               the tests generate TLS certificates with it.
#   clang                 libFuzzer exists only in clang; scripts/fuzz.sh builds
#                         the fuzz targets with it (Debian 12: clang 14).
#   libclang-rt-14-dev    clang's runtimes: libFuzzer, ASan and UBSan.
#   llvm-14               llvm-symbolizer, so sanitizer reports name files and
#                         lines (clang only recommends it).
#   libpng-dev            PNG decoding for the image-folder reader.
#   libjpeg62-turbo-dev   JPEG decoding for the image-folder reader (the classic
#                         libjpeg API; CMake's FindJPEG finds it).
#   python3-sklearn       real CSV data (breast cancer, diabetes) the CSV reader's
#                         tests read from its datasets/data folder.
#   prometheus-cpp-dev    Prometheus's C++ client: the metrics and their text format.
#   libcpp-httplib-dev    the small HTTP server of the metrics endpoint.
#   prometheus            a real Prometheus server the telemetry test scrapes with.
#   libjs-chart.js        Chart.js, which the dashboard serves to draw its charts
#                         (from the system, never a CDN).
#   chromium              headless Chromium, which the dashboard test renders with.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-pthread python3-torch python3-numpy
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libssl-dev openssl
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev
  libpng-dev libjpeg62-turbo-dev
  dataset-fashion-mnist python3-sklearn
  prometheus-cpp-dev libcpp-httplib-dev prometheus libjs-chart.js chromium
  clang libclang-rt-14-dev llvm-14
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps.sh: all ${#packages[@]} packages already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: missing ${missing[*]}; run as root to install them (it calls apt-get)" >&2
  exit 1
fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
