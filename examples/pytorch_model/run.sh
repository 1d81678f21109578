#!/usr/bin/env bash
# pytorch_model: a model defined and scripted in PyTorch, data saved with
# torch.save, trained federatedly by Shoal (8 simulated clients, non-IID),
# exported back, and evaluated in PyTorch with the accuracy Shoal reported.
#
# Usage: examples/pytorch_model/run.sh [SHOAL_BINARY] [WORK_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shoal=$(realpath "${1:-$here/../../build/cli/shoal}")
work=${2:-$(mktemp -d)}
py=/usr/bin/python3  # Debian's python3-torch
mkdir -p "$work"
cp "$here/config.json" "$work/"
cd "$work"
rm -rf run  # a fresh run each time, never a resumed one

$py "$here/prepare.py" .
"$shoal" sim --config config.json 2>&1 | tee sim.log | grep -E "round [0-9]+/[0-9]+ \|" | cut -c1-120
"$shoal" export --model-dir run/models --output trained.pt --insecure-unverified
shoal_acc=$($py -c 'import json; print(json.load(open("run/metrics.json"))["rounds"][-1]["test_accuracy"])')
echo "shoal accuracy: $shoal_acc"
$py "$here/evaluate.py" trained.pt test.pt | tee python.log
$py - "$shoal_acc" <<'PY'
import re, sys
shoal = float(sys.argv[1])
python = float(re.search(r"python accuracy: ([0-9.]+)", open("python.log").read()).group(1))
if abs(shoal - python) > 1e-6:
    sys.exit(f"MISMATCH: Shoal reported {shoal:.6f}, PyTorch measures {python:.6f}")
print(f"match: Shoal and PyTorch agree on {python:.6f}")
PY
