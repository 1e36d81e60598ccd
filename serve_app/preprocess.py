"""Preprocess deployment: encoded image bytes -> 28x28 uint8 arrays (serve_app/imaging.py)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from ray import serve
from ray.serve.metrics import Histogram

from serve_app import imaging
from serve_app.errors import ApiError
from serve_app.metrics import LATENCY_BOUNDS_MS

# Requests whose headers declare at most this many pixels in all are prepared on the replica's
# event loop. That is about a millisecond of work, and a worker thread would add a hand-off
# costing 0.6 ms of a 7 ms round trip (benchmarks/NOTES.md, lever 13). Anything bigger, or
# unreadable, goes to a thread, so the loop keeps taking requests and answering health checks.
INLINE_PIXELS = 256 * 256


@serve.deployment
class Preprocess:
    """CPU-bound and model-agnostic, so it scales separately from the classifiers."""

    def __init__(self, max_image_pixels: int):
        self._max_pixels = max_image_pixels
        self._latency = Histogram(
            "vision_preprocess_latency_ms", description="Decode + canonicalise time per request",
            boundaries=LATENCY_BOUNDS_MS, tag_keys=("style",))

    async def run(self, blobs: list[bytes], style: str, want_png: bool = False
                  ) -> tuple[np.ndarray, list[str] | None] | ApiError:
        """All images of one request in one call; a client error is returned, not raised.

        Returning the error keeps client mistakes out of the replica's error logs and
        avoids a traceback per bad image; the ingress's `call` raises it as the answer.
        """
        start = time.perf_counter()
        try:
            images = imaging.open_all(blobs, self._max_pixels)  # the only header read
            if sum(img.width * img.height for img in images) <= INLINE_PIXELS:
                prepared = imaging.canonicalise_all(images, style, want_png)
            else:
                prepared = await asyncio.to_thread(imaging.canonicalise_all, images, style,
                                                   want_png)
        except ApiError as err:
            return err
        self._latency.observe((time.perf_counter() - start) * 1000, tags={"style": style})
        return prepared
