"""training/ood.py and the decision in training/model.py: fit on synthetic data, metadata
round-trips through the checkpoint, and the decision's contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training import data, ood
from training.model import decide, load_checkpoint, ood_score, rewrite_metadata
from training.synthetic import write_dataset
from vision_core.formats import file_sha256


@pytest.fixture
def fitted(tmp_path: Path, tiny_checkpoint: Path, monkeypatch) -> tuple[Path, dict, Path]:
    """(checkpoint with a fitted `ood` entry, that entry, data root) on synthetic data."""
    root = tmp_path / "data"
    expected = {**write_dataset(root, "mnist", n_train=80, n_test=20),
                **write_dataset(root, "fmnist", n_train=80, n_test=20)}
    for name, small in (("SYNTHETIC", 30), ("STRIPS", 10), ("OTHER_NEGATIVES", 40),
                        ("LETTERS", 20), ("CROPS", 10), ("PRINTED_DIGITS", 10)):
        monkeypatch.setattr(ood, name, small)
    fitted = ood.fit(tiny_checkpoint, root, expected=expected)
    rewrite_metadata(tiny_checkpoint, ood=fitted)
    return tiny_checkpoint, fitted, root


def test_metadata_round_trips_and_weights_are_untouched(fitted, tiny_checkpoint) -> None:
    path, fitted_ood, _ = fitted
    model, meta = load_checkpoint(path)
    got = meta["ood"]
    assert got["method"] == "logistic regression on frozen features"
    assert got["threshold"] == fitted_ood["threshold"]
    for key in ("feature_mean", "feature_std", "weight"):
        assert torch.equal(got[key], fitted_ood[key])
    assert got["weights_saw_threshold_split"] is True
    assert "training images 64..79" in got["threshold_split"]  # the last fifth of 80 held out
    assert meta["sha256"] == file_sha256(path)
    assert meta["test_accuracy"] == 0.9  # the rest of the metadata survives the rewrite


def test_threshold_keeps_the_chosen_share_of_held_out_images(fitted) -> None:
    path, _, root = fitted
    model, meta = load_checkpoint(path)
    held_out = data.load_split("mnist", root, train=True).images[-16:]
    scores = ood_score(meta["ood"], ood.features(model, meta, held_out))
    assert (scores <= meta["ood"]["threshold"]).float().mean() >= ood.KEEP - 1 / len(scores)


def test_decide_gives_flags_reasons_and_margins_from_one_pass(fitted) -> None:
    path, _, root = fitted
    model, meta = load_checkpoint(path)
    pixels = data.load_split("mnist", root, train=False).images[:6].numpy()
    blank = np.array([True, False, False, False, False, False])
    out = decide(model, meta, pixels, blank)
    assert out["probabilities"].shape == (6, 10)
    assert np.allclose(out["probabilities"].sum(1), 1, atol=1e-5)
    assert out["reasons"][0] == "blank" and not out["accepted"][0]
    for accepted, reason, margin in zip(out["accepted"][1:], out["reasons"][1:],
                                        out["margin"][1:], strict=True):
        assert accepted == (reason is None) == (margin >= 0)
        assert reason in (None, "out_of_domain")


def test_a_checkpoint_without_a_detector_declines_blanks_only(tiny_checkpoint: Path) -> None:
    model, meta = load_checkpoint(tiny_checkpoint)
    pixels = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    out = decide(model, meta, pixels, np.array([False, True, False]))
    assert out["accepted"].tolist() == [True, False, True]
    assert out["reasons"] == [None, "blank", None]
