"""Ingress deployment: the REST routes, auth, and the shape of every answer.

A request reads top to bottom: `predict` parses the body, `prepare` turns the images into
28x28 pixels (Preprocess), `classify` asks the model's Classifier, and the answer is shaped
here. The Open Inference Protocol routes are a thin router over the same calls
(oip_routes.py). No `from __future__ import annotations`: FastAPI must see real types.
"""

import asyncio
import functools
import hmac
import logging
import os
import time
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

from serve_app import feedback_routes, imaging, oip_routes
from serve_app.errors import ApiError, install_handlers
from serve_app.limits import PerClient
from serve_app.parsing import parse
from serve_app.routing import CLIENT_KEY_HEADER, Router, keys_of
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
from serve_app.store import CANDIDATE, STABLE
from vision_core.decision import ARRAYS, pick

# Small requests are prepared here instead of in Preprocess: up to 4 images of at most 320 x 320
# pixels in all (a drawing from the page is 280 x 280), or up to 64 images already in dataset
# form (28 x 28: only decoded, about 4 ms for 64). The round trip to Preprocess costs more than
# that work (benchmarks/NOTES.md, levers 14, 22 and 27). Bigger requests go to Preprocess, which
# scales on its own and keeps this loop free.
DIRECT_MAX_IMAGES = 4
DIRECT_MAX_PIXELS = 320 * 320
DIRECT_MAX_DATASET_FORM = 64

logger = logging.getLogger("ray.serve")
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
# Included at import, before @serve.ingress takes the app over. /feedback before /{model}, which
# would otherwise take "feedback" for a model name.
app.include_router(oip_routes.router)
app.include_router(feedback_routes.router)


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


class NotServing(Exception):
    """A candidate replica that serves no version now: the stable one answers instead."""


async def _nothing() -> None:
    return None


def _merge(n: int, parts: list[tuple[np.ndarray, dict | None]]) -> dict:
    """Answers for subsets of a request's images (index arrays) put back in request order."""
    given = [(idx, part) for idx, part in parts if part is not None and len(idx)]
    first = given[0][1]
    out = {k: np.empty((n, *first[k].shape[1:]), first[k].dtype) for k in ARRAYS}
    reasons, versions = [None] * n, [None] * n
    for idx, part in given:
        for k in ARRAYS:
            out[k][idx] = part[k]
        for j, i in enumerate(idx.tolist()):
            reasons[i], versions[i] = part["reasons"][j], part["versions"][j]
    return {**out, "reasons": reasons, "versions": versions, "labels": first["labels"]}


