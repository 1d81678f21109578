#!/usr/bin/python3
"""Evaluates a model `shoal export` wrote, in PyTorch alone, on IDX data.

Usage: /usr/bin/python3 tests/export_roundtrip.py EXPORT IMAGES LABELS MEAN STD
           [--module MODULE.py]

EXPORT is a TorchScript file (torch.jit.load) or, with --module, a state dict
loaded into the module's Model with load_state_dict(strict=True). IMAGES and
LABELS are IDX files (gzipped or not), read with numpy, scaled to [0, 1] and
normalized with MEAN and STD exactly as Shoal's data.normalize does, then
classified in batches of 128 as Shoal evaluates. Prints
"python accuracy CORRECT N".

Run with Debian's system interpreter, which has python3-torch.
"""

import argparse
import gzip
import importlib.util
import struct

import numpy as np
import torch


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("export")
    parser.add_argument("images")
    parser.add_argument("labels")
    parser.add_argument("mean", type=float)
    parser.add_argument("std", type=float)
    parser.add_argument("--module")
    args = parser.parse_args()

    if args.module:
        spec = importlib.util.spec_from_file_location("exported_model", args.module)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.Model()
        model.load_state_dict(torch.load(args.export, map_location="cpu"), strict=True)
    else:
        model = torch.jit.load(args.export, map_location="cpu")
    model.eval()

    # As Shoal: uint8 -> float32 / 255, then (x - mean) / std in float32.
    x = torch.from_numpy(read_idx(args.images).copy()).to(torch.float32).div_(255.0).unsqueeze(1)
    x.sub_(args.mean).div_(args.std)
    y = torch.from_numpy(read_idx(args.labels).astype(np.int64))
    correct = 0
    with torch.no_grad():
        for begin in range(0, x.shape[0], 128):
            logits = model(x[begin:begin + 128])
            correct += int((logits.argmax(1) == y[begin:begin + 128]).sum())
    print("python accuracy %d %d" % (correct, x.shape[0]))


if __name__ == "__main__":
    main()
