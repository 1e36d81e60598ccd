"""The staircase from Ray's floor to the service (`benchmarks/staircase.py` measures it).

`build(args)` composes HTTP -> ingress -> leaf with the first `step` of the service's features,
each taken from the service's own code, in the order the issue lists them:

0. Ray's floor (benchmarks/floor_app.py's shape): the ingress reads the body and awaits one call
   to a leaf that answers a constant.
1. the JSON body with a base64 PNG, parsed as the ingress parses it (serve_app.parsing.parse);
2. PIL decode and canonicalising, in the ingress as for a small request (imaging.prepare_if_small);
3. the handle call carries what the ingress really sends: the N x 28 x 28 pixels;
4. `@serve.batch` in the leaf, with the adaptive wait (batch_wait.AdaptiveWait);
5. the ONNX forward pass and `decide` (vision_core.onnx_model, vision_core.decision);
6. the answer's shape: per-image predictions and the response models' serialisation;
7. our metrics (the classifier's counters and histogram, per batch);
8. the exception handlers, auth, and the OIP and feedback routers on the ingress's app;
9. the classifier's refresh thread (gauges and the slot's assignment, from the store) and
   `reconfigure`.

Step 10 is the service itself (serve_app.app:build_app): Preprocess, the candidate slots, the
Rollout and Feedback deployments, the ingress's rollout router. Benchmarks only: nothing here
is imported by the service.
"""

from __future__ import annotations

import time

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from ray import serve
from ray.serve import Application

from serve_app import feedback_routes, imaging, oip_routes
from serve_app.batch_wait import AdaptiveWait
from serve_app.classifier import Classifier
from serve_app.errors import install_handlers
from serve_app.metrics import LATENCY_BOUNDS_MS
from serve_app.parsing import parse
from serve_app.schemas import BatchResponse, PredictResponse, prediction
from serve_app.settings import AppArgs
from vision_core import onnx_model
from vision_core.decision import ARRAYS, decide
from vision_core.imaging import blank
from vision_core.paths import resolve
from vision_core.registry import MODELS

LAST = 9  # steps built here; step 10 is serve_app.app:build_app


class StepArgs(BaseModel):
    step: int = Field(ge=0, le=LAST)


def _has(step: int, feature: int) -> bool:
    return step >= feature


@serve.deployment
class StepLeaf:
    """The leaf: a constant (steps 0-4) or the classifier's work (5-8) on what the ingress sends."""

    def __init__(self, step: int):
        self.step = step
        self._wait = AdaptiveWait(0.003)
        if _has(step, 5):
            self._model, self._meta = onnx_model.load(resolve(MODELS["mnist"].checkpoint), 1)
        if _has(step, 7):
            from ray.serve.metrics import Counter, Histogram

            self._predictions = Counter("staircase_predictions_total", tag_keys=("label",))
            self._latency = Histogram("staircase_latency_ms", boundaries=LATENCY_BOUNDS_MS)

    async def predict(self, payload):
        if not _has(self.step, 4):
            return {"label": "0", "confidence": 1.0}
        return await self._batched(payload)

    @serve.batch(max_batch_size=128, batch_wait_timeout_s=0.003,
                 batch_size_fn=lambda items: sum(len(p) for p in items))
    async def _batched(self, items: list) -> list:
        self._batched.set_batch_wait_timeout_s(self._wait.after(requests=len(items)))
        if not _has(self.step, 5):
            return [{"label": "0", "confidence": 1.0} for _ in items]
        start = time.perf_counter()
        pixels = np.concatenate(items)
        result = decide(self._meta, *self._model.scores(pixels), blank(pixels))
        if _has(self.step, 7):
            self._latency.observe((time.perf_counter() - start) * 1000)
            kept = result["probabilities"][result["accepted"]].argmax(1)
            for class_id, count in zip(*np.unique(kept, return_counts=True), strict=True):
                self._predictions.inc(int(count), tags={"label": str(class_id)})
        ends = np.cumsum([len(p) for p in items]).tolist()
        return [{**{k: result[k][e - len(p):e] for k in ARRAYS},
                 "reasons": result["reasons"][e - len(p):e], "labels": self._meta["labels"],
                 "version": self._meta["sha256"][:12]}
                for p, e in zip(items, ends, strict=True)]


def _ingress(step: int):
    """The ingress class of a step, on an app of its own (routers differ between steps)."""
    api = FastAPI()
    if _has(step, 8):
        install_handlers(api)
        api.include_router(oip_routes.router)
        api.include_router(feedback_routes.router)

    @serve.deployment
    @serve.ingress(api)
    class StepIngress:
        def __init__(self, leaf):
            self._leaf = leaf
            self.args = AppArgs()

        @api.post("/mnist", response_model=PredictResponse | BatchResponse if _has(step, 6)
                  else None, response_model_exclude_none=True)
        async def mnist(self, request: Request):
            if _has(step, 8) and request.headers.get("authorization"):
                pass  # the auth check's header read: no key is configured, as in the service
            if not _has(step, 1):
                return await self._leaf.predict.remote(len(await request.body()))
            images = await parse(request, self.args.max_body_bytes,
                                 self.args.max_images_per_request)
            payload = len(images.blobs[0])
            if _has(step, 2):
                pixels, _ = imaging.prepare_if_small(images.blobs, "digit",
                                                     self.args.max_image_pixels, 320 * 320)
                payload = pixels if _has(step, 3) else pixels.shape[0]
            out = await self._leaf.predict.remote(payload)
            if not _has(step, 6):
                return JSONResponse({"label": str(out.get("label", "0"))})
            rows = np.round(out["probabilities"].astype(np.float64), 6).tolist()
            pred = prediction(rows[0], out["labels"], None, out["reasons"][0])
            return {"model": "mnist", "model_version": out["version"], **pred}

        @api.get("/healthz")
        async def healthz(self) -> str:
            return "ok"

    return StepIngress


def build(args: StepArgs) -> Application:
    """Step `args.step`'s app: HTTP -> StepIngress -> StepLeaf, or the classifier (step 9)."""
    if _has(args.step, 9):  # the service's classifier itself: refresh thread, reconfigure
        leaf = Classifier.options(name="StepLeaf").bind(
            "mnist", str(resolve(MODELS["mnist"].checkpoint)), 64, 1)
    else:
        leaf = StepLeaf.bind(args.step)
    return _ingress(args.step).options(name="StepIngress").bind(leaf)
