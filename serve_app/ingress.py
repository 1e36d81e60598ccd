"""Ingress deployment: the REST routes, auth, and the shape of every answer.

A request reads top to bottom: `predict` parses the body, `prepare` turns the images into
28x28 pixels (Preprocess), `classify` asks the model's Classifier, and the answer is shaped
here. The Open Inference Protocol routes are a thin router over the same calls
(oip_routes.py). No `from __future__ import annotations`: FastAPI must see real types.
"""

import asyncio
import functools
import hmac
import os
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi import Path as Path_
from fastapi.responses import FileResponse, JSONResponse, Response
from ray import serve
from ray.exceptions import RayError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle
from ray.serve.metrics import Counter

from serve_app import imaging, oip_routes
from serve_app.errors import ApiError, install_handlers
from serve_app.parsing import parse
from serve_app.schemas import (
    PREDICT_BODY,
    REST_ERRORS,
    BatchResponse,
    ClassifyPrediction,
    ClassifyResponse,
    ErrorResponse,
    ModelInfo,
    PredictResponse,
    prediction,
)
from serve_app.settings import AppArgs
from vision_core.decision import pick

# Small requests are prepared here instead of in Preprocess: up to 4 images of at most 320 x 320
# pixels in all (a drawing from the page is 280 x 280), or up to 64 images already in dataset
# form (28 x 28: only decoded, about 4 ms for 64). The round trip to Preprocess costs more than
# that work (benchmarks/NOTES.md, levers 14, 22 and 27). Bigger requests go to Preprocess, which
# scales on its own and keeps this loop free.
DIRECT_MAX_IMAGES = 4
DIRECT_MAX_PIXELS = 320 * 320
DIRECT_MAX_DATASET_FORM = 64

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = frozenset(p.name for p in STATIC.iterdir() if p.is_file())

app = FastAPI(
    title="Vision AI",
    version=oip_routes.VERSION,
    description="Handwritten digits (MNIST) and clothing (Fashion-MNIST) classification.",
)
_MODEL = Path_(description="a model name, see GET /models", examples=["mnist", "fmnist"])


@functools.cache
def _rejected() -> Counter:
    return Counter("vision_rejected_requests_total", description="Requests refused, by reason",
                   tag_keys=("reason",))


install_handlers(app, on_reject=lambda code: _rejected().inc(tags={"reason": code}))
# Included at import, before @serve.ingress takes the app over.
app.include_router(oip_routes.router)


async def call(response):
    """Await a DeploymentResponse. A client error the replica returned is raised as the
    answer; overload and lost replicas become retryable answers."""
    try:
        result = await response
    except BackPressureError:
        raise ApiError(429, "overloaded", "the service is at capacity; retry shortly") from None
    except RayError as err:  # a replica died or is restarting: the client may retry
        raise ApiError(503, "unavailable", f"a model replica is unavailable "
                                           f"({type(err).__name__}); retry shortly") from None
    if isinstance(result, ApiError):
        raise result
    return result


