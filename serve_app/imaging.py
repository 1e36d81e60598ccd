"""A request's images, as Preprocess and the ingress prepare them: vision_core.imaging's reading
and canonicalising, with its errors turned into HTTP answers and named by image index.
"""

from __future__ import annotations

import base64
import binascii
import io
import re

import numpy as np
from PIL import Image

from serve_app.errors import ApiError
from vision_core.imaging import SIDE, ImageError, canonicalise, load, open_image

_DATA_URL = re.compile(rb"^data:image/[a-zA-Z0-9.+-]+;base64,")
# vision_core.imaging's reasons for refusing an image, as HTTP statuses.
STATUS = {"empty_image": 422, "corrupt_image": 422, "image_too_large": 413,
          "unsupported_media_type": 415}


def b64decode(text: str) -> bytes:
    """Strict base64 (optionally a data: URL) -> bytes; 400 on anything else."""
    raw = text.strip().encode("ascii", "replace")
    raw = _DATA_URL.sub(b"", raw, count=1)
    raw = b"".join(raw.split())  # tolerate line-wrapped base64
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid_base64", "the 'base64' field is not valid base64") from None


def _each(items: list, work) -> list:
    """work(item) for every item; the first image error answers for the request, naming its
    index when there are several."""
    out = []
    for i, item in enumerate(items):
        try:
            out.append(work(item))
        except ImageError as err:
            where = f"image {i}: " if len(items) > 1 else ""
            raise ApiError(STATUS[err.code], err.code, where + err.message) from None
    return out


def open_all(blobs: list[bytes], max_pixels: int) -> list[Image.Image]:
    """Every image of a request opened (headers read once, limits checked), none decoded."""
    return _each(blobs, lambda data: open_image(data, max_pixels))


def canonicalise_all(images: list[Image.Image], style: str, want_png: bool = False
                     ) -> tuple[np.ndarray, list[str] | None]:
    """Opened images -> N x 28 x 28 uint8 (and the PNGs the model saw, if wanted)."""
    pixels = np.stack(_each(images, lambda img: canonicalise(load(img), style)))
    return pixels, [to_png_base64(a) for a in pixels] if want_png else None


def prepare_if_small(blobs: list[bytes], style: str, max_pixels: int, budget: int,
                     want_png: bool = False, few: int = 4, dataset_form: int = 0
                     ) -> tuple[np.ndarray, list[str] | None] | None:
    """The request's prepared images when the headers say the work is small: at most `few`
    images of at most `budget` pixels in all, or at most `dataset_form` images that are all 28x28
    already (those are only decoded, ~0.07 ms each). None otherwise, or when any header is
    unreadable (Preprocess then gives the client the precise error)."""
    if not blobs or len(blobs) > max(few, dataset_form):
        return None
    try:
        images = open_all(blobs, max_pixels)
    except ApiError:
        return None
    small = len(images) <= few and sum(img.width * img.height for img in images) <= budget
    if not (small or (len(images) <= dataset_form
                      and all(img.size == (SIDE, SIDE) for img in images))):
        return None
    return canonicalise_all(images, style, want_png)


def to_png_base64(pixels: np.ndarray) -> str:
    """A 28x28 array as a base64 PNG, to show users what the model saw."""
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")
