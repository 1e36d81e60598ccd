"""Realistic inputs made from the official test sets: what users send, with true labels.

Kinds (digits): `canvas` (thick black strokes on a transparent 280x280 canvas, as the web page
sends), `photo` (dark ink on uneven, noisy paper, JPEG, sometimes EXIF-rotated), `font`
(printed digits in the DejaVu faces: another source than MNIST's writers).
Kind (clothes): `catalog` (a tinted product on a white background, JPEG, as shops show them).

An evaluation set, never a training set: benchmarks/realistic.py measures accuracy on it,
training.ood_eval how much of it each model keeps, and tests/golden holds a few of each.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from training import data

FONTS = sorted(Path("/usr/share/fonts/truetype/dejavu").glob("DejaVu*.ttf"))


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    """The image as a file in format `fmt`, as a user would send it."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def canvas(digit: np.ndarray, rng: random.Random) -> bytes:
    big = Image.fromarray(digit).resize((280, 280), Image.Resampling.BICUBIC)
    big = big.filter(ImageFilter.MaxFilter(rng.choice([1, 3, 5, 7])))
    alpha = big.point(lambda v: 255 if v > 100 else 0)
    ink = Image.new("RGBA", big.size, (0, 0, 0, 0))
    ink.putalpha(alpha)
    return encode(ink, "PNG")


def photo(digit: np.ndarray, rng: random.Random) -> bytes:
    w, h = rng.randint(240, 480), rng.randint(200, 400)
    side = int(min(w, h) * rng.uniform(0.45, 0.8))
    glyph = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC),
                       np.float32) / 255
    paper = np.linspace(rng.uniform(170, 215), rng.uniform(215, 250), w)[None, :].repeat(h, 0)
    x0, y0 = rng.randint(0, w - side), rng.randint(0, h - side)
    ink = rng.uniform(20, 70)
    region = paper[y0:y0 + side, x0:x0 + side]
    paper[y0:y0 + side, x0:x0 + side] = region * (1 - glyph) + ink * glyph
    paper += np.random.default_rng(rng.randint(0, 1 << 30)).normal(0, 6, paper.shape)
    tint = np.array([1.0, rng.uniform(0.95, 1.0), rng.uniform(0.85, 0.95)])
    rgb = np.clip(paper[..., None] * tint, 0, 255).astype(np.uint8)
    img = Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    exif = None
    if rng.random() < 0.3:  # stored sideways with an EXIF orientation tag, like phones do
        img = img.transpose(Image.Transpose.ROTATE_90)
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90 CW to display"
    kw = {"quality": rng.randint(60, 90)} | ({"exif": exif} if exif else {})
    return encode(img, "JPEG", **kw)


def font(label: int, rng: random.Random) -> bytes:
    face = ImageFont.truetype(str(rng.choice(FONTS)), rng.randint(60, 140))
    img = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(img).text((100, 100), str(label), fill=rng.randint(0, 60), font=face,
                             anchor="mm")
    return encode(img.convert("RGB"), "PNG")


def catalog(item: np.ndarray, rng: random.Random) -> bytes:
    # Fashion-MNIST inverted product photos; inverting back gives the photo's darkness.
    side = rng.randint(160, 360)
    dark = np.asarray(Image.fromarray(item).resize((side, side), Image.Resampling.LANCZOS),
                      np.float32) / 255
    color = np.array([rng.uniform(0, 1) for _ in range(3)]) * 200
    rgb = 255 - dark[..., None] * (255 - color)
    pad = rng.randint(10, 80)
    canvas_ = np.full((side + 2 * pad, side + 2 * pad, 3), 255, np.float32)
    canvas_[pad:pad + side, pad:pad + side] = rgb
    return encode(Image.fromarray(np.clip(canvas_, 0, 255).astype(np.uint8)), "JPEG",
                   quality=85)


MAKERS = {"mnist": {"canvas": canvas, "photo": photo, "font": font},
          "fmnist": {"catalog": catalog}}


def make(dataset: str, kind: str, split: data.Split, n: int, seed: int = 0):
    """Yield (encoded bytes, true label) for n test images turned into `kind`."""
    rng = random.Random(seed)
    for i in rng.sample(range(len(split.labels)), n):
        label = int(split.labels[i])
        source = label if kind == "font" else split.images[i].numpy()
        yield MAKERS[dataset][kind](source, rng), label
