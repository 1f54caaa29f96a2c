from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from ..deps import V1_GUARDS, RuntimeDep, SettingsDep
from ..disconnect import unless_disconnected
from ..protocol.chat import ChatCompletion, ChatCompletionRequest, ModelList
from ..services.chat import ChatService

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=V1_GUARDS)


def get_chat_service(runtime: RuntimeDep, settings: SettingsDep) -> ChatService:
    return ChatService(runtime, settings)


ChatDep = Annotated[ChatService, Depends(get_chat_service)]


@router.get("/models", response_model=ModelList)
async def models(chat: ChatDep) -> ModelList:
    """`mucode` (multi-turn fix-and-rerank) and the raw generator's own id (plain chat)."""
    return chat.models()


@router.post("/chat/completions", response_model=ChatCompletion)
async def chat_completions(
    request: ChatCompletionRequest, http: Request, chat: ChatDep
) -> ChatCompletion | StreamingResponse:
    """OpenAI chat completions. With `model: "mucode"` the last user message is solved by the search;
    with the generator's id it is plain chat. `stream: true` sends SSE chunks."""
    http.state.log.update(model=request.model, user=request.user, stream=request.stream)
    if request.stream:
        return StreamingResponse(chat.stream(request), media_type="text/event-stream")
    return await unless_disconnected(http, chat.complete(request))
