"""How any image becomes a model input: read safely, then canonicalise to 28x28 uint8.

MNIST digits were made by fitting the ink's bounding box into 20x20 and centring it by centre
of mass in 28x28; Fashion-MNIST by fitting the longest side to 28. Real inputs (canvas drawings
with transparency, photos of paper, catalog shots on white) are brought to the same form.
Serving (serve_app/imaging.py, which turns ImageError into HTTP answers) and training (the
detector's negatives, the evaluation sets) both use this module, so they see the same pixels.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

# Formats Pillow may open. Everything else (PDF, SVG, PSD, EPS, FITS, TIFF...) is refused
# before any decoder runs: fewer parsers exposed to untrusted bytes.
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
# Magic numbers of the allowed formats: a file that starts like one of them but fails to
# decode is corrupt, anything else is an unsupported type.
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")
SIDE, DIGIT_BOX = 28, 20
WORKING_SIDE = 448  # larger inputs are shrunk first: same result, bounded CPU per image
# "Is there any ink?": an image whose strongest ink stands less than this many grey levels
# (of 255) above its fitted background is blank (empty canvas, flat paper, a uniform colour).
# Paper grain and JPEG noise stay under ~20; ink photographed on paper is 100 or more.
BLANK_CONTRAST = 32


class ImageError(ValueError):
    """An image that cannot be used. `code` says why: empty_image, image_too_large,
    corrupt_image or unsupported_media_type (serve_app maps each to its HTTP status)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _looks_allowed(data: bytes) -> bool:
    return data.startswith(_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def open_image(data: bytes, max_pixels: int | None = None) -> Image.Image:
    """Read one image's header: format and size are checked, no pixel is decoded yet."""
    if not data:
        raise ImageError("empty_image", "the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("image_too_large", "the image exceeds the pixel limit") from None
    except Exception:  # Pillow raises many types for hostile bytes
        if _looks_allowed(data):
            raise ImageError("corrupt_image", "the image could not be decoded") from None
        raise ImageError("unsupported_media_type",
                         f"not an image in an accepted format ({', '.join(ALLOWED_FORMATS)})") \
            from None
    # The header gives the size before any pixel is decoded: bombs stop here.
    if max_pixels is not None and img.width * img.height > max_pixels:
        raise ImageError("image_too_large", f"{img.width}x{img.height} pixels exceeds the "
                                            f"limit of {max_pixels} pixels")
    if img.width == 0 or img.height == 0:
        raise ImageError("empty_image", "the image has zero width or height")
    return img


def load(img: Image.Image) -> Image.Image:
    """Decode the pixels of an opened image; a failure here means a corrupt file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("image_too_large", "the image exceeds the pixel limit") from None
    except Exception as err:
        raise ImageError("corrupt_image",
                         f"the image could not be decoded ({type(err).__name__})") from None
    return img


def to_gray(img: Image.Image) -> np.ndarray:
    """EXIF-rotate, composite transparency onto white, and convert to 8-bit grayscale."""
    img = ImageOps.exif_transpose(img) or img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    img = img.convert("L")
    if max(img.size) > WORKING_SIDE:  # the output is 28x28: big photos need not be processed
        img.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.uint8)


def _border(gray: np.ndarray) -> np.ndarray:
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def _white_on_black(gray: np.ndarray) -> np.ndarray:
    """Invert dark ink on a light background (judged by the border, where ink rarely is)."""
    return 255 - gray if np.median(_border(gray)) > 127 else gray


def _background(gray: np.ndarray) -> np.ndarray:
    """A plane fitted to the border: removes paper tone and uneven lighting in photos."""
    h, w = gray.shape
    ring = np.zeros((h, w), bool)
    k = max(1, min(h, w) // 32)
    ring[:k], ring[-k:], ring[:, :k], ring[:, -k:] = True, True, True, True
    ys, xs = np.nonzero(ring)
    design = np.stack([np.ones_like(xs), xs, ys], 1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, gray[ring].astype(np.float64), rcond=None)
    # Broadcast a row and a column rather than build two h x w grids (np.mgrid): the same
    # float64 arithmetic per pixel, so the same plane, in 0.07 ms instead of 1.6 ms for a
    # 280 x 280 drawing (benchmarks/NOTES.md, lever 26).
    xx, yy = np.arange(w)[None, :], np.arange(h)[:, None]
    return (coef[0] + coef[1] * xx + coef[2] * yy).astype(np.float32)


def to_ink(gray: np.ndarray) -> np.ndarray:
    """White ink on black, as in the datasets, scaled so the strongest ink is 255."""
    gray = _white_on_black(gray)
    ink = np.clip(gray.astype(np.float32) - _background(gray), 0, None)
    peak = ink.max()
    if peak < BLANK_CONTRAST:  # no ink: stretching grain up to 255 would invent some
        return np.zeros_like(gray)
    return np.clip(ink * (255.0 / peak), 0, 255).astype(np.uint8)


def _crop(ink: np.ndarray, threshold: int) -> np.ndarray | None:
    """The ink's bounding box cut out of the image; None when there is no ink."""
    rows = np.flatnonzero((ink > threshold).any(axis=1))
    cols = np.flatnonzero((ink > threshold).any(axis=0))
    if rows.size == 0:
        return None
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _fit(ink: np.ndarray, threshold: int, box: int) -> np.ndarray | None:
    """The ink's bounding box scaled so its longest side is `box`; None when there is no ink."""
    crop = _crop(ink, threshold)
    if crop is None:
        return None
    h, w = crop.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS), np.float32)


