"""The one error type a client can cause, with its HTTP status and a stable code.

The contract, for every route and whatever raised the error (our code, FastAPI's validation,
Starlette's routing, auth, body limits, overload):
- REST routes answer `{"error": {"code": ..., "message": ...}}`.
- Open Inference Protocol routes (`/v2...`) answer the protocol's `{"error": "<message>"}`,
  which Triton's and KServe's clients read, plus our `"code"` beside it. The protocol folds
  malformed-input errors into 400; 401, 404, 408, 413, 429 and 503 keep their meaning, so a
  client can tell "fix the request" from "too big" from "retry later".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger("ray.serve")


@dataclass
class ApiError(Exception):
    """Rendered as `{"error": {"code": code, "message": message}}` with `status`.

    A plain dataclass (not an HTTPException) so it pickles cleanly when a Preprocess
    replica returns it to the ingress.
    """

    status: int
    code: str
    message: str
    retry_after: int = 1  # seconds, sent as Retry-After with 429 and 503

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}

    def oip_body(self) -> dict:
        return {"error": self.message, "code": self.code}


OIP_PREFIX = "/v2"
# Statuses the Open Inference Protocol distinguishes; other client errors there are 400.
OIP_STATUSES = frozenset({400, 401, 404, 405, 408, 413, 429, 500, 503})


def render(err: ApiError, path: str, headers: dict | None = None) -> JSONResponse:
    """The error in the shape its route family uses (see the module docstring)."""
    if path == OIP_PREFIX or path.startswith(OIP_PREFIX + "/"):
        status = err.status if err.status in OIP_STATUSES else 400
        return JSONResponse(err.oip_body(), status_code=status, headers=headers)
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


def _known_path(app, path: str) -> bool:
    """Whether a documented route has this path (for some method).

    POST /{model} matches every one-segment path, so GET /typo would say 405 where a 404 is
    right: that template counts only for configured model names.
    """
    models = getattr(app.state, "models", set())
    for template in app.openapi()["paths"]:
        if template == "/{model}":
            if path.strip("/") in models:
                return True
        elif re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), path):
            return True
    return False


def install_handlers(app, on_reject=None) -> None:
    """Every error leaves as `{"error": {"code", "message"}}` JSON, whatever raised it."""

    def reply(request, err: ApiError, headers: dict | None = None) -> JSONResponse:
        if on_reject is not None:
            on_reject(err.code)
        # Below the app's route prefix (Serve's root_path), where the routes' paths start.
        path, root = request.url.path, request.scope.get("root_path", "")
        return render(err, path[len(root):] if root and path.startswith(root) else path,
                      headers)

    @app.exception_handler(ApiError)
    async def _api(request, err: ApiError):
        headers = {"Retry-After": str(err.retry_after)} if err.status in (429, 503) else None
        if err.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return reply(request, err, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return reply(request, ApiError(422, "invalid_request", f"{where}: {first['msg']}"))

    @app.exception_handler(HTTPException)
    async def _http(request, err: HTTPException):
        codes = {404: "not_found", 405: "method_not_allowed"}
        if err.status_code == 405 and not _known_path(request.app, request.url.path):
            err = HTTPException(404, "Not Found")
        return reply(request, ApiError(err.status_code, codes.get(err.status_code, "http_error"),
                                       str(err.detail)), getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request, err: Exception):
        log.exception("unexpected error")  # a bug on our side: the client is not to blame
        return reply(request, ApiError(500, "internal_error", "internal error; it has been logged"))
