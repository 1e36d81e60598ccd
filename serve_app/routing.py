"""/classify's rule: which model an image belongs to, from every classifier's decision."""

from __future__ import annotations

import numpy as np


def pick(decisions: dict[str, dict]) -> list[str | None]:
    """Per image, the model that accepts it with the largest margin (training.decision.decide);
    None when no model accepts it. `decisions` maps model name -> its predict() answer."""
    names = list(decisions)
    margins = np.stack([np.where(decisions[m]["accepted"], decisions[m]["margin"], -np.inf)
                        for m in names])
    best = margins.argmax(0)
    return [names[b] if np.isfinite(margins[b, i]) else None for i, b in enumerate(best)]
