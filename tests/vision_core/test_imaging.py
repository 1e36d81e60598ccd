"""vision_core/imaging.py: reading images safely, and canonicalising them the way each dataset
was made (the same pixels for serving and for training's negatives and evaluation sets)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.helpers import digit_one, encode, png, png_claiming
from vision_core import imaging


def code_of(data: bytes, max_pixels: int | None = None) -> str:
    with pytest.raises(imaging.ImageError) as info:
        imaging.prepare(data, "digit", max_pixels)
    return info.value.code


def test_dataset_form_passes_through_unchanged():
    rng = np.random.default_rng(0)
    img = np.zeros((28, 28), np.uint8)
    img[5:23, 8:20] = rng.integers(0, 256, (18, 12))
    assert np.array_equal(imaging.prepare(png(img), "digit"), img)
    assert np.array_equal(imaging.prepare(png(img), "clothing"), img)


def test_inverted_input_is_flipped_to_white_on_black():
    out = imaging.prepare(png(255 - digit_one()), "digit")
    assert out[0, 0] == 0 and out.max() == 255


def test_transparent_canvas_is_composited_onto_white_then_inverted():
    rgba = np.zeros((280, 280, 4), np.uint8)  # black ink only where alpha is set
    rgba[60:220, 130:150, 3] = 255
    out = imaging.prepare(png(rgba), "digit")
    assert out.shape == (28, 28) and out[0, 0] == 0 and out.max() == 255
    rows = np.flatnonzero(out.max(axis=1) > 0)
    assert 19 <= rows[-1] - rows[0] + 1 <= 21  # fitted into the 20-pixel box, like MNIST


def test_large_and_tiny_images_become_28x28():
    for side in (3000, 12):
        out = imaging.prepare(png(digit_one(side)), "digit")
        assert out.shape == (28, 28) and out.max() == 255


def test_digit_is_centred_by_centre_of_mass():
    img = np.zeros((200, 200), np.uint8)
    img[10:60, 10:20] = 255  # ink in the top-left corner
    out = imaging.prepare(png(img), "digit").astype(float)
    ys, xs = np.mgrid[0:28, 0:28]
    cy, cx = (out * ys).sum() / out.sum(), (out * xs).sum() / out.sum()
    assert abs(cy - 14) < 1.5 and abs(cx - 14) < 1.5


def test_clothing_fits_longest_side_to_28():
    img = np.full((300, 200), 255, np.uint8)
    img[50:250, 40:160] = 30  # a dark item on a white catalog background
    out = imaging.prepare(png(img), "clothing")
    rows = np.flatnonzero(out.max(axis=1) > 0)
    assert rows[-1] - rows[0] + 1 == 28


def test_photo_like_jpeg_with_uneven_lighting():
    paper = np.linspace(170, 250, 400)[None, :].repeat(300, 0)
    paper[80:220, 190:210] = 40  # a dark '1' on grey-to-white paper
    photo = encode(Image.fromarray(paper.astype(np.uint8)).convert("RGB"), "JPEG", quality=70)
    out = imaging.prepare(photo, "digit")
    cols = np.flatnonzero(out.max(axis=0) > 60)
    assert cols.size and cols[-1] - cols[0] < 10  # only the stroke, not the lit paper edge



@pytest.mark.parametrize("shape", [(280, 280), (300, 400), (40, 7)])
def test_background_is_the_plane_fitted_to_the_border(shape):
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    lit = 60 + 0.25 * xx + 0.125 * yy  # lighting that rises across and down the paper
    gray = lit.astype(np.uint8)
    gray[h // 3: 2 * h // 3, w // 3: 2 * w // 3] = 255  # ink inside, not on the border
    plane = imaging._background(gray)
    assert plane.shape == shape and plane.dtype == np.float32
    # uint8 truncation lowers the border by 0.5 on average; the fit sees that, nothing else.
    assert np.abs(plane - (lit - 0.5)).max() < 1.0

def test_exif_orientation_is_applied():
    img = np.full((100, 300), 255, np.uint8)
    img[45:55, 20:280] = 0  # a horizontal bar, stored rotated with an EXIF tag
    stored = Image.fromarray(img).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = imaging.prepare(encode(stored.convert("RGB"), "JPEG", exif=exif), "clothing")
    assert np.flatnonzero(out.max(axis=0) > 60).size > np.flatnonzero(out.max(axis=1) > 60).size


def test_blank_image_gives_zeros():
    assert not imaging.prepare(png(np.full((50, 50), 255, np.uint8)), "digit").any()


@pytest.mark.parametrize("style", ["digit", "clothing"])
def test_grainy_paper_is_blank_but_faint_ink_is_not(style):
    rng = np.random.default_rng(0)
    paper = np.clip(230 + np.linspace(0, 12, 300)[None, :] + rng.normal(0, 4, (200, 300)), 0, 255)
    pixels = [imaging.prepare(png(paper.astype(np.uint8)), style)]
    paper[60:140, 140:150] -= imaging.BLANK_CONTRAST + 30  # light pencil, still ink
    pixels.append(imaging.prepare(png(np.clip(paper, 0, 255).astype(np.uint8)), style))
    assert not pixels[0].any()  # grain was not stretched into ink
    assert imaging.blank(np.stack(pixels)).tolist() == [True, False]


def test_blank_judges_28x28_arrays_by_their_contrast():
    flat, ink = np.full((28, 28), 90, np.uint8), digit_one()
    faint = flat.copy()
    faint[5] += imaging.BLANK_CONTRAST - 1
    assert imaging.blank(np.stack([flat, faint, ink, np.zeros((28, 28), np.uint8)])).tolist() \
        == [True, True, False, True]


@pytest.mark.parametrize("data, code", [
    (b"", "empty_image"),
    (b"%PDF-1.7\n1 0 obj<<>>endobj", "unsupported_media_type"),
    (b"hello, world", "unsupported_media_type"),
])
def test_unusable_bytes_say_why(data, code):
    assert code_of(data) == code


def test_a_truncated_image_is_corrupt_and_a_bomb_too_large():
    assert code_of(png(digit_one(200))[:200]) == "corrupt_image"
    assert code_of(png_claiming(5000, 5000), max_pixels=4096 * 4096) == "image_too_large"
    assert code_of(png_claiming(50_000, 50_000)) == "image_too_large"  # Pillow's own guard
