#!/usr/bin/python3
"""Golden data for tests/fedopt_test.cc: server-side optimizers in NumPy.

Computes, independently of the C++ code (plain float64 NumPy, written from
the update rules of the papers), the global model after each of 3 rounds of
FedAvgM (Hsu et al. 2019) and FedAdagrad / FedAdam / FedYogi (Reddi et al.
2021, Algorithm 2, no bias correction, m_{-1} = 0, v_{-1} = tau^2), with
non-default parameters, and FedAdam once more with Adam's bias correction
(Kingma & Ba 2015: step t, counted from 1, uses
eta * sqrt(1 - beta_2^t) / (1 - beta_1^t)), and writes fedopt_golden.json
next to this file. Each entry's "case" names it; "name" is the strategy.

The model is two float32 tensors, "w" [2, 3] and "b" [3]; each round three
clients send hand-chosen updates with different num_examples. Inputs are
rounded to float32 before use (the C++ side holds float32 tensors), and the
global model is rounded to float32 after every round, as Shoal stores it;
the optimizer state stays float64, as in Shoal.

Run with the system interpreter (python3-numpy):
  /usr/bin/python3 tests/golden/fedopt_golden.py
"""

import json
import os
import re

import numpy as np

SHAPES = {"w": (2, 3), "b": (3,)}
NAMES = ["w", "b"]


def f32(values):
    """Rounds to float32 and back, so both sides start from the same numbers."""
    return np.asarray(values, dtype=np.float32).astype(np.float64)


INITIAL = {
    "w": f32([[0.5, -1.25, 2.0], [0.75, 0.0, -0.3]]),
    "b": f32([0.1, -0.2, 0.05]),
}

# ROUNDS[r] = list of (client id, num_examples, {name: update}). The updates
# vary in sign and size across rounds so that FedYogi takes both branches of
# sign(v - Delta^2), and the second "b" coordinate averages to exactly 0 in
# round 1 (m = 0 there, so the adaptive step is 0).
ROUNDS = [
    [
        ("c0", 10, {"w": [[0.2, -0.1, 0.05], [0.3, 0.0, -0.4]], "b": [0.01, 0.5, -0.2]}),
        ("c1", 30, {"w": [[0.1, 0.2, -0.05], [-0.1, 0.25, 0.0]], "b": [0.03, -0.25, 0.1]}),
        ("c2", 20, {"w": [[-0.3, 0.1, 0.15], [0.05, -0.5, 0.2]], "b": [-0.02, 0.125, 0.0]}),
    ],
    [
        ("c0", 5, {"w": [[0.02, 0.01, -0.03], [0.6, -0.2, 0.1]], "b": [0.4, -0.1, 0.05]}),
        ("c1", 15, {"w": [[-0.01, 0.03, 0.02], [0.5, -0.1, 0.3]], "b": [0.2, 0.3, -0.05]}),
        ("c2", 40, {"w": [[0.0, 0.02, -0.01], [0.45, 0.05, -0.2]], "b": [0.35, 0.0, 0.1]}),
    ],
    [
        ("c0", 25, {"w": [[-0.4, 0.3, 0.0], [-0.05, 0.1, 0.02]], "b": [-0.6, 0.2, 0.01]}),
        ("c1", 25, {"w": [[-0.2, 0.25, 0.1], [0.02, -0.1, -0.02]], "b": [-0.5, -0.2, 0.03]}),
        ("c2", 10, {"w": [[-0.5, 0.0, -0.1], [0.0, 0.3, 0.05]], "b": [-0.7, 0.1, -0.01]}),
    ],
]

# (case, strategy, params)
STRATEGIES = [
    ("fedavgm", "fedavgm", {"server_learning_rate": 0.7, "server_momentum": 0.5}),
    ("fedadagrad", "fedadagrad", {"server_learning_rate": 0.05, "beta_1": 0.6, "tau": 0.01}),
    ("fedadam", "fedadam",
     {"server_learning_rate": 0.03, "beta_1": 0.8, "beta_2": 0.9, "tau": 0.001}),
    ("fedyogi", "fedyogi",
     {"server_learning_rate": 0.02, "beta_1": 0.7, "beta_2": 0.95, "tau": 0.003}),
    ("fedadam_bias_corrected", "fedadam",
     {"server_learning_rate": 0.03, "beta_1": 0.8, "beta_2": 0.9, "tau": 0.001,
      "bias_correction": True}),
]


def mean_update(clients):
    """Delta_t: the num_examples-weighted mean of the clients' updates."""
    total = float(sum(n for _, n, _ in clients))
    return {
        k: sum(n * f32(u[k]) for _, n, u in clients) / total for k in NAMES
    }


def run(name, p):
    x = {k: INITIAL[k].copy() for k in NAMES}
    state = {}
    history = []
    for t, clients in enumerate(ROUNDS, start=1):
        delta = mean_update(clients)
        for k in NAMES:
            d = delta[k]
            if name == "fedavgm":
                v = state.get(("v", k), np.zeros_like(d))
                v = p["server_momentum"] * v + d
                state[("v", k)] = v
                step = p["server_learning_rate"] * v
            else:
                tau = p["tau"]
                m = state.get(("m", k), np.zeros_like(d))
                v = state.get(("v", k), np.full_like(d, tau * tau))
                m = p["beta_1"] * m + (1.0 - p["beta_1"]) * d
                if name == "fedadagrad":
                    v = v + d * d
                elif name == "fedadam":
                    v = p["beta_2"] * v + (1.0 - p["beta_2"]) * d * d
                elif name == "fedyogi":
                    v = v - (1.0 - p["beta_2"]) * d * d * np.sign(v - d * d)
                else:
                    raise ValueError(name)
                state[("m", k)], state[("v", k)] = m, v
                eta = p["server_learning_rate"]
                if p.get("bias_correction", False):
                    eta *= np.sqrt(1.0 - p["beta_2"] ** t) / (1.0 - p["beta_1"] ** t)
                step = eta * m / (np.sqrt(v) + tau)
            # Shoal keeps the global model in its tensors' dtype (float32).
            x[k] = f32(x[k] + step)
        history.append({k: x[k].ravel().tolist() for k in NAMES})
    return history


def main():
    golden = {
        "generator": "tests/golden/fedopt_golden.py",
        "tensors": [{"name": k, "shape": list(SHAPES[k])} for k in NAMES],
        "initial": {k: INITIAL[k].ravel().tolist() for k in NAMES},
        "rounds": [
            [
                {
                    "client_id": cid,
                    "num_examples": n,
                    "update": {k: f32(u[k]).ravel().tolist() for k in NAMES},
                }
                for cid, n, u in clients
            ]
            for clients in ROUNDS
        ],
        "strategies": [
            {"case": case, "name": name, "params": p, "expected": run(name, p)}
            for case, name, p in STRATEGIES
        ],
    }
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fedopt_golden.json")
    text = json.dumps(golden, indent=1)
    # One line per list of numbers, so the file reads as a table.
    text = re.sub(r"\[\s+([-0-9.e,\s]+?)\s+\]",
                  lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    with open(out, "w") as f:
        f.write(text + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
