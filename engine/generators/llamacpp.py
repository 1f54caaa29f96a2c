"""The llama.cpp backend (``llama-cpp-python``) for GGUF models: the fastest engine on a CPU, starts
in under a second and needs under 1 GB for the default model. The samples of a request, and
concurrent requests, decode together (``llamacpp_batch.BatchDecoder``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ..adapter_scope import AdapterScope, chat_problem, in_scope
from ..fim import detect
from ..trace import ChatMessage
from .base import Completion, Generator, GeneratorError, SamplingParams, TokenProgress, stream_text
from .llamacpp_batch import BatchDecoder


class LlamaCppGenerator(Generator):
    backend = "llama-cpp"
    supports_prefill = True

    def __init__(self, llama: Any, name: str, decoder: BatchDecoder, scope: AdapterScope = "all") -> None:
        self.llama = llama
        self.model = name
        self.decoder = decoder
        self.scope = scope  # the problems the decoder's adapter, if any, is applied to
        self.fim = detect(self._is_special)
        # Rendered here rather than by create_chat_completion so that an answer can be prefilled
        # (the template's text, then the prefill, then the model).
        self._chat_template = chat_formatter(llama, name)

    def _is_special(self, text: str) -> bool:
        return len(self.llama.tokenize(text.encode(), add_bos=False, special=True)) == 1

    @classmethod
    def load(
        cls,
        gguf: str | Path,
        *,
        n_ctx: int = 8192,
        kv_tokens: int = 32768,
        max_sequences: int = 16,
        draft_tokens: int = 0,
        prefix_cache: int = 16,
        kv_streams: bool = False,
        n_threads: int | None = None,
        lora: str | Path | None = None,
        lora_scale: float = 1.0,
        lora_scope: AdapterScope = "all",
    ) -> LlamaCppGenerator:
        from llama_cpp import Llama

        threads = n_threads or len(os.sched_getaffinity(0))
        # This Llama serves the vocabulary and the chat template; its own small context is never
        # decoded in. The weights are mapped once and shared with the decoder's context.
        llama = Llama(model_path=str(gguf), n_ctx=512, n_batch=32, n_threads=1, verbose=False)
        decoder = BatchDecoder(
            llama,
            n_ctx=n_ctx,
            kv_tokens=kv_tokens,
            max_sequences=max_sequences,
            n_threads=threads,
            draft_tokens=draft_tokens,
            prefix_cache=prefix_cache,
            streams=kv_streams,
            lora=None if lora is None else str(lora),
            lora_scale=lora_scale,
        )
        generator = cls(llama, name=Path(gguf).name, decoder=decoder, scope=lora_scope)
        if lora is not None:
            scaled = "" if lora_scale == 1.0 else f" at scale {lora_scale:g}"
            scoped = "" if lora_scope == "all" else f" on {lora_scope} problems"
            generator.adapter = Path(lora).name + scaled + scoped
        return generator

    def _opened(self, messages: list[ChatMessage]) -> str:
        """The chat through the GGUF's template, the assistant's turn opened."""
        chat: Any = [m.model_dump() for m in messages]  # llama_cpp's TypedDicts, in shape
        return str(self._chat_template(messages=chat).prompt)

    async def sample(self, messages: list[ChatMessage], params: SamplingParams) -> list[Completion]:
        return await self._complete(
            self._opened(messages) + params.prefill, params, self._chat_adapter(messages)
        )

    def _chat_adapter(self, messages: list[ChatMessage]) -> bool:
        return in_scope(self.scope, chat_problem(messages))

    def describe(self, messages: list[ChatMessage]) -> str:
        return self.description if self._chat_adapter(messages) else f"{self.backend}:{self.model}"

    async def sample_watched(
        self, messages: list[ChatMessage], params: SamplingParams, on_tokens: TokenProgress
    ) -> list[Completion]:
        loop = asyncio.get_running_loop()

        def from_decoder(written: list[int]) -> None:
            with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody to tell
                loop.call_soon_threadsafe(on_tokens, written)

        prompt = self._opened(messages) + params.prefill
        return await self._complete(prompt, params, self._chat_adapter(messages), from_decoder)

    async def complete(self, prompt: str, params: SamplingParams) -> list[Completion]:
        return await self._complete(prompt, params, in_scope(self.scope, prompt))

    async def _complete(
        self, prompt: str, params: SamplingParams, adapter: bool, on_tokens: TokenProgress | None = None
    ) -> list[Completion]:
        tokens = self.llama.tokenize(prompt.encode(), add_bos=True, special=True)
        submitted = self.decoder.submit(tokens, params, on_tokens=on_tokens, adapter=adapter)
        return await asyncio.wrap_future(submitted)

    async def stream(
        self, messages: list[ChatMessage], params: SamplingParams
    ) -> AsyncIterator[str | Completion]:
        prompt = self._opened(messages) + params.prefill
        async for piece in self._stream(prompt, params, self._chat_adapter(messages)):
            yield piece

    async def stream_complete(self, prompt: str, params: SamplingParams) -> AsyncIterator[str | Completion]:
        async for piece in self._stream(prompt, params, in_scope(self.scope, prompt)):
            yield piece

    async def _stream(
        self, prompt: str, params: SamplingParams, adapter: bool
    ) -> AsyncIterator[str | Completion]:
        tokens = self.llama.tokenize(prompt.encode(), add_bos=True, special=True)
        one = params.model_copy(update={"n": 1})

        def start(on_text: Callable[[str], None]) -> asyncio.Future[list[Completion]]:
            return asyncio.wrap_future(self.decoder.submit(tokens, one, on_text, adapter=adapter))

        async for piece in stream_text(start, one.stop):
            yield piece

    async def close(self) -> None:
        await asyncio.to_thread(self.decoder.close)


def chat_formatter(llama: Any, name: str = "the model") -> Any:
    """The GGUF's own chat template as llama-cpp-python's formatter: ``formatter(messages=...)``
    gives the chat's raw text with the assistant's turn opened."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise GeneratorError(f"{name} has no chat template in its GGUF metadata")
    token_text = llama._model.token_get_text
    return Jinja2ChatFormatter(
        template=template, eos_token=token_text(llama.token_eos()), bos_token=token_text(llama.token_bos())
    )
