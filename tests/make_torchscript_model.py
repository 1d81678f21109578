#!/usr/bin/python3
"""Scripts a tiny MLP with TorchScript for the client's TorchScript tests.

Usage: /usr/bin/python3 tests/make_torchscript_model.py OUT.pt
           [--negated | --wide | --rgb | --own-loss]

Run with Debian's system interpreter, which has python3-torch. The model
takes float32 [N, 1, 28, 28] images and returns logits [N, 10]; its parameter
names (fc1.weight, fc1.bias, fc2.weight, fc2.bias) are what model_test
expects to see through the C++ GetParameters().

--negated scripts other code with the same parameters: forward() returns the
negated logits, so it predicts the least likely class. The signing tests swap
it in for the genuine model, as an attacker who can edit a model directory
would, and expect it to be refused. --wide scripts the same layers with 512
hidden units (a 1.6 MB file), so the code download takes several chunks.
--rgb scripts a small convolutional classifier of 3 x 8 x 8 images into 4
classes: a model whose input is not 28 x 28. --own-loss scripts a linear
regression of 3 features to one value that defines its own loss(outputs,
targets) method: twice the mean absolute error, which no built-in task uses.
"""

import sys

import torch
from torch import nn


class TinyMlp(nn.Module):
    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(28 * 28, hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(self.flatten(x))))


class NegatedTinyMlp(TinyMlp):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.fc2(self.relu(self.fc1(self.flatten(x))))


class SmallConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(x.flatten(1))


class OwnLossRegression(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

    @torch.jit.export
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return 2.0 * (outputs.squeeze(1) - targets).abs().mean()


def main(argv: list) -> int:
    variant = argv[2] if len(argv) == 3 else ""
    variants = ("", "--negated", "--wide", "--rgb", "--own-loss")
    if len(argv) not in (2, 3) or variant not in variants:
        print(f"usage: {argv[0]} OUT.pt [--negated | --wide | --rgb | --own-loss]",
              file=sys.stderr)
        return 2
    # A fixed seed keeps the generated file reproducible from build to build
    # (and gives the plain and negated variants the same initial weights).
    torch.manual_seed(0)
    model = {"": TinyMlp(), "--negated": NegatedTinyMlp(), "--wide": TinyMlp(hidden=512),
             "--rgb": SmallConv(), "--own-loss": OwnLossRegression()}
    module = torch.jit.script(model[variant])
    module.save(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
