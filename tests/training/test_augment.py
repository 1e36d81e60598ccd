"""training/augment.py: shapes and value ranges kept, and each option does what it says."""

from __future__ import annotations

import pytest
import torch
import yaml

from training.augment import augment
from training.settings import CONFIG
from training.synthetic import make_images

CONFIGURED = yaml.safe_load(CONFIG.read_text())


@pytest.fixture
def batch() -> torch.Tensor:
    images, _ = make_images(16)
    return torch.from_numpy(images).float().div(255).unsqueeze(1)


@pytest.mark.parametrize("options", [
    {},
    {"rotate_deg": 30, "scale": 0.2, "translate_px": 3, "hflip": True, "thickness_p": 1.0},
    CONFIGURED["mnist"]["augment"],
    CONFIGURED["fmnist"]["augment"],
], ids=["none", "strong", "mnist-config", "fmnist-config"])
def test_shape_dtype_and_range_preserved(batch: torch.Tensor, options: dict) -> None:
    torch.manual_seed(0)
    out = augment(batch, **options)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6


def test_no_options_is_the_identity(batch: torch.Tensor) -> None:
    assert torch.allclose(augment(batch), batch, atol=1e-5)


def test_hflip_alone_mirrors_or_keeps_each_image(batch: torch.Tensor) -> None:
    torch.manual_seed(0)
    out = augment(batch, hflip=True)
    same = (out - batch).abs().amax((1, 2, 3)) < 1e-5
    flipped = (out - batch.flip(-1)).abs().amax((1, 2, 3)) < 1e-5
    assert bool((same | flipped).all()) and flipped.any() and same.any()


def test_thickness_only_thickens_or_thins_whole_images(batch: torch.Tensor) -> None:
    torch.manual_seed(0)
    out = augment(batch, thickness_p=1.0)
    thicker = (out >= batch - 1e-6).flatten(1).all(1)
    thinner = (out <= batch + 1e-6).flatten(1).all(1)
    assert bool((thicker | thinner).all())
    assert (out.sum((1, 2, 3)) != batch.sum((1, 2, 3))).all()
