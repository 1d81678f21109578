#!/usr/bin/python3
"""Golden data for tests/privacy_accountant_test.cc: RDP of the sampled Gaussian.

Computes, independently of the C++ code, in 60-digit arithmetic (mpmath)
rather than the C++ side's float64 log-sum-exp, and writes rdp_golden.json
next to this file:

  - "rdp": the Renyi DP at order alpha of one step of the Poisson-subsampled
    Gaussian mechanism (sampling rate q, noise multiplier z), from Mironov,
    Talwar, Zhang, "Renyi Differential Privacy of the Sampled Gaussian
    Mechanism" (arXiv:1908.10530), RDP = log(A_alpha) / (alpha - 1):
      integer alpha, Section 3.3 eq. (the binomial expansion), with exact
      integer binomials:
        A_alpha = sum_{k=0}^{alpha} C(alpha, k) (1-q)^(alpha-k) q^k
                  exp((k^2 - k) / (2 z^2))
      fractional alpha, from the definition of A_alpha,
        A_alpha = E_{x ~ N(0, z^2)} [(1 - q + q exp((2x - 1) / (2 z^2)))^alpha],
        integrated numerically; for the "rdp" cases it is checked against
        the paper's two series, split at z0 = z^2 log(1/q - 1) + 1/2,
        A_alpha = sum_k C(alpha, k) [ q^k (1-q)^(alpha-k) e^((k^2-k)/(2z^2))
                                        erfc((k - z0) / (sqrt(2) z)) / 2
                                    + q^(alpha-k) (1-q)^k e^((j^2-j)/(2z^2))
                                        erfc((z0 - j) / (sqrt(2) z)) / 2 ]
        with j = alpha - k. Past k = alpha the terms alternate and shrink only
        like k^-(alpha+2), so the series is summed until its terms fall below
        1e-17 of the sum (the integral is the more accurate of the two).
  - "epsilon": epsilon at delta after composing several (q, z, steps)
    mechanisms on TF Privacy's order grid, by the conversion of Canonne,
    Kamath, Steinke 2020 (arXiv:2004.00010, Prop. 12) / Balle et al. 2020:
        eps = min over alpha of rdp + log1p(-1/alpha)
                                - (log(delta) + log(alpha)) / (alpha - 1),
    and 0 at an order whose rdp is so small that sqrt(1 - exp(-rdp)) <= delta
    (KL bound, as TF Privacy's compute_epsilon); never below 0.

Run with the system interpreter (python3-mpmath):
  /usr/bin/python3 tests/golden/rdp_golden.py
"""

import functools
import json
import math
import os
import re

import mpmath
from mpmath import mpf

mpmath.mp.dps = 60

# TF Privacy's orders (compute_dp_sgd_privacy_lib.py), written out again here.
ORDERS = ([1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5] +
          [float(a) for a in range(5, 64)] + [128.0, 256.0, 512.0])

# (q, z, alpha): integer and fractional orders, small and large; q from 1e-4
# to 0.99 and z from 0.1 to 5, including regimes where A_alpha overflows a
# float64 (small z, large alpha) and where RDP is tiny (small q).
RDP_CASES = [
    (0.01, 1.0, 2.0),
    (0.01, 1.0, 1.5),
    (0.01, 1.0, 32.0),
    (0.001, 0.7, 4.5),
    (0.1, 2.0, 5.0),
    (0.1, 2.0, 1.25),
    (0.05, 0.5, 64.0),
    (0.3, 0.4, 256.0),
    (0.99, 0.1, 3.5),
    (0.0001, 1.2, 12.0),
    (0.5, 3.0, 2.25),
    (0.02, 1.1, 512.0),
    (0.2, 5.0, 1.75),
    (0.004, 1.1, 128.0),
    (0.25, 0.8, 2.5),
    (0.0025, 1.3, 19.0),
]

# Each scenario composes its mechanisms [(q, z, steps), ...] in order, then
# asks for epsilon at delta.
EPSILON_CASES = [
    ([(0.01, 1.0, 1000)], 1e-5),
    ([(0.001, 0.8, 5000)], 1e-6),
    ([(0.05, 2.0, 200)], 1e-5),
    ([(0.0001, 1.0, 100000)], 1e-8),
    ([(1.0, 5.0, 10)], 1e-5),
    ([(0.3, 0.5, 3)], 1e-3),
    ([(0.01, 1.0, 300), (0.02, 1.5, 200)], 1e-5),
    ([(0.004, 1.1, 15000)], 1e-5),
    ([(0.05, 0.7, 2000)], 1e-5),  # little noise: the best order is fractional
]


