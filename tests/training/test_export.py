"""training/export.py: the ONNX export answers as torch does, describes itself, and the committed
exports are current for the committed checkpoints."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from training.export import export
from training.model import features_and_logits, load_checkpoint
from vision_core.formats import METADATA_KEY, file_sha256
from vision_core.formats import ONNX_FORMAT as FORMAT
from vision_core.paths import ROOT


def session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("n", [1, 7])
def test_the_export_answers_as_torch_within_1e_5(tiny_checkpoint, n) -> None:
    out = export(tiny_checkpoint)
    assert out == tiny_checkpoint.with_suffix(".onnx")
    pixels = np.random.default_rng(n).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    model, meta = load_checkpoint(tiny_checkpoint)
    want = [t.numpy() for t in features_and_logits(model, meta, pixels)]
    got = session(out).run(None, {"pixels": pixels})
    for w, g in zip(want, got, strict=True):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-5)


def test_the_export_carries_the_checkpoints_metadata(tiny_checkpoint) -> None:
    out = export(tiny_checkpoint)
    doc = json.loads(session(out).get_modelmeta().custom_metadata_map[METADATA_KEY])
    _, meta = load_checkpoint(tiny_checkpoint)
    assert doc["format"] == FORMAT
    assert doc["source_sha256"] == file_sha256(tiny_checkpoint)
    assert doc["metadata"]["labels"] == meta["labels"]
    assert doc["metadata"]["test_accuracy"] == 0.9 and doc["metadata"]["style"] == "digit"


@pytest.mark.parametrize("name", ["mnist", "fmnist"])
def test_the_committed_exports_are_current(name) -> None:
    """A checkpoint changed without `make export` would be refused by the service: caught here."""
    pt, onnx_path = ROOT / f"models/{name}_cnn.pt", ROOT / f"models/{name}_cnn.onnx"
    doc = json.loads(session(onnx_path).get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert doc["source_sha256"] == file_sha256(pt)
    assert doc["metadata"]["ood"]["threshold"] == load_checkpoint(pt)[1]["ood"]["threshold"]
