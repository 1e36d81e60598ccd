"""Preprocessing (serve_app/preprocess.py, imaging.py) on the committed golden images, without
Ray: every kind of real input comes out as a 28x28 image the committed model reads correctly."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from serve_app import preprocess
from serve_app.errors import ApiError
from serve_app.imaging import prepare
from serve_app.preprocess import Preprocess
from tests.conftest import golden
from training.model import load_checkpoint, normalise

CASES = [(ds, p, y) for ds in ("mnist", "fmnist") for p, y in golden(ds)]


@pytest.fixture(scope="module")
def models():
    return {ds: load_checkpoint(f"models/{ds}_cnn.pt") for ds in ("mnist", "fmnist")}


def test_golden_set_covers_the_hard_kinds():
    kinds = {p.name.split("_")[1] for _, p, _ in CASES}
    assert {"canvas", "photo", "inverted", "large", "tiny", "dataset", "catalog"} <= kinds


@pytest.mark.parametrize("dataset, path, label", CASES, ids=[p.name for _, p, _ in CASES])
def test_golden_image_is_read_correctly(models, dataset, path, label):
    model, meta = models[dataset]
    pixels = prepare(path.read_bytes(), meta["style"], 4096 * 4096)
    assert pixels.shape == (28, 28) and pixels.dtype == np.uint8
    with torch.inference_mode():
        scores = model(normalise(torch.from_numpy(pixels[None]), meta["mean"], meta["std"]))
    assert scores.argmax(1).item() == label


def test_deployment_returns_client_errors_instead_of_raising():
    pre = Preprocess.func_or_class(max_image_pixels=4096 * 4096)
    good = golden("mnist")[0][0].read_bytes()
    pixels, pngs = asyncio.run(pre.run([good, good], "digit", want_png=True))
    assert pixels.shape == (2, 28, 28) and len(pngs) == 2
    err = asyncio.run(pre.run([good, b"%PDF-1.4"], "digit"))
    assert isinstance(err, ApiError) and err.status == 415 and err.message.startswith("image 1:")


def test_small_requests_stay_on_the_loop_and_big_ones_go_to_a_thread(monkeypatch):
    """Both paths give the same answer; only requests over INLINE_PIXELS pay the hand-off."""
    pre = Preprocess.func_or_class(max_image_pixels=4096 * 4096)
    small = next(p for p, _ in golden("mnist") if "dataset" in p.name).read_bytes()  # 28 x 28
    big = next(p for p, _ in golden("mnist") if "large" in p.name).read_bytes()
    threaded = []
    real = asyncio.to_thread

    async def counting(func, *args):
        threaded.append(args[0])
        return await real(func, *args)

    monkeypatch.setattr(preprocess.asyncio, "to_thread", counting)
    inline, _ = asyncio.run(pre.run([small], "digit"))
    assert threaded == []
    both, _ = asyncio.run(pre.run([small, big], "digit"))
    assert [[img.size for img in images] for images in threaded] == [[(28, 28), (1600, 1600)]]
    assert np.array_equal(both[0], inline[0])
    assert np.array_equal(both[1], prepare(big, "digit", 4096 * 4096))
    # An unreadable header is answered at once, from the one read of the headers.
    assert isinstance(asyncio.run(pre.run([b"not an image"], "digit")), ApiError)
    assert len(threaded) == 1
