"""vision_core/decision.py: /classify picks the accepting model with the largest margin (the accept
rule itself is tested on fitted checkpoints in tests/training/test_ood.py)."""

from __future__ import annotations

import numpy as np

from vision_core.decision import pick


def test_the_accepting_model_with_the_largest_margin_wins_and_none_means_null():
    decisions = {
        "mnist": {"accepted": np.array([True, True, False, False]),
                  "margin": np.array([2.0, 0.5, -1.0, 9.0])},  # 9.0 but declined (blank)
        "fmnist": {"accepted": np.array([True, True, True, False]),
                   "margin": np.array([1.0, 3.0, 0.1, -2.0])},
    }
    assert pick(decisions) == ["mnist", "fmnist", "fmnist", None]