@serve.deployment
@serve.ingress(app)
class Ingress:
    """Knows only its neighbours: the Preprocess handle, per model the Classifier handle of its
    stable version and of its candidate slot, and the Rollout deployment that plans the split."""

    def __init__(self, preprocess: DeploymentHandle, classifiers: dict[str, DeploymentHandle],
                 candidates: dict[str, DeploymentHandle], rollout: DeploymentHandle | None,
                 feedback: DeploymentHandle | None, args: dict):
        self.args = AppArgs.model_validate(args)
        self.pre = preprocess
        self.classifiers = classifiers
        self.candidates = candidates
        self.router = Router(rollout)
        self.feedback = feedback
        self.feedback_limit = PerClient(self.args.feedback.per_client_per_minute)
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

    async def classify(self, model: str, pixels: np.ndarray, keys: list[bytes]) -> dict:
        """Per image: probabilities, accepted, margin and reason (vision_core.decision.decide),
        and the version that answered. While a candidate is out, it answers its sticky share of
        the images (routing.py); if it fails or is slower than the plan allows, the stable
        version answers those images instead, so a bad candidate never fails a request."""
        await self.router.start()
        self.handle(model)
        picked = self.router.to_candidate(model, keys)
        if not picked.any():
            return await self._answer(model, STABLE, pixels)
        timeout = self.router.plan(model)["timeout_s"]
        rest = np.flatnonzero(~picked)
        tried, stable = await asyncio.gather(
            self._try_candidate(model, pixels[picked], timeout),
            self._answer(model, STABLE, pixels[rest]) if rest.size else _nothing())
        if tried is None:  # the candidate failed: the stable version answers its share too
            tried = await self._answer(model, STABLE, pixels[picked])
        return _merge(len(pixels), [(np.flatnonzero(picked), tried), (rest, stable)])

    async def store_feedback(self, model: str, version: str, predicted: str, label: str,
                             pixels: np.ndarray) -> tuple[int, bool]:
        """(id, created) from the feedback store's one writer (feedback.py)."""
        if self.feedback is None:
            raise ApiError(404, "not_found", "this app keeps no feedback")
        return await call(self.feedback.add.remote(model, version, predicted, label, pixels))

    async def _try_candidate(self, model: str, pixels: np.ndarray, timeout: float
                             ) -> dict | None:
        try:
            return await asyncio.wait_for(self._answer(model, CANDIDATE, pixels), timeout)
        except NotServing:  # a replica between versions: not the candidate's fault
            return None
        except Exception as err:  # whatever the candidate did, the client is not to see it
            self.router.failed(model, CANDIDATE, len(pixels))
            logger.warning("Ingress: candidate of %s failed on %d images (%s: %s)", model,
                           len(pixels), type(err).__name__, err)
            return None

    async def _answer(self, model: str, role: str, pixels: np.ndarray) -> dict:
        """One version's answers: chunks go to its classifier concurrently, so replicas and
        batches share the work. Every call's size, declines and latency go into the signals
        the rollout decides on."""
        handle = self.classifiers[model] if role == STABLE else self.candidates[model]
        step = self.args.chunk_size

        async def one(chunk: np.ndarray) -> dict:
            start = time.perf_counter()
            try:
                out = await call(handle.predict.remote(chunk))
            except Exception:
                if role == STABLE:  # a candidate's failures are counted by _try_candidate
                    self.router.failed(model, role, len(chunk))
                raise
            if out is None:  # a candidate replica that serves no version (yet)
                raise NotServing(model)
            self.router.answered(model, role, len(chunk), int((~out["accepted"]).sum()),
                                 (time.perf_counter() - start) * 1000, out["version"])
            return out

        parts = await asyncio.gather(*(one(pixels[i:i + step])
                                       for i in range(0, len(pixels), step)))
        arrays = {k: np.concatenate([p[k] for p in parts]) for k in ARRAYS}
        return {**arrays, "reasons": [r for p in parts for r in p["reasons"]],
                "versions": [p["version"] for p in parts for _ in range(len(p["accepted"]))],
                "labels": parts[0]["labels"]}

    @staticmethod
    def predictions(result: dict, pngs: list[str] | None) -> list[dict]:
        """The answer's prediction objects for one classifier's result, each naming the version
        that answered it."""
        rows = np.round(result["probabilities"].astype(np.float64), 6).tolist()
        return [{**prediction(r, result["labels"], pngs[i] if pngs else None,
                              result["reasons"][i]), "model_version": result["versions"][i]}
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
        """Each model's stable version, and its rollout: the candidate's version, its share of
        the traffic and the rollout's state (GET /rollout has the whole story)."""
        await self.router.start()
        infos = await asyncio.gather(*(self.info(m) for m in self.classifiers))
        return [{**i, "rollout": self.router.plan(i["name"])} for i in infos]

    @app.get("/rollout", summary="Every model's rollout: state, candidate, window, steps")
    async def rollout(self) -> dict:
        if self.router.rollout is None:
            raise ApiError(404, "not_found", "this app runs no Rollout deployment")
        return await call(self.router.rollout.status.remote())

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
        keys = keys_of(images.blobs, request.headers.get(CLIENT_KEY_HEADER))
        results = dict(zip(names, await asyncio.gather(
            *(self.classify(m, pixels, keys) for m, (pixels, _) in zip(names, prepared,
                                                                        strict=True))),
            strict=True))
        answers = {m: self.predictions(results[m], pngs)
                   for m, (_, pngs) in zip(names, prepared, strict=True)}
        preds = []
        for i, chosen in enumerate(pick(results)):
            # Declined by every model: the answer of the one that came closest, with model null.
            shown = chosen or max(names, key=lambda m: results[m]["margin"][i])
            preds.append({**answers[shown][i], "model": chosen})
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
        keys = keys_of(images.blobs, request.headers.get(CLIENT_KEY_HEADER))
        result = await self.classify(model, pixels, keys)
        preds = self.predictions(result, pngs)
        if not images.many:
            return {"model": model, **preds[0]}
        # Every prediction names its version (they differ while a candidate is out); the head
        # names the one that answered most of them.
        most = max(set(result["versions"]), key=result["versions"].count)
        return {"model": model, "model_version": most, "predictions": preds}
