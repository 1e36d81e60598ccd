"""benchmarks/ood.py: the evaluation's HTTP path answers what the in-process path
(training.ood_eval: the same preprocessing and decision, with torch) answers, so the model cards'
in-process figures mean the served service."""

from __future__ import annotations

import random

import numpy as np

from benchmarks import ood
from tests.helpers import GOLDEN, golden
from training.ood_eval import InProcess, make


def _blobs() -> list[bytes]:
    made = [b for kind in ("noise", "blank", "letter", "pattern")
            for b in make(kind, 2, seed=5)]
    return made + [p.read_bytes() for p, _ in golden("mnist")[:4] + golden("fmnist")[:4]] + [
        p.read_bytes() for p in sorted(GOLDEN.glob("declined_*.png"))]


def test_http_answers_equal_the_in_process_answers(serve_url) -> None:
    blobs, here, there = _blobs(), InProcess(), ood.Http(serve_url)
    there.IMAGES = 5  # several requests, in parallel, reassembled in order
    for route in ("mnist", "fmnist", "classify"):
        a, b = here.answers(route, blobs), there.answers(route, blobs)
        for field in ("accepted", "class_id", "model"):
            assert a[field].tolist() == b[field].tolist(), (route, field)
    assert not here.answers("mnist", blobs)["accepted"].all()  # the set has declines to compare
    for model in ("mnist", "fmnist"):  # the very files measured
        assert here.sha256(model) == there.sha256(model)


def test_requests_stay_under_the_image_and_byte_limits() -> None:
    http = ood.Http("http://127.0.0.1:9")
    blobs = [bytes(random.Random(i).randrange(1, 3 << 20)) for i in range(10)] + [b"x"] * 150
    chunks = http._chunks(blobs)
    assert [b for c in chunks for b in c] == blobs  # every image once, in order
    assert all(len(c) <= http.IMAGES for c in chunks)
    assert all(sum(len(b) * 4 // 3 for b in c) <= http.BYTES for c in chunks if len(c) > 1)
    assert np.mean([len(c) for c in chunks]) > 1
