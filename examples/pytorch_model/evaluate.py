#!/usr/bin/python3
"""Evaluates the model Shoal trained and exported, in PyTorch alone, and
compares with the accuracy Shoal reported for it.

Usage: /usr/bin/python3 evaluate.py EXPORTED.pt TEST.pt [SHOAL_ACCURACY]
Prints "python accuracy: 0.xxxxxx (correct of n)". Given SHOAL_ACCURACY (the
number the pytorch_model program prints), exits 1 unless the two agree to
1e-6: both count the same test examples with the same weights.
"""
import sys

import torch

TOLERANCE = 1e-6


def main(model_path: str, test_path: str, shoal: str = "") -> int:
    model = torch.jit.load(model_path)
    model.eval()
    data = torch.load(test_path)
    with torch.no_grad():
        predicted = model(data["x"]).argmax(1)
    correct = int((predicted == data["y"]).sum())
    n = len(data["y"])
    python = correct / n
    print(f"python accuracy: {python:.6f} ({correct} of {n})")
    if not shoal:
        return 0
    if abs(float(shoal) - python) > TOLERANCE:
        print(f"MISMATCH: Shoal reported {float(shoal):.6f}, PyTorch measures {python:.6f}")
        return 1
    print(f"match: Shoal and PyTorch agree on {python:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
