"""OpenAI's Responses API over the chat service: a request becomes a chat (its ``instructions``, the
stored conversation of ``previous_response_id``, its input messages), the chat's answer a
response, and the chat's stream the Responses events: ``response.created``, the search's
progress as a reasoning summary, ``response.output_text.delta``, ``response.completed`` with usage.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from .. import sse
from ..errors import STREAMED_ERRORS, APIError, stream_error
from ..protocol.chat import ChatCompletionChunk, ChatCompletionRequest, ChatMessageIn, StreamOptions, UsageOut
from ..protocol.responses import (
    OutputMessage,
    OutputText,
    Reasoning,
    ResponseObject,
    ResponsesRequest,
    ResponseUsage,
    SummaryText,
)
from .chat import ChatService


class ResponseStore:
    """The conversation behind each stored response, in this process, for ``ttl_s`` (at most
    ``keep`` of them, oldest forgotten first): what ``previous_response_id`` continues."""

    def __init__(self, ttl_s: int, keep: int) -> None:
        self.ttl_s, self.keep = ttl_s, keep
        self._items: OrderedDict[str, tuple[float, ResponseObject, list[ChatMessageIn]]] = OrderedDict()

    def put(self, response: ResponseObject, conversation: list[ChatMessageIn]) -> None:
        self._items[response.id] = (time.monotonic() + self.ttl_s, response, conversation)
        while len(self._items) > self.keep:
            self._items.popitem(last=False)

    def get(self, response_id: str) -> tuple[ResponseObject, list[ChatMessageIn]] | None:
        found = self._items.get(response_id)
        if found is None or found[0] < time.monotonic():
            self._items.pop(response_id, None)
            return None
        return found[1], found[2]

    def not_found(self, response_id: str, param: str | None = None) -> APIError:
        return APIError(
            404,
            f"no stored response `{response_id}`: responses are kept {self.ttl_s} s in this server's memory",
            param=param,
            type="not_found_error",
            code="response_not_found",
        )


def usage_of(usage: UsageOut | None) -> ResponseUsage:
    if usage is None:
        return ResponseUsage()
    return ResponseUsage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


class ResponseService:
    def __init__(self, chat: ChatService, store: ResponseStore) -> None:
        self.chat = chat
        self.store = store

    def _conversation(self, request: ResponsesRequest) -> list[ChatMessageIn]:
        """Without ``instructions``, which hold for this request only (as OpenAI keeps them)."""
        earlier: list[ChatMessageIn] = []
        if request.previous_response_id:
            found = self.store.get(request.previous_response_id)
            if found is None:
                raise self.store.not_found(request.previous_response_id, "previous_response_id")
            earlier = found[1]
        messages = [*earlier, *request.input_messages()]
        if not any(m.role == "user" for m in messages):
            raise APIError(422, "the input holds no user message", param="input")
        return messages

    def _chat(self, request: ResponsesRequest, conversation: list[ChatMessageIn]) -> ChatCompletionRequest:
        system = [ChatMessageIn(role="system", content=request.instructions)] if request.instructions else []
        return ChatCompletionRequest(
            model=request.model,
            messages=[*system, *conversation],
            max_completion_tokens=request.max_output_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
            tests=request.tests,
            io_tests=request.io_tests,
            n=request.n,
            turns=request.turns,
            selection=request.selection,
            stream=request.stream,
            stream_options=StreamOptions(include_usage=True) if request.stream else None,
        )

    def _shell(self, request: ResponsesRequest) -> ResponseObject:
        return ResponseObject(
            model=request.model,
            status="in_progress",
            instructions=request.instructions,
            previous_response_id=request.previous_response_id,
            temperature=request.temperature,
            top_p=request.top_p,
        )

    def _keep(
        self, request: ResponsesRequest, response: ResponseObject, conversation: list[ChatMessageIn]
    ) -> None:
        if request.store:
            self.store.put(
                response, [*conversation, ChatMessageIn(role="assistant", content=response.output_text)]
            )

    async def create(self, request: ResponsesRequest) -> ResponseObject:
        conversation = self._conversation(request)
        completion = await self.chat.complete(self._chat(request, conversation))
        response = self._shell(request).model_copy(
            update={
                "status": "completed",
                "output": [OutputMessage(content=[OutputText(text=completion.choices[0].message.content)])],
                "usage": usage_of(completion.usage),
                "mucode": completion.mucode,
            }
        )
        self._keep(request, response, conversation)
        return response

    def get(self, response_id: str) -> ResponseObject:
        found = self.store.get(response_id)
        if found is None:
            raise self.store.not_found(response_id)
        return found[0]

    def stream(self, request: ResponsesRequest) -> AsyncIterator[str]:
        """Named SSE events; what can fail before the first byte fails here, as an HTTP error."""
        conversation = self._conversation(request)
        chunks = self.chat.chunks(self._chat(request, conversation))
        return self._events(request, conversation, chunks)

    async def _events(
        self,
        request: ResponsesRequest,
        conversation: list[ChatMessageIn],
        chunks: AsyncIterator[ChatCompletionChunk],
    ) -> AsyncIterator[str]:
        response = self._shell(request)
        numbers = itertools.count()

        def emit(kind: str, **fields: Any) -> str:
            return sse.event(kind, {"type": kind, "sequence_number": next(numbers), **fields})

        yield emit("response.created", response=response.model_dump(mode="json"))
        yield emit("response.in_progress", response=response.model_dump(mode="json"))
        reasoning: Reasoning | None = None
        message: OutputMessage | None = None
        usage: UsageOut | None = None
        try:
            async for chunk in chunks:
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    progress, text = choice.delta.reasoning_content, choice.delta.content
                    if progress:
                        if reasoning is None:
                            reasoning = Reasoning(summary=[SummaryText(text="")])
                            for event in self._opened(emit, 0, reasoning):
                                yield event
                        reasoning.summary[0].text += progress
                        yield emit(
                            "response.reasoning_summary_text.delta",
                            item_id=reasoning.id,
                            output_index=0,
                            summary_index=0,
                            delta=progress,
                        )
                    if text:
                        if message is None:
                            message = OutputMessage(status="in_progress", content=[OutputText(text="")])
                            for event in self._opened(emit, int(reasoning is not None), message, reasoning):
                                yield event
                        message.content[0].text += text
                        yield emit(
                            "response.output_text.delta",
                            item_id=message.id,
                            output_index=int(reasoning is not None),
                            content_index=0,
                            delta=text,
                        )
        except STREAMED_ERRORS as exc:
            error = stream_error(exc)["error"]
            yield emit("error", code=error.get("code"), message=error["message"], param=error.get("param"))
            failed = response.model_copy(update={"status": "failed", "error": error})
            yield emit("response.failed", response=failed.model_dump(mode="json"))
            return
        if message is None:
            message = OutputMessage(status="in_progress", content=[OutputText(text="")])
            for event in self._opened(emit, int(reasoning is not None), message, reasoning):
                yield event
        index = int(reasoning is not None)
        text = message.content[0].text
        yield emit(
            "response.output_text.done", item_id=message.id, output_index=index, content_index=0, text=text
        )
        part = message.content[0].model_dump(mode="json")
        yield emit(
            "response.content_part.done", item_id=message.id, output_index=index, content_index=0, part=part
        )
        message.status = "completed"
        yield emit("response.output_item.done", output_index=index, item=message.model_dump(mode="json"))
        response = response.model_copy(
            update={
                "status": "completed",
                "output": [item for item in (reasoning, message) if item is not None],
                "usage": usage_of(usage),
            }
        )
        yield emit("response.completed", response=response.model_dump(mode="json"))
        self._keep(request, response, conversation)

    @staticmethod
    def _opened(
        emit: Any, index: int, item: Reasoning | OutputMessage, before: Reasoning | None = None
    ) -> list[str]:
        """Events that open ``item`` (closing the reasoning summary that came ``before`` it)."""
        events = []
        if before is not None:
            text = before.summary[0].text
            fields = {"item_id": before.id, "output_index": 0, "summary_index": 0}
            events.append(emit("response.reasoning_summary_text.done", text=text, **fields))
            events.append(
                emit(
                    "response.reasoning_summary_part.done",
                    part={"type": "summary_text", "text": text},
                    **fields,
                )
            )
            events.append(
                emit("response.output_item.done", output_index=0, item=before.model_dump(mode="json"))
            )
        if isinstance(item, Reasoning):
            opened = item.model_copy(update={"summary": []}).model_dump(mode="json")
            events.append(emit("response.output_item.added", output_index=index, item=opened))
            events.append(
                emit(
                    "response.reasoning_summary_part.added",
                    item_id=item.id,
                    output_index=index,
                    summary_index=0,
                    part={"type": "summary_text", "text": ""},
                )
            )
        else:
            opened = item.model_copy(update={"content": []}).model_dump(mode="json")
            events.append(emit("response.output_item.added", output_index=index, item=opened))
            part = {"type": "output_text", "text": "", "annotations": []}
            events.append(
                emit(
                    "response.content_part.added",
                    item_id=item.id,
                    output_index=index,
                    content_index=0,
                    part=part,
                )
            )
        return events
