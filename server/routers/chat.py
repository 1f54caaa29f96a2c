from __future__ import annotations

from fastapi import Request
from fastapi.responses import StreamingResponse

from .. import sse
from ..deps import ChatDep, LoadedGeneratorDep
from ..disconnect import unless_disconnected
from ..protocol.chat import ChatCompletion, ChatCompletionRequest, ModelList
from ..routing import v1_router
from ..services.chat import model_list

router = v1_router("openai")


@router.get("/models", response_model=ModelList)
async def models(generator: LoadedGeneratorDep) -> ModelList:
    """`mucode` (multi-turn fix-and-rerank) and the raw generator's own id (plain chat)."""
    return model_list(generator)


@router.post("/chat/completions", response_model=ChatCompletion)
async def chat_completions(
    request: ChatCompletionRequest, http: Request, chat: ChatDep
) -> ChatCompletion | StreamingResponse:
    """OpenAI chat completions. With `model: "mucode"` the last user message is solved by the search;
    with the generator's id it is plain chat. `stream: true` sends SSE chunks."""
    http.state.log.update(model=request.model, user=request.user, stream=request.stream)
    if request.stream:
        return sse.response(chat.stream(request))
    return await unless_disconnected(http, chat.complete(request))