@serve.deployment
@serve.ingress(app)
class Ingress:
    """Knows only its neighbours: the Preprocess handle and one Classifier handle per model."""

    def __init__(self, preprocess: DeploymentHandle, classifiers: dict[str, DeploymentHandle],
                 args: dict):
        self.args = AppArgs.model_validate(args)
        self.pre = preprocess
        self.classifiers = classifiers
        self._styles: dict[str, str] = {}  # model -> preprocessing style, from its checkpoint
        app.state.models = set(classifiers)  # for the 404-vs-405 decision in errors.py
        app.state.ingress = self  # for the OIP router's routes
        key = os.environ.get(self.args.api_key_env, "")
        self._key = key.encode() if key else None

    def authorize(self, request: Request) -> None:
        """Optional API key (env var), compared in constant time."""
        if self._key is None:
            return
        auth = request.headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else \
            request.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), self._key):
            raise ApiError(401, "unauthorized", "missing or wrong API key "
                                                "(send 'Authorization: Bearer <key>')")

    def handle(self, model: str) -> DeploymentHandle:
        if model not in self.classifiers:
            raise ApiError(404, "unknown_model",
                           f"no model '{model}'; choose one of {sorted(self.classifiers)}")
        return self.classifiers[model]

    async def info(self, model: str) -> dict:
        return await call(self.handle(model).info.remote())

    async def prepare(self, model: str, blobs: list[bytes], want_png: bool = False
                      ) -> tuple[np.ndarray, list[str] | None]:
        """Encoded images -> N x 28 x 28, canonicalised the way the model's checkpoint says."""
        if model not in self._styles:  # asked once: a hot swap keeps the labels, so the style
            self._styles[model] = (await self.info(model))["style"]
        style = self._styles[model]
        local = imaging.prepare_if_small(blobs, style, self.args.max_image_pixels,
                                         DIRECT_MAX_PIXELS, want_png, few=DIRECT_MAX_IMAGES,
                                         dataset_form=DIRECT_MAX_DATASET_FORM)
        if local is not None:
            return local
        return await call(self.pre.run.remote(blobs, style, want_png))

    async def classify(self, model: str, pixels: np.ndarray) -> dict:
        """Chunks go to the classifier concurrently, so replicas and batches share the work.
        Per image: probabilities, accepted, margin and reason (vision_core.decision.decide)."""
        step = self.args.chunk_size
        handle = self.handle(model)
        parts = await asyncio.gather(*(call(handle.predict.remote(pixels[i:i + step]))
                                       for i in range(0, len(pixels), step)))
        arrays = {k: np.concatenate([p[k] for p in parts])
                  for k in ("probabilities", "accepted", "margin")}
        return {**arrays, "reasons": [r for p in parts for r in p["reasons"]],
                "version": parts[0]["version"], "labels": parts[0]["labels"]}

    @staticmethod
    def predictions(result: dict, pngs: list[str] | None) -> list[dict]:
        """The answer's prediction objects for one classifier's result."""
        rows = np.round(result["probabilities"].astype(np.float64), 6).tolist()
        return [prediction(r, result["labels"], pngs[i] if pngs else None, result["reasons"][i])
                for i, r in enumerate(rows)]

    @app.get("/", summary="The web page (HTML), or a JSON welcome with links")
    async def root(self, request: Request) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return FileResponse(STATIC / "index.html")
        return JSONResponse({
            "service": "Vision AI", "models": sorted(self.classifiers), "page": "/",
            "links": {"docs": "/docs", "models": "/models", "health": "/healthz",
                      "classify": "/classify",
                      **{f"predict_{m}": f"/{m}" for m in sorted(self.classifiers)}}})

    @app.get("/static/{name}", include_in_schema=False)
    async def static(self, name: str) -> FileResponse:
        """The page's own assets: everything works offline, no CDN."""
        if name not in STATIC_FILES:
            raise ApiError(404, "not_found", f"no static file '{name}'")
        return FileResponse(STATIC / name)

    @app.get("/healthz", summary="200 only when every model is loaded",
             responses={503: {"model": ErrorResponse}})
    async def healthz(self) -> dict:
        try:
            infos = await asyncio.wait_for(asyncio.gather(
                *(self.info(m) for m in self.classifiers)), timeout=10)
        except (TimeoutError, ApiError) as err:
            raise ApiError(503, "not_ready", f"not every model is loaded: {err}") from None
        return {"status": "ok", "models": {i["name"]: i["version"] for i in infos}}

    @app.get("/models", response_model=list[ModelInfo], summary="The models and their versions")
    async def models(self) -> list[dict]:
        return list(await asyncio.gather(*(self.info(m) for m in self.classifiers)))

    # Declared before /{model}, which would otherwise take "classify" for a model name.
    @app.post("/classify", response_model=ClassifyPrediction | ClassifyResponse,
              responses=REST_ERRORS, openapi_extra=PREDICT_BODY,
              summary="Classify images of any kind: each goes to the model that accepts it")
    async def classify_any(self, request: Request) -> Response:
        self.authorize(request)
        images = await parse(request, self.args.max_body_bytes, self.args.max_images_per_request)
        names = list(self.classifiers)
        # Each model sees the image canonicalised its own way, and judges it.
        prepared = await asyncio.gather(
            *(self.prepare(m, images.blobs, images.return_image) for m in names))
        results = dict(zip(names, await asyncio.gather(
            *(self.classify(m, pixels) for m, (pixels, _) in zip(names, prepared, strict=True))),
            strict=True))
        answers = {m: self.predictions(results[m], pngs)
                   for m, (_, pngs) in zip(names, prepared, strict=True)}
        preds = []
        for i, chosen in enumerate(pick(results)):
            # Declined by every model: the answer of the one that came closest, with model null.
            shown = chosen or max(names, key=lambda m: results[m]["margin"][i])
            preds.append({**answers[shown][i], "model": chosen,
                          "model_version": results[shown]["version"]})
        # A JSONResponse, not the response_model: "model": null is part of the answer.
        return JSONResponse({"predictions": preds} if images.many else preds[0])

    @app.post("/{model}", response_model=PredictResponse | BatchResponse,
              response_model_exclude_none=True, responses=REST_ERRORS,
              openapi_extra=PREDICT_BODY,
              summary="Classify one image or many (JSON base64 or multipart 'file' fields)")
    async def predict(self, request: Request, model: str = _MODEL) -> dict:
        self.authorize(request)
        self.handle(model)  # 404 before reading a body for a model that does not exist
        images = await parse(request, self.args.max_body_bytes, self.args.max_images_per_request)
        pixels, pngs = await self.prepare(model, images.blobs, images.return_image)
        result = await self.classify(model, pixels)
        preds = self.predictions(result, pngs)
        head = {"model": model, "model_version": result["version"]}
        return {**head, "predictions": preds} if images.many else {**head, **preds[0]}
