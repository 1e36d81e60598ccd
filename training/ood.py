"""Fit the out-of-domain detector into a checkpoint: `python -m training.ood models/mnist_cnn.pt`.

The detector is a logistic regression on frozen features of the network's own forward pass
(training.model.features_and_logits: the penultimate layer plus pooled conv statistics). The
CNN weights are not changed; only the checkpoint's metadata gains an `ood` entry, so its sha256
(the model version) changes. Positives: the training split minus its last VAL images.
Negatives: the other dataset's training split, synthetic noise, shapes and strokes, and strips
of several training images (multi-digit numbers, several items). The threshold keeps KEEP of
the held-out VAL images; the official test sets and benchmarks/ood.py's evaluation set are
never looked at. docs/ood.md compares this with softmax, energy and Mahalanobis scores.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from training import data
from training.model import (
    CheckpointError,
    features_and_logits,
    load_checkpoint,
    ood_score,
    rewrite_metadata,
)

VAL = 5000  # the last training images: held out of the fit, used to choose the threshold
KEEP = 0.995  # share of held-out in-domain images the threshold keeps
POSITIVES = 20000  # in-domain images the regression sees (a random subset of the fit split)
OTHER_NEGATIVES = 6000  # first images of the other dataset's training split
SYNTHETIC = 3000
STRIPS = 1500
WEIGHT_DECAY = 1e-3
SEED = 11  # benchmarks/ood.py's evaluation set uses another seed and other kinds
OTHER = {"mnist": "fmnist", "fmnist": "mnist"}


def features(model, meta: dict, images, batch: int = 2000) -> torch.Tensor:
    """Detector features of uint8 images, in batches."""
    images = torch.as_tensor(np.asarray(images))
    return torch.cat([features_and_logits(model, meta, images[i:i + batch])[0]
                      for i in range(0, len(images), batch)])


def _noise(rng: random.Random, np_rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = rng.randrange(3)
    if kind == 0:
        return np_rng.integers(0, 256, (h, w), dtype=np.uint8)
    if kind == 1:
        return np.clip(np_rng.normal(rng.uniform(40, 200), rng.uniform(20, 80), (h, w)),
                       0, 255).astype(np.uint8)
    coarse = np_rng.integers(0, 256, (rng.randint(2, 10), rng.randint(2, 10)), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR))


def synthetic_negatives(n: int, style: str, seed: int = SEED) -> np.ndarray:
    """n 28x28 non-domain images (noise, filled shapes, random strokes) as the service would
    give them to the model: 28x28 inputs as they are, larger ones canonicalised."""
    from serve_app.imaging import canonicalise  # the pixels the service would give the model

    rng, np_rng = random.Random(seed), np.random.default_rng(seed)
    out = np.empty((n, 28, 28), np.uint8)
    for i in range(n):
        side = rng.choice([28, 112])
        if i % 3 == 0:  # noise in any aspect ratio: canonicalisation keeps the ratio
            h, w = (28, 28) if side == 28 else (rng.choice([40, 112]), rng.choice([40, 112]))
            img = Image.fromarray(_noise(rng, np_rng, h, w))
        else:
            img = Image.new("L", (side, side), 0)
            draw = ImageDraw.Draw(img)
            for _ in range(rng.randint(1, 5)):
                xs, ys = sorted(rng.sample(range(side), 2)), sorted(rng.sample(range(side), 2))
                if i % 3 == 1:
                    shape = rng.choice([draw.rectangle, draw.ellipse])
                    shape((xs[0], ys[0], xs[1], ys[1]), fill=rng.randint(60, 255))
                else:
                    draw.line([(rng.randrange(side), rng.randrange(side)) for _ in range(3)],
                              fill=rng.randint(120, 255), width=rng.randint(1, side // 10))
        out[i] = np.asarray(img) if img.size == (28, 28) else canonicalise(img, style)
    return out


def strips(images: torch.Tensor, n: int, style: str, seed: int = SEED) -> np.ndarray:
    """n canonicalised strips of 2-4 training images side by side (a number, several items)."""
    from serve_app.imaging import canonicalise

    rng = random.Random(seed)
    out = np.empty((n, 28, 28), np.uint8)
    for i in range(n):
        row = np.concatenate([images[rng.randrange(len(images))].numpy()
                              for _ in range(rng.randint(2, 4))], 1)
        out[i] = canonicalise(Image.fromarray(np.pad(row, 4)), style)
    return out


def fit_logistic(pos: torch.Tensor, neg: torch.Tensor) -> dict:
    """L2-regularised logistic regression (negatives = 1) on standardised features."""
    x = torch.cat([pos, neg]).float()
    y = torch.cat([torch.zeros(len(pos)), torch.ones(len(neg))])
    mean, std = x.mean(0), x.std(0) + 1e-6
    x = (x - mean) / std
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=300)

    def loss() -> torch.Tensor:
        opt.zero_grad()
        value = F.binary_cross_entropy_with_logits(x @ w + b, y) + WEIGHT_DECAY * (w * w).sum()
        value.backward()
        return value

    opt.step(loss)
    return {"feature_mean": mean, "feature_std": std, "weight": w.detach(),
            "bias": float(b.detach())}


def fit(checkpoint: str | Path, data_dir: str | Path, expected: dict | None = None) -> dict:
    """The `ood` metadata for a checkpoint: detector parameters, threshold and its provenance."""
    torch.manual_seed(SEED)
    model, meta = load_checkpoint(checkpoint)
    dataset, other = meta["dataset"], OTHER[meta["dataset"]]
    for name in (dataset, other):
        data.prepare(name, data_dir, expected=expected)
    train = data.load_split(dataset, data_dir, train=True)
    n_val = min(VAL, len(train.labels) // 5)
    fit_x, val_x = train.images[:-n_val], train.images[-n_val:]
    pos = fit_x[torch.randperm(len(fit_x))[:POSITIVES]]
    negatives = {
        f"{other} training images 0..{OTHER_NEGATIVES - 1}":
            data.load_split(other, data_dir, train=True).images[:OTHER_NEGATIVES],
        "synthetic noise, shapes and strokes": synthetic_negatives(SYNTHETIC, meta["style"]),
        f"strips of 2-4 {dataset} training images": strips(fit_x, STRIPS, meta["style"]),
    }
    neg_feats = {k: features(model, meta, v) for k, v in negatives.items()}
    ood = {"method": "logistic regression on frozen features",
           **fit_logistic(features(model, meta, pos), torch.cat(list(neg_feats.values())))}
    val_scores = ood_score(ood, features(model, meta, val_x))
    ood["threshold"] = float(torch.quantile(val_scores.double(), KEEP))
    train_declined = {k: round(float((ood_score(ood, f) > ood["threshold"]).float().mean()), 4)
                      for k, f in neg_feats.items()}
    return {**ood, "features": "penultimate layer + per-channel mean/std (block 1) and "
                               "mean/max (block 2) of the conv outputs",
            "score": "the regression's logit; declined above the threshold",
            "fit_split": f"{len(pos)} of training images 0..{len(fit_x) - 1}",
            "threshold_split": f"training images {len(fit_x)}..{len(train.labels) - 1} "
                               f"(held out of the fit), keeps {KEEP:.1%}",
            "weights_saw_threshold_split": True,
            "negatives": list(negatives), "negatives_declined": train_declined}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.ood", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="e.g. models/mnist_cnn.pt (rewritten in place)")
    p.add_argument("--data-dir", default="data", help="torchvision data root (default: data/)")
    args = p.parse_args(argv)
    try:
        ood = fit(args.checkpoint, args.data_dir)
    except (data.DataError, CheckpointError) as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2
    sha = rewrite_metadata(args.checkpoint, ood=ood)
    print(f"{args.checkpoint}: {ood['method']}, threshold {ood['threshold']:.3f} "
          f"({ood['threshold_split']}); negatives declined {ood['negatives_declined']}; "
          f"sha256 {sha[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
