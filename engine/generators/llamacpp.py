"""The llama.cpp backend (``llama-cpp-python``) for GGUF models: the fastest single stream on a
CPU, starts in under a second and needs under 1 GB for the default model. It has no batched ``n``:
the samples run one after another, and llama.cpp reuses the prompt's KV cache between them."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..fim import detect
from ..trace import ChatMessage
from .base import Completion, Generator, GeneratorError, SamplingParams


class LlamaCppGenerator(Generator):
    backend = "llama-cpp"
    supports_prefill = True

    def __init__(self, llama: Any, name: str) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llama = llama
        self.model = name
        self._lock = threading.Lock()  # one llama.cpp context, one generation at a time
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
    def load(cls, gguf: str | Path, *, n_ctx: int = 8192, n_threads: int | None = None) -> LlamaCppGenerator:
        from llama_cpp import Llama

        threads = n_threads or len(os.sched_getaffinity(0))
        llama = Llama(
            model_path=str(gguf), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False
        )
        return cls(llama, name=Path(gguf).name)

    def _end_tokens(self) -> set[int]:
        ends = {self.llama.token_eos()}
        for marker in (b"<|im_end|>", b"<|endoftext|>", b"<|eot_id|>"):
            ids = self.llama.tokenize(marker, add_bos=False, special=True)
            if len(ids) == 1:
                ends.add(ids[0])
        return ends

    async def sample(self, messages: list[ChatMessage], params: SamplingParams) -> list[Completion]:
        return await asyncio.to_thread(self.sample_sync, messages, params)

    async def complete(self, prompt: str, params: SamplingParams) -> list[Completion]:
        return await asyncio.to_thread(self.complete_sync, prompt, params)

    def sample_sync(self, messages: list[ChatMessage], params: SamplingParams) -> list[Completion]:
        chat: Any = [m.model_dump() for m in messages]  # llama_cpp's TypedDicts, in shape
        opened = self._chat_template(messages=chat).prompt
        return self.complete_sync(opened + params.prefill, params)

    def complete_sync(self, prompt: str, params: SamplingParams) -> list[Completion]:
        return self._runs(params, lambda **kw: self.llama.create_completion(prompt=prompt, **kw))

    def _runs(self, params: SamplingParams, create: Callable[..., Any]) -> list[Completion]:
        greedy = params.temperature == 0
        bias = {token: -1e9 for token in self._end_tokens()} if params.ignore_eos else None
        runs = 1 if greedy else params.n  # greedy decoding gives the same text every time
        completions = []
        with self._lock:
            for k in range(runs):
                out = create(
                    temperature=params.temperature,
                    top_p=params.top_p,
                    top_k=0,
                    min_p=0.0,
                    max_tokens=params.max_tokens,
                    stop=params.stop or None,
                    seed=None if params.seed is None else params.seed + k,
                    logit_bias=bias,
                )
                choice, usage = out["choices"][0], out["usage"]
                completions.append(
                    Completion(
                        text=choice["text"],
                        prompt_tokens=usage["prompt_tokens"],
                        completion_tokens=usage["completion_tokens"],
                        finish_reason=choice.get("finish_reason") or "stop",
                    )
                )
        return completions * params.n if greedy else completions
