#!/usr/bin/python3
"""Evaluates the model Shoal trained and exported, in PyTorch alone.

Usage: /usr/bin/python3 evaluate.py EXPORTED.pt TEST.pt
Prints "python accuracy: 0.xxxxxx (correct of n)".
"""
import sys

import torch


def main(model_path: str, test_path: str) -> int:
    model = torch.jit.load(model_path)
    model.eval()
    data = torch.load(test_path)
    with torch.no_grad():
        predicted = model(data["x"]).argmax(1)
    correct = int((predicted == data["y"]).sum())
    n = len(data["y"])
    print(f"python accuracy: {correct / n:.6f} ({correct} of {n})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
