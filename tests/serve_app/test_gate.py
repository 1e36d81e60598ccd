"""serve_app/gate.py: the committed models pass their gate sets; random weights, permuted labels
and a checkpoint with no recorded accuracy do not."""

from __future__ import annotations

import numpy as np
import pytest

from serve_app import gate
from vision_core import onnx_model
from vision_core.paths import resolve
from vision_core.registry import MODELS


@pytest.mark.parametrize("name", list(MODELS))
def test_the_served_models_pass_their_gate(name) -> None:
    model, meta = onnx_model.load(resolve(MODELS[name].checkpoint))
    verdict = gate.check(model, meta, name, margin=0.03)
    assert verdict["passed"] and verdict["n"] >= 500
    assert verdict["accuracy"] >= meta["test_accuracy"] - 0.03


class Shuffled:
    """The served model with its outputs permuted: what a checkpoint with permuted labels does."""

    def __init__(self, model, order):
        self._model, self._order = model, order

    def scores(self, pixels):
        feats, logits = self._model.scores(pixels)
        return feats, logits[:, self._order]


class Random:
    def scores(self, pixels):
        rng = np.random.default_rng(0)
        return None, rng.normal(size=(len(pixels), 10))


def test_permuted_labels_random_weights_and_no_recorded_accuracy_fail() -> None:
    model, meta = onnx_model.load(resolve(MODELS["mnist"].checkpoint))
    order = np.roll(np.arange(10), 1)
    for bad in (Shuffled(model, order), Random()):
        verdict = gate.check(bad, meta, "mnist", margin=0.03)
        assert not verdict["passed"] and verdict["accuracy"] < 0.2
        assert "FAILED" in verdict["message"] and "recorded test accuracy" in verdict["message"]
    unrecorded = {k: v for k, v in meta.items() if k != "test_accuracy"}
    assert not gate.check(model, unrecorded, "mnist", margin=0.03)["passed"]
