#!/usr/bin/env bash
# pytorch_model: a model defined and scripted in PyTorch, data saved with
# torch.save, trained federatedly by Shoal (8 simulated clients, non-IID),
# exported back, and evaluated in PyTorch with the accuracy Shoal reported.
# PROGRAM is this folder's find_package(Shoal) project, built (see
# CMakeLists.txt); exits non-zero when a step fails or the accuracies differ.
#
# Usage: examples/pytorch_model/run.sh PROGRAM [WORK_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
program=$(realpath "${1:?usage: run.sh PROGRAM [WORK_DIR]}")
work=${2:-$(mktemp -d)}
py=/usr/bin/python3  # Debian's python3-torch
mkdir -p "$work"
rm -rf "$work/run"  # a fresh run each time

$py "$here/prepare.py" "$work"
if ! "$program" "$here/config.json" "$work" >"$work/shoal.log" 2>&1; then
  tail -20 "$work/shoal.log"
  exit 1
fi
grep -E "round [0-9]+/[0-9]+ \|" "$work/shoal.log" | cut -c1-120
grep -E "^(exported|shoal accuracy)" "$work/shoal.log"
shoal_acc=$(sed -n 's/^shoal accuracy: //p' "$work/shoal.log")
[ -n "$shoal_acc" ] || { echo "$program printed no accuracy" >&2; exit 1; }
$py "$here/evaluate.py" "$work/trained.pt" "$work/test.pt" "$shoal_acc"
