"""vision_core/onnx_model.py: the committed models run on ONNX Runtime without torch and decide as
torch does; a checkpoint without a current export is refused with the command that makes one."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.helpers import golden, resaved_mnist
from training.model import decide as torch_decide
from training.model import load_checkpoint
from vision_core.decision import decide
from vision_core.imaging import blank
from vision_core.onnx_model import ModelError, load
from vision_core.paths import ROOT, resolve
from vision_core.registry import MODELS


def pixels_of(dataset: str) -> np.ndarray:
    """The committed golden images already in dataset form (28 x 28)."""
    images = [np.asarray(Image.open(p).convert("L")) for p, _ in golden(dataset)]
    return np.stack([a for a in images if a.shape == (28, 28)])


@pytest.mark.parametrize("name", list(MODELS))
def test_committed_models_decide_as_torch_does(name) -> None:
    path = resolve(MODELS[name].checkpoint)
    model, meta = load(path)
    assert model.runtime == "onnxruntime"
    net, torch_meta = load_checkpoint(path)
    assert meta["sha256"] == torch_meta["sha256"] and meta["labels"] == torch_meta["labels"]
    rng = np.random.default_rng(0)
    pixels = np.concatenate([pixels_of(name), rng.integers(0, 256, (8, 28, 28), np.uint8)])
    got = decide(meta, *model.scores(pixels), blank(pixels))
    want = torch_decide(net, torch_meta, pixels, blank(pixels))
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(got["margin"], want["margin"], rtol=0, atol=1e-4)
    assert got["accepted"].tolist() == want["accepted"].tolist()
    assert got["reasons"] == want["reasons"]


def test_a_new_checkpoint_is_served_once_exported(tmp_path) -> None:
    path = tmp_path / "mnist_v2.pt"
    sha = resaved_mnist(path, note="exported")
    model, meta = load(path)
    assert model.runtime == "onnxruntime" and meta["sha256"] == sha


@pytest.mark.parametrize("export, refusal", [
    (None, "has no ONNX export.*python -m training.export .*mnist_cnn.pt"),
    ("committed", "exported from another checkpoint"),  # an export of another file beside it
    (b"not onnx", "not a readable export"),
])
def test_a_checkpoint_without_a_current_export_is_refused_with_the_fix(tmp_path, export,
                                                                        refusal) -> None:
    path = tmp_path / "mnist_cnn.pt"
    resaved_mnist(path, note="retrained")
    onnx = path.with_suffix(".onnx")
    onnx.unlink()
    if export == "committed":
        shutil.copy(ROOT / "models/mnist_cnn.onnx", onnx)
    elif export is not None:
        onnx.write_bytes(export)
    with pytest.raises(ModelError, match=refusal):
        load(path)


def test_a_missing_checkpoint_is_refused(tmp_path) -> None:
    with pytest.raises(ModelError, match="checkpoint not found"):
        load(tmp_path / "absent.pt")


def test_serving_the_export_does_not_import_torch() -> None:
    code = ("import sys; from vision_core.onnx_model import load; "
            "m, _ = load('models/mnist_cnn.pt'); assert m.runtime == 'onnxruntime'; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
