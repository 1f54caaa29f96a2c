"""The generator interface every backend implements.

``sample(messages, params)`` returns ``params.n`` completions of one chat, each with its token
counts. Backends that cannot batch (a single-stream engine, an upstream without ``n``) emulate it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from pydantic import BaseModel, Field

from ..fim import FimFormat
from ..trace import ChatMessage


class GeneratorError(Exception):
    """The generator could not produce completions (upstream down, model failed to load, ...)."""


class SamplingParams(BaseModel):
    n: int = Field(1, ge=1)
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(512, ge=1)
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    ignore_eos: bool = Field(False, description="Generate exactly max_tokens (benchmarks).")


class Completion(BaseModel):
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = Field("stop", description="`stop` or `length` (cut off by max_tokens).")


class Generator(ABC):
    backend: str  # e.g. "transformers"
    model: str  # what the model is, for traces, /health and /v1/models
    fim: FimFormat | None = None  # the model's fill-in-the-middle tokens, when it has them

    @abstractmethod
    async def sample(self, messages: list[ChatMessage], params: SamplingParams) -> list[Completion]:
        """``params.n`` completions of the chat ``messages``."""

    @abstractmethod
    async def complete(self, prompt: str, params: SamplingParams) -> list[Completion]:
        """``params.n`` continuations of raw text (no chat template): autocomplete and FIM."""

    async def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release the model."""

    @property
    def description(self) -> str:
        return f"{self.backend}:{self.model}"
