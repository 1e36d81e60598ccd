"""Fixtures for the training tests: synthetic IDX data and tiny checkpoints, no real dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.model import Net, save_checkpoint
from training.synthetic import write_dataset

TINY_ARCH = {"channels": [4, 8], "hidden": 16, "dropout": 0.0, "num_classes": 10}


@pytest.fixture
def synthetic(tmp_path: Path) -> tuple[Path, dict]:
    """(data root, expected checksums) of a small synthetic MNIST in the real IDX layout."""
    root = tmp_path / "data"
    return root, write_dataset(root, "mnist", n_train=64, n_test=40)


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    """An untrained, small-channel MNIST checkpoint with the metadata training writes."""
    torch.manual_seed(0)
    path = tmp_path / "models" / "tiny.pt"
    history = [{"epoch": e, "train_loss": 2.0 / e, "test_loss": 2.1 / e,
                "test_accuracy": 0.3 * e, "images_per_s": 1000.0} for e in (1, 2, 3)]
    save_checkpoint(path, Net(**TINY_ARCH), TINY_ARCH, "mnist", test_accuracy=0.9,
                    history=history, data_sha256={"train-images-idx3-ubyte": "ab" * 32},
                    train_config={"epochs": 3, "batch_size": 32, "lr": 0.003},
                    parent_sha256=None, code_version="test")
    return path
