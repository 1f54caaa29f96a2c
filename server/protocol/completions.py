"""OpenAI legacy completions (``POST /v1/completions``), the protocol IDE autocomplete uses; with
``suffix`` it is fill-in-the-middle. Fields follow OpenAI's API reference."""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, Field

from .chat import OpenAIBaseModel, StreamOptions, UsageOut, stop_list


class CompletionRequest(OpenAIBaseModel):
    model: str
    prompt: str | list[str] = Field(..., description="Text before the cursor (a list: one completion each).")
    suffix: str | None = Field(None, description="Text after the cursor: fill-in-the-middle.")
    echo: bool = Field(False, description="Put the prompt before each completion's text.")
    max_tokens: int | None = Field(16, ge=1, description="OpenAI's default is 16.")
    n: int = Field(1, ge=1, le=16)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    user: str | None = Field(None, description="Recorded in the log line; no other effect.")
    logprobs: int | None = Field(None, description="Not supported: ignored (choices carry `logprobs: null`).")

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def stop_list(self) -> list[str]:
        return stop_list(self.stop)


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: None = None
    finish_reason: str | None = Field("stop", description="None in a streamed chunk that is not the last.")


class Completion(BaseModel):
    id: str = Field(default_factory=lambda: f"cmpl-{uuid.uuid4().hex}")
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: UsageOut


class CompletionChunk(BaseModel):
    """One ``data:`` event of a streamed completion: a choice, or (last, with include_usage) the usage."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageOut | None = None
