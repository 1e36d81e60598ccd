"""Negatives the out-of-domain detector is fitted on (training/ood.py), and printed digits, which
the digit model must keep; as the service would give them to the model (through
vision_core.imaging.canonicalise).

None of these comes from training/ood_eval.py's evaluation set: other seeds, other generators, and
for text and photos other sources (letters in the faces bundled with Pillow and matplotlib, never
the DejaVu faces the evaluation prints with; photos from matplotlib's sample data, never
scikit-image's).
"""

from __future__ import annotations

import io
import random
import string
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from vision_core.imaging import canonicalise

SEED = 11  # training/ood_eval.py's evaluation set uses another seed and other kinds
# Letters a handwritten or printed digit can be (O/0, l/1, Z/2, S/5, b/6, B/8, g/9, ...): no model
# could tell them from the digit, nor should it. training/ood_eval.py leaves the same ones out.
DIGIT_LIKE = "ODQoIlijJLZzSsbGBgqTt"
LETTERS = "".join(c for c in string.ascii_letters if c not in DIGIT_LIKE)


def _canonical(img: Image.Image, style: str, rng: random.Random | None = None) -> np.ndarray:
    """The 28x28 pixels the service would give the model. With `rng`, half the images first
    go through JPEG (quality 50-95), as photos and screenshots are often sent: its 8x8 blocks
    and ringing are a texture of their own."""
    if rng is not None and rng.random() < 0.5:
        buf = io.BytesIO()
        img.convert("RGB" if img.mode not in ("L", "RGB") else img.mode).save(
            buf, format="JPEG", quality=rng.randint(50, 95))
        img = Image.open(buf)
        img.load()
    return canonicalise(img, style)


def _unit(field: np.ndarray) -> np.ndarray:
    """Stretched to span 0..1 exactly, whatever the generator's range."""
    return (field - field.min()) / (np.ptp(field) + 1e-9)


def _noise(kind: int, rng: random.Random, np_rng: np.random.Generator, h: int, w: int
           ) -> np.ndarray:
    if kind == 0:
        return np_rng.integers(0, 256, (h, w), dtype=np.uint8)
    if kind == 1:
        return np.clip(np_rng.normal(rng.uniform(40, 200), rng.uniform(5, 80), (h, w)),
                       0, 255).astype(np.uint8)
    if kind == 2:  # sparse specks (dust, sensor defects) on a dark or light ground
        specks = np_rng.random((h, w)) < rng.uniform(0.01, 0.4)
        ground, ink = rng.choice([(0, 255), (255, 0)])
        return np.where(specks, ink, ground).astype(np.uint8)
    if kind == 3:  # 1/f noise: the power spectrum of natural photos, without their objects
        fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
        spectrum = np_rng.normal(size=(h, w)) + 1j * np_rng.normal(size=(h, w))
        field = np.fft.ifft2(spectrum / np.maximum(np.hypot(fy, fx), 1 / max(h, w))
                             ** rng.uniform(0.8, 1.6)).real
        return (_unit(field) * 255).astype(np.uint8)
    if kind == 4:
        coarse = np_rng.integers(0, 256, (rng.randint(2, 10), rng.randint(2, 10)),
                                 dtype=np.uint8)
        smooth = rng.choice([Image.Resampling.BILINEAR, Image.Resampling.BICUBIC])
        return np.asarray(Image.fromarray(coarse).resize((w, h), smooth))
    # white noise blurred at any scale from a pixel to a fifth of the image: the continuum
    # between per-pixel noise (kind 0) and a few blobs (kind 4), contrast stretched
    radius = float(np.exp(rng.uniform(np.log(0.5), np.log(max(h, w) / 5))))
    field = np.asarray(Image.fromarray(np_rng.integers(0, 256, (h, w), dtype=np.uint8))
                       .filter(ImageFilter.GaussianBlur(radius)), np.float32)
    return (_unit(field) * 255).astype(np.uint8)


