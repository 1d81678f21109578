#!/usr/bin/env bash
# PackageTest: installs the build into a temporary prefix and builds the two
# example projects against it with find_package(Shoal), then runs them:
# edge_inference, and custom_shoal (a strategy of our own, registered by name
# and run from a config file with real `shoal client` processes on loopback).
# Usage: package_test.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
build=$1 src=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$work/prefix" >/dev/null
for example in edge_inference custom_strategy; do
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
err=$("$custom" server --config "$work/bad.json" 2>&1)
code=$?
set -e
[ "$code" -eq 2 ] || fail "bad config exited $code: $err"
[[ $err == *"strategy.bogus"* ]] || fail "error does not name the key: $err"

# A real run with the custom strategy: custom server, two standard clients.
port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$py - "$src/examples/custom_strategy/config.json" "$work/run.json" "$port" "$work/run" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["server"]["address"] = "127.0.0.1:" + sys.argv[3]
c["server"]["output_dir"] = sys.argv[4]
json.dump(c, open(sys.argv[2], "w"))
PY
# The deployment's PKI: mutual TLS, as every run is unless told otherwise.
"$work/prefix/bin/shoal" certs init --dir "$work/pki" >/dev/null
"$work/prefix/bin/shoal" certs client --dir "$work/pki" --id client-0 --id client-1 >/dev/null
for i in 0 1; do
  timeout 300 "$work/prefix/bin/shoal" client --config "$work/run.json" --partition $i \
    --state-dir "$work/client-$i" --pki-dir "$work/pki/clients/client-$i" \
    >"$work/client-$i.log" 2>&1 &
done
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
echo "PASSED: find_package(Shoal) consumers built and ran"
rm -rf "$work"
