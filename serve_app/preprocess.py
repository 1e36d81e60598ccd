"""Preprocess deployment: encoded image bytes -> 28x28 uint8 arrays (see imaging.py)."""

from __future__ import annotations

import time

import numpy as np
from ray import serve
from ray.serve.metrics import Histogram

from serve_app import imaging
from serve_app.errors import ApiError
from serve_app.metrics import LATENCY_BOUNDS_MS


@serve.deployment
class Preprocess:
    """CPU-bound and model-agnostic, so it scales separately from the classifiers."""

    def __init__(self, max_image_pixels: int = 4096 * 4096):
        self._max_pixels = max_image_pixels
        self._latency = Histogram(
            "vision_preprocess_latency_ms", description="Decode + canonicalise time per request",
            boundaries=LATENCY_BOUNDS_MS, tag_keys=("style",))

    def run(self, images: list[bytes], style: str, want_png: bool = False
            ) -> tuple[np.ndarray, list[str] | None] | ApiError:
        """All images of one request in one call; a client error is returned, not raised.

        Returning the error keeps client mistakes out of the replica's error logs and
        avoids a traceback per bad image; the ingress turns it into the HTTP answer.
        """
        start = time.perf_counter()
        out = np.empty((len(images), imaging.SIDE, imaging.SIDE), np.uint8)
        for i, data in enumerate(images):
            try:
                out[i] = imaging.prepare(data, style, self._max_pixels)
            except ApiError as err:
                if len(images) > 1:
                    err.message = f"image {i}: {err.message}"
                return err
        self._latency.observe((time.perf_counter() - start) * 1000, tags={"style": style})
        return out, [imaging.to_png_base64(a) for a in out] if want_png else None
