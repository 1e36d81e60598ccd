"""serve_app/runtime.py: the committed models run on ONNX Runtime without torch and decide as
torch does; a checkpoint without a current export is served by torch."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from serve_app.imaging import blank
from serve_app.runtime import load
from tests.conftest import golden
from tests.helpers import resaved_mnist
from training import decision
from training.model import decide as torch_decide
from training.model import load_checkpoint
from training.paths import ROOT


def pixels_of(dataset: str) -> np.ndarray:
    """The committed golden images already in dataset form (28 x 28)."""
    images = [np.asarray(Image.open(p).convert("L")) for p, _ in golden(dataset)]
    return np.stack([a for a in images if a.shape == (28, 28)])


@pytest.mark.parametrize("name", ["mnist", "fmnist"])
def test_committed_models_decide_as_torch_does(name) -> None:
    path = ROOT / f"models/{name}_cnn.pt"
    model, meta = load(path)
    assert model.runtime == "onnxruntime"
    net, torch_meta = load_checkpoint(path)
    assert meta["sha256"] == torch_meta["sha256"] and meta["labels"] == torch_meta["labels"]
    rng = np.random.default_rng(0)
    pixels = np.concatenate([pixels_of(name), rng.integers(0, 256, (8, 28, 28), np.uint8)])
    got = decision.decide(meta, *model.scores(pixels), blank(pixels))
    want = torch_decide(net, torch_meta, pixels, blank(pixels))
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(got["margin"], want["margin"], rtol=0, atol=1e-4)
    assert got["accepted"].tolist() == want["accepted"].tolist()
    assert got["reasons"] == want["reasons"]


def test_a_checkpoint_without_an_export_is_served_by_torch(tmp_path) -> None:
    path = tmp_path / "mnist_v2.pt"
    sha = resaved_mnist(path, note="no export")
    model, meta = load(path)
    assert model.runtime == "torch" and meta["sha256"] == sha


def test_a_stale_export_is_not_served(tmp_path, caplog) -> None:
    """An export made from another checkpoint (here: the committed one) beside a new file."""
    path = tmp_path / "mnist_cnn.pt"
    resaved_mnist(path, note="retrained")
    shutil.copy(ROOT / "models/mnist_cnn.onnx", tmp_path / "mnist_cnn.onnx")
    model, _ = load(path)
    assert model.runtime == "torch"
    assert "exported from another checkpoint" in caplog.text


def test_an_unreadable_export_falls_back_to_torch(tmp_path, caplog) -> None:
    path = tmp_path / "mnist_cnn.pt"
    resaved_mnist(path, note="x")
    (tmp_path / "mnist_cnn.onnx").write_bytes(b"not onnx")
    model, _ = load(path)
    assert model.runtime == "torch" and "not a readable export" in caplog.text


def test_serving_the_export_does_not_import_torch() -> None:
    code = ("import sys; from serve_app.runtime import load; "
            "m, _ = load('models/mnist_cnn.pt'); assert m.runtime == 'onnxruntime'; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
