"""Batched, vectorised augmentation on float images in [0, 1] (N x 1 x 28 x 28)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, rotate_deg: float = 0.0, scale: float = 0.0,
            translate_px: float = 0.0, hflip: bool = False, thickness_p: float = 0.0) -> torch.Tensor:
    """Small random affine, optional horizontal flip, and stroke thickening/thinning.

    Why: served inputs are canvas drawings and photos, thicker/thinner and less centred than
    the datasets; one affine_grid call per batch keeps this cheap on CPU.
    """
    n = x.shape[0]
    angle = (torch.rand(n) * 2 - 1) * math.radians(rotate_deg)
    s = 1 + (torch.rand(n) * 2 - 1) * scale
    shift = (torch.rand(n, 2) * 2 - 1) * (2 * translate_px / 28)  # grid units span 2 per image
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    flip = torch.where(torch.rand(n) < 0.5, -1.0, 1.0) if hflip else torch.ones(n)
    theta = torch.stack([
        torch.stack([cos * flip, -sin, shift[:, 0]], 1),
        torch.stack([sin * flip, cos, shift[:, 1]], 1),
    ], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    if thickness_p > 0:
        pick = torch.rand(n)
        thick = F.max_pool2d(x, 3, 1, 1)  # dilation of white ink on black
        thin = -F.max_pool2d(-x, 3, 1, 1)
        x = torch.where((pick < thickness_p / 2).view(n, 1, 1, 1), thick, x)
        x = torch.where(((pick >= thickness_p / 2) & (pick < thickness_p)).view(n, 1, 1, 1),
                        0.5 * (x + thin), x)
    return x
