"""The gate a candidate version passes at load, before it receives any traffic: its accuracy on
the model's gate set (labelled official test images bundled with the service, written by
training/gate_set.py) must reach its checkpoint's recorded test accuracy minus a margin.

Random weights, permuted labels or a broken export fail here; a model that is only worse on real
inputs passes, and the live decision catches it (rollout_rule.py).
"""

from __future__ import annotations

import numpy as np

from vision_core.paths import resolve
from vision_core.registry import MODELS


def check(model, meta: dict, name: str, margin: float) -> dict:
    """{"passed", "accuracy", "required", "n", "message"} for a loaded model of `name`."""
    with np.load(resolve(MODELS[name].gate_set)) as gate:
        pixels, labels = gate["pixels"], gate["labels"]
    _, logits = model.scores(pixels)
    accuracy = float((np.asarray(logits).argmax(1) == labels).mean())
    recorded = meta.get("test_accuracy")
    if recorded is None:
        return {"passed": False, "accuracy": accuracy, "required": None, "n": len(labels),
                "message": "the checkpoint records no test accuracy to hold it to"}
    required = float(recorded) - margin
    passed = accuracy >= required
    return {"passed": passed, "accuracy": round(accuracy, 4), "required": round(required, 4),
            "n": len(labels),
            "message": f"gate {'passed' if passed else 'FAILED'}: {accuracy:.2%} right on "
                       f"{len(labels)} gate images, {'>=' if passed else '<'} {required:.2%} "
                       f"(recorded test accuracy {float(recorded):.2%} minus {margin:.2%})"}
