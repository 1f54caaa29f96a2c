from __future__ import annotations

from fastapi import Request
from fastapi.responses import StreamingResponse

from .. import sse
from ..deps import ResponsesDep
from ..disconnect import unless_disconnected
from ..protocol.responses import ResponseObject, ResponsesRequest
from ..routing import NOT_FOUND, OPENAI_STREAM, v1_router

router = v1_router("openai")


@router.post(
    "/responses",
    response_model=ResponseObject,
    summary="OpenAI Responses API (model `mucode` or a preset: the µCode search)",
    responses={**NOT_FOUND, **OPENAI_STREAM},
)
async def create_response(
    request: ResponsesRequest, http: Request, responses: ResponsesDep
) -> ResponseObject | StreamingResponse:
    """The Responses API, as Codex CLI and Continue speak it: `input` (a string or message items),
    `instructions`, `previous_response_id`, `stream: true` for `response.*` events. The same
    models and mucode extras as chat; tools are accepted and ignored (no tool calls here)."""
    http.state.log.update(model=request.model, user=request.user, stream=request.stream)
    if request.stream:
        return sse.response(responses.stream(request))
    return await unless_disconnected(http, responses.create(request))


@router.get("/responses/{response_id}", response_model=ResponseObject, responses=NOT_FOUND)
async def get_response(response_id: str, responses: ResponsesDep) -> ResponseObject:
    """A stored response (kept `MUCODE_RESPONSES_TTL_S` in this server's memory)."""
    return responses.get(response_id)