def log_a_integer(q, z, alpha):
    q, z = mpf(q), mpf(z)
    total = mpf(0)
    for k in range(alpha + 1):
        total += (math.comb(alpha, k) * (1 - q) ** (alpha - k) * q ** k *
                  mpmath.exp(mpf(k * k - k) / (2 * z * z)))
    return mpmath.log(total)


def log_a_fractional(q, z, alpha):
    q, z, alpha = mpf(q), mpf(z), mpf(alpha)
    z0 = z * z * mpmath.log(1 / q - 1) + mpf(1) / 2
    total = mpf(0)
    k = 0
    while True:
        j = alpha - k
        c = mpmath.binomial(alpha, k)
        t0 = (c * q ** k * (1 - q) ** j * mpmath.exp((k * k - k) / (2 * z * z)) *
              mpmath.erfc((k - z0) / (mpmath.sqrt(2) * z)) / 2)
        t1 = (c * q ** j * (1 - q) ** k * mpmath.exp((j * j - j) / (2 * z * z)) *
              mpmath.erfc((z0 - j) / (mpmath.sqrt(2) * z)) / 2)
        total += t0 + t1
        k += 1
        if k > alpha + 1 and max(abs(t0), abs(t1)) < mpf(10) ** -17 * total:
            return mpmath.log(total)


def log_a_by_integration(q, z, alpha):
    q, z, alpha = mpf(q), mpf(z), mpf(alpha)

    def integrand(x):
        density = mpmath.npdf(x, 0, z)
        return density * (1 - q + q * mpmath.exp((2 * x - 1) / (2 * z * z))) ** alpha

    z0 = z * z * mpmath.log(1 / q - 1) + mpf(1) / 2
    # Split where the integrand changes regime and around its bulk.
    points = sorted({-mpmath.inf, -40 * z, z0, alpha, 40 * z + alpha, mpmath.inf})
    return mpmath.log(mpmath.quad(integrand, points, maxdegree=10))


@functools.lru_cache(maxsize=None)
def rdp(q, z, alpha, check_series=False):
    """One step's RDP at alpha, as an mpf."""
    if q == 1.0:
        return mpf(alpha) / (2 * mpf(z) ** 2)
    if float(alpha).is_integer():
        return log_a_integer(q, z, int(alpha)) / (int(alpha) - 1)
    integral = log_a_by_integration(q, z, alpha)
    if check_series:
        series = log_a_fractional(q, z, alpha)
        assert abs(series - integral) <= mpf(10) ** -11 * abs(integral), (
            q, z, alpha, series, integral)
    return integral / (mpf(alpha) - 1)


def epsilon(mechanisms, delta):
    delta = mpf(delta)
    best = None
    for alpha in ORDERS:
        total = sum(steps * rdp(q, z, alpha) for q, z, steps in mechanisms)
        a = mpf(alpha)
        if delta ** 2 + mpmath.expm1(-total) > 0:
            eps = mpf(0)
        else:
            eps = (total + mpmath.log1p(-1 / a) -
                   (mpmath.log(delta) + mpmath.log(a)) / (a - 1))
        if best is None or eps < best[0]:
            best = (eps, alpha)
    return max(best[0], mpf(0)), best[1]


def main():
    golden = {
        "generator": "tests/golden/rdp_golden.py",
        "rdp": [
            {"q": q, "noise_multiplier": z, "order": alpha,
             "rdp": float(rdp(q, z, alpha, check_series=True))}
            for q, z, alpha in RDP_CASES
        ],
        "epsilon": [],
    }
    for mechanisms, delta in EPSILON_CASES:
        eps, order = epsilon(mechanisms, delta)
        golden["epsilon"].append({
            "mechanisms": [{"q": q, "noise_multiplier": z, "steps": steps}
                           for q, z, steps in mechanisms],
            "delta": delta,
            "epsilon": float(eps),
            "order": order,
        })
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rdp_golden.json")
    text = json.dumps(golden, indent=1)
    # One line per object of numbers, so the file reads as a table.
    text = re.sub(r"\{\s+(\"[^{}\[\]]+?)\s+\}",
                  lambda m: "{" + " ".join(m.group(1).split()) + "}", text)
    with open(out, "w") as f:
        f.write(text + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
