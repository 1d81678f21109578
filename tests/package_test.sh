#!/usr/bin/env bash
# PackageTest: installs the build into a temporary prefix and builds the
# example projects against it with find_package(Shoal), then runs them:
# edge_inference, edge_app (the embedded device runtime), custom_shoal (a strategy of our own, registered by name and
# served by a FederationServer from a config file, with real `shoal client`
# processes on loopback), embedded (a server and three clients in one
# process), tabular (federated beside central) and pytorch_model (a model
# scripted in PyTorch, trained by Shoal, scored back in PyTorch). Every
# example and a program that includes each public header alone use only
# "shoal/..." headers; only the internal headers those need are installed.
# Usage: package_test.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
build=$1 src=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$work/prefix" >/dev/null

# The public surface: include/shoal/*.h, each compiling on its own against
# the installed copy; no example includes anything else.
public=$(cd "$work/prefix/include/shoal" && ls *.h)
mkdir -p "$work/headers"
{
  echo 'cmake_minimum_required(VERSION 3.20)'
  echo 'project(ShoalHeaders LANGUAGES CXX)'
  echo 'set(CMAKE_CXX_STANDARD 17)'
  echo 'find_package(Shoal REQUIRED)'
  echo 'add_library(headers STATIC'
  for h in $public; do
    echo "#include \"shoal/$h\"" >"$work/headers/${h%.h}.cc"
    echo "  ${h%.h}.cc"
  done
  echo ')'
  echo 'target_link_libraries(headers PRIVATE Shoal::shoal_api)'
} >"$work/headers/CMakeLists.txt"
cmake -S "$work/headers" -B "$work/headers/build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/headers/build" >/dev/null || fail "a public header does not compile alone"
if grep -rhoE '#include "[^"]+"' "$src"/examples/*/*.cc "$src"/examples/*/*.h |
    grep -vE '"shoal/|"[a-z0-9_]+\.h"$' ; then
  fail "an example includes a header outside shoal/"
fi
echo "public headers: $(echo "$public" | wc -w); installed headers:" \
  "$(find "$work/prefix/include" -name '*.h' | wc -l)"

for example in edge_inference edge_app custom_strategy embedded tabular pytorch_model; do
  cmake -S "$src/examples/$example" -B "$work/$example" -G Ninja \
    -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
  cmake --build "$work/$example" >/dev/null
done

out=$("$work/edge_inference/edge_inference" --describe 2nn-1x28x28-10)
[[ $out == *"2nn-1x28x28-10: 199210 parameters"* ]] || fail "edge_inference said: $out"

custom=$work/custom_strategy/custom_shoal
"$custom" strategies | grep -qx scaled_fedavg || fail "scaled_fedavg is not registered"
# l2_fedavg: a strategy with a client half, both built against the package.
"$custom" strategies | grep -qx l2_fedavg || fail "l2_fedavg is not registered"

# A bad parameter is refused before anything starts, naming the key.
py=/usr/bin/python3
$py - "$src/examples/custom_strategy/config.json" "$work/bad.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["strategy"]["bogus"] = 1
json.dump(c, open(sys.argv[2], "w"))
PY
set +e
err=$("$custom" server --config "$work/bad.json" --insecure-plaintext 2>&1)
code=$?
set -e
[ "$code" -eq 2 ] || fail "bad config exited $code: $err"
[[ $err == *"strategy.bogus"* ]] || fail "error does not name the key: $err"

# A real run with the custom strategy: custom server, two standard clients.
port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# write_config OUT OUTPUT_DIR [JSON]: the example's config on this test's
# port, with the top-level keys of JSON replaced.
write_config() {
  local extra=${3:-}
  [ -n "$extra" ] || extra='{}'
  $py - "$src/examples/custom_strategy/config.json" "$1" "$port" "$2" "$extra" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update(json.loads(sys.argv[5]))
c["server"]["address"] = "127.0.0.1:" + sys.argv[3]
c["server"]["output_dir"] = sys.argv[4]
json.dump(c, open(sys.argv[2], "w"))
PY
}
# start_client BINARY CONFIG PARTITION NAME: a device in the background,
# with state in $work/NAME and its log in $work/NAME.log.
start_client() {
  timeout 300 "$1" client --config "$2" --partition "$3" --state-dir "$work/$4" \
    --pki-dir "$work/pki/clients/client-$3" >"$work/$4.log" 2>&1 &
}
write_config "$work/run.json" "$work/run"
# The deployment's PKI: mutual TLS, as every run is unless told otherwise.
"$work/prefix/bin/shoal" certs init --dir "$work/pki" >/dev/null
"$work/prefix/bin/shoal" certs client --dir "$work/pki" --id client-0 --id client-1 \
  --id client-2 >/dev/null
for i in 0 1; do start_client "$work/prefix/bin/shoal" "$work/run.json" $i client-$i; done
timeout 300 "$custom" server --config "$work/run.json" --pki-dir "$work/pki/server" \
  >"$work/server.log" 2>&1 ||
  { cat "$work/server.log"; fail "custom server failed"; }
