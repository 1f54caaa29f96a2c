from __future__ import annotations

from fastapi import Request
from fastapi.responses import StreamingResponse

from .. import sse
from ..deps import CompletionDep
from ..disconnect import unless_disconnected
from ..protocol.completions import Completion, CompletionRequest
from ..routing import NOT_FOUND, OPENAI_STREAM, v1_router

router = v1_router("openai")


@router.post(
    "/completions",
    response_model=Completion,
    summary="Text completion and fill-in-the-middle",
    responses={**NOT_FOUND, **OPENAI_STREAM},
)
async def create_completion(
    body: CompletionRequest, request: Request, completer: CompletionDep
) -> Completion | StreamingResponse:
    """OpenAI completions on the raw generator (model `mucode` or the generator's id): autocomplete.
    With `suffix`, fill-in-the-middle through the model's FIM tokens (422 for a model without them).
    `logprobs` is ignored. `stream: true` sends SSE chunks, one per choice."""
    request.state.log.update(model=body.model, user=body.user, fim=body.suffix is not None)
    if body.stream:
        return sse.response(completer.stream(body))
    return await unless_disconnected(request, completer.complete(body))
