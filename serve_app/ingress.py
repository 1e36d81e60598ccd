"""Ingress deployment: FastAPI routes, request parsing, auth, and the shape of every answer.

No `from __future__ import annotations`: FastAPI must see real types on the route methods.
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

from serve_app import imaging, oip
from serve_app.errors import ApiError, install_handlers
from serve_app.parsing import parse, read_body
from serve_app.schemas import (
    BatchResponse,
    ErrorResponse,
    ModelInfo,
    PredictRequest,
    PredictResponse,
    prediction,
)
from serve_app.settings import AppArgs

# Up to this many images already in dataset form (28 x 28) are decoded here instead of in
# Preprocess: there is nothing to preprocess (0.07 ms each), and the round trip to Preprocess
# costs ~2 ms, a third of a single image's latency (benchmarks/NOTES.md, lever 14).
DIRECT_MAX_IMAGES = 4


def decoded_here(blobs: list[bytes]) -> bool:
    """Whether the ingress decodes these images itself. The count comes first, so a many-image
    request never pays for reading every header here."""
    if not blobs or len(blobs) > DIRECT_MAX_IMAGES:
        return False
    sizes = imaging.declared_sizes(blobs)
    return sizes is not None and all(size == (imaging.SIDE, imaging.SIDE) for size in sizes)


STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = frozenset(p.name for p in STATIC.iterdir() if p.is_file())

app = FastAPI(
    title="Vision AI",
    version="0.1.0",
    description="Handwritten digits (MNIST) and clothing (Fashion-MNIST) classification.",
)


@functools.cache
def _rejected() -> Counter:
    return Counter("vision_rejected_requests_total", description="Requests refused, by reason",
                   tag_keys=("reason",))


install_handlers(app, on_reject=lambda code: _rejected().inc(tags={"reason": code}))


@app.exception_handler(oip.OipError)
async def _oip_error(_request, err: oip.OipError) -> JSONResponse:
    _rejected().inc(tags={"reason": "oip"})
    return JSONResponse({"error": str(err)}, status_code=err.status)

_ERRORS = {s: {"model": ErrorResponse} for s in (400, 401, 404, 413, 415, 422, 429, 503)}
_MODEL = Path_(description="a model name, see GET /models", examples=["mnist", "fmnist"])
OIP = "Open Inference Protocol"
_NAME = Path_(description="a model name, see GET /v2/models/{name}", examples=["mnist"])
_VERSION = Path_(description="the served version (12 hex), see GET /models")
_OIP_ERRORS = {s: {"description": "`{\"error\": \"...\"}`"} for s in (400, 401, 404)} | {
    s: {"model": ErrorResponse} for s in (413, 429, 503)}
_OIP_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["inputs"],
    "properties": {"id": {"type": "string"}, "inputs": {"type": "array", "items": {
        "type": "object"}}, "outputs": {"type": "array", "items": {"type": "object"}}}}}}}}
_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": PredictRequest.model_json_schema()},
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                       "return_image": {"type": "boolean"}}}},
}}}


async def call(response):
    """Await a DeploymentResponse; overload and lost replicas become retryable answers."""
    try:
        return await response
    except BackPressureError:
        raise ApiError(429, "overloaded", "the service is at capacity; retry shortly") from None
    except RayError as err:  # a replica died or is restarting: the client may retry
        raise ApiError(503, "unavailable", f"a model replica is unavailable "
                                           f"({type(err).__name__}); retry shortly") from None


@serve.deployment
@serve.ingress(app)
class Ingress:
    """Knows only its neighbours: the Preprocess handle and one Classifier handle per model."""

    def __init__(self, preprocess: DeploymentHandle, classifiers: dict[str, DeploymentHandle],
                 args: dict):
        self.args = AppArgs.model_validate(args)
        self.pre = preprocess
        self.classifiers = classifiers
        app.state.models = set(classifiers)  # for the 404-vs-405 decision in errors.py
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

    async def prepare(self, blobs: list[bytes], style: str, want_png: bool = False
                      ) -> tuple[np.ndarray, list[str] | None] | ApiError:
        """Encoded images -> N x 28 x 28 (Preprocess's contract: client errors returned)."""
        if decoded_here(blobs):
            try:
                return imaging.prepare_all(blobs, style, self.args.max_image_pixels, want_png)
            except ApiError as err:
                return err
        return await call(self.pre.run.remote(blobs, style, want_png))

    async def classify(self, model: str, pixels: np.ndarray) -> dict:
        """Chunks go to the classifier concurrently, so replicas and batches share the work."""
        step = self.args.chunk_size
        handle = self.handle(model)
        parts = await asyncio.gather(*(call(handle.predict.remote(pixels[i:i + step]))
                                       for i in range(0, len(pixels), step)))
        probs = np.concatenate([p["probabilities"] for p in parts])
        return {"probabilities": probs, "version": parts[0]["version"],
                "labels": parts[0]["labels"]}

    @app.get("/", summary="The web page (HTML), or a JSON welcome with links")
    async def root(self, request: Request) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return FileResponse(STATIC / "index.html")
        return JSONResponse({
            "service": "Vision AI", "models": sorted(self.classifiers), "page": "/",
            "links": {"docs": "/docs", "models": "/models", "health": "/healthz",
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
                *(call(h.info.remote()) for h in self.classifiers.values())), timeout=10)
        except (TimeoutError, ApiError) as err:
            raise ApiError(503, "not_ready", f"not every model is loaded: {err}") from None
        return {"status": "ok", "models": {i["name"]: i["version"] for i in infos}}

    @app.get("/models", response_model=list[ModelInfo], summary="The models and their versions")
    async def models(self) -> list[dict]:
        return list(await asyncio.gather(
            *(call(h.info.remote()) for h in self.classifiers.values())))

    @app.post("/{model}", response_model=PredictResponse | BatchResponse,
              response_model_exclude_none=True, responses=_ERRORS, openapi_extra=_BODY,
              summary="Classify one image or many (JSON base64 or multipart 'file' fields)")
    async def predict(self, request: Request, model: str = _MODEL) -> dict:
        self.authorize(request)
        self.handle(model)  # 404 before reading a body for a model that does not exist
        images = await parse(request, self.args.max_body_bytes, self.args.max_images_per_request)
        style = self.args.models[model].style
        prepared = await self.prepare(images.blobs, style, images.return_image)
        if isinstance(prepared, ApiError):
            raise prepared
        pixels, pngs = prepared
        result = await self.classify(model, pixels)
        rows = np.round(result["probabilities"].astype(np.float64), 6).tolist()
        preds = [prediction(r, result["labels"], pngs[i] if pngs else None)
                 for i, r in enumerate(rows)]
        head = {"model": model, "model_version": result["version"]}
        return {**head, "predictions": preds} if images.many else {**head, **preds[0]}

    # ---- Open Inference Protocol (KServe v2 REST) -------------------------------------------

    def oip_handle(self, name: str) -> DeploymentHandle:
        if name not in self.classifiers:
            raise oip.OipError(f"unknown model '{name}'", status=404)
        return self.classifiers[name]

    @app.get("/v2", summary="OIP server metadata", tags=[OIP])
    async def v2(self) -> dict:
        return {"name": "vision-ai", "version": app.version, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live", tags=[OIP])
    async def v2_live(self) -> dict:
        return {"live": True}

    @app.get("/v2/health/ready", tags=[OIP], responses={503: {"model": ErrorResponse}})
    async def v2_ready(self) -> dict:
        await self.healthz()  # 503 until every model is loaded
        return {"ready": True}

    async def oip_info(self, name: str, version: str | None) -> dict:
        """The model's info; a version other than the one being served is a 404."""
        info = await call(self.oip_handle(name).info.remote())
        if version is not None and version != info["version"]:
            raise oip.OipError(f"model '{name}' has no version '{version}' (serving "
                               f"{info['version']})", status=404)
        return info

    @app.get("/v2/models/{name}", tags=[OIP], responses=_OIP_ERRORS)
    async def v2_model(self, name: str = _NAME) -> dict:
        info = await self.oip_info(name, None)
        return oip.metadata(name, info["version"])

    @app.get("/v2/models/{name}/versions/{version}", tags=[OIP], responses=_OIP_ERRORS)
    async def v2_model_version(self, name: str = _NAME, version: str = _VERSION) -> dict:
        info = await self.oip_info(name, version)
        return oip.metadata(name, info["version"])

    @app.get("/v2/models/{name}/ready", tags=[OIP], responses=_OIP_ERRORS)
    async def v2_model_ready(self, name: str = _NAME) -> dict:
        await self.oip_info(name, None)
        return {"name": name, "ready": True}

    @app.get("/v2/models/{name}/versions/{version}/ready", tags=[OIP], responses=_OIP_ERRORS)
    async def v2_model_version_ready(self, name: str = _NAME, version: str = _VERSION) -> dict:
        await self.oip_info(name, version)
        return {"name": name, "ready": True}

    @app.post("/v2/models/{name}/infer", tags=[OIP], responses=_OIP_ERRORS,
              openapi_extra=_OIP_BODY,
              summary="Tensors ('input', FP32/UINT8 pixels) or encoded files ('image', BYTES)")
    async def v2_infer(self, request: Request, name: str = _NAME) -> dict:
        return await self.infer(request, name, None)

    @app.post("/v2/models/{name}/versions/{version}/infer", tags=[OIP], responses=_OIP_ERRORS,
              openapi_extra=_OIP_BODY)
    async def v2_infer_version(self, request: Request, name: str = _NAME,
                               version: str = _VERSION) -> dict:
        return await self.infer(request, name, version)

    async def infer(self, request: Request, name: str, version: str | None) -> dict:
        """One v2 inference: parse, preprocess encoded files if any, classify, encode."""
        self.authorize(request)
        if version is None:
            self.oip_handle(name)  # no round trip to the classifier on the hot path
        else:
            await self.oip_info(name, version)
        body = await read_body(request, self.args.max_body_bytes)
        inputs = oip.parse_infer(body, request.headers.get("inference-header-content-length"),
                                 self.args.max_images_per_request)
        pixels = inputs.pixels
        if pixels is None:
            prepared = await self.prepare(inputs.images, self.args.models[name].style)
            if isinstance(prepared, ApiError):
                raise oip.OipError(prepared.message)
            pixels = prepared[0]
        result = await self.classify(name, pixels)
        return oip.infer_response(name, result["version"], result["probabilities"],
                                  result["labels"], inputs)
