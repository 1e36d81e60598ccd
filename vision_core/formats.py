"""The file formats that training writes and serving reads, named once.

A checkpoint (.pt, written by training.model.save_checkpoint) is the model's identity: its
sha256 is the served version. Its ONNX export (.onnx beside it, written by training/export.py)
carries the checkpoint's metadata as JSON under METADATA_KEY, with the sha256 of the checkpoint
it came from, and is served only while that still matches (vision_core.onnx_model).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CHECKPOINT_FORMAT = "vision-ai-cnn/1"  # bumped whenever the checkpoint layout changes
ONNX_FORMAT = "vision-ai-onnx/1"
METADATA_KEY = "vision_ai"  # the ONNX metadata_props entry that holds the JSON
# The fitted out-of-domain detector's parameter arrays in a checkpoint's `ood` metadata
# (training/ood.py fits them; vision_core.decision applies them).
OOD_ARRAYS = ("feature_mean", "feature_std", "weight")
VERSION_HEX = 12  # the served version: this many leading hex digits of the checkpoint's sha256


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, read in chunks (datasets are tens of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def version(sha256: str) -> str:
    """The version a checkpoint is served as, from its sha256."""
    return sha256[:VERSION_HEX]