wait
$py - "$work/run/metrics.json" <<'PY' || { cat "$work/server.log"; fail "run did not train"; }
import json, sys
h = json.load(open(sys.argv[1]))
assert h["strategy"] == "scaled_fedavg", h["strategy"]
rounds = h["rounds"]
assert len(rounds) == 3 and rounds[2]["answered"] == 2, rounds
assert rounds[2]["test_accuracy"] > rounds[0]["test_accuracy"] + 0.3, rounds
print("scaled_fedavg: test accuracy %.3f -> %.3f" % (rounds[0]["test_accuracy"], rounds[2]["test_accuracy"]))
PY
# l2_fedavg, a strategy with a client half: two `custom_shoal client`s
# (which register the half) train for it; a standard `shoal client`, which
# does not know it, must refuse the round naming the algorithm instead of
# silently training without it.
write_config "$work/l2.json" "$work/l2run" '{"strategy": {"name": "l2_fedavg", "lambda": 0.01},
  "sampling": {"min_fit_clients": 2, "min_available_clients": 3, "fraction_fit": 1.0}}'
for i in 0 1; do start_client "$custom" "$work/l2.json" $i l2-client-$i; done
start_client "$work/prefix/bin/shoal" "$work/l2.json" 2 l2-client-2
timeout 300 "$custom" server --config "$work/l2.json" --pki-dir "$work/pki/server" \
  >"$work/l2-server.log" 2>&1 ||
  { cat "$work/l2-server.log"; fail "custom server failed for l2_fedavg"; }
wait
$py - "$work/l2run/metrics.json" <<'PY' || { cat "$work/l2-server.log"; fail "l2_fedavg did not train"; }
import json, sys
h = json.load(open(sys.argv[1]))
assert h["strategy"] == "l2_fedavg", h["strategy"]
rounds = h["rounds"]
assert len(rounds) == 3, rounds
for r in rounds[1:]:
    assert r["answered"] == 2 and r["failed"] == 1, r
assert rounds[2]["test_accuracy"] > rounds[0]["test_accuracy"] + 0.3, rounds
print("l2_fedavg: test accuracy %.3f -> %.3f, the standard client refused each round" %
      (rounds[0]["test_accuracy"], rounds[2]["test_accuracy"]))
PY
grep -q "l2_fedavg" "$work/l2-client-2.log" ||
  { cat "$work/l2-client-2.log"; fail "the standard client did not name l2_fedavg"; }

# edge_app: shoal::Device embedded in an application, with its local
# endpoint, and the endpoint's client in another process. No server is up
# and nothing is served yet: the device starts anyway (it serves from disk)
# and the client hears that no version is served.
timeout 120 "$work/edge_app/edge_app" run --config "$work/run.json" --partition 0 \
  --pki-dir "$work/pki/clients/client-0" --state-dir "$work/edge-state" \
  --endpoint "unix:$work/edge.sock" --server 127.0.0.1:1 --seconds 60 >"$work/edge_app.log" 2>&1 &
edge=$!
for _ in $(seq 600); do grep -q "serving version 0 on" "$work/edge_app.log" && break; sleep 0.1; done
set +e
out=$("$work/edge_app/edge_app" ask "unix:$work/edge.sock" \
        /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz 2>&1)
code=$?
set -e
kill -TERM $edge
wait $edge || { cat "$work/edge_app.log"; fail "edge_app did not stop cleanly"; }
[ "$code" -eq 1 ] && [[ $out == *"no serving model yet"* ]] ||
  { cat "$work/edge_app.log"; fail "edge_app ask said ($code): $out"; }
grep -q "stopped; serving version 0" "$work/edge_app.log" || fail "edge_app did not stop"
echo "edge_app: the embedded device started without a server; ask: $out"

# A server and three clients embedded in one application, 2 rounds.
out=$(timeout 300 "$work/embedded/embedded_federation" "$work/embedded-run" 2>"$work/embedded.log") ||
  { tail -20 "$work/embedded.log"; fail "embedded_federation failed"; }
echo "$out"
[[ $out == *"round 2: 3 client(s) answered"* ]] || fail "embedded did not run 2 rounds: $out"

# Tables from python3-sklearn, federated beside central, through the public
# API: the federated models must come near the central ones.
out=$(timeout 300 "$work/tabular/tabular" "$work/tabular-run" "$src/examples/tabular/breast_cancer.json" \
        "$src/examples/tabular/diabetes.json" 2>"$work/tabular.log") ||
  { tail -20 "$work/tabular.log"; fail "tabular failed"; }
echo "$out" | grep -v '\] \[info\] '
$py - "$out" <<'PY'
import sys
lines = sys.argv[1].splitlines()
table = lines[max(i for i, l in enumerate(lines) if l.split()[:2] == ["config", "metric"]) + 1:]
rows = {tuple(l.split()[:2]): [float(v) for v in l.split()[2:]] for l in table}
fed, cen = rows[("breast-cancer-binary", "accuracy")]
assert fed > 0.9 and cen > 0.9, rows
fed, cen = rows[("diabetes-regression", "r2")]
assert fed > 0.3 and cen > 0.3, rows
PY

# A model and data from PyTorch (python3-torch), trained by the library and
# exported back: PyTorch must score the export exactly as Shoal did.
out=$(timeout 300 "$src/examples/pytorch_model/run.sh" "$work/pytorch_model/pytorch_model" \
        "$work/pytorch-run" 2>&1) ||
  { echo "$out" | tail -20; fail "pytorch_model failed"; }
echo "$out"
[[ $out == *"match: Shoal and PyTorch agree on"* ]] || fail "pytorch_model did not compare: $out"

echo "PASSED: find_package(Shoal) consumers built and ran"
rm -rf "$work"
