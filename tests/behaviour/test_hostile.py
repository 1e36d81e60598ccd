"""A generated corpus of hostile inputs: each gets its 4xx, no replica restarts, memory stays
flat, and good requests sent at the same moment still succeed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests

from tests.helpers import Traffic, alive_replicas, b64, encode, golden, png_claiming

pytestmark = pytest.mark.ray
MiB = 1024 * 1024
GREY = np.full((64, 64), 128, np.uint8)
PNG, JPEG = encode(GREY, "PNG"), encode(GREY, "JPEG")
FILES = {  # name: (bytes, expected status) — sent as base64 JSON and as multipart
    "pdf": (b"%PDF-1.7\n1 0 obj<</Type/Catalog>>endobj\ntrailer<<>>\n%%EOF", 415),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', 415),
    "psd": (b"8BPS\x00\x01" + b"\x00" * 64, 415),
    "eps": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n", 415),
    "fits": (b"SIMPLE  =                    T" + b" " * 50, 415),
    "tiff": (encode(GREY, "TIFF"), 415),
    "ico": (encode(GREY[:32, :32], "ICO"), 415),
    "zip": (b"PK\x03\x04" + b"\x00" * 64, 415),
    "html": (b"<html><script>alert(1)</script></html>", 415),
    "text": (b"just some text", 415),
    "truncated_png": (PNG[: len(PNG) // 2], 422),
    "truncated_jpeg": (JPEG[: len(JPEG) // 3], 422),
    "png_header_only": (PNG[:8], 422),
    "jpeg_magic_only": (b"\xff\xd8\xff", 422),
    "gif_header_only": (b"GIF89a", 422),
    "bad_png_crc": (PNG[:20] + bytes([PNG[20] ^ 0xFF]) + PNG[21:], 422),
    "zero_width_png": (png_claiming(0, 10), 422),
    "empty": (b"", 422),
    "bomb_50k": (png_claiming(50_000, 50_000), 413),
    "over_pixel_limit": (png_claiming(5000, 5000), 413),
}
JSON_CASES = {  # expected status: raw JSON bodies that must get it
    # Not JSON, or JSON that is not a request: empty, invalid, null, a list, a string, no
    # "base64", base64 of the wrong type, an empty list, an extra key, 5000-deep nesting.
    422: [b"", b"{'base64': 1", b"null", b"[]", b'"abc"', b'{"image": "abc"}',
          b'{"base64": null}', b'{"base64": 7}', b'{"base64": [["a"]]}', b'{"base64": []}',
          json.dumps({"base64": b64(PNG), "x": 1}).encode(),
          b'{"base64": ' + b"[" * 5000 + b"]" * 5000 + b"}"],
    # A request whose text is not base64 of an image: bad characters, bad padding, non-ASCII,
    # a data URL of another type.
    400: [b'{"base64": "!!!!"}', b'{"base64": "aGVsbG8"}', '{"base64": "ü€"}'.encode(),
          json.dumps({"base64": "data:text/html;base64," + b64(PNG)}).encode()],
    413: [json.dumps({"base64": [b64(PNG)] * 257}).encode()],  # one image over the limit
}


def _error_ok(resp: requests.Response, status: int) -> None:
    assert resp.status_code == status, f"{resp.status_code}: {resp.text[:200]}"
    assert set(resp.json()["error"]) == {"code", "message"}


def _send_corpus(url: str) -> None:
    for data, status in FILES.values():
        _error_ok(requests.post(f"{url}/mnist", json={"base64": b64(data)}, timeout=30), status)
        _error_ok(requests.post(f"{url}/mnist", files={"file": ("x", data)}, timeout=30), status)
    for status, bodies in JSON_CASES.items():
        for body in bodies:
            _error_ok(requests.post(f"{url}/mnist", data=body, timeout=30,
                                    headers={"Content-Type": "application/json"}), status)
    checks = [
        (requests.post(f"{url}/mnist", data=b"\x00" * (10 * MiB + 1), timeout=60,
                       headers={"Content-Type": "application/json"}), 413),
        # No Content-Length (chunked): the limit is enforced while reading.
        (requests.post(f"{url}/mnist", data=iter([b"\x00" * MiB] * 11), timeout=60,
                       headers={"Content-Type": "application/json"}), 413),
        (requests.post(f"{url}/mnist", data=b"abc", headers={"Content-Type": "text/plain"},
                       timeout=30), 415),
        (requests.post(f"{url}/mnist", files={"other": ("x", PNG)}, timeout=30), 422),
        (requests.post(f"{url}/mnist", files={"file": (None, "not a file")}, timeout=30), 422),
        (requests.post(f"{url}/mnist", data={"file": "x"}, timeout=30), 415),  # urlencoded
        (requests.post(f"{url}/mnist", data=b"--x\r\nbroken", timeout=30,
                       headers={"Content-Type": "multipart/form-data; boundary=x"}), 422),
        (requests.post(f"{url}/unknown", json={"base64": b64(PNG)}, timeout=30), 404),
        (requests.delete(f"{url}/mnist", timeout=30), 405),
        (requests.put(f"{url}/models", timeout=30), 405),
    ]
    for resp, status in checks:
        _error_ok(resp, status)


def _rss(pids) -> int:
    import psutil

    return sum(psutil.Process(p).memory_info().rss for p in pids)


def test_hostile_corpus_gets_4xx_without_harming_the_service(serve_url):
    path, label = golden("mnist")[0]
    good_body = {"base64": b64(path)}
    before = alive_replicas("vision")
    _send_corpus(serve_url)  # warm-up round: allocator pools settle
    rss_before = _rss(before.values())

    def good_request() -> int:
        r = requests.post(f"{serve_url}/mnist", json=good_body, timeout=30)
        return r.status_code if r.json().get("class_id") == label else -1

    with Traffic(good_request) as good:
        for round_ in range(3):
            answered = len(good.results)
            _send_corpus(serve_url)
            # Good requests are answered *while* the corpus is sent, not held up behind it.
            assert len(good.results) > answered, f"no good request answered in round {round_}"

    assert set(good.results) == {200}, "good requests failed while the corpus was sent"
    assert alive_replicas("vision") == before, "a replica crashed or restarted"
    growth = _rss(before.values()) - rss_before
    assert growth < 64 * MiB, f"replica memory grew by {growth / MiB:.0f} MiB"
