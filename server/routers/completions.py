from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ..deps import V1_GUARDS, RuntimeDep
from ..disconnect import unless_disconnected
from ..protocol.completions import Completion, CompletionRequest
from ..services import completions

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=V1_GUARDS)


@router.post("/completions", response_model=Completion, summary="Text completion and fill-in-the-middle")
async def create_completion(
    body: CompletionRequest, request: Request, runtime: RuntimeDep
) -> Completion | StreamingResponse:
    """OpenAI completions on the raw generator (model `mucode` or the generator's id): autocomplete.
    With `suffix`, fill-in-the-middle through the model's FIM tokens (422 for a model without them).
    `logprobs` is ignored. `stream: true` sends SSE chunks, one per choice."""
    request.state.log.update(model=body.model, user=body.user, fim=body.suffix is not None)
    generator = runtime.engine.generator
    completions.check_model(body, generator)
    if body.stream:
        return StreamingResponse(completions.stream(body, generator), media_type="text/event-stream")
    async with runtime.gate.slot():
        return await unless_disconnected(request, completions.complete(body, generator))