def _paste(item: np.ndarray, top: int, left: int) -> np.ndarray:
    """`item` placed on a black 28x28 canvas at (top, left)."""
    out = np.zeros((SIDE, SIDE), np.float32)
    h, w = item.shape
    out[top:top + h, left:left + w] = item
    return np.clip(out, 0, 255).astype(np.uint8)


def canonical_digit(ink: np.ndarray) -> np.ndarray:
    """Fit the ink's bounding box into 20x20, centre by centre of mass in 28x28 (as MNIST)."""
    # Faint specks (paper grain, JPEG noise) are dropped so they don't widen the box.
    digit = _fit(np.where(ink > 40, ink, 0).astype(np.uint8), 0, DIGIT_BOX)
    if digit is None:
        return np.zeros((SIDE, SIDE), np.uint8)
    total = digit.sum()
    h, w = digit.shape
    cy = (digit.sum(axis=1) @ np.arange(h)) / total if total else h / 2
    cx = (digit.sum(axis=0) @ np.arange(w)) / total if total else w / 2
    return _paste(digit, int(np.clip(round(SIDE / 2 - cy), 0, SIDE - h)),
                  int(np.clip(round(SIDE / 2 - cx), 0, SIDE - w)))


def canonical_clothing(ink: np.ndarray) -> np.ndarray:
    """Crop to the object, fit its longest side to 28, and centre it (as Fashion-MNIST)."""
    item = _fit(ink, 10, SIDE)
    if item is None:
        return np.zeros((SIDE, SIDE), np.uint8)
    h, w = item.shape
    return _paste(item, (SIDE - h) // 2, (SIDE - w) // 2)


def canonicalise(img: Image.Image, style: str) -> np.ndarray:
    """Any decoded image -> the 28x28 uint8 white-on-black array the model sees."""
    gray = to_gray(img)
    if gray.shape == (SIDE, SIDE):
        # Already in dataset form (e.g. an official test image): only fix polarity, so
        # accuracy over HTTP equals offline evaluation.
        return _white_on_black(gray).copy()
    ink = to_ink(gray)
    return canonical_digit(ink) if style == "digit" else canonical_clothing(ink)


def blank(pixels: np.ndarray) -> np.ndarray:
    """Per image of N x 28 x 28 canonical pixels: True when nothing stands out from the rest
    (canonicalisation already turned faint-only inputs into all-zero images)."""
    flat = np.asarray(pixels).reshape(len(pixels), -1)
    return (flat.max(1).astype(np.float32) - flat.min(1)) < BLANK_CONTRAST


def prepare(data: bytes, style: str, max_pixels: int | None = None) -> np.ndarray:
    """Encoded image bytes -> the 28x28 uint8 array the model sees (offline users: the
    evaluation sets, the seed's server; the service reads headers for a whole request first)."""
    return canonicalise(load(open_image(data, max_pixels)), style)
