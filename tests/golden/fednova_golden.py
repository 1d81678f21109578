#!/usr/bin/python3
"""Golden values for FedNova (Wang et al. 2020), computed independently of
Shoal with NumPy in float64. Writes fednova_golden.json beside this script.

  a_i   = (tau_i - rho (1 - rho^tau_i) / (1 - rho)) / (1 - rho)   (rho > 0)
  p_i   = n_i / sum_j n_j
  d_i   = update_i / a_i
  x_new = x + (sum_i p_i a_i) * sum_i p_i d_i

Run: /usr/bin/python3 tests/golden/fednova_golden.py
"""
import json
import os

import numpy as np

rng = np.random.default_rng(20201206)
rho = 0.9
global_w = rng.normal(size=(2, 3))
global_b = rng.normal(size=(3,))
clients = []
for i, (n, tau) in enumerate([(100, 4), (300, 12), (50, 2)]):
    clients.append({
        "id": f"c{i}",
        "num_examples": n,
        "steps": tau,
        "w": rng.normal(size=(2, 3)).round(4),
        "b": rng.normal(size=(3,)).round(4),
    })


def effective_steps(tau, rho):
    if rho <= 0:
        return float(tau)
    return (tau - rho * (1 - rho ** tau) / (1 - rho)) / (1 - rho)


total = sum(c["num_examples"] for c in clients)
tau_eff = sum(c["num_examples"] / total * effective_steps(c["steps"], rho) for c in clients)
step_w = sum(c["num_examples"] / total * c["w"] / effective_steps(c["steps"], rho) for c in clients)
step_b = sum(c["num_examples"] / total * c["b"] / effective_steps(c["steps"], rho) for c in clients)

out = {
    "momentum": rho,
    "global": {"w": global_w.round(4).tolist(), "b": global_b.round(4).tolist()},
    "clients": [{"id": c["id"], "num_examples": c["num_examples"], "steps": c["steps"],
                 "w": c["w"].tolist(), "b": c["b"].tolist()} for c in clients],
}
gw = np.array(out["global"]["w"])
gb = np.array(out["global"]["b"])
out["expected"] = {"w": (gw + tau_eff * step_w).tolist(), "b": (gb + tau_eff * step_b).tolist()}
out["effective_steps"] = [effective_steps(c["steps"], rho) for c in clients]
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fednova_golden.json"), "w") as f:
    json.dump(out, f, indent=1)
