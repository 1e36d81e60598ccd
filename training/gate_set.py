"""The gate sets bundled with the service: `python -m training.gate_set` writes, per registered
model, GATE_N official test images and their labels into models/gate/<model>.npz.

A candidate version must classify its gate set at least as well as its checkpoint's recorded test
accuracy minus a margin before it receives any traffic (serve_app/gate.py). The images are a
seeded sample of the official test split, so the gate estimates the recorded accuracy
(a binomial standard error of about 1 point at 500 images); nothing is chosen or tuned on them.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from training import data, settings
from vision_core.paths import resolve
from vision_core.registry import MODELS

GATE_N, SEED = 500, 20261207


def write(model: str, data_dir: str) -> str:
    data.prepare(model, data_dir)
    test = data.load_split(model, data_dir, train=False)
    pick = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(SEED))[:GATE_N]
    out = resolve(MODELS[model].gate_set)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, pixels=test.images[pick].numpy(),
                        labels=test.labels[pick].numpy().astype(np.int64))
    return str(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.gate_set", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="data", help="torchvision data root (default: data/)")
    args = p.parse_args(argv)
    try:
        for model in MODELS:
            print(f"{model}: {write(model, args.data_dir)}")
    except data.DataError as err:
        return settings.fail(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
