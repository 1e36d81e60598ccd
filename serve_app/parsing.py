"""Turn an HTTP request into image bytes: size-limited body, JSON or multipart."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from serve_app.errors import ApiError
from serve_app.imaging import b64decode
from serve_app.schemas import PredictRequest


@dataclass
class Images:
    blobs: list[bytes]
    many: bool          # the client sent a list (or several files): answer with a list
    return_image: bool


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"body of {declared} bytes exceeds {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():  # count while reading: Content-Length can lie
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


def validated(model: type[BaseModel], doc, expected: str):
    """`doc` as `model`, or a 422 naming the first problem and what was expected."""
    try:
        return model.model_validate(doc)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, "invalid_request",
                       f"{where}: {first['msg']} (expected {expected})") from None


def json_of(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, deep nesting
        raise ApiError(422, "invalid_json", "the body is not valid JSON") from None


def from_json(body: bytes, query_flag: bool, max_images: int) -> Images:
    doc = json_of(body)
    req = validated(PredictRequest, doc, '{"base64": "<image>"} or {"base64": ["<image>", ...]}')
    many = isinstance(req.base64, list)
    texts = req.base64 if many else [req.base64]
    check_count(len(texts), max_images)  # before decoding anything
    return Images([b64decode(t) for t in texts], many, req.return_image or query_flag)


async def from_multipart(request: Request, body: bytes, query_flag: bool,
                         max_files: int) -> Images:
    async def replay() -> dict:  # the body was already read (and size-checked) above
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=max_files + 1,
                                                         max_fields=32)
    except Exception as err:  # python-multipart raises several types on malformed input
        raise ApiError(422, "invalid_multipart", f"malformed multipart body: {err}") from None
    files = form.getlist("file")
    if any(not isinstance(f, UploadFile) for f in files):
        raise ApiError(422, "invalid_request", "'file' fields must be file uploads")
    check_count(len(files), max_images=max_files)
    blobs = [await f.read() for f in files]
    return Images(blobs, len(blobs) > 1, _flag(form.get("return_image")) or query_flag)


async def parse(request: Request, max_body: int, max_images: int) -> Images:
    """JSON `{"base64": ...}` or multipart `file` fields -> Images; client errors -> ApiError."""
    body = await read_body(request, max_body)
    query_flag = _flag(request.query_params.get("return_image"))
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        images = await from_multipart(request, body, query_flag, max_images)
    elif ctype in ("application/json", "") or ctype.endswith("+json"):
        images = from_json(body, query_flag, max_images)
    else:
        raise ApiError(415, "unsupported_content_type",
                       f"send application/json or multipart/form-data, not {ctype}")
    return images


def check_count(n: int, max_images: int) -> None:
    """The one rule for how many images a request may hold (REST and the OIP alike)."""
    if n == 0:
        raise ApiError(422, "no_images", "the request holds no image")
    if n > max_images:
        raise ApiError(413, "too_many_images", f"{n} images; the limit is {max_images} per request")
