"""Realistic test inputs made from the official test sets, and the served pipeline's accuracy.

Kinds (digits): `canvas` (thick black strokes on a transparent 280x280 canvas, as the web page
sends), `photo` (dark ink on uneven, noisy paper, JPEG, sometimes EXIF-rotated), `font`
(printed digits in the DejaVu faces: another source than MNIST's writers).
Kind (clothes): `catalog` (a tinted product on a white background, JPEG, as shops show them).

    python -m benchmarks.realistic [--data-dir data] [--n 500] [--json] [--golden tests/golden]
"""

from __future__ import annotations

import argparse
import io
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from serve_app.imaging import prepare
from serve_app.settings import resolve
from training import data
from training.model import load_checkpoint, probabilities

FONTS = sorted(Path("/usr/share/fonts/truetype/dejavu").glob("DejaVu*.ttf"))
MAX_PIXELS = 4096 * 4096


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def canvas(digit: np.ndarray, rng: random.Random) -> bytes:
    big = Image.fromarray(digit).resize((280, 280), Image.Resampling.BICUBIC)
    big = big.filter(ImageFilter.MaxFilter(rng.choice([1, 3, 5, 7])))
    alpha = big.point(lambda v: 255 if v > 100 else 0)
    ink = Image.new("RGBA", big.size, (0, 0, 0, 0))
    ink.putalpha(alpha)
    return _encode(ink, "PNG")


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
    return _encode(img, "JPEG", **kw)


def font(label: int, rng: random.Random) -> bytes:
    face = ImageFont.truetype(str(rng.choice(FONTS)), rng.randint(60, 140))
    img = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(img).text((100, 100), str(label), fill=rng.randint(0, 60), font=face,
                             anchor="mm")
    return _encode(img.convert("RGB"), "PNG")


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
    return _encode(Image.fromarray(np.clip(canvas_, 0, 255).astype(np.uint8)), "JPEG",
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


def accuracy(checkpoint: str, dataset: str, kind: str, split: data.Split, n: int) -> float:
    model, meta = load_checkpoint(resolve(checkpoint))
    samples = list(make(dataset, kind, split, n))
    pixels = np.stack([prepare(b, meta["style"], MAX_PIXELS) for b, _ in samples])
    pred = probabilities(model, meta, pixels).argmax(1)
    return float((pred.numpy() == np.array([y for _, y in samples])).mean())


def write_golden(folder: Path, dataset: str, kind: str, samples) -> None:
    """Files named `<dataset>_<kind>_<i>_label<k>.<ext>`: the tests read the label from it."""
    folder.mkdir(parents=True, exist_ok=True)
    for j, (blob, label) in enumerate(samples):
        ext = "jpg" if blob[:2] == b"\xff\xd8" else "png"
        (folder / f"{dataset}_{kind}_{j}_label{label}.{ext}").write_bytes(blob)


def golden_extras(dataset: str, split: data.Split):
    """Official test images as they are, and inverted, tiny and large variants of them."""
    rng = random.Random(7)
    picks = [(split.images[i].numpy(), int(split.labels[i]))
             for i in rng.sample(range(len(split.labels)), 4)]
    yield "dataset", [(_encode(Image.fromarray(a), "PNG"), y) for a, y in picks]
    yield "inverted", [(_encode(Image.fromarray(255 - picks[0][0]), "PNG"), picks[0][1])]
    tiny = Image.fromarray(picks[1][0]).resize((14, 14), Image.Resampling.BOX)
    yield "tiny", [(_encode(tiny, "PNG"), picks[1][1])]
    large = Image.fromarray(255 - picks[2][0]).resize((1600, 1600)).convert("RGB")
    yield "large", [(_encode(large, "JPEG", quality=80), picks[2][1])]


def evaluate_dataset(dataset: str, args: argparse.Namespace) -> dict[str, float]:
    data.prepare(dataset, args.data_dir)
    split = data.load_split(dataset, args.data_dir, train=False)
    ckpt = f"models/{dataset}_cnn.pt"
    results = {}
    for k, kind in enumerate(MAKERS[dataset]):
        results[f"{dataset}/{kind}"] = acc = accuracy(ckpt, dataset, kind, split, args.n)
        print(f"{dataset:7s} {kind:8s} accuracy {acc:.1%} (n={args.n})")
        if args.golden:
            write_golden(Path(args.golden), dataset, kind, make(dataset, kind, split, 2, 99 + k))
    if args.golden:
        for kind, samples in golden_extras(dataset, split):
            write_golden(Path(args.golden), dataset, kind, samples)
    return results


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", default="data")
    p.add_argument("--n", type=int, default=500, help="images per kind")
    p.add_argument("--datasets", default="mnist,fmnist")
    p.add_argument("--json", action="store_true")
    p.add_argument("--golden", help="also write example images here (tests/golden)")
    args = p.parse_args(argv)
    results = {}
    for dataset in args.datasets.split(","):
        results.update(evaluate_dataset(dataset, args))
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
