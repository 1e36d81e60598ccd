"""serve_app/imaging.py without Ray: decoding limits, errors, and canonicalisation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from serve_app import imaging
from serve_app.errors import ApiError
from tests.conftest import GOLDEN
from tests.helpers import b64, encode, from_b64, png, png_claiming

LIMIT = 4096 * 4096


def digit_one(side: int = 28) -> np.ndarray:
    """A white vertical bar on black: a crude '1' in dataset form."""
    img = np.zeros((side, side), np.uint8)
    img[side // 5: side - side // 5, side // 2 - side // 14: side // 2 + side // 14 + 1] = 255
    return img


def status_of(data: bytes) -> int:
    with pytest.raises(ApiError) as info:
        imaging.prepare(data, "digit", LIMIT)
    return info.value.status


def test_dataset_form_passes_through_unchanged():
    rng = np.random.default_rng(0)
    img = np.zeros((28, 28), np.uint8)
    img[5:23, 8:20] = rng.integers(0, 256, (18, 12))
    assert np.array_equal(imaging.prepare(png(img), "digit", LIMIT), img)
    assert np.array_equal(imaging.prepare(png(img), "clothing", LIMIT), img)


def test_inverted_input_is_flipped_to_white_on_black():
    out = imaging.prepare(png(255 - digit_one()), "digit", LIMIT)
    assert out[0, 0] == 0 and out.max() == 255


def test_transparent_canvas_is_composited_onto_white_then_inverted():
    rgba = np.zeros((280, 280, 4), np.uint8)  # black ink only where alpha is set
    rgba[60:220, 130:150, 3] = 255
    out = imaging.prepare(png(rgba), "digit", LIMIT)
    assert out.shape == (28, 28) and out[0, 0] == 0 and out.max() == 255
    rows = np.flatnonzero(out.max(axis=1) > 0)
    assert 19 <= rows[-1] - rows[0] + 1 <= 21  # fitted into the 20-pixel box, like MNIST


def test_large_and_tiny_images_become_28x28():
    for side in (3000, 12):
        out = imaging.prepare(png(digit_one(side)), "digit", LIMIT)
        assert out.shape == (28, 28) and out.max() == 255


def test_digit_is_centred_by_centre_of_mass():
    img = np.zeros((200, 200), np.uint8)
    img[10:60, 10:20] = 255  # ink in the top-left corner
    out = imaging.prepare(png(img), "digit", LIMIT).astype(float)
    ys, xs = np.mgrid[0:28, 0:28]
    cy, cx = (out * ys).sum() / out.sum(), (out * xs).sum() / out.sum()
    assert abs(cy - 14) < 1.5 and abs(cx - 14) < 1.5


def test_clothing_fits_longest_side_to_28():
    img = np.full((300, 200), 255, np.uint8)
    img[50:250, 40:160] = 30  # a dark item on a white catalog background
    out = imaging.prepare(png(img), "clothing", LIMIT)
    rows = np.flatnonzero(out.max(axis=1) > 0)
    assert rows[-1] - rows[0] + 1 == 28


def test_photo_like_jpeg_with_uneven_lighting():
    paper = np.linspace(170, 250, 400)[None, :].repeat(300, 0)
    paper[80:220, 190:210] = 40  # a dark '1' on grey-to-white paper
    photo = encode(Image.fromarray(paper.astype(np.uint8)).convert("RGB"), "JPEG", quality=70)
    out = imaging.prepare(photo, "digit", LIMIT)
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
    out = imaging.prepare(encode(stored.convert("RGB"), "JPEG", exif=exif), "clothing", LIMIT)
    assert np.flatnonzero(out.max(axis=0) > 60).size > np.flatnonzero(out.max(axis=1) > 60).size


def test_blank_image_gives_zeros():
    assert not imaging.prepare(png(np.full((50, 50), 255, np.uint8)), "digit", LIMIT).any()


@pytest.mark.parametrize("style", ["digit", "clothing"])
def test_grainy_paper_is_blank_but_faint_ink_is_not(style):
    rng = np.random.default_rng(0)
    paper = np.clip(230 + np.linspace(0, 12, 300)[None, :] + rng.normal(0, 4, (200, 300)), 0, 255)
    pixels = [imaging.prepare(png(paper.astype(np.uint8)), style, LIMIT)]
    paper[60:140, 140:150] -= imaging.BLANK_CONTRAST + 30  # light pencil, still ink
    pixels.append(imaging.prepare(png(np.clip(paper, 0, 255).astype(np.uint8)), style, LIMIT))
    assert not pixels[0].any()  # grain was not stretched into ink
    assert imaging.blank(np.stack(pixels)).tolist() == [True, False]


def test_blank_judges_28x28_arrays_by_their_contrast():
    flat, ink = np.full((28, 28), 90, np.uint8), digit_one()
    faint = flat.copy()
    faint[5] += imaging.BLANK_CONTRAST - 1
    assert imaging.blank(np.stack([flat, faint, ink, np.zeros((28, 28), np.uint8)])).tolist() \
        == [True, True, False, True]


@pytest.mark.parametrize("data, status", [
    (b"", 422),
    (b"%PDF-1.7\n1 0 obj<<>>endobj", 415),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", 415),
    (b"8BPS\x00\x01" + b"\x00" * 40, 415),       # PSD
    (b"II*\x00\x08\x00\x00\x00" + b"\x00" * 40, 415),  # TIFF is not on the allow-list
    (b"hello, world", 415),
])
def test_rejected_bytes(data, status):
    assert status_of(data) == status


def test_truncated_png_is_unprocessable():
    assert status_of(png(digit_one(200))[:200]) == 422


def test_decompression_bomb_is_refused_from_the_header():
    assert status_of(png_claiming(50_000, 50_000)) == 413
    assert status_of(png_claiming(5000, 5000)) == 413  # over the 4096 x 4096 default


def test_b64decode_accepts_data_url_and_rejects_garbage():
    raw = b"\x89PNG..."
    assert imaging.b64decode("data:image/png;base64," + b64(raw)) == raw
    with pytest.raises(ApiError) as info:
        imaging.b64decode("not base64 at all!")
    assert info.value.status == 400


def test_png_of_seen_image_round_trips():
    img = digit_one()
    seen = from_b64(imaging.to_png_base64(img))
    assert np.array_equal(np.asarray(seen), img)


def test_open_all_reads_headers_only():
    opened = imaging.open_all([png(digit_one()), png(digit_one(100))], LIMIT)
    assert [img.size for img in opened] == [(28, 28), (100, 100)]
    # 20 M pixels would take 20 MB and real time to decode: only the header is read.
    assert imaging.open_all([png_claiming(5000, 4000)], 5000 * 4000)[0].size == (5000, 4000)
    with pytest.raises(ApiError) as info:
        imaging.open_all([png_claiming(5000, 4000)], LIMIT)
    assert info.value.status == 413
    with pytest.raises(ApiError) as info:
        imaging.open_all([png(digit_one()), b"hello"], LIMIT)
    assert info.value.status == 415 and info.value.message.startswith("image 1:")
    assert imaging.open_all([], LIMIT) == []


def test_small_requests_are_prepared_as_prepare_all_would():
    budget = 320 * 320
    seen = imaging.prepare_if_small([png(digit_one())] * 2, "digit", LIMIT, budget, want_png=True)
    assert seen is not None and seen[0].shape == (2, 28, 28) and len(seen[1]) == 2
    assert np.array_equal(seen[0][0], imaging.prepare(png(digit_one()), "digit", LIMIT))
    canvas = next(GOLDEN.glob("mnist_canvas_*")).read_bytes()  # 280 x 280, from the page
    pixels, _ = imaging.prepare_if_small([canvas], "digit", LIMIT, budget)
    assert np.array_equal(pixels, imaging.prepare_all([canvas], "digit", LIMIT)[0])
    big = png(np.zeros((400, 400), np.uint8))
    assert imaging.prepare_if_small([big], "digit", LIMIT, budget) is None  # Preprocess's work
    assert imaging.prepare_if_small([b"hello"], "digit", LIMIT, budget) is None  # its error too
    assert imaging.prepare_if_small([], "digit", LIMIT, budget) is None


def test_many_images_are_prepared_here_only_when_all_are_in_dataset_form():
    budget, dataset = 320 * 320, [png(digit_one()), png(255 - digit_one())] * 4  # 8 of 28x28
    assert imaging.prepare_if_small(dataset, "digit", LIMIT, budget) is None  # more than 4
    pixels, _ = imaging.prepare_if_small(dataset, "digit", LIMIT, budget, dataset_form=8)
    assert np.array_equal(pixels, imaging.prepare_all(dataset, "digit", LIMIT)[0])
    assert imaging.prepare_if_small(dataset, "digit", LIMIT, budget, dataset_form=7) is None
    # One image of another size means real canonicalisation work: Preprocess's.
    mixed = dataset[:7] + [png(digit_one(56))]
    assert imaging.prepare_if_small(mixed, "digit", LIMIT, budget, dataset_form=8) is None


def test_prepare_all_names_the_bad_image_of_several():
    pixels, pngs = imaging.prepare_all([png(digit_one())] * 2, "digit", LIMIT, want_png=True)
    assert pixels.shape == (2, 28, 28) and len(pngs) == 2
    assert imaging.prepare_all([png(digit_one())], "digit", LIMIT)[1] is None
    with pytest.raises(ApiError) as info:
        imaging.prepare_all([png(digit_one()), b"hello"], "digit", LIMIT)
    assert info.value.status == 415 and info.value.message.startswith("image 1:")
    with pytest.raises(ApiError) as info:
        imaging.prepare_all([b"hello"], "digit", LIMIT)
    assert not info.value.message.startswith("image")
