#!/usr/bin/python3
"""Golden values for q-FedAvg (Li et al. 2020, Algorithm 3) and SCAFFOLD's
server step (Karimireddy et al. 2020, Algorithm 1), computed independently of
Shoal with NumPy in float64. Writes qfedavg_scaffold_golden.json beside this
script.

q-FedAvg, with u_k = w_k - w the client's update, F_k its loss before
training and L = 1 / qffl_learning_rate:
  Delta_k = L (F_k + 1e-10)^q (w - w_k)
  h_k     = q (F_k + 1e-10)^(q-1) ||L (w - w_k)||^2 + L (F_k + 1e-10)^q
  w'      = w - sum Delta_k / sum h_k

SCAFFOLD's server, for clients S of a population of N:
  x' = x + eta_g * sum_i n_i dy_i / sum_i n_i
  c' = c + |S| / N * mean_i dc_i

Run: /usr/bin/python3 tests/golden/qfedavg_scaffold_golden.py
"""
import json
import os

import numpy as np

rng = np.random.default_rng(20200426)


def tensors():
    return {"w": rng.normal(size=(2, 3)).round(4), "b": rng.normal(size=(3,)).round(4)}


def listed(t):
    return {k: v.tolist() for k, v in t.items()}


# ---- q-FedAvg
q, lr_q = 0.5, 0.1
L = 1 / lr_q
glob = tensors()
clients = []
for i, loss in enumerate([0.3, 2.1, 0.9]):
    clients.append({"id": f"c{i}", "num_examples": 50 * (i + 1), "initial_loss": loss,
                    "update": tensors()})
num = {k: np.zeros_like(v) for k, v in glob.items()}
h_sum = 0.0
for c in clients:
    f = c["initial_loss"] + 1e-10
    grads = {k: -L * u for k, u in c["update"].items()}  # L (w - w_k)
    for k in num:
        num[k] += f ** q * grads[k]
    sq = sum(float((g ** 2).sum()) for g in grads.values())
    h_sum += q * f ** (q - 1) * sq + L * f ** q
qffl = {
    "q": q, "qffl_learning_rate": lr_q, "global": listed(glob),
    "clients": [{"id": c["id"], "num_examples": c["num_examples"],
                 "initial_loss": c["initial_loss"], "update": listed(c["update"])}
                for c in clients],
    "expected": listed({k: glob[k] - num[k] / h_sum for k in glob}),
}

# ---- SCAFFOLD: two rounds, so the control variate carries over.
eta_g, population = 0.8, 6
x = tensors()
x0 = listed(x)
c = {k: np.zeros_like(v) for k, v in x.items()}
rounds = []
for r, cohort in enumerate([3, 2]):
    results = [{"id": f"c{i}", "num_examples": int(rng.integers(10, 100)),
                "dy": tensors(), "dc": tensors()} for i in range(cohort)]
    n_total = sum(res["num_examples"] for res in results)
    x_new = {k: x[k] + eta_g * sum(res["num_examples"] * res["dy"][k] for res in results) / n_total
             for k in x}
    c_new = {k: c[k] + cohort / population * sum(res["dc"][k] for res in results) / cohort
             for k in c}
    rounds.append({
        "control_in": listed(c),
        "results": [{"id": res["id"], "num_examples": res["num_examples"],
                     "dy": listed(res["dy"]), "dc": listed(res["dc"])} for res in results],
        "expected_global": listed(x_new), "expected_control": listed(c_new)})
    x, c = x_new, c_new
out = {"qfedavg": qffl,
       "scaffold": {"server_learning_rate": eta_g, "population": population, "global": x0,
                    "rounds": rounds}}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "qfedavg_scaffold_golden.json"), "w") as f:
    json.dump(out, f, indent=1)
