"""The served pipeline's accuracy on realistic inputs (training/realistic.py), in-process: the
service's preprocessing (vision_core.imaging) and the checkpoint's model.

    python -m benchmarks.realistic [--data-dir data] [--n 500] [--json] [--golden tests/golden]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

from training import data
from training.model import load_checkpoint, probabilities
from training.realistic import MAKERS, encode, make
from vision_core.imaging import prepare
from vision_core.paths import resolve
from vision_core.registry import MODELS


def accuracy(checkpoint: str, dataset: str, kind: str, split: data.Split, n: int) -> float:
    model, meta = load_checkpoint(resolve(checkpoint))
    samples = list(make(dataset, kind, split, n))
    pixels = np.stack([prepare(b, meta["style"]) for b, _ in samples])
    pred = probabilities(model, meta, pixels).argmax(1)
    return float((pred.numpy() == np.array([y for _, y in samples])).mean())


def write_golden(folder: Path, dataset: str, kind: str, samples) -> None:
    """Files named `<dataset>_<kind>_<i>_label<k>.<ext>`: the tests read the label from it."""
    folder.mkdir(parents=True, exist_ok=True)
    for j, (blob, label) in enumerate(samples):
        ext = "jpg" if blob[:2] == b"\xff\xd8" else "png"
        (folder / f"{dataset}_{kind}_{j}_label{label}.{ext}").write_bytes(blob)


def golden_extras(split: data.Split):
    """Official test images as they are, and inverted, tiny and large variants of them."""
    rng = random.Random(7)
    picks = [(split.images[i].numpy(), int(split.labels[i]))
             for i in rng.sample(range(len(split.labels)), 4)]
    yield "dataset", [(encode(Image.fromarray(a), "PNG"), y) for a, y in picks]
    yield "inverted", [(encode(Image.fromarray(255 - picks[0][0]), "PNG"), picks[0][1])]
    tiny = Image.fromarray(picks[1][0]).resize((14, 14), Image.Resampling.BOX)
    yield "tiny", [(encode(tiny, "PNG"), picks[1][1])]
    large = Image.fromarray(255 - picks[2][0]).resize((1600, 1600)).convert("RGB")
    yield "large", [(encode(large, "JPEG", quality=80), picks[2][1])]


def evaluate_dataset(dataset: str, args: argparse.Namespace) -> dict[str, float]:
    data.prepare(dataset, args.data_dir)
    split = data.load_split(dataset, args.data_dir, train=False)
    results = {}
    for k, kind in enumerate(MAKERS[dataset]):
        results[f"{dataset}/{kind}"] = acc = accuracy(MODELS[dataset].checkpoint, dataset, kind,
                                                      split, args.n)
        print(f"{dataset:7s} {kind:8s} accuracy {acc:.1%} (n={args.n})")
        if args.golden:
            write_golden(Path(args.golden), dataset, kind, make(dataset, kind, split, 2, 99 + k))
    if args.golden:
        for kind, samples in golden_extras(split):
            write_golden(Path(args.golden), dataset, kind, samples)
    return results


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", default="data")
    p.add_argument("--n", type=int, default=500, help="images per kind")
    p.add_argument("--datasets", default=",".join(MAKERS))
    p.add_argument("--json", action="store_true")
    p.add_argument("--golden", help="also write example images here (tests/golden)")
    args = p.parse_args(argv)
    results = {}
    for dataset in args.datasets.split(","):
        results.update(evaluate_dataset(dataset, args))
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
