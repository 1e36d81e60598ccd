"""A shifted population: real-looking inputs in styles the datasets under-represent, for proving
that users' corrections make the models better (benchmarks/feedback_loop.py).

Digits: a thick marker, a strong slant, a crossed 7, a 1 with a flag, digits on lined or squared
paper. Clothes: photographed on a textured or coloured background, or worn (on a body). Made
from TRAINING images (seeded; the official test sets stay untouched, so accuracy on them before
and after a fine-tune on this population means what it says), and never used by `make train`:
only as feedback, through the service, and for evaluation.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from training import data
from training.realistic import encode

SEED = 20261208
KINDS = {"mnist": ("marker", "slant", "lined", "squared"),
         "fmnist": ("textured", "coloured", "worn")}


def _glyph(digit: np.ndarray, label: int, side: int, rng: random.Random) -> Image.Image:
    """The digit as white ink on black at `side` pixels, in a writer's own habits."""
    img = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    s = side / 28
    if label == 7:  # the continental crossed 7: a bar through the stem's middle
        draw.line([(10 * s, 14 * s), (20 * s, 14 * s)], fill=255, width=max(2, int(2 * s)))
    if label == 1:  # a 1 with a flag: a stroke from the top down to the left
        draw.line([(14 * s, 5 * s), (9 * s, 10 * s)], fill=255, width=max(2, int(2 * s)))
    return img


def _on_paper(glyph: Image.Image, rng: random.Random, ruled: str | None = None) -> bytes:
    """Dark ink on light paper, photographed: even, lined or squared paper."""
    w = h = int(glyph.width * rng.uniform(1.4, 1.9))
    paper = np.full((h, w), rng.uniform(215, 245), np.float32)
    if ruled:
        step = rng.randint(max(8, glyph.width // 7), max(10, glyph.width // 4))
        tone = rng.uniform(120, 170)
        for y in range(rng.randint(0, step), h, step):
            paper[y:y + 2] = tone
        if ruled == "squared":
            for x in range(rng.randint(0, step), w, step):
                paper[:, x:x + 2] = tone
    ink = np.asarray(glyph, np.float32) / 255
    x0, y0 = rng.randint(0, w - glyph.width), rng.randint(0, h - glyph.height)
    region = paper[y0:y0 + glyph.height, x0:x0 + glyph.width]
    paper[y0:y0 + glyph.height, x0:x0 + glyph.width] = region * (1 - ink) + rng.uniform(15, 60) * ink
    paper += np.random.default_rng(rng.randint(0, 1 << 30)).normal(0, 4, paper.shape)
    img = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8)).convert("RGB")
    return encode(img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9))), "JPEG",
                  quality=rng.randint(70, 92))


def digit(kind: str, image: np.ndarray, label: int, rng: random.Random) -> bytes:
    side = rng.randint(140, 220)
    glyph = _glyph(image, label, side, rng)
    if kind == "marker":  # a felt-tip: strokes several times MNIST's width
        glyph = glyph.filter(ImageFilter.MaxFilter(rng.choice([13, 15, 17])))
    elif kind == "slant":  # a strong right slant (italic handwriting)
        shear = rng.uniform(0.45, 0.7)
        glyph = glyph.transform(glyph.size, Image.Transform.AFFINE,
                                (1, shear, -shear * side / 2, 0, 1, 0), Image.Resampling.BICUBIC)
    return _on_paper(glyph, rng, ruled=kind if kind in ("lined", "squared") else None)


def _background(kind: str, w: int, h: int, rng: random.Random) -> np.ndarray:
    np_rng = np.random.default_rng(rng.randint(0, 1 << 30))
    if kind == "coloured":
        return np.ones((h, w, 3), np.float32) * np.array([rng.uniform(40, 230) for _ in range(3)])
    # Textured: wood-like bands, or a woven fabric, in a colour.
    base = np.array([rng.uniform(90, 220) for _ in range(3)], np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    if rng.random() < 0.5:
        pattern = np.sin(xx / rng.uniform(3, 9) + 3 * np.sin(yy / rng.uniform(20, 60)))
    else:
        pattern = np.sign(np.sin(xx / 3.0)) * np.sign(np.sin(yy / 3.0))
    texture = pattern * rng.uniform(15, 35) + np_rng.normal(0, 8, (h, w))
    return base + texture[..., None]


def garment(kind: str, image: np.ndarray, label: int, rng: random.Random) -> bytes:
    side = rng.randint(150, 240)
    w, h = int(side * rng.uniform(1.3, 1.6)), int(side * rng.uniform(1.3, 1.6))
    canvas = _background(kind if kind != "worn" else "coloured", w, h, rng)
    x0, y0 = (w - side) // 2 + rng.randint(-10, 10), (h - side) // 2 + rng.randint(-10, 10)
    if kind == "worn":  # a body behind the garment: skin-toned head, neck, arms
        skin = np.array([rng.uniform(150, 230), rng.uniform(110, 180), rng.uniform(80, 150)])
        body = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(body)
        cx = x0 + side // 2
        d.ellipse([cx - side // 6, y0 - side // 3, cx + side // 6, y0 + side // 10], fill=255)
        d.rectangle([x0 - side // 10, y0 + side // 8, x0 + side + side // 10, y0 + side], fill=255)
        mask = np.asarray(body, np.float32)[..., None] / 255
        canvas = canvas * (1 - mask) + skin * mask
    item = np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.LANCZOS),
                      np.float32)[..., None] / 255
    colour = np.array([rng.uniform(0, 200) for _ in range(3)], np.float32)
    region = canvas[y0:y0 + side, x0:x0 + side]
    canvas[y0:y0 + side, x0:x0 + side] = region * (1 - item) + colour * item
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    return encode(img, "JPEG", quality=rng.randint(75, 92))


MAKERS = {"mnist": digit, "fmnist": garment}


def population(model: str, n: int, data_dir: str, seed: int = SEED
               ) -> list[tuple[bytes, int, str]]:
    """n images of `model`'s kind, (encoded bytes, true label, style), the styles in turn."""
    data.prepare(model, data_dir)
    split = data.load_split(model, data_dir, train=True)
    rng = random.Random(f"{seed}-{model}")
    picks = rng.sample(range(len(split.labels)), n)
    kinds = KINDS[model]
    out = []
    for j, i in enumerate(picks):
        kind, label = kinds[j % len(kinds)], int(split.labels[i])
        out.append((MAKERS[model](kind, split.images[i].numpy(), label, rng), label, kind))
    return out
