"""Training settings: config/train.yaml per dataset, overridden by command-line flags."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

from vision_core.paths import ROOT, resolve
from vision_core.registry import MODELS

CONFIG = ROOT / "config" / "train.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__)
    p.add_argument("dataset", choices=list(MODELS))
    p.add_argument("--data-dir", default="data", help="torchvision data root (default: data/)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--num-workers", type=int, help="Ray Train workers (data-parallel)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--output", help="final checkpoint (default: models/<dataset>_cnn.pt)")
    p.add_argument("--init", help="fine-tune from this checkpoint's weights")
    p.add_argument("--resume", action="store_true",
                   help="continue the last interrupted run of this dataset from its checkpoint")
    p.add_argument("--storage-path", help="where Ray Train keeps run checkpoints (default: runs/)")
    p.add_argument("--smoke-test", action="store_true",
                   help="tiny synthetic IDX data, 1 epoch: checks the pipeline, not the model")
    p.add_argument("--config", default=str(CONFIG))
    return p.parse_args(argv)


def build(args: argparse.Namespace) -> dict:
    """Merge yaml common + dataset section (+ smoke section) + flags into one plain dict."""
    raw = yaml.safe_load(Path(args.config).read_text())
    cfg = {**raw["common"], **raw[args.dataset]}
    if args.smoke_test:
        cfg.update(raw["smoke"])
    for flag in ("epochs", "num_workers", "batch_size", "lr", "storage_path"):
        if getattr(args, flag) is not None:
            cfg[flag] = getattr(args, flag)
    cfg.update(dataset=args.dataset, data_dir=str(Path(args.data_dir).resolve()),
               init=str(Path(args.init).resolve()) if args.init else None,
               smoke_test=args.smoke_test)
    cfg["storage_path"] = str(Path(cfg["storage_path"]).resolve())
    # A given path is relative to the cwd, as usual for a CLI; the default is the project's.
    cfg["output"] = str(Path(args.output).resolve()) if args.output \
        else str(resolve(MODELS[args.dataset].checkpoint))
    return cfg


def git_commit() -> str:
    """The code version recorded in checkpoints; 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "training", "config"],
                               cwd=ROOT, capture_output=True, text=True, timeout=5).stdout
        return out.stdout.strip() + ("-dirty" if dirty.strip() else "") if out.returncode == 0 \
            else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def checkpoint_cli(prog: str, doc: str | None, checkpoint_help: str) -> argparse.ArgumentParser:
    """The command line of the tools that take one checkpoint and the data (evaluate, ood)."""
    p = argparse.ArgumentParser(prog=prog, description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help=checkpoint_help)
    p.add_argument("--data-dir", default="data", help="torchvision data root (default: data/)")
    return p


def fail(err: Exception) -> int:
    """A user's error (bad data, a bad checkpoint) as one line on stderr, and exit code 2: the
    message already says what to fix, a traceback would bury it."""
    print("error: " + " ".join(str(err).split()), file=sys.stderr)
    return 2
