#!/usr/bin/python3
"""Golden data for tests/task_test.cc: task losses and metrics in PyTorch.

Computes, with Debian's python3-torch (torch.nn.functional, independently of
Shoal's C++ code), the losses and metrics of each task on fixed outputs and
targets, and writes task_golden.json next to this file:
  - classification: cross_entropy (mean and sum), accuracy;
  - multilabel: binary_cross_entropy_with_logits, accuracy over labels
    (logit > 0 predicts 1);
  - regression: mse_loss and l1_loss; MAE, RMSE and R^2 = 1 - SSE / SST
    pooled over every output (sklearn's r2_score with a single output).

Run with the system interpreter:
  /usr/bin/python3 tests/golden/task_golden.py
"""
import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(7)
cases = {}

logits = torch.randn(6, 4)
labels = torch.tensor([0, 3, 1, 1, 2, 3])
cases["classification"] = {
    "outputs": logits.tolist(),
    "targets": labels.tolist(),
    "loss_mean": F.cross_entropy(logits, labels).item(),
    "loss_sum": F.cross_entropy(logits, labels, reduction="sum").item(),
    "accuracy": (logits.argmax(1) == labels).double().mean().item(),
}

ml_logits = torch.randn(5, 3)
ml_targets = (torch.rand(5, 3) > 0.5).float()
cases["multilabel"] = {
    "outputs": ml_logits.tolist(),
    "targets": ml_targets.tolist(),
    "loss_mean": F.binary_cross_entropy_with_logits(ml_logits, ml_targets).item(),
    "accuracy": ((ml_logits > 0).float() == ml_targets).double().mean().item(),
}

pred = torch.randn(8, 1)
truth = torch.randn(8) * 3 + 1
err = pred.squeeze(1).double() - truth.double()
sst = ((truth.double() - truth.double().mean()) ** 2).sum()
cases["regression"] = {
    "outputs": pred.tolist(),
    "targets": truth.tolist(),
    "mse_mean": F.mse_loss(pred.squeeze(1), truth).item(),
    "l1_mean": F.l1_loss(pred.squeeze(1), truth).item(),
    "mae": err.abs().mean().item(),
    "rmse": err.pow(2).mean().sqrt().item(),
    "r2": (1 - err.pow(2).sum() / sst).item(),
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "task_golden.json")
with open(out, "w") as f:
    json.dump(cases, f, indent=1)
    f.write("\n")