def _size(rng: random.Random) -> tuple[int, int]:
    """28x28 (dataset form, taken as it is) or, each side drawn log-uniformly, 28 to 640 px:
    small and large images alike, and strips up to 23:1."""
    if rng.random() < 0.3:
        return 28, 28
    return tuple(int(np.exp(rng.uniform(np.log(28), np.log(640)))) for _ in range(2))


def noise(rng: random.Random, np_rng: np.random.Generator) -> Image.Image:
    """One noise image of six kinds, grey or colour (each channel its own draw), of _size()
    (canonicalisation keeps the aspect ratio)."""
    kind = rng.randrange(6)
    h, w = _size(rng)
    if rng.random() < 0.5:
        return Image.fromarray(_noise(kind, rng, np_rng, h, w))
    return Image.fromarray(np.stack([_noise(kind, rng, np_rng, h, w) for _ in range(3)], -1))


def grating(rng: random.Random) -> Image.Image:
    """A periodic pattern: a sine or square wave at any angle and period, two of them crossed
    (a plaid or grid), or rings; on 28x28 or a larger, any-ratio canvas."""
    h, w = _size(rng)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)

    def wave() -> np.ndarray:
        angle, period = rng.uniform(0, np.pi), rng.uniform(0.03, 0.5)
        phase = (np.cos(angle) * xx + np.sin(angle) * yy) / period * 2 * np.pi
        return np.sin(phase) if rng.random() < 0.5 else np.sign(np.sin(phase))

    kind = rng.randrange(3)
    if kind == 2:
        cy, cx = rng.random(), rng.random()
        field = np.sin(np.hypot(yy - cy, xx - cx) / rng.uniform(0.03, 0.3) * 2 * np.pi)
    else:
        field = wave() if kind == 0 else wave() + wave()
    field = _unit(field)
    # at least 64 grey levels apart: fainter ones canonicalise to blank images (as paper
    # grain does), which the blank check declines before the detector is asked
    low = rng.randint(0, 191)
    high = rng.randint(low + 64, 255)
    return Image.fromarray((low + field * (high - low)).astype(np.uint8))


