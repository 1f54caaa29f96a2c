from __future__ import annotations

from fastapi import Request
from fastapi.responses import StreamingResponse

from .. import sse
from ..deps import ChatDep, LoadedGeneratorDep, SettingsDep
from ..disconnect import unless_disconnected
from ..model_ids import model_list, resolve
from ..protocol.chat import ChatCompletion, ChatCompletionRequest, ModelCard, ModelList
from ..routing import NOT_FOUND, OPENAI_STREAM, v1_router

router = v1_router("openai")


@router.get("/models", response_model=ModelList, summary="The models this server answers as")
async def models(generator: LoadedGeneratorDep, settings: SettingsDep) -> ModelList:
    """`mucode` (the default µCode search), its presets (`mucode-fast`, `mucode-thorough`, the
    operator's), and the generator under a familiar id (plain chat). Any preset takes search
    options after a colon: `mucode:n=8,turns=4`."""
    return model_list(generator, settings)


@router.get("/models/{model_id:path}", response_model=ModelCard, summary="One model", responses=NOT_FOUND)
async def model(model_id: str, generator: LoadedGeneratorDep, settings: SettingsDep) -> ModelCard:
    return resolve(model_id, generator, settings).card


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    summary="OpenAI chat completions (model `mucode`: the µCode search)",
    responses={**NOT_FOUND, **OPENAI_STREAM},
)
async def chat_completions(
    request: ChatCompletionRequest, http: Request, chat: ChatDep
) -> ChatCompletion | StreamingResponse:
    """OpenAI chat completions. With `model: "mucode"` the last user message is solved by the search;
    with the generator's id it is plain chat. `stream: true` sends SSE chunks."""
    http.state.log.update(model=request.model, user=request.user, stream=request.stream)
    if request.stream:
        return sse.response(chat.stream(request))
    return await unless_disconnected(http, chat.complete(request))
