"""training/report.py: the figures are written as PNGs, and a missing history is skipped."""

from __future__ import annotations

from pathlib import Path

import torch

from training import report

LABELS = [str(i) for i in range(10)]


def test_confusion_png(tmp_path: Path) -> None:
    confusion = torch.eye(10, dtype=torch.long) * 5
    confusion[3, 8] = 2
    path = report.confusion_png(confusion, LABELS, tmp_path / "new" / "c.png", "title")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_confusion_png_tolerates_empty_rows(tmp_path: Path) -> None:
    assert report.confusion_png(torch.zeros(10, 10, dtype=torch.long), LABELS,
                                tmp_path / "c.png", "t").is_file()


def test_training_png_single_epoch(tmp_path: Path) -> None:
    history = [{"epoch": 1, "train_loss": 1.0, "test_loss": 0.9, "test_accuracy": 0.7}]
    assert report.training_png(history, tmp_path / "t.png", "t").is_file()


def test_training_png_skips_without_history(tmp_path: Path) -> None:
    assert report.training_png([], tmp_path / "t.png", "t") is None
    assert not (tmp_path / "t.png").exists()
