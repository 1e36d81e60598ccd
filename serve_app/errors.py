"""The one error type a client can cause, with its HTTP status and a stable code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ApiError(Exception):
    """Rendered as `{"error": {"code": code, "message": message}}` with `status`.

    A plain dataclass (not an HTTPException) so it pickles cleanly when a Preprocess
    replica returns it to the ingress.
    """

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


def install_handlers(app, on_reject=None) -> None:
    """Every error leaves as `{"error": {"code", "message"}}` JSON, whatever raised it."""
    import logging

    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    log = logging.getLogger("ray.serve")

    def reply(err: ApiError, headers: dict | None = None) -> JSONResponse:
        if on_reject is not None:
            on_reject(err.code)
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api(_request, err: ApiError):
        headers = {"Retry-After": "1"} if err.status in (429, 503) else None
        if err.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return reply(err, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return reply(ApiError(422, "invalid_request", f"{where}: {first['msg']}"))

    @app.exception_handler(HTTPException)
    async def _http(request, err: HTTPException):
        codes = {404: "not_found", 405: "method_not_allowed"}
        # POST /{model} matches every one-segment path, so GET /typo would say 405;
        # a path that names no model and no route is a 404.
        models = getattr(request.app.state, "models", ())
        if err.status_code == 405 and request.url.path.strip("/") not in models:
            err = HTTPException(404, "Not Found")
        return reply(ApiError(err.status_code, codes.get(err.status_code, "http_error"),
                              str(err.detail)), getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_request, err: Exception):
        log.exception("unexpected error")  # a bug on our side: the client is not to blame
        return reply(ApiError(500, "internal_error", "internal error; it has been logged"))
