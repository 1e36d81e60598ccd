"""benchmarks/bodies.py: the requests the benchmarks send are what the service parses."""

from __future__ import annotations

import numpy as np

from benchmarks.bodies import bodies


def test_the_binary_tensor_body_is_what_the_service_parses() -> None:
    from serve_app import oip

    path, body, images, headers = bodies()["oipbin64"]
    parsed = oip.parse_infer(body, headers["Inference-Header-Content-Length"], 64)
    _, json_body, _, _ = bodies()["oip64"]
    assert path == "/v2/models/mnist/infer" and images == 64
    assert np.array_equal(parsed.pixels, oip.parse_infer(json_body, None, 64).pixels)
