"""Preprocessing (serve_app/preprocess.py, vision_core/imaging.py) on the committed golden images, without
Ray: every kind of real input comes out as a 28x28 image the committed model reads correctly."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from serve_app import preprocess
from serve_app.errors import ApiError
from serve_app.preprocess import Preprocess
from serve_app.settings import AppArgs
from tests.helpers import golden
from training.model import load_checkpoint, normalise
from vision_core.imaging import prepare
from vision_core.paths import resolve
from vision_core.registry import MODELS

CASES = [(ds, p, y) for ds in MODELS for p, y in golden(ds)]
LIMIT = AppArgs().max_image_pixels


@pytest.fixture(scope="module")
def models():
    return {ds: load_checkpoint(resolve(m.checkpoint)) for ds, m in MODELS.items()}


def test_golden_set_covers_the_hard_kinds():
    kinds = {p.name.split("_")[1] for _, p, _ in CASES}
    assert {"canvas", "photo", "inverted", "large", "tiny", "dataset", "catalog"} <= kinds


@pytest.mark.parametrize("dataset, path, label", CASES, ids=[p.name for _, p, _ in CASES])
def test_golden_image_is_read_correctly(models, dataset, path, label):
    model, meta = models[dataset]
    pixels = prepare(path.read_bytes(), meta["style"], LIMIT)
    assert pixels.shape == (28, 28) and pixels.dtype == np.uint8
    with torch.inference_mode():
        scores = model(normalise(torch.from_numpy(pixels[None]), meta["mean"], meta["std"]))
    assert scores.argmax(1).item() == label


def test_deployment_returns_client_errors_instead_of_raising():
    pre = Preprocess.func_or_class(max_image_pixels=LIMIT)
    good = golden("mnist")[0][0].read_bytes()
    pixels, pngs = asyncio.run(pre.run([good, good], "digit", want_png=True))
    assert pixels.shape == (2, 28, 28) and len(pngs) == 2
    err = asyncio.run(pre.run([good, b"%PDF-1.4"], "digit"))
    assert isinstance(err, ApiError) and err.status == 415 and err.message.startswith("image 1:")


def test_small_requests_stay_on_the_loop_and_big_ones_go_to_a_thread(monkeypatch):
    """Both paths give the same answer; only requests over INLINE_PIXELS pay the hand-off."""
    pre = Preprocess.func_or_class(max_image_pixels=LIMIT)
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
    assert np.array_equal(both[1], prepare(big, "digit", LIMIT))
    # An unreadable header is answered at once, from the one read of the headers.
    assert isinstance(asyncio.run(pre.run([b"not an image"], "digit")), ApiError)
    assert len(threaded) == 1
