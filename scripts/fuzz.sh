#!/usr/bin/env bash
# fuzz.sh — builds Shoal's libFuzzer targets (fuzz/) with clang, AddressSanitizer
# and UndefinedBehaviorSanitizer in their own build directory, then runs each
# for a bounded time on a copy of its seed corpus (fuzz/corpus/<target>/).
# Exits non-zero when any target crashes; the crashing input is kept as
# <build>/fuzz-runs/<target>/crashes/crash-<sha1> (reproduce with
# `<build>/fuzz/<target> <that file>`).
#
# Usage: scripts/fuzz.sh [SECONDS]       seconds per target (default 20)
#        scripts/fuzz.sh --write-seeds   regenerate fuzz/corpus/ from valid inputs
# Environment: SHOAL_FUZZ_SECONDS (default for SECONDS), SHOAL_FUZZ_BUILD_DIR
# (default build-fuzz), SHOAL_FUZZ_TARGETS (space-separated subset),
# SHOAL_FUZZ_JOBS (targets run at once; default: cores, at most 2),
# SHOAL_FUZZ_BUILD_JOBS (compile jobs; default: cores, as memory allows).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${SHOAL_FUZZ_BUILD_DIR:-$root/build-fuzz}
write_seeds=0
if [ "${1:-}" = --write-seeds ]; then
  write_seeds=1
  shift
fi
seconds=${1:-${SHOAL_FUZZ_SECONDS:-20}}

# Target, the largest input it takes (big enough for a few tensors or
# chunks, small enough that libFuzzer explores structure rather than size),
# whether libFuzzer checks each input for leaks, and the RSS limit in MB.
# OpenSSL's and gRPC's caches and threads allocate on first use inside an
# input, so for the secure-aggregation and RPC targets nearly every input
# would trigger a full leak scan and halve the rate; the other targets check
# leaks. rpc's RSS creeps up with the variety of inputs (~1.6 GB after 5
# minutes; one input repeated stays flat, and per-input leak checks found
# nothing), so it gets more room for long runs.
# The JSON targets (model_dir, experiment_config, checkpoint) take 64 KiB, and
# expand "{{N*X}}" in their input (fuzz/fuzz_support.h, ExpandRepeats), so
# that 100,000 nested brackets or a megabyte-long string are in reach.
all_targets=(parameters:4096:1:2048 chunking:4096:1:2048 model_dir:65536:1:2048
             experiment_config:65536:1:2048 checkpoint:65536:1:2048
             secagg_server:2048:0:2048 secagg_client:2048:0:2048 rpc:4096:0:4096
             revocation_list:4096:1:2048 data_files:65536:1:2048)
if [ -n "${SHOAL_FUZZ_TARGETS:-}" ]; then
  selected=()
  for t in $SHOAL_FUZZ_TARGETS; do
    for entry in "${all_targets[@]}"; do
      if [ "${entry%%:*}" = "$t" ]; then selected+=("$entry"); fi
    done
  done
  all_targets=("${selected[@]}")
fi

for tool in clang clang++; do
  if ! command -v "$tool" >/dev/null; then
    echo "fuzz.sh: $tool is missing; scripts/install-deps.sh installs it (as root)" >&2
    exit 1
  fi
done

start=$(date +%s)
# -O1 keeps the sanitizers fast; no -DNDEBUG, so assertions stay on.
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE=-O1 -DSHOAL_FUZZ=ON -DSHOAL_BUILD_TESTS=OFF \
  -DSHOAL_BUILD_BENCHMARKS=OFF >/dev/null
jobs=$(nproc)
mem_gb=$(awk '/MemTotal/ {print int($2 / 1048576)}' /proc/meminfo)
if [ "$mem_gb" -lt $((jobs * 2)) ]; then jobs=$(( mem_gb / 2 > 0 ? mem_gb / 2 : 1 )); fi
jobs=${SHOAL_FUZZ_BUILD_JOBS:-$jobs}
targets=()
for entry in "${all_targets[@]}"; do targets+=("${entry%%:*}_fuzzer"); done
cmake --build "$build" -j "$jobs" --target "${targets[@]}"
echo "fuzz.sh: built ${#targets[@]} targets in $(( $(date +%s) - start )) s"

if [ "$write_seeds" = 1 ]; then
  for entry in "${all_targets[@]}"; do
    t=${entry%%:*}
    rm -f "$root/fuzz/corpus/$t"/seed-*  # regression-* inputs stay
    SHOAL_FUZZ_WRITE_SEEDS="$root/fuzz/corpus/$t" "$build/fuzz/${t}_fuzzer"
  done
  exit 0
fi

symbolizer=$(command -v llvm-symbolizer || command -v llvm-symbolizer-14 || true)
if [ -n "$symbolizer" ]; then export ASAN_SYMBOLIZER_PATH=$symbolizer; fi
# Abort on the first report so libFuzzer saves the input; leaks are checked
# per input by libFuzzer itself.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_odr_violation=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

runs=$build/fuzz-runs
# run_target NAME MAX_LEN LEAKS RSS_MB: one libFuzzer run on a fresh copy of
# the seeds.
run_target() {
  local t=$1 max_len=$2 leaks=$3 rss=$4 dir=$runs/$1
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/crashes"
  cp "$root/fuzz/corpus/$t/"* "$dir/corpus/"
  local rc=0
  (cd "$dir" && "$build/fuzz/${t}_fuzzer" corpus -max_total_time="$seconds" \
     -max_len="$max_len" -detect_leaks="$leaks" -rss_limit_mb="$rss" -timeout=30 \
     -print_final_stats=1 -print_funcs=0 \
     -artifact_prefix="$dir/crashes/" >"$dir/log" 2>&1) || rc=$?
  echo "$rc" >"$dir/rc"
}

max_jobs=$(( $(nproc) < 2 ? $(nproc) : 2 ))
max_jobs=${SHOAL_FUZZ_JOBS:-$max_jobs}
running=0
for entry in "${all_targets[@]}"; do
  if [ "$running" -ge "$max_jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
  IFS=: read -r name max_len leaks rss <<<"$entry"
  run_target "$name" "$max_len" "$leaks" "$rss" &
  running=$((running + 1))
done
wait

failed=0
printf '%-20s %12s %9s %8s %8s\n' target executions exec/s corpus crashes
for entry in "${all_targets[@]}"; do
  t=${entry%%:*}
  dir=$runs/$t
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
  corpus=$(find "$dir/corpus" -type f | wc -l)
  crashes=$(find "$dir/crashes" -type f | wc -l)
  rc=$(cat "$dir/rc")
  if [ "$rc" != 0 ] && [ "$crashes" = 0 ]; then crashes="rc=$rc"; fi
  printf '%-20s %12s %9s %8s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "$corpus" "$crashes"
  if [ "$rc" != 0 ]; then failed=1; fi
done
if [ "$failed" = 1 ]; then
  echo "fuzz.sh: a target crashed. Inputs are in $runs/<target>/crashes/, logs in" \
       "$runs/<target>/log; reproduce with $build/fuzz/<target>_fuzzer <input>" >&2
  for entry in "${all_targets[@]}"; do
    t=${entry%%:*}
    if [ "$(cat "$runs/$t/rc")" != 0 ]; then
      echo "---- $t ($runs/$t/log, last lines)" >&2
      tail -40 "$runs/$t/log" >&2
    fi
  done
  exit 1
fi
echo "fuzz.sh: no crashes; ${seconds} s per target, $(( $(date +%s) - start )) s in all"
