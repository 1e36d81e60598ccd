"""The out-of-domain evaluation set, and what a model declines of it and keeps of real inputs.

Kinds: `photo` (scikit-image's bundled photos, resized, flipped, JPEG), `crop` (random crops of
them), `noise`, `blank` (uniform colours, paper, an empty transparent canvas), `pattern`
(gradients, stripes, checkerboards), `letter` and `word` (printed in the DejaVu faces), `other`
(another model's TEST split as 28x28 PNGs) and `other_real` (its realistic kinds,
training/realistic.py). Nothing here is used to fit or choose a threshold: the detector is fitted
by training/ood.py on other kinds (training.ood_negatives) and other seeds.

A `service` is anything that answers `answers(route, blobs)` and `sha256(model)`: `InProcess`
here (the service's preprocessing and decision, with torch; the model cards use it), or
benchmarks/ood.py's `Http`, which sends every image to a running service as a user would
(tests/benchmarks/test_ood.py checks that the two answer alike).

It also measures what must not be lost: the share of official test images (all of them) and
of realistic inputs each model keeps, and how many of them `/classify` sends to the right model
with the right label.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from training import data, realistic
from training.model import decide, load_checkpoint
from training.ood_negatives import LETTERS
from vision_core.decision import pick
from vision_core.imaging import blank, prepare
from vision_core.paths import resolve
from vision_core.registry import MODELS, others

FONTS = realistic.FONTS
PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "page",
          "text", "hubble_deep_field", "immunohistochemistry", "brick", "grass", "gravel",
          "cell", "clock", "colorwheel", "logo", "microaneurysms", "retina")
SEED = 20261202  # the fitting negatives (training/ood.py) use other seeds and other kinds


def _encode(img: Image.Image, rng: random.Random) -> bytes:
    if rng.random() < 0.5 and img.mode in ("L", "RGB"):
        return realistic.encode(img, "JPEG", quality=rng.randint(60, 95))
    return realistic.encode(img, "PNG")


_photo_cache: dict[str, Image.Image] = {}


def _photo(rng: random.Random) -> Image.Image:
    import skimage.data  # bundled with the wheel: no network

    name = rng.choice(PHOTOS)
    if name not in _photo_cache:
        arr = getattr(skimage.data, name)()
        _photo_cache[name] = Image.fromarray(arr).convert("RGB")
    return _photo_cache[name]


def photo(rng: random.Random) -> bytes:
    img = _photo(rng)
    scale = rng.uniform(0.2, 1.0)
    img = img.resize((max(8, int(img.width * scale)), max(8, int(img.height * scale))))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.3:
        img = img.convert("L")
    return _encode(img, rng)


def crop(rng: random.Random) -> bytes:
    img = _photo(rng)
    side = rng.randint(28, min(img.size) // 2)
    x, y = rng.randint(0, img.width - side), rng.randint(0, img.height - side)
    img = img.crop((x, y, x + side, y + side))
    if rng.random() < 0.3:
        img = img.resize((28, 28), Image.Resampling.BOX)
    return _encode(img.convert("L") if rng.random() < 0.5 else img, rng)


def noise(rng: random.Random) -> bytes:
    np_rng = np.random.default_rng(rng.randint(0, 1 << 30))
    h, w = rng.choice([28, 64, 200]), rng.choice([28, 64, 300])
    shape = (h, w, 3) if rng.random() < 0.5 else (h, w)
    kind = rng.choice(["uniform", "gauss", "salt", "blobs"])
    if kind == "uniform":
        arr = np_rng.integers(0, 256, shape)
    elif kind == "gauss":
        arr = np_rng.normal(rng.uniform(60, 200), rng.uniform(10, 60), shape)
    elif kind == "salt":
        arr = np.where(np_rng.random(shape) < rng.uniform(0.02, 0.3), 255, 0)
    else:  # smooth random blobs: noise upsampled from a coarse grid
        coarse = np_rng.integers(0, 256, (rng.randint(3, 8), rng.randint(3, 8)), dtype=np.uint8)
        arr = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC))
    return _encode(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), rng)


def blank_image(rng: random.Random) -> bytes:
    w, h = rng.choice([28, 100, 280, 640]), rng.choice([28, 100, 280, 480])
    kind = rng.choice(["colour", "paper", "canvas", "black"])
    if kind == "canvas":  # the web page's empty canvas: fully transparent
        return realistic.encode(Image.new("RGBA", (w, h), (0, 0, 0, 0)), "PNG")
    if kind == "black":
        return _encode(Image.new("L", (w, h), 0), rng)
    if kind == "colour":
        return _encode(Image.new("RGB", (w, h), tuple(rng.randint(0, 255) for _ in range(3))), rng)
    tone = rng.uniform(180, 250)  # paper: a light tone, gentle shading and sensor noise
    shade = np.linspace(0, rng.uniform(-15, 15), w)[None, :]
    grain = np.random.default_rng(rng.randint(0, 1 << 30)).normal(0, rng.uniform(1, 4), (h, w))
    return _encode(Image.fromarray(np.clip(tone + shade + grain, 0, 255).astype(np.uint8)), rng)


def pattern(rng: random.Random) -> bytes:
    side = rng.choice([28, 64, 200, 400])
    yy, xx = np.mgrid[0:side, 0:side] / side
    kind = rng.choice(["gradient", "radial", "stripes", "checker"])
    angle = rng.uniform(0, np.pi)
    along = np.cos(angle) * xx + np.sin(angle) * yy
    if kind == "gradient":
        arr = along / max(along.max(), 1e-6) * 255
    elif kind == "radial":
        cy, cx = rng.random(), rng.random()
        arr = np.hypot(yy - cy, xx - cx) * 255 / 1.5
    elif kind == "stripes":
        arr = (np.sin(along * 2 * np.pi * rng.randint(2, 20)) > 0) * 255
    else:
        cells = rng.randint(2, 16)
        arr = ((np.floor(xx * cells) + np.floor(yy * cells)) % 2) * 255
    if rng.random() < 0.5:
        arr = 255 - arr
    return _encode(Image.fromarray(arr.astype(np.uint8)), rng)


def _text(word: str, rng: random.Random) -> bytes:
    face = ImageFont.truetype(str(rng.choice(FONTS)), rng.randint(40, 120))
    img = Image.new("L", (max(200, 80 * len(word)), 200), rng.randint(200, 255))
    ImageDraw.Draw(img).text((img.width // 2, 100), word, fill=rng.randint(0, 60), font=face,
                             anchor="mm")
    return _encode(img, rng)


def letter(rng: random.Random) -> bytes:
    return _text(rng.choice(LETTERS), rng)


def word(rng: random.Random) -> bytes:
    return _text("".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 7))), rng)


MAKERS = {"photo": photo, "crop": crop, "noise": noise, "blank": blank_image,
          "pattern": pattern, "letter": letter, "word": word}


def make(kind: str, n: int, seed: int = SEED, other: data.Split | None = None,
         other_dataset: str = ""):
    """Yield n encoded images of one kind (`other*` kinds need the other dataset's test split)."""
    rng = random.Random(f"{seed}-{kind}")
    if kind == "other":
        for i in rng.sample(range(len(other.labels)), n):
            yield realistic.encode(Image.fromarray(other.images[i].numpy()), "PNG")
    elif kind == "other_real":
        makers = list(realistic.MAKERS[other_dataset])
        per = -(-n // len(makers))
        blobs = [b for k, m in enumerate(makers)
                 for b, _ in realistic.make(other_dataset, m, other, per, seed + k)]
        yield from rng.sample(blobs, n)
    else:
        for _ in range(n):
            yield MAKERS[kind](rng)


class InProcess:
    """Answers computed here, with the service's preprocessing and decision but without a
    service (torch). `checkpoints` replaces registered models' checkpoints, e.g. one that is not
    served yet; the others are the registry's."""

    def __init__(self, checkpoints: dict[str, str | Path] | None = None) -> None:
        paths = {name: m.checkpoint for name, m in MODELS.items()} | (checkpoints or {})
        self.models = {name: load_checkpoint(resolve(path)) for name, path in paths.items()}

    def sha256(self, model: str) -> str:
        return self.models[model][1]["sha256"]

    def _decide(self, dataset: str, blobs: list[bytes]) -> dict:
        model, meta = self.models[dataset]
        pixels = np.stack([prepare(b, meta["style"]) for b in blobs])
        return decide(model, meta, pixels, blank(pixels))

    def answers(self, route: str, blobs: list[bytes]) -> dict[str, np.ndarray]:
        """`accepted`, `class_id` and `model` per image, as `route` would answer them."""
        if route != "classify":
            out = self._decide(route, blobs)
            return {"accepted": out["accepted"], "class_id": out["probabilities"].argmax(1),
                    "model": np.array([route] * len(blobs), object)}
        outs = {m: self._decide(m, blobs) for m in self.models}
        routed = pick(outs)
        # Declined by both: the service shows the answer of the model that came closest.
        shown = [m or max(outs, key=lambda k: outs[k]["margin"][i]) for i, m in enumerate(routed)]
        return {"accepted": np.array([m is not None for m in routed]),
                "class_id": np.array([outs[m]["probabilities"][i].argmax()
                                      for i, m in enumerate(shown)]),
                "model": np.array(routed, object)}


def kinds() -> list[str]:
    return [*MAKERS, "other", "other_real"]


def declined(dataset: str, service, n: int, data_dir: str) -> dict[str, float]:
    """Share of each out-of-domain kind that `dataset`'s model declines."""
    other, *_ = others(dataset)
    data.prepare(other, data_dir)
    split = data.load_split(other, data_dir, train=False)
    return {kind: float(1 - service.answers(dataset, list(
        make(kind, n, other=split, other_dataset=other)))["accepted"].mean())
        for kind in kinds()}


def in_domain(dataset: str, n: int, data_dir: str) -> dict[str, list[tuple[bytes, int]]]:
    """The official test images (all, as 28x28 PNGs) and n of each realistic kind."""
    data.prepare(dataset, data_dir)
    split = data.load_split(dataset, data_dir, train=False)
    sets = {"test": [(realistic.encode(Image.fromarray(a.numpy()), "PNG"), int(y))
                     for a, y in zip(split.images, split.labels, strict=True)]}
    for kind in realistic.MAKERS[dataset]:
        sets[kind] = list(realistic.make(dataset, kind, split, n))
    return sets


def kept(dataset: str, service, sets: dict) -> dict[str, dict[str, float]]:
    """Per in-domain set: share kept by its own model, accuracy on all of it, and /classify's
    share routed to the right model, and routed there with the right label."""
    out = {}
    for name, samples in sets.items():
        blobs, labels = [b for b, _ in samples], np.array([y for _, y in samples])
        own, auto = service.answers(dataset, blobs), service.answers("classify", blobs)
        routed = auto["model"] == dataset
        out[name] = {"kept": float(own["accepted"].mean()),
                     "accuracy": float((own["class_id"] == labels).mean()),
                     "classify_routed": float(routed.mean()),
                     "classify_correct": float((routed & (auto["class_id"] == labels)).mean())}
    return out


def measure(service, dataset: str, n: int, data_dir: str) -> dict:
    """One model's figures (what a model card shows), printed as they come: the share of each
    out-of-domain kind it declines, and per in-domain set what it keeps."""
    entry = {"sha256": service.sha256(dataset),  # the very file measured
             "declined": declined(dataset, service, n, data_dir)}
    for kind, rate in entry["declined"].items():
        print(f"{dataset:7s} declines {kind:10s} {rate:6.1%} (n={n})", flush=True)
    sets = in_domain(dataset, n, data_dir)
    entry["kept"] = kept(dataset, service, sets)
    for name, figures in entry["kept"].items():
        print(f"{dataset:7s} keeps    {name:10s} {figures['kept']:6.1%}  accuracy "
              f"{figures['accuracy']:6.2%}  /classify routed {figures['classify_routed']:6.1%}"
              f" right {figures['classify_correct']:6.1%}"
              f" (n={len(sets[name])})", flush=True)
    return entry


def evaluate(service, n: int, data_dir: str) -> dict:
    """Every figure of docs/ood.md, for every registered model."""
    return {"n": n, "models": {name: measure(service, name, n, data_dir) for name in MODELS}}
