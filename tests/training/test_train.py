"""End-to-end `--smoke-test` runs of training/train.py through Ray Train, on synthetic IDX data.

Each run is a subprocess (as a user would start it) that joins the session's Ray instance through
RAY_ADDRESS, so Ray starts once per test session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.model import load_checkpoint
from vision_core.formats import file_sha256
from vision_core.paths import ROOT

pytestmark = pytest.mark.ray


def _train(ray_address: str, *args: str) -> str:
    """Run `python -m training.train ARGS`; return its combined output, failing with it shown."""
    env = {**os.environ, "RAY_ADDRESS": ray_address}
    proc = subprocess.run([sys.executable, "-m", "training.train", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope="module")
def mnist_smoke(ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The MNIST smoke checkpoint, shared with the fine-tune test that starts from it."""
    tmp = tmp_path_factory.mktemp("smoke")
    out = _train(ray_address, "mnist", "--smoke-test", "--output", str(tmp / "mnist.pt"),
                 "--storage-path", str(tmp / "runs"))
    return tmp / "mnist.pt", out


def test_mnist_smoke_writes_a_loadable_checkpoint(mnist_smoke: tuple[Path, str]) -> None:
    path, out = mnist_smoke
    _, meta = load_checkpoint(path)
    assert meta["dataset"] == "mnist"
    assert meta["parent_sha256"] is None
    assert len(meta["history"]) == 1 and 0.0 <= meta["test_accuracy"] <= 1.0
    assert meta["train_config"]["smoke_test"] is True
    assert "[mnist] epoch 1/1" in out
    assert f"saved {path}" in out


def test_fmnist_finetune_smoke_records_its_parent(mnist_smoke: tuple[Path, str],
                                                  ray_address: str, tmp_path: Path) -> None:
    parent, _ = mnist_smoke
    out = _train(ray_address, "fmnist", "--smoke-test", "--init", str(parent),
                 "--output", str(tmp_path / "fmnist.pt"), "--storage-path", str(tmp_path / "runs"))
    _, meta = load_checkpoint(tmp_path / "fmnist.pt")
    assert meta["dataset"] == "fmnist"
    assert meta["labels"][0] == "T-shirt/top"
    assert meta["parent_sha256"] == file_sha256(parent)
    assert "[fmnist] epoch 1/1" in out
