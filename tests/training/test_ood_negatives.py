"""training/ood_negatives.py: reproducible 28x28 images as the service would canonicalise them,
drawn from sources the evaluation set (training/ood_eval.py) does not use."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training import ood_negatives as neg


def _canonical(images: np.ndarray, n: int) -> None:
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert (images.reshape(n, -1).max(1) > 0).all()  # none came out blank


@pytest.mark.parametrize("make", [neg.synthetic, neg.letters, neg.digits, neg.crops])
@pytest.mark.parametrize("style", ["digit", "clothing"])
def test_negatives_are_reproducible_canonical_images(make, style) -> None:
    a, b = make(12, style), make(12, style)
    _canonical(a, 12)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, make(12, style, seed=neg.SEED + 1))


def test_strips_put_several_items_side_by_side() -> None:
    item = np.zeros((28, 28), np.uint8)
    item[4:24, 12:16] = 255  # one upright bar per image
    strips = neg.strips(torch.as_tensor(np.stack([item] * 3)), 6, "digit")
    _canonical(strips, 6)
    # Several upright bars side by side: the ink's bounding box is wider than it is tall.
    def extent(ink: np.ndarray) -> int:
        where = np.flatnonzero(ink > 0)
        return where[-1] - where[0] + 1

    assert all(extent(s.max(0)) > extent(s.max(1)) for s in strips)


def test_letters_leave_out_digit_lookalikes_and_the_evaluation_faces() -> None:
    assert not set(neg.LETTERS) & set(neg.DIGIT_LIKE)
    assert not set("OlZSBg") & set(neg.LETTERS)
    faces = neg.letter_faces()
    assert faces and all(f.exists() and "DejaVu" not in f.name for f in faces)


def test_crops_come_from_photos_the_evaluation_set_does_not_use() -> None:
    photos = neg.photo_sources()
    assert photos, "matplotlib's sample photos are missing"
    assert all(min(p.size) >= 28 for p in photos)
