"""The classifier's inference runtime: ONNX Runtime when the checkpoint has a current export
(training/export.py), torch otherwise. Both give training.decision the same two arrays.

The checkpoint (.pt) stays the model's identity: its sha256 is the served version, and an export
is used only if it was made from exactly that file. So `make serve` on the committed models runs
ONNX Runtime without torch in the replica (less memory, a faster start, 3-4x faster forward
passes on one thread), while a freshly trained or hot-swapped checkpoint without an export is
still served, by torch, with one log line saying how to export it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger("ray.serve")
ONNX_FORMAT = "vision-ai-onnx/1"  # training/export.py's FORMAT, without importing torch
OOD_ARRAYS = ("feature_mean", "feature_std", "weight")  # the detector's parameters (training/ood.py)


class OnnxModel:
    runtime = "onnxruntime"

    def __init__(self, onnx_bytes: bytes, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One thread per replica, as with torch: replicas, not intra-op threads, use the cores.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(onnx_bytes, options,
                                             providers=["CPUExecutionProvider"])
        # training/export.py's JSON, read by ONNX Runtime itself (no `onnx` package needed here).
        self.metadata = self._session.get_modelmeta().custom_metadata_map

    def scores(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """N x 28 x 28 uint8 -> (features, logits), as training.model.scores."""
        feats, logits = self._session.run(None, {"pixels": np.ascontiguousarray(pixels, np.uint8)})
        return feats, logits


class TorchModel:
    runtime = "torch"

    def __init__(self, path: Path, threads: int):
        import torch

        from training.model import features_and_logits, load_checkpoint

        torch.set_num_threads(threads)
        self._net, self.meta = load_checkpoint(path)
        self._forward = features_and_logits

    def scores(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats, logits = self._forward(self._net, self.meta, pixels)
        return feats.numpy(), logits.numpy()


def _export_of(path: Path, sha256: str, threads: int) -> tuple[OnnxModel, dict] | None:
    """The ONNX export beside the checkpoint and its metadata, if it was made from this file."""
    onnx_path = path.with_suffix(".onnx")
    if not onnx_path.is_file():
        return None
    try:
        model = OnnxModel(onnx_path.read_bytes(), threads)
        doc = json.loads(model.metadata["vision_ai"])
    except Exception as err:  # an unreadable export is not fatal: torch serves the checkpoint
        logger.warning("%s is not a readable export (%s); serving %s with torch",
                       onnx_path, err, path)
        return None
    if doc.get("format") != ONNX_FORMAT or doc.get("source_sha256") != sha256:
        logger.warning("%s was exported from another checkpoint than %s (sha256 %s); serving "
                       "with torch. Export again: python -m training.export %s",
                       onnx_path, path, sha256[:12], path)
        return None
    return model, doc["metadata"]


def load(path: str | Path, threads: int = 1) -> tuple[OnnxModel | TorchModel, dict]:
    """(model with .scores and .runtime, the checkpoint's metadata incl. sha256)."""
    path = Path(path)
    if path.is_file():
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        export = _export_of(path, sha256, threads)
        if export is not None:
            model, meta = export
            if ood := meta.get("ood"):  # JSON lists -> arrays once, not per batch
                meta["ood"] = {**ood, **{k: np.asarray(ood[k], np.float32) for k in OOD_ARRAYS}}
            return model, {**meta, "sha256": sha256}
    model = TorchModel(path, threads)  # raises training.model.CheckpointError when unusable
    return model, model.meta
