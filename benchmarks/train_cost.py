"""What Ray Train costs on one small machine: one training epoch, timed three ways.

    python benchmarks/train_cost.py [--data-dir data] [--dataset mnist] [--limit 60000]

Same model, data, augmentation and batch size, 2 CPUs in total each time:
  * plain PyTorch, torch threads = 2, calling training.train.train_epoch;
  * Ray Train, 1 worker x 2 CPUs, and 2 workers x 1 CPU, running training.train.train_func
    with epochs=1, so the benchmark measures the training code itself, not a copy.
Prints a Markdown table for the README. Not a test: it reads the real dataset.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import ray
import ray.train
import ray.train.torch
import torch

from training import data, settings
from training.model import Net
from training.synthetic import _write_idx as write_idx  # the project's one IDX writer
from training.train import evaluate_split, make_optimizer, splits, train_epoch, train_func
from vision_core.registry import MODELS

WORK = settings.ROOT / "benchmarks" / ".work"  # git-ignored: subsets and Ray Train run folders
CPUS = 2


def subset_dir(dataset: str, data_dir: str, limit: int) -> tuple[str, int]:
    """(data root, train images) holding the first `limit` train and test images for train_func."""
    train, test, _ = data.load(dataset, data_dir, download=False)  # verifies official checksums
    if limit >= len(train.labels):
        return data_dir, len(train.labels)
    raw = WORK / f"{dataset}-{limit}" / data.folder(dataset) / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    arrays = (train.images[:limit], train.labels[:limit], test.images[:limit], test.labels[:limit])
    for name, array in zip(data.RAW_FILES, arrays, strict=True):
        write_idx(raw / name, array.numpy())
    return str(raw.parent.parent), limit


def plain(cfg: dict) -> tuple[float, float]:
    """(images/s of the epoch, wall seconds incl. data load and test evaluation) without Ray."""
    t_wall = time.perf_counter()
    torch.manual_seed(cfg["seed"])
    torch.set_num_threads(CPUS)
    _, test, loader = splits(cfg)  # the same data and loader as the Ray Train run
    model = Net(**cfg["arch"])
    opt, sched = make_optimizer(model, cfg, steps_per_epoch=len(loader))
    t0 = time.perf_counter()
    _, seen = train_epoch(model, loader, opt, sched, cfg)
    rate = seen / (time.perf_counter() - t0)
    spec = MODELS[cfg["dataset"]]
    evaluate_split(model, test, spec.mean, spec.std)
    return rate, time.perf_counter() - t_wall


def ray_train(cfg: dict, workers: int) -> tuple[float, float]:
    """(images/s of the epoch as train_func reports it, wall seconds of trainer.fit())."""
    per_worker = CPUS // workers
    trainer = ray.train.torch.TorchTrainer(
        train_func, train_loop_config={**cfg, "num_workers": workers,
                                       "threads_per_worker": per_worker},
        scaling_config=ray.train.ScalingConfig(num_workers=workers,
                                               resources_per_worker={"CPU": per_worker}),
        run_config=ray.train.RunConfig(name=f"cost-{workers}w-{time.strftime('%Y%m%d-%H%M%S')}",
                                       storage_path=str(WORK / "runs")),
    )
    t0 = time.perf_counter()
    result = trainer.fit()
    return result.metrics["images_per_s"], time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="data")
    p.add_argument("--dataset", choices=list(MODELS), default="mnist")
    p.add_argument("--limit", type=int, default=60_000, help="training images (default: all)")
    args = p.parse_args(argv)
    cfg = settings.build(settings.parse_args([args.dataset, "--data-dir", args.data_dir,
                                              "--epochs", "1"]))
    try:
        cfg["data_dir"], n = subset_dir(args.dataset, cfg["data_dir"], args.limit)
    except data.DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = [("plain PyTorch, 2 threads", *plain(cfg))]
    # A fresh local Ray (or RAY_ADDRESS); worker logs off so the table stays pasteable.
    ray.init(log_to_driver=False)
    if ray.cluster_resources().get("CPU", 0) < CPUS:
        print(f"error: the Ray cluster needs {CPUS} CPUs", file=sys.stderr)
        return 2
    rows.append(("Ray Train, 1 worker x 2 CPUs", *ray_train(cfg, workers=1)))
    rows.append(("Ray Train, 2 workers x 1 CPU", *ray_train(cfg, workers=2)))
    print(f"\n{args.dataset}, {n:,} training images, batch {cfg['batch_size']}, 2 CPUs; "
          f"torch {torch.__version__}, ray {ray.__version__}, {os.cpu_count()} cores on the "
          f"machine, {time.strftime('%Y-%m-%d')}\n")
    print("| setup | s / epoch | images / s | time vs plain | wall s (start-up, epoch, eval) |")
    print("|---|---:|---:|---:|---:|")
    base = n / rows[0][1]
    for name, rate, wall in rows:
        print(f"| {name} | {n / rate:.1f} | {rate:,.0f} | {n / rate / base:.2f}x | {wall:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
