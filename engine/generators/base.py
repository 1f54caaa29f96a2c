"""The generator interface every backend implements.

``sample(messages, params)`` returns ``params.n`` completions of one chat, each with its token
counts. Backends that cannot batch (a single-stream engine, an upstream without ``n``) emulate it.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BaseModel, Field

from ..fim import FimFormat
from ..trace import ChatMessage

# Tokens written so far by each sample of one request (see ``Generator.sample_watched``).
TokenProgress = Callable[[list[int]], None]


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
    prefill: str = Field(
        "",
        description="The assistant's answer starts with this text, which the model continues (only "
        "for generators with `supports_prefill`); completions hold what follows it, not the prefill.",
    )


class Completion(BaseModel):
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = Field("stop", description="`stop` or `length` (cut off by max_tokens).")
    logprob: float | None = Field(
        None,
        description="Sum of the completion's token log-probabilities under the model's own "
        "distribution (before temperature and top-p), where the backend reports it.",
    )


class Generator(ABC):
    backend: str  # e.g. "transformers"
    model: str  # what the model is, for traces, /health and /v1/models
    adapter: str | None = None  # the LoRA adapter applied to the model, by name (llama.cpp)
    fim: FimFormat | None = None  # the model's fill-in-the-middle tokens, when it has them
    # Whether `SamplingParams.prefill` is honoured: only where we render the chat template
    # ourselves, because an upstream server may ignore a trailing assistant message.
    supports_prefill: bool = False

    @abstractmethod
    async def sample(self, messages: list[ChatMessage], params: SamplingParams) -> list[Completion]:
        """``params.n`` completions of the chat ``messages``."""

    @abstractmethod
    async def complete(self, prompt: str, params: SamplingParams) -> list[Completion]:
        """``params.n`` continuations of raw text (no chat template): autocomplete and FIM."""

    async def sample_watched(
        self, messages: list[ChatMessage], params: SamplingParams, on_tokens: TokenProgress
    ) -> list[Completion]:
        """``sample``, telling ``on_tokens`` (on the event loop) how many tokens each of the
        ``params.n`` samples has written so far, as they are written: what a live display shows
        while a turn's candidates are written. Backends that cannot tell report nothing."""
        return await self.sample(messages, params)

    async def stream(
        self, messages: list[ChatMessage], params: SamplingParams
    ) -> AsyncIterator[str | Completion]:
        """One completion of the chat as it is written: text pieces, then the ``Completion``.
        Backends that cannot stream give the whole text as one piece."""
        (completion,) = (await self.sample(messages, params.model_copy(update={"n": 1})))[:1]
        yield completion.text
        yield completion

    async def stream_complete(self, prompt: str, params: SamplingParams) -> AsyncIterator[str | Completion]:
        """``stream`` for raw text (autocomplete): pieces, then the ``Completion``."""
        (completion,) = (await self.complete(prompt, params.model_copy(update={"n": 1})))[:1]
        yield completion.text
        yield completion

    async def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release the model."""

    @property
    def description(self) -> str:
        return f"{self.backend}:{self.model}" + (f" + {self.adapter}" if self.adapter else "")

    def describe(self, messages: list[ChatMessage]) -> str:
        """What answers the chat ``messages`` (a trace's generator): the description, unless the
        backend applies its adapter to some problems only."""
        return self.description


class TemplatedGenerator(Generator):
    """A backend that renders the model's chat template itself (transformers, vLLM): a chat is
    its rendered prompt, completed or streamed as raw text."""

    tokenizer: Any

    async def sample(self, messages: list[ChatMessage], params: SamplingParams) -> list[Completion]:
        return await self.complete(render_chat(self.tokenizer, messages, params.prefill), params)

    async def stream(
        self, messages: list[ChatMessage], params: SamplingParams
    ) -> AsyncIterator[str | Completion]:
        async for piece in self.stream_complete(
            render_chat(self.tokenizer, messages, params.prefill), params
        ):
            yield piece


def render_chat(tokenizer: Any, messages: list[ChatMessage], prefill: str = "") -> str:
    """The raw prompt for a chat through a Hugging Face tokenizer's template, the assistant turn
    opened and started with ``prefill``."""
    opened = tokenizer.apply_chat_template(
        [m.model_dump() for m in messages], add_generation_prompt=True, tokenize=False
    )
    return str(opened) + prefill


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """The text before the first stop string (which is not included, as in OpenAI's API), and
    whether one was hit: for backends that cannot stop on strings themselves."""
    cuts = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


async def stream_text(
    start: Callable[[Callable[[str], None]], asyncio.Future[list[Completion]]], stops: list[str]
) -> AsyncIterator[str | Completion]:
    """Text pieces of a completion written elsewhere (a decode thread): ``start(on_text)`` begins it,
    ``on_text`` receives the whole text so far, from any thread. The last characters that could
    begin a stop string are held back until the completion says where it ends."""
    loop = asyncio.get_running_loop()
    texts: asyncio.Queue[str] = asyncio.Queue()

    def on_text(text: str) -> None:
        loop.call_soon_threadsafe(texts.put_nowait, text)

    done = start(on_text)
    hold = max((len(s) for s in stops), default=0)
    emitted = 0
    try:
        while not done.done():
            getting: asyncio.Future[Any] = asyncio.ensure_future(texts.get())
            waiting: set[asyncio.Future[Any]] = {getting, done}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if not getting.done():
                getting.cancel()
                break
            safe = len(text := getting.result()) - hold
            if safe > emitted:
                yield text[emitted:safe]
                emitted = safe
        completion = done.result()[0]
    finally:
        done.cancel()
    if len(completion.text) > emitted:
        yield completion.text[emitted:]
    yield completion
