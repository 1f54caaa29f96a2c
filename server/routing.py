"""The route class of every /v1 router: it reads the request body before FastAPI parses it.

Two problems are answered here, in the OpenAI error shape, instead of deeper down:
* a body streamed without Content-Length that outgrows MUCODE_MAX_BODY_BYTES: the limit
  (``middleware.BodyLimit``) stops the read, and that stop reaches the middleware as a 413, where
  FastAPI's own parser would have reported "error parsing the body" (400);
* a lone UTF-16 surrogate (``"\\ud800"``) anywhere in the JSON: valid JSON, but not text that can
  be encoded again, so traces, caches and responses would fail on it later (a 500 that also drops
  the keep-alive connection). It is refused as 400 ``invalid_unicode``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute, APIRouter

from .deps import V1_GUARDS
from .errors import APIError
from .protocol.errors import ErrorResponse

# Cheap filter: a JSON escape of a surrogate (a proper pair is fine and checked precisely below).
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def lone_surrogate_at(value: Any, path: str = "") -> str | None:
    """The field path of the first string holding a lone surrogate, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = lone_surrogate_at(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


class CheckedBodyRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            body = await request.body()  # cached: FastAPI's parser reads the same bytes
            if SURROGATE_ESCAPE.search(body):
                try:
                    where = lone_surrogate_at(json.loads(body))
                except ValueError:
                    where = None  # not JSON: FastAPI's parser says so
                if where is not None:
                    raise APIError(
                        400, f"`{where}` holds a lone UTF-16 surrogate, which is not valid text",
                        param=where, code="invalid_unicode",
                    )  # fmt: skip
            return await handler(request)

        return checked


def error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


# What every /v1 route can answer besides success, for the OpenAPI document.
V1_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error("Malformed request: not JSON, or text with a lone surrogate."),
    401: error("Missing or wrong API key (when the server has keys)."),
    413: error("Request body or code larger than the server's limit."),
    422: error("A field is invalid (`param` names it)."),
    429: error("Rate limit or quota reached; see Retry-After."),
    503: error("Busy (queue full) or not ready (model loading, sandbox down); see Retry-After."),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: error("No such model or job.")}
# One event of a stream, as OpenAPI < 3.2 describes the items of text/event-stream.
SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string", "description": "The event's name (`message` when unnamed)."},
        "data": {"type": "string", "description": "One JSON object (a chunk), or `[DONE]`."},
    },
}


def streamed(description: str) -> dict[int | str, dict[str, Any]]:
    """The 200 answer of a route that streams with `stream: true`, besides its JSON answer."""
    return {200: {"content": {"text/event-stream": {"schema": SSE_EVENT}}, "description": description}}


OPENAI_STREAM = streamed(
    "JSON; with `stream: true`, Server-Sent Events: `data:` chunks (`chat.completion.chunk` or "
    "`text_completion`), then `data: [DONE]`."
)


def v1_router(tag: str, prefix: str = "/v1") -> APIRouter:
    """A router under /v1: the API key and the rate limit on every route, bodies checked first,
    and the errors they can give documented once."""
    return APIRouter(
        prefix=prefix, tags=[tag], dependencies=V1_GUARDS, route_class=CheckedBodyRoute, responses=V1_ERRORS
    )
