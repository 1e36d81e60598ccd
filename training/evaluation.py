"""The result of scoring one checkpoint on one test split (training/evaluate.py makes it).

A leaf module: the evaluation and the model card it feeds (model_card.py) both import it, and
neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Evaluation:
    """One checkpoint scored on one test split; everything the outputs below need."""

    checkpoint: Path
    meta: dict  # the checkpoint's metadata (see training.model.load_checkpoint)
    num_params: int
    confusion: torch.Tensor  # K x K counts: row = true label, column = prediction
    data_sha256: dict[str, str]  # checksums of the raw files evaluated on
    ood_results: dict | None = None  # training/ood_eval.py's figures for this file, if measured

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(self.confusion.trace()) / max(self.n, 1)

    def per_class(self) -> dict[str, float | None]:
        """Recall per label; None for a label absent from the split (tiny synthetic sets)."""
        totals = self.confusion.sum(1)
        return {label: float(self.confusion[k, k]) / int(totals[k]) if totals[k] else None
                for k, label in enumerate(self.meta["labels"])}

    def summary(self) -> dict:
        """The --json line: stable keys for scripts and CI."""
        return {"dataset": self.meta["dataset"], "accuracy": self.accuracy, "n": self.n,
                "per_class_accuracy": self.per_class(), "checkpoint": str(self.checkpoint),
                "checkpoint_sha256": self.meta["sha256"],
                "recorded_test_accuracy": self.meta.get("test_accuracy")}
