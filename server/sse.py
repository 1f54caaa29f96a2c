"""Server-sent events, framed in one place for every streamed route.

OpenAI-style streams (chat, completions) send unnamed ``data:`` events ending with ``data: [DONE]``;
``/v1/solve`` sends named events (``event: turn_started`` ...) ending with ``event: done``. Both go
out with headers that keep proxies (nginx: ``X-Accel-Buffering``) from holding them back.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DONE = "data: [DONE]\n\n"


def _json(payload: BaseModel | dict[str, Any]) -> str:
    return payload.model_dump_json() if isinstance(payload, BaseModel) else json.dumps(payload)


def data(payload: BaseModel | dict[str, Any]) -> str:
    """An unnamed event (OpenAI streams)."""
    return f"data: {_json(payload)}\n\n"


def event(name: str, payload: BaseModel | dict[str, Any]) -> str:
    """A named event (``/v1/solve``)."""
    return f"event: {name}\ndata: {_json(payload)}\n\n"


def response(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers=NO_BUFFERING)
