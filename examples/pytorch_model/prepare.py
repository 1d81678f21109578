#!/usr/bin/python3
"""Prepares the pytorch_model example: a model defined and scripted in
PyTorch, and data saved with torch.save, for Shoal to train federatedly.

The data are the 8 x 8 handwritten digits that Debian's python3-sklearn ships
(1797 images, 10 classes), split 80/20 with a fixed seed into train.pt and
test.pt, each {"x": float32 [N, 1, 8, 8] in [0, 1], "y": int64 [N]}.

Usage: /usr/bin/python3 prepare.py OUT_DIR
"""
import gzip
import os
import sys

import numpy as np
import torch
from torch import nn

DIGITS = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"


class DigitNet(nn.Module):
    """A small CNN for 1 x 8 x 8 digits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def main(out: str) -> int:
    os.makedirs(out, exist_ok=True)
    with gzip.open(DIGITS, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x = torch.from_numpy(table[:, :64] / 16.0).reshape(-1, 1, 8, 8)
    y = torch.from_numpy(table[:, 64].astype(np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(y))
    torch.save({"x": x[perm[:cut]].clone(), "y": y[perm[:cut]].clone()},
               os.path.join(out, "train.pt"))
    torch.save({"x": x[perm[cut:]].clone(), "y": y[perm[cut:]].clone()},
               os.path.join(out, "test.pt"))
    torch.manual_seed(0)
    torch.jit.script(DigitNet()).save(os.path.join(out, "digit_net.pt"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
