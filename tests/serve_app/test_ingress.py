"""serve_app/ingress.py without Ray: which requests skip the hop to Preprocess."""

import io

import numpy as np
from PIL import Image

from serve_app.ingress import DIRECT_MAX_IMAGES, decoded_here


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((height, width), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_a_few_dataset_form_images_are_decoded_by_the_ingress():
    assert decoded_here([png(28, 28)])
    assert decoded_here([png(28, 28)] * DIRECT_MAX_IMAGES)


def test_everything_else_goes_to_preprocess():
    assert not decoded_here([png(28, 28)] * (DIRECT_MAX_IMAGES + 1))  # too many for the loop
    assert not decoded_here([png(28, 28), png(280, 280)])  # a canvas drawing needs preprocessing
    assert not decoded_here([png(28, 27)])
    assert not decoded_here([b"hello"])  # an unreadable header: Preprocess gives the precise error
    assert not decoded_here([])
