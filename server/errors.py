"""The one place where exceptions become HTTP responses, in OpenAI's error shape:
``{"error": {"message", "type", "param", "code"}}``. Handlers never leak a traceback."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mucode.engine.generators.base import GeneratorError
from mucode.sandbox import LimitExceeded, SandboxBusy, SandboxError, SandboxUnavailable

from .disconnect import ClientGone

log = logging.getLogger("mucode.server")


class APIError(Exception):
    """Raised by routes and services for a client-visible error with a known status."""

    def __init__(
        self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
        code: str | None = None, headers: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers


class PayloadTooLarge(APIError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(413, message, param=param, code="payload_too_large")


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


# What can go wrong once a stream has started; it becomes an `error` event, not a status code.
STREAMED_ERRORS = (APIError, GeneratorError, SandboxError)


def stream_error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, APIError):
        return error_body(exc.message, exc.type, exc.param, exc.code)
    if isinstance(exc, GeneratorError):
        return error_body(str(exc), "server_error", code="generator_error")
    return error_body(str(exc), "server_error", code="sandbox_error")


def error_response(error: APIError) -> JSONResponse:
    return JSONResponse(
        error_body(error.message, error.type, error.param, error.code),
        status_code=error.status,
        headers=error.headers,
    )


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    message = first.get("msg", "invalid value")
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", "body"
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    return (f"{param}: {message}{more}" if param else f"{message}{more}"), param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        if param == "body":  # unparseable JSON is a malformed request, not a field that failed validation
            return error_response(APIError(400, message, code="invalid_json"))
        return error_response(APIError(422, message, param=param, code="invalid_value"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(APIError(exc.status_code, str(exc.detail), type=kind, headers=exc.headers))

    @app.exception_handler(SandboxError)
    async def _sandbox(_: Request, exc: SandboxError) -> JSONResponse:
        if isinstance(exc, LimitExceeded):
            return error_response(APIError(422, str(exc), param=exc.param, code="limit_exceeded"))
        if isinstance(exc, SandboxBusy):
            retry = str(max(1, round(exc.retry_after_s)))
            return error_response(
                APIError(
                    503, str(exc), type="server_busy", code="sandbox_busy", headers={"Retry-After": retry}
                )
            )
        if isinstance(exc, SandboxUnavailable):
            return error_response(APIError(503, str(exc), type="server_error", code="sandbox_unavailable"))
        log.error("sandbox failure: %s", exc)
        return error_response(APIError(500, "the sandbox failed; see the server log", type="server_error"))

    @app.exception_handler(ClientGone)
    async def _gone(_: Request, exc: ClientGone) -> Response:
        return Response(status_code=499)  # nginx's "client closed request"; nobody reads it

    @app.exception_handler(GeneratorError)
    async def _generator(_: Request, exc: GeneratorError) -> JSONResponse:
        log.error("generator failure: %s", exc)
        return error_response(APIError(502, str(exc), type="server_error", code="generator_error"))
