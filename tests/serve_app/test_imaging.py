"""serve_app/imaging.py: a request's images through vision_core.imaging, with each refusal as its
HTTP status and named by its index; small requests prepared in the ingress."""

from __future__ import annotations

import numpy as np
import pytest

from serve_app import imaging
from serve_app.errors import ApiError
from serve_app.settings import AppArgs
from tests.helpers import GOLDEN, b64, digit_one, from_b64, png, png_claiming

LIMIT = AppArgs().max_image_pixels


def prepare_all(blobs: list[bytes], style: str, want_png: bool = False):
    """What Preprocess runs on a request's images."""
    return imaging.canonicalise_all(imaging.open_all(blobs, LIMIT), style, want_png)


def status_of(data: bytes) -> int:
    with pytest.raises(ApiError) as info:
        prepare_all([data], "digit")
    return info.value.status


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


def test_small_requests_are_prepared_as_preprocess_would():
    budget = 320 * 320
    seen = imaging.prepare_if_small([png(digit_one())] * 2, "digit", LIMIT, budget, want_png=True)
    assert seen is not None and seen[0].shape == (2, 28, 28) and len(seen[1]) == 2
    assert np.array_equal(seen[0][0], prepare_all([png(digit_one())], "digit")[0][0])
    canvas = next(GOLDEN.glob("mnist_canvas_*")).read_bytes()  # 280 x 280, from the page
    pixels, _ = imaging.prepare_if_small([canvas], "digit", LIMIT, budget)
    assert np.array_equal(pixels, prepare_all([canvas], "digit")[0])
    big = png(np.zeros((400, 400), np.uint8))
    assert imaging.prepare_if_small([big], "digit", LIMIT, budget) is None  # Preprocess's work
    assert imaging.prepare_if_small([b"hello"], "digit", LIMIT, budget) is None  # its error too
    assert imaging.prepare_if_small([], "digit", LIMIT, budget) is None


def test_many_images_are_prepared_here_only_when_all_are_in_dataset_form():
    budget, dataset = 320 * 320, [png(digit_one()), png(255 - digit_one())] * 4  # 8 of 28x28
    assert imaging.prepare_if_small(dataset, "digit", LIMIT, budget) is None  # more than 4
    pixels, _ = imaging.prepare_if_small(dataset, "digit", LIMIT, budget, dataset_form=8)
    assert np.array_equal(pixels, prepare_all(dataset, "digit")[0])
    assert imaging.prepare_if_small(dataset, "digit", LIMIT, budget, dataset_form=7) is None
    # One image of another size means real canonicalisation work: Preprocess's.
    mixed = dataset[:7] + [png(digit_one(56))]
    assert imaging.prepare_if_small(mixed, "digit", LIMIT, budget, dataset_form=8) is None


def test_the_bad_image_of_several_is_named():
    pixels, pngs = prepare_all([png(digit_one())] * 2, "digit", want_png=True)
    assert pixels.shape == (2, 28, 28) and len(pngs) == 2
    assert prepare_all([png(digit_one())], "digit")[1] is None
    with pytest.raises(ApiError) as info:
        prepare_all([png(digit_one()), png(digit_one(200))[:200]], "digit")
    assert info.value.status == 422 and info.value.message.startswith("image 1:")
    with pytest.raises(ApiError) as info:
        prepare_all([b"hello"], "digit")
    assert not info.value.message.startswith("image")
