"""The transformers backend: the reference path, any Hugging Face causal LM (or GGUF via
``gguf_file``). Slow next to vLLM or llama.cpp, but exact and dependency-light; the fast tests use
it with tiny models."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ..fim import detect_in_tokenizer
from .base import Completion, SamplingParams, TemplatedGenerator, cut_at_stop, stream_text


class TransformersGenerator(TemplatedGenerator):
    backend = "transformers"
    supports_prefill = True

    def __init__(self, model: Any, tokenizer: Any, name: str) -> None:
        self.hf_model = model
        self.tokenizer = tokenizer
        self.model = name
        self._lock = threading.Lock()  # generate() uses every core; and seeding is global
        self.fim = detect_in_tokenizer(tokenizer)

    @classmethod
    def load(cls, path: str | Path, *, dtype: str = "bfloat16", device: str = "cpu") -> TransformersGenerator:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        model.to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(model, tokenizer, name=str(path))

    async def complete(self, prompt: str, params: SamplingParams) -> list[Completion]:
        return await asyncio.to_thread(self.generate_sync, prompt, params)

    async def stream_complete(self, prompt: str, params: SamplingParams) -> AsyncIterator[str | Completion]:
        one = params.model_copy(update={"n": 1})

        def start(on_text: Callable[[str], None]) -> asyncio.Future[list[Completion]]:
            streamer = _Streamer(self.tokenizer, on_text)
            done = asyncio.ensure_future(asyncio.to_thread(self.generate_sync, prompt, one, streamer))
            # A reader that goes away stops the decode at its next token instead of at max_tokens.
            done.add_done_callback(lambda future: streamer.stop() if future.cancelled() else None)
            return done

        async for piece in stream_text(start, one.stop):
            yield piece

    def generate_sync(
        self, prompt: str, params: SamplingParams, streamer: _Streamer | None = None
    ) -> list[Completion]:
        import torch

        tok = self.tokenizer
        inputs = tok(prompt, return_tensors="pt", add_special_tokens=False).to(self.hf_model.device)
        prompt_len = inputs["input_ids"].shape[1]
        sampling = params.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            # Greedy decoding gives the same text n times: decode once, repeat below.
            "num_return_sequences": params.n if sampling else 1,
            "pad_token_id": tok.pad_token_id,
            "do_sample": sampling,
        }
        if sampling:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        if params.stop:
            kwargs.update(stop_strings=params.stop, tokenizer=tok)
        if params.ignore_eos:
            kwargs["min_new_tokens"] = params.max_tokens
        if streamer is not None:
            kwargs["streamer"] = streamer
        with self._lock, torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            output = self.hf_model.generate(**inputs, **kwargs)  # (n, prompt_len + new)
        eos = set(_as_list(self.hf_model.generation_config.eos_token_id)) | {tok.eos_token_id}
        completions = []
        for row in output[:, prompt_len:].tolist():
            end = next((i for i, t in enumerate(row) if t in eos), None)
            tokens = row if end is None else row[:end]
            tokens = [t for t in tokens if t != tok.pad_token_id or tok.pad_token_id in eos]
            text, stopped = cut_at_stop(tok.decode(tokens, skip_special_tokens=True), params.stop)
            finish = "stop" if end is not None or stopped else "length"
            completions.append(
                Completion(
                    text=text, prompt_tokens=prompt_len, completion_tokens=len(tokens), finish_reason=finish
                )
            )
        return completions if sampling else completions * params.n


class _Stopped(Exception):
    pass


class _Streamer:
    """transformers' streamer interface (``put`` gets the prompt, then each new token): the text so
    far goes to ``on_text`` after every token."""

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None]) -> None:
        self.tokenizer, self.on_text = tokenizer, on_text
        self.tokens: list[int] | None = None  # None until the prompt has gone by
        self.stopped = False

    def put(self, value: Any) -> None:
        if self.stopped:
            raise _Stopped
        if self.tokens is None:
            self.tokens = []
            return
        self.tokens += value.reshape(-1).tolist()
        self.on_text(self.tokenizer.decode(self.tokens, skip_special_tokens=True))

    def end(self) -> None:
        """Nothing to flush: every token was passed on as it came."""

    def stop(self) -> None:
        self.stopped = True


def _as_list(value: int | list[int] | None) -> list[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else list(value)
