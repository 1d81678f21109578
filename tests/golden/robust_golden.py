#!/usr/bin/python3
"""Golden data for the robust aggregation strategies (tests/robust_strategies_test.cc).

Implements each rule on its own, straight from the papers, in float64 NumPy
with plain loops (not the ATen formulation of strategies/*.cc), on a fixed
scenario, and writes robust_golden.json next to this file:

  FedMedian, FedTrimmedAvg  Yin et al. 2018, "Byzantine-Robust Distributed
                            Learning: Towards Optimal Statistical Rates"
  Krum, Multi-Krum          Blanchard et al. 2017, "Machine Learning with
                            Adversaries: Byzantine Tolerant Gradient Descent"
  Bulyan                    El Mhamdi et al. 2018, "The Hidden Vulnerability
                            of Distributed Learning in Byzantium"

Every rule acts on the updates (local - global); the new global model is
global + the aggregated update. All rules are unweighted: num_examples is
in the data (outliers claim many examples) but must not matter.

Run with the system interpreter, which has python3-numpy:
  /usr/bin/python3 tests/golden/robust_golden.py
The JSON is committed; rerunning must reproduce it byte for byte.
"""

import json
import os

import numpy as np

N_CLIENTS = 11
SHAPES = {"w": (3, 4), "b": (4,)}


def f32(a):
    # Inputs are float32 values (what the server holds), stored as float64 so
    # the C++ side reads them back exactly.
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def scenario():
    rng = np.random.default_rng(20240611)
    dim = sum(int(np.prod(s)) for s in SHAPES.values())
    glob = f32(rng.normal(0.0, 0.5, dim))
    # Honest clients: a shared direction plus client noise.
    direction = rng.normal(0.0, 0.1, dim)
    updates = [f32(direction + rng.normal(0.0, 0.05, dim)) for _ in range(N_CLIENTS - 2)]
    # Two Byzantine clients, each claiming many examples: one far away on
    # every coordinate, one sending the honest direction reversed and scaled.
    updates.append(f32(np.full(dim, 8.0) + rng.normal(0.0, 0.5, dim)))
    updates.append(f32(-5.0 * direction))
    num_examples = [int(n) for n in rng.integers(20, 200, N_CLIENTS - 2)] + [5000, 5000]
    return glob, np.stack(updates), num_examples


def median(values):
    # NumPy's median: the mean of the two middle values for an even count.
    return float(np.median(values))


def fedmedian(u):
    n, d = u.shape
    return np.array([median(u[:, j]) for j in range(d)])


def fedtrimmedavg(u, beta):
    n, d = u.shape
    k = int(beta * n)  # floor(beta * n) per side, as scipy.stats.trim_mean
    out = np.empty(d)
    for j in range(d):
        col = sorted(u[:, j])
        kept = col[k:n - k]
        out[j] = sum(kept) / len(kept)
    return out


def sq_dist(a, b):
    return float(sum((x - y) ** 2 for x, y in zip(a, b)))


def krum_scores(vectors, f):
    # score(i) = sum of the squared distances from V_i to its n - f - 2
    # closest other vectors. Once fewer than 2f + 3 vectors remain (Bulyan's
    # last Krum rounds) keep at least one neighbour, as Flower does.
    r = len(vectors)
    k = min(max(r - f - 2, 1), r - 1)
    scores = []
    for i in range(r):
        d = sorted(sq_dist(vectors[i], vectors[j]) for j in range(r) if j != i)
        scores.append(sum(d[:k]))
    return scores


def multikrum(u, f, m):
    n = len(u)
    assert n >= 2 * f + 3 and 1 <= m <= n - f
    scores = krum_scores(list(u), f)
    # Lowest scores first; equal scores keep the arrival order.
    chosen = sorted(range(n), key=lambda i: (scores[i], i))[:m]
    return np.mean([u[i] for i in chosen], axis=0), chosen


def bulyan(u, f):
    n, d = u.shape
    assert n >= 4 * f + 3
    theta = n - 2 * f
    beta = theta - 2 * f
    remaining = list(range(n))
    selected = []
    while len(selected) < theta:
        # Krum on what is left: the lowest-score vector moves to the
        # selection set.
        scores = krum_scores([u[i] for i in remaining], f)
        best = min(range(len(remaining)), key=lambda i: (scores[i], i))
        selected.append(remaining.pop(best))
    s = u[selected]
    out = np.empty(d)
    for j in range(d):
        col = sorted(s[:, j])
        med = median(col)
        # The beta values closest to the median; an equal distance keeps the
        # lower value.
        closest = sorted(range(theta), key=lambda i: (abs(col[i] - med), i))[:beta]
        out[j] = sum(col[i] for i in closest) / beta
    return out, selected


def unflatten(flat):
    out, offset = {}, 0
    for name, shape in SHAPES.items():
        size = int(np.prod(shape))
        out[name] = flat[offset:offset + size].reshape(shape).tolist()
        offset += size
    return out


def main():
    glob, updates, num_examples = scenario()
    everyone = list(range(N_CLIENTS))
    first10 = list(range(10))  # an even count, one outlier in it
    cases = []

    def add(name, strategy, params, clients, aggregated, note):
        cases.append({
            "name": name,
            "strategy": strategy,
            "params": params,
            "clients": clients,
            "note": note,
            "expected": unflatten(glob + aggregated),
        })

    add("fedmedian_all", "fedmedian", {}, everyone, fedmedian(updates[everyone]),
        "odd count: the middle value")
    add("fedmedian_even", "fedmedian", {}, first10, fedmedian(updates[first10]),
        "even count: mean of the two middle values, as np.median")
    for beta in (0.1, 0.2, 0.3):
        add(f"fedtrimmedavg_beta{beta}", "fedtrimmedavg", {"beta": beta}, everyone,
            fedtrimmedavg(updates[everyone], beta),
            f"k = floor({beta} * 11) = {int(beta * 11)} trimmed per side")
    add("fedtrimmedavg_even_beta0.25", "fedtrimmedavg", {"beta": 0.25}, first10,
        fedtrimmedavg(updates[first10], 0.25), "k = floor(0.25 * 10) = 2 per side")
    for f in (0, 2, 4):
        agg, chosen = multikrum(updates, f, 1)
        add(f"krum_f{f}", "krum", {"num_malicious": f}, everyone, agg,
            f"chooses client {chosen[0]}")
    for f, m in ((2, 1), (2, 4), (2, 9), (3, 5)):
        agg, chosen = multikrum(updates, f, m)
        add(f"multikrum_f{f}_m{m}", "multikrum", {"num_malicious": f, "num_selected": m},
            everyone, agg, f"averages clients {sorted(chosen)}")
    for f in (0, 1, 2):
        agg, selected = bulyan(updates, f)
        add(f"bulyan_f{f}", "bulyan", {"num_malicious": f}, everyone, agg,
            f"selection set {selected}")

    golden = {
        "description": "Robust aggregation golden data; generated by robust_golden.py, do not edit.",
        "global": unflatten(glob),
        "clients": [{"id": f"client{i}", "num_examples": num_examples[i],
                     "update": unflatten(updates[i])} for i in range(N_CLIENTS)],
        "byzantine_clients": [N_CLIENTS - 2, N_CLIENTS - 1],
        "cases": cases,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "robust_golden.json")
    with open(path, "w") as out:
        json.dump(golden, out, indent=1)
        out.write("\n")


if __name__ == "__main__":
    main()
