"""The accept-or-decline rule on a forward pass's outputs, in numpy alone.

The ONNX export (served) and the torch model (training) both give the same two arrays, the
detector features and the logits, and this module turns them into the answer, so the accept rule
exists once and a replica never imports torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vision_core.formats import OOD_ARRAYS


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def ood_score(ood: dict, feats: np.ndarray) -> np.ndarray:
    """Per image, the detector's logit that it is out of domain (training/ood.py fits it):
    a logistic regression on the standardised features (training.model.scores).
    The parameters may be torch tensors (a .pt checkpoint) or lists (an ONNX export's JSON)."""
    mean, std, weight = (np.asarray(ood[k], np.float32) for k in OOD_ARRAYS)
    return ((np.asarray(feats, np.float32) - mean) / std) @ weight + np.float32(ood["bias"])


def decide(meta: dict, feats: np.ndarray, logits: np.ndarray, blank) -> dict[str, Any]:
    """One forward pass's outputs for N images -> "probabilities" [N, K], "accepted" [N] bool,
    "reasons" (None, "blank" or "out_of_domain") and "margin" [N] (threshold minus the
    detector's score: how far inside its domain an image is; /classify routes by it).

    `blank` (vision_core.imaging.blank) declines images without ink; the checkpoint's `ood`
    detector declines the rest when they are far from its domain. Checkpoints without `ood`
    metadata decline blanks only.
    """
    blank = np.asarray(blank, bool)
    ood = meta.get("ood")
    margin = (np.float32(ood["threshold"]) - ood_score(ood, feats)).astype(np.float32) if ood \
        else np.zeros(len(feats), np.float32)
    far = margin < 0
    return {"probabilities": softmax(np.asarray(logits, np.float32)),
            "accepted": ~(blank | far),
            "reasons": ["blank" if b else "out_of_domain" if f else None
                        for b, f in zip(blank.tolist(), far.tolist(), strict=True)],
            "margin": margin}


def pick(decisions: dict[str, dict]) -> list[str | None]:
    """/classify's rule. Per image, the model that accepts it with the largest margin (`decide`);
    None when no model accepts it. `decisions` maps model name -> its `decide` answer (the
    ingress asks every classifier; training.ood_eval measures the same rule in-process)."""
    names = list(decisions)
    margins = np.stack([np.where(decisions[m]["accepted"], decisions[m]["margin"], -np.inf)
                        for m in names])
    best = margins.argmax(0)
    return [names[b] if np.isfinite(margins[b, i]) else None for i, b in enumerate(best)]
