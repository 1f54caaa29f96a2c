"""OpenAI chat-completions protocol models (validation only). Fields follow the order of OpenAI's
API reference (https://platform.openai.com/docs/api-reference/chat/create); mucode's extras sit in
their own block below and arrive through the official client's ``extra_body``."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from mucode.engine.options import Selection
from mucode.engine.trace import SolveResult
from mucode.sandbox import IOTest

log = logging.getLogger("mucode.server")

MUCODE_MODEL = "mucode"


class OpenAIBaseModel(BaseModel):
    """Accepts unknown fields as OpenAI does, but logs them so a misspelled parameter shows up."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _log_ignored(self) -> OpenAIBaseModel:
        if self.model_extra:
            log.info("ignored request fields: %s", ", ".join(sorted(self.model_extra)))
        return self


def stop_list(stop: str | list[str] | None) -> list[str]:
    """OpenAI's `stop` (a string, a list or nothing) as a list."""
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


class ChatMessageIn(OpenAIBaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class StreamOptions(OpenAIBaseModel):
    include_usage: bool = False


class ChatCompletionRequest(OpenAIBaseModel):
    messages: list[ChatMessageIn] = Field(..., min_length=1)
    model: str
    max_completion_tokens: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(
        None, ge=1, description="Deprecated by OpenAI; same as max_completion_tokens."
    )
    n: int | None = Field(
        None, ge=1, le=64, description="With model `mucode`: candidates per turn (one answer is returned)."
    )
    response_format: dict[str, Any] | None = Field(
        None, description='Only `{"type": "text"}`: no backend here constrains its output to JSON.'
    )
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    tool_choice: str | dict[str, Any] | None = Field(
        None, description="`none` or `auto` (the default): the answer is text, which `auto` allows."
    )
    tools: list[dict[str, Any]] | None = Field(
        None,
        description="Accepted and never called: agents (Continue, Cline) always send their tools, and "
        "with `tool_choice` `auto` a text answer is a valid one.",
    )
    top_p: float | None = Field(None, gt=0, le=1)
    user: str | None = Field(None, description="Recorded in the log line; no other effect.")

    # --- mucode extras (send with extra_body) -------------------------------------------------
    tests: list[str] | None = Field(None, description="Public assert tests; else taken from the message.")
    io_tests: list[IOTest] | None = Field(None, description="Public stdin/stdout tests.")
    turns: int | None = Field(None, ge=1, le=10, description="Most turns of fix-and-rerank.")
    selection: Selection | None = None

    # Refused rather than ignored: a client that demands JSON or a tool call must not get prose.
    @field_validator("response_format")
    @classmethod
    def _text_only(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("type", "text") != "text":
            raise ValueError(f"response_format `{value.get('type')}` is not supported here; only `text`")
        return value

    @field_validator("tool_choice")
    @classmethod
    def _no_tool_choice(cls, value: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if value not in (None, "none", "auto"):
            raise ValueError("tool_choice must be `none` or `auto`: the models here do not call tools")
        return value

    def stop_list(self) -> list[str]:
        return stop_list(self.stop)

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    reasoning_content: str | None = None


class Choice(BaseModel):
    index: int
    message: ResponseMessage
    finish_reason: str = "stop"


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def counted(cls, prompt_tokens: int, completion_tokens: int) -> UsageOut:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )


class ChatCompletion(BaseModel):
    id: str = Field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: UsageOut
    mucode: SolveResult | None = Field(None, description="The search trace (model `mucode` only).")


class Delta(BaseModel):
    """What a stream chunk adds to the answer; fields it does not touch are left out of the JSON."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = Field(None, description="mucode's search progress, as it happens.")

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    """One ``data:`` event of a streamed chat completion (``object: chat.completion.chunk``)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: UsageOut | None = Field(None, description="Only in the last chunk, with include_usage.")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "mucode"
    root: str | None = Field(None, description="The generator's weights file or hub id (no host path).")
    options: dict[str, Any] | None = Field(
        None, description="A search preset's options (on top of the server's defaults)."
    )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