def _shapes(rng: random.Random, strokes: bool) -> Image.Image:
    """1-5 filled rectangles and ellipses, or random strokes, on black."""
    side = rng.choice([28, 112])
    img = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(1, 5)):
        if strokes:
            draw.line([(rng.randrange(side), rng.randrange(side)) for _ in range(3)],
                      fill=rng.randint(120, 255), width=rng.randint(1, side // 10))
        else:
            xs, ys = sorted(rng.sample(range(side), 2)), sorted(rng.sample(range(side), 2))
            shape = rng.choice([draw.rectangle, draw.ellipse])
            shape((xs[0], ys[0], xs[1], ys[1]), fill=rng.randint(60, 255))
    return img


def synthetic(n: int, style: str, seed: int = SEED) -> np.ndarray:
    """n images in turn: noise twice (it spans the most kinds and sizes), filled rectangles
    and ellipses, random strokes, a periodic pattern. One that canonicalises to a blank image
    (a pattern too faint or too smooth to leave ink) is drawn again: the blank check, not the
    detector, declines those."""
    rng, np_rng = random.Random(seed), np.random.default_rng(seed)
    make = [lambda: noise(rng, np_rng), lambda: noise(rng, np_rng),
            lambda: _shapes(rng, strokes=False), lambda: _shapes(rng, strokes=True),
            lambda: grating(rng)]
    out = np.empty((n, 28, 28), np.uint8)
    for i in range(n):
        for _ in range(100):  # a blank draw is rare (about 1 pattern in 80)
            out[i] = _canonical(make[i % 5](), style, rng)
            if out[i].any():
                break
    return out


def strips(images: torch.Tensor, n: int, style: str, seed: int = SEED) -> np.ndarray:
    """n strips of 2-4 training images side by side (a number, several items)."""
    rng = random.Random(seed)
    out = np.empty((n, 28, 28), np.uint8)
    for i in range(n):
        row = np.concatenate([images[rng.randrange(len(images))].numpy()
                              for _ in range(rng.randint(2, 4))], 1)
        out[i] = _canonical(Image.fromarray(np.pad(row, 4)), style)
    return out


def letter_faces() -> list[Path]:
    """TrueType text faces that ship inside matplotlib (so the fit needs no system fonts) and
    are not DejaVu: STIX (serif, four styles) and Computer Modern (roman, bold, sans, italic,
    typewriter). Its other faces map letters to symbols."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted([*folder.glob("STIXGeneral*.ttf"),
                   *(folder / f"cm{k}10.ttf" for k in ("r", "b", "ss", "ti", "tt", "mi"))])


def printed(n: int, style: str, chars: str, seed: int = SEED, words: bool = True
            ) -> np.ndarray:
    """n printed characters from `chars` (with `words`, one in four a 2-3 character fragment):
    dark on light paper or light on dark, any size, bold or thin, slightly rotated; in
    matplotlib's faces or Pillow's bundled one."""
    rng = random.Random(seed)
    faces = letter_faces()
    out = np.empty((n, 28, 28), np.uint8)
    for i in range(n):
        size = rng.randint(24, 120)
        face = (ImageFont.truetype(str(rng.choice(faces)), size) if rng.random() < 0.8
                else ImageFont.load_default(size))
        length = rng.randint(2, 3) if words and i % 4 == 0 else 1
        text = "".join(rng.choice(chars) for _ in range(length))
        ground, ink = rng.choice([(rng.randint(190, 255), rng.randint(0, 70)),
                                  (rng.randint(0, 40), rng.randint(180, 255))])
        img = Image.new("L", (int(size * (1.6 + 0.7 * len(text))), size * 2), ground)
        ImageDraw.Draw(img).text((img.width // 2, img.height // 2), text, fill=ink, font=face,
                                 anchor="mm", stroke_width=rng.choice([0, 0, 1, size // 25]),
                                 stroke_fill=ink)
        img = img.rotate(rng.uniform(-12, 12), Image.Resampling.BILINEAR, fillcolor=ground)
        out[i] = _canonical(img, style)
    return out


def letters(n: int, style: str, seed: int = SEED) -> np.ndarray:
    """n printed letters and letter fragments: negatives for both models."""
    return printed(n, style, LETTERS, seed)


def digits(n: int, style: str, seed: int = SEED) -> np.ndarray:
    """n printed single digits: extra positives for the digit model, which must keep printed
    digits (a form, a label) while it declines printed letters in the same faces."""
    return printed(n, style, string.digits, seed, words=False)


def photo_sources() -> list[Image.Image]:
    """Photos bundled with matplotlib (sample data): grey and colour, people and objects."""
    import matplotlib.cbook

    out = []
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png"):
        try:
            with matplotlib.cbook.get_sample_data(name) as f:
                out.append(Image.open(f).convert("RGB"))
        except (OSError, ValueError):  # a matplotlib build without its sample data
            pass
    return out


def crops(n: int, style: str, seed: int = SEED) -> np.ndarray:
    """n random crops of photo_sources() (28 px to the whole photo), some shrunk to 28x28 first;
    none when matplotlib ships no sample photos."""
    rng = random.Random(seed)
    photos = photo_sources()
    out = np.empty((n if photos else 0, 28, 28), np.uint8)
    for i in range(len(out)):
        img = rng.choice(photos)
        side = rng.randint(28, min(img.size))
        x, y = rng.randint(0, img.width - side), rng.randint(0, img.height - side)
        img = img.crop((x, y, x + side, y + side))
        if rng.random() < 0.3:
            img = img.resize((28, 28), Image.Resampling.BOX)
        out[i] = _canonical(img, style, rng)
    return out
