"""training/model_card.py: the card's sections follow the checkpoint's metadata."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from training.evaluation import Evaluation
from training.model_card import render
from vision_core.registry import MODELS


def _evaluation(tmp_path: Path, **meta: object) -> Evaluation:
    path = tmp_path / "m.pt"
    path.write_bytes(b"x" * 2048)
    spec = MODELS["fmnist"]
    base = {"dataset": "fmnist", "labels": list(spec.labels), "mean": spec.mean,
            "std": spec.std, "style": spec.style, "sha256": "f" * 64,
            "model_args": {"channels": (32, 64), "hidden": 256, "dropout": 0.3,
                           "num_classes": 10}}
    confusion = torch.eye(10, dtype=torch.long) * 9
    confusion[6, 0] = 3  # Shirt taken for T-shirt/top
    return Evaluation(path, {**base, **meta}, 1234, confusion, {"a": "1"})


def test_full_card(tmp_path: Path) -> None:
    card = render(_evaluation(tmp_path, test_accuracy=0.91, parent_sha256="e" * 64,
                              code_version="abc123", data_sha256={"a": "1"},
                              train_config={"epochs": 14, "data_dir": "/home/x/data",
                                            "augment": {"hflip": True}}),
                  {"confusion": "m_confusion.png", "training": "m_training.png"})
    assert "# Model card: m.pt" in card
    assert "`Net(channels=(32, 64), hidden=256, dropout=0.3, num_classes=10)`" in card
    assert "| parameters | 1,234 |" in card and "2,048 bytes" in card
    assert "fine-tuned from sha256 `" + "e" * 64 in card and "`abc123`" in card
    assert "| 6 | Shirt | 75.00% | 12 | T-shirt/top (3) |" in card
    assert "(recorded at training: 91.00%)" in card
    assert "![confusion matrix](m_confusion.png)" in card
    assert "![training curves](m_training.png)" in card
    assert "hflip=True" in card and "/home/x/data" not in card  # no machine-local paths
    assert "match these" in card and "## Limitations" in card and "Fashion-MNIST" in card


def test_sparse_metadata_still_renders(tmp_path: Path) -> None:
    card = render(_evaluation(tmp_path), {"confusion": "c.png", "training": None})
    for missing in ("trained from scratch", "No per-epoch history",
                    "No training config recorded.", "No data checksums recorded"):
        assert missing in card


def test_out_of_domain_section_follows_the_metadata_and_the_measured_figures(tmp_path: Path):
    ood = {"method": "logistic regression on frozen features", "threshold": -0.25,
           "fit_split": "fit", "threshold_split": "held out", "negatives": ["noise"],
           "weights_saw_threshold_split": True}
    ev = _evaluation(tmp_path, ood=ood)
    results = {"n": 300, "declined": {"photo": 0.98}, "kept": {"test": {
        "kept": 0.996, "accuracy": 0.9368, "classify_routed": 0.996, "classify_correct": 0.934}}}
    card = render(replace(ev, ood_results=results), {"confusion": "c.png", "training": None})
    assert "| threshold | `-0.2500` |" in card and "**Disclosure:**" in card
    assert "| photo | 98.0% |" in card and "| test | 99.6% | 93.68% | 99.6% | 93.4% |" in card
    assert "in-process" in card  # training.evaluate measures them with training/ood_eval.py
    over_http = render(replace(ev, ood_results={**results, "through": "HTTP"}),
                       {"confusion": "c.png", "training": None})
    assert "through HTTP" in over_http and "in-process" not in over_http
    assert "No out-of-domain figures" in render(ev, {"confusion": "c.png", "training": None})
    bare = render(_evaluation(tmp_path), {"confusion": "c.png", "training": None})
    assert "No out-of-domain detector in this checkpoint" in bare
