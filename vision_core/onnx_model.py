"""The loader of what the classifier replicas serve: a checkpoint's ONNX export, on ONNX Runtime.

The checkpoint (.pt) stays the model's identity: its sha256 is the served version. Its export
(.onnx beside it, training/export.py) is served only if it was made from exactly that file, so a
retrained or re-fitted checkpoint is never served with stale weights. A checkpoint without a
current export is refused with the command that makes one: serving never imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vision_core.formats import METADATA_KEY, ONNX_FORMAT, OOD_ARRAYS, file_sha256


class ModelError(ValueError):
    """The file cannot be served; the message says why and what to run."""


class OnnxModel:
    runtime = "onnxruntime"

    def __init__(self, onnx_bytes: bytes, threads: int):
        import onnxruntime as ort  # here, not at import: building the app imports this module

        options = ort.SessionOptions()
        # One thread per replica: replicas, not intra-op threads, use the cores.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(onnx_bytes, options,
                                             providers=["CPUExecutionProvider"])
        # training/export.py's JSON, read by ONNX Runtime itself (no `onnx` package needed here).
        self.metadata = self._session.get_modelmeta().custom_metadata_map

    def scores(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """N x 28 x 28 uint8 -> (detector features, logits), as training.model.scores."""
        feats, logits = self._session.run(None, {"pixels": np.ascontiguousarray(pixels, np.uint8)})
        return feats, logits


def export_path(checkpoint: str | Path) -> Path:
    return Path(checkpoint).with_suffix(".onnx")


def load(checkpoint: str | Path, threads: int = 1) -> tuple[OnnxModel, dict]:
    """(model with .scores and .runtime, the checkpoint's metadata incl. its sha256), from the
    checkpoint's current ONNX export. ModelError when there is none."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ModelError(f"checkpoint not found: {checkpoint}")
    sha256 = file_sha256(checkpoint)
    onnx_path = export_path(checkpoint)
    fix = f"export it: python -m training.export {checkpoint}"
    if not onnx_path.is_file():
        raise ModelError(f"{checkpoint} has no ONNX export ({onnx_path.name}); {fix}")
    try:
        model = OnnxModel(onnx_path.read_bytes(), threads)
        doc = json.loads(model.metadata[METADATA_KEY])
    except Exception as err:  # ONNX Runtime raises its own types for a broken file
        raise ModelError(f"{onnx_path} is not a readable export ({type(err).__name__}: {err}); "
                         f"{fix}") from None
    if doc.get("format") != ONNX_FORMAT or doc.get("source_sha256") != sha256:
        raise ModelError(f"{onnx_path} was exported from another checkpoint than {checkpoint} "
                         f"(sha256 {sha256[:12]}); {fix}")
    meta = doc["metadata"]
    if ood := meta.get("ood"):  # JSON lists -> arrays once, not per batch
        meta["ood"] = {**ood, **{k: np.asarray(ood[k], np.float32) for k in OOD_ARRAYS}}
    return model, {**meta, "sha256": sha256}
