#!/usr/bin/env bash
# tabular: Shoal on tables from Debian's python3-sklearn, each trained
# federatedly (4 simulated clients with skewed data) and centrally (the same
# model, rounds and epochs on all the training data at once), evaluated on
# the same held-out 20 %:
#   breast_cancer.json  binary classification, 569 x 30, label skew
#                       (Dirichlet 0.5), MLP 30-32-1, BCE; metric accuracy
#   diabetes.json       regression, 442 x 10, quantity skew, MLP 10-32-1,
#                       MSE; metrics MAE, RMSE, R²
#
# Usage: examples/tabular/run.sh [SHOAL_BINARY] [WORK_DIR]
# Prints one line per run and a final table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shoal=$(realpath "${1:-$here/../../build/cli/shoal}")
work=${2:-$(mktemp -d)}
py=/usr/bin/python3
mkdir -p "$work"
cd "$work"
rm -rf breast_cancer-* diabetes-*  # a fresh run each time, never a resumed one

for name in breast_cancer diabetes; do
  # The central twin: one client holding all the training data.
  $py - "$here/$name.json" "$name" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
name = sys.argv[2]
c["server"]["output_dir"] = f"{name}-federated"
json.dump(c, open(f"{name}-federated.json", "w"), indent=1)
c["name"] += "-central"
c["server"]["output_dir"] = f"{name}-central"
c["data"].update({"partitioner": "iid", "num_partitions": 1})
c["sampling"].update({"min_fit_clients": 1, "min_available_clients": 1})
json.dump(c, open(f"{name}-central.json", "w"), indent=1)
PY
  for mode in federated central; do
    "$shoal" sim --config "$name-$mode.json" >"$name-$mode.log" 2>&1 ||
      { cat "$name-$mode.log"; exit 1; }
  done
done

$py - <<'PY'
import json
def final(run):
    r = json.load(open(f"{run}/metrics.json"))["rounds"][-1]
    return r["server_eval"]["metrics"], r["server_eval"]["loss"]
print(f"{'data':<14} {'metric':<9} {'federated':>10} {'central':>10}")
for name, metrics in (("breast_cancer", ["accuracy"]), ("diabetes", ["mae", "rmse", "r2"])):
    fed, _ = final(f"{name}-federated")
    cen, _ = final(f"{name}-central")
    for m in metrics:
        print(f"{name:<14} {m:<9} {fed[m]:>10.4f} {cen[m]:>10.4f}")
# Federated training must come near the central model's quality.
fed_bc, _ = final("breast_cancer-federated")
fed_db, _ = final("diabetes-federated")
assert fed_bc["accuracy"] > 0.9, f"breast cancer accuracy {fed_bc['accuracy']}"
assert fed_db["r2"] > 0.3, f"diabetes R² {fed_db['r2']}"
PY
