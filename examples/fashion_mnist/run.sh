#!/usr/bin/env bash
# The main job: one Shoal server and N edge-client processes on 127.0.0.1
# train the FedAvg CNN on Fashion-MNIST (non-IID, Dirichlet alpha = 0.5).
#
# Usage: examples/fashion_mnist/run.sh [SHOAL_BINARY] [CONFIG]
# Environment: SHOAL_PORT (default: a free port), SHOAL_OUTPUT (default
# runs/fashion-mnist).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
shoal=${1:-$here/../../build/cli/shoal}
config=${2:-$here/config.json}
out=${SHOAL_OUTPUT:-runs/fashion-mnist}
clients=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"]["num_partitions"])' "$config")
port=${SHOAL_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
address=127.0.0.1:$port

[ -x "$shoal" ] || { echo "run.sh: no shoal binary at $shoal; build first" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/logs"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

echo "Shoal main job: 1 server + $clients clients on $address; logs in $out/logs/"
start=$(date +%s)
# The deployment's PKI: a CA, the server's certificate and model-signing
# key, and one bundle per device. Every connection is mutual TLS and every
# model the clients load is signed.
ids=()
for ((i = 0; i < clients; i++)); do ids+=(--id "client-$i"); done
"$shoal" certs init --dir "$out/pki" >/dev/null
"$shoal" certs client --dir "$out/pki" "${ids[@]}" >/dev/null
echo "PKI in $out/pki (server: $out/pki/server, devices: $out/pki/clients/<id>)"
# Clients first: they wait for the server with backoff, as devices would.
for ((i = 0; i < clients; i++)); do
  "$shoal" client --config "$config" --partition "$i" --server "$address" \
    --state-dir "$out/clients/client-$i" --pki-dir "$out/pki/clients/client-$i" \
    >"$out/logs/client-$i.log" 2>&1 &
  pids+=($!)
done
"$shoal" server --config "$config" --address "$address" --output-dir "$out" \
  --pki-dir "$out/pki/server" 2>&1 | tee "$out/logs/server.log"
status=${PIPESTATUS[0]}
for p in "${pids[@]}"; do wait "$p" || status=1; done
pids=()
echo "Wall time: $(( $(date +%s) - start )) s (server and clients, build excluded)"
echo "Offline inference on a client's copy of the model:"
echo "  $shoal infer --model-key $out/pki/clients/client-0/model-signing.pub --model-dir $out/clients/client-0 --config $config --input /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz --limit 5"
exit "$status"
