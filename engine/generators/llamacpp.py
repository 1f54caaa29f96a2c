"""The llama.cpp backend (``llama-cpp-python``) for GGUF models: the fastest engine on a CPU, starts
in under a second and needs under 1 GB for the default model. The samples of a request, and
concurrent requests, decode together (``llamacpp_batch.BatchDecoder``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ..fim import detect
from ..trace import ChatMessage
from .base import Completion, Generator, GeneratorError, SamplingParams, stream_text
from .llamacpp_batch import BatchDecoder


class LlamaCppGenerator(Generator):
    backend = "llama-cpp"
    supports_prefill = True

    def __init__(self, llama: Any, name: str, decoder: BatchDecoder) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llama = llama
        self.model = name
        self.decoder = decoder
        self.fim = detect(self._is_special)
        # The GGUF's own chat template, rendered here rather than by create_chat_completion so
        # that an answer can be prefilled (the template's text, then the prefill, then the model).
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise GeneratorError(f"{name} has no chat template in its GGUF metadata")
        token_text = llama._model.token_get_text
        self._chat_template = Jinja2ChatFormatter(
            template=template,
            eos_token=token_text(llama.token_eos()),
            bos_token=token_text(llama.token_bos()),
        )

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
        n_threads: int | None = None,
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
        )
        return cls(llama, name=Path(gguf).name, decoder=decoder)

    async def sample(self, messages: list[ChatMessage], params: SamplingParams) -> list[Completion]:
        chat: Any = [m.model_dump() for m in messages]  # llama_cpp's TypedDicts, in shape
        opened = self._chat_template(messages=chat).prompt
        return await self.complete(opened + params.prefill, params)

    async def complete(self, prompt: str, params: SamplingParams) -> list[Completion]:
        tokens = self.llama.tokenize(prompt.encode(), add_bos=True, special=True)
        return await asyncio.wrap_future(self.decoder.submit(tokens, params))

    async def stream(
        self, messages: list[ChatMessage], params: SamplingParams
    ) -> AsyncIterator[str | Completion]:
        chat: Any = [m.model_dump() for m in messages]
        async for piece in self.stream_complete(
            self._chat_template(messages=chat).prompt + params.prefill, params
        ):
            yield piece

    async def stream_complete(self, prompt: str, params: SamplingParams) -> AsyncIterator[str | Completion]:
        tokens = self.llama.tokenize(prompt.encode(), add_bos=True, special=True)
        one = params.model_copy(update={"n": 1})

        def start(on_text: Callable[[str], None]) -> asyncio.Future[list[Completion]]:
            return asyncio.wrap_future(self.decoder.submit(tokens, one, on_text))

        async for piece in stream_text(start, one.stop):
            yield piece

    async def close(self) -> None:
        await asyncio.to_thread(self.decoder.close)
