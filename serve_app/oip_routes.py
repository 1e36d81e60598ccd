"""Open Inference Protocol (KServe v2 REST) routes: a thin router over the ingress's own calls.

Encoding and decoding live in oip.py; errors here leave in the protocol's shape (errors.py).
Spec: https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as Path_

from serve_app import oip
from serve_app.errors import OIP_PREFIX, ApiError
from serve_app.parsing import read_body
from serve_app.schemas import OIP_ERRORS, OIP_INFER_BODY, OipErrorResponse

router = APIRouter(prefix=OIP_PREFIX, tags=["Open Inference Protocol"])
VERSION = "0.1.0"

_NAME = Path_(description="a model name, see GET /v2/models/{name}", examples=["mnist"])
_VERSION = Path_(description="the served version (12 hex), see GET /models")


def _ingress(request: Request) -> Any:
    """The Ingress replica serving this request (it registers itself on the app)."""
    return request.app.state.ingress


Ingress = Annotated[Any, Depends(_ingress)]


async def model_info(ingress, name: str, version: str | None) -> dict:
    """The model's info; a version other than the one being served is a 404."""
    info = await ingress.info(name)
    if version is not None and version != info["version"]:
        raise ApiError(404, "unknown_version", f"model '{name}' has no version '{version}' "
                                               f"(serving {info['version']})")
    return info


@router.get("", summary="OIP server metadata")
async def server_metadata() -> dict:
    return {"name": "vision-ai", "version": VERSION, "extensions": ["binary_tensor_data"]}


@router.get("/health/live")
async def live() -> dict:
    return {"live": True}


@router.get("/health/ready", responses={503: {"model": OipErrorResponse}})
async def ready(ingress: Ingress) -> dict:
    await ingress.healthz()  # 503 until every model is loaded
    return {"ready": True}


@router.get("/models/{name}", responses=OIP_ERRORS)
async def model_metadata(ingress: Ingress, name: str = _NAME) -> dict:
    info = await model_info(ingress, name, None)
    return oip.metadata(name, info["version"], len(info["labels"]))


@router.get("/models/{name}/versions/{version}", responses=OIP_ERRORS)
async def model_version_metadata(ingress: Ingress, name: str = _NAME,
                                 version: str = _VERSION) -> dict:
    info = await model_info(ingress, name, version)
    return oip.metadata(name, info["version"], len(info["labels"]))


@router.get("/models/{name}/ready", responses=OIP_ERRORS)
async def model_ready(ingress: Ingress, name: str = _NAME) -> dict:
    await model_info(ingress, name, None)
    return {"name": name, "ready": True}


@router.get("/models/{name}/versions/{version}/ready", responses=OIP_ERRORS)
async def model_version_ready(ingress: Ingress, name: str = _NAME,
                              version: str = _VERSION) -> dict:
    await model_info(ingress, name, version)
    return {"name": name, "ready": True}


@router.post("/models/{name}/infer", responses=OIP_ERRORS, openapi_extra=OIP_INFER_BODY,
             summary="Tensors ('input', FP32/UINT8 pixels) or encoded files ('image', BYTES)")
async def infer(request: Request, ingress: Ingress, name: str = _NAME) -> dict:
    return await _infer(request, ingress, name, None)


@router.post("/models/{name}/versions/{version}/infer", responses=OIP_ERRORS,
             openapi_extra=OIP_INFER_BODY)
async def infer_version(request: Request, ingress: Ingress, name: str = _NAME,
                        version: str = _VERSION) -> dict:
    return await _infer(request, ingress, name, version)


async def _infer(request: Request, ingress, name: str, version: str | None) -> dict:
    """One v2 inference: parse, preprocess encoded files if any, classify, encode."""
    ingress.authorize(request)
    if version is None:
        ingress.handle(name)  # 404 with no round trip to the classifier on the hot path
    else:
        await model_info(ingress, name, version)
    body = await read_body(request, ingress.args.max_body_bytes)
    inputs = oip.parse_infer(body, request.headers.get("inference-header-content-length"),
                             ingress.args.max_images_per_request)
    pixels = inputs.pixels
    if pixels is None:
        pixels, _ = await ingress.prepare(name, inputs.images)
    result = await ingress.classify(name, pixels)
    return oip.infer_response(name, result["version"], result["probabilities"],
                              result["labels"], inputs, result["accepted"])
