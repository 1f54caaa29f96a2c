"""Any OpenAI-compatible chat endpoint as the generator: a vLLM, SGLang, llama.cpp or Ollama
server, or a hosted API — µCode on top of any model. ``n`` is sent as is; when the upstream
returns fewer choices (many ignore ``n``), the rest come from parallel single requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ..trace import ChatMessage
from .base import Completion, Generator, GeneratorError, SamplingParams


class OpenAIGenerator(Generator):
    backend = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        max_parallel: int = 8,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s
        )
        self._parallel = asyncio.Semaphore(max_parallel)

    def _body(
        self, payload: dict[str, Any], params: SamplingParams, n: int, seed: int | None
    ) -> dict[str, Any]:
        """``payload`` holds ``messages`` (chat) or ``prompt`` (completions)."""
        body: dict[str, Any] = {
            "model": self.model,
            **payload,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "n": n,
        }
        if seed is not None:
            body["seed"] = seed
        if params.stop:
            body["stop"] = params.stop
        return body

    async def _request(
        self, payload: dict[str, Any], params: SamplingParams, n: int, seed: int | None
    ) -> Any:
        """One upstream call."""
        path = "/chat/completions" if "messages" in payload else "/completions"
        body = self._body(payload, params, n, seed)
        async with self._parallel:
            try:
                response = await self.client.post(path, json=body)
            except httpx.HTTPError as exc:
                raise GeneratorError(f"upstream {self.client.base_url} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise GeneratorError(f"upstream answered {response.status_code}: {response.text[:300]}")
        return response.json()

    @staticmethod
    def _completions(data: Any) -> list[Completion]:
        choices = data.get("choices") or []
        usage = data.get("usage") or {}
        prompt = int(usage.get("prompt_tokens", 0))
        total = int(usage.get("completion_tokens", 0))
        share, extra = divmod(total, max(len(choices), 1))  # the usage covers all choices together
        return [
            Completion(
                text=(choice["message"].get("content") if "message" in choice else choice.get("text")) or "",
                prompt_tokens=prompt,
                completion_tokens=share + (1 if i < extra else 0),
                finish_reason=choice.get("finish_reason") or "stop",
            )
            for i, choice in enumerate(choices)
        ]

    async def sample(self, messages: list[ChatMessage], params: SamplingParams) -> list[Completion]:
        return await self._sample({"messages": [m.model_dump() for m in messages]}, params)

    async def complete(self, prompt: str, params: SamplingParams) -> list[Completion]:
        return await self._sample({"prompt": prompt}, params)

    async def stream(
        self, messages: list[ChatMessage], params: SamplingParams
    ) -> AsyncIterator[str | Completion]:
        async for piece in self._stream({"messages": [m.model_dump() for m in messages]}, params):
            yield piece

    async def stream_complete(self, prompt: str, params: SamplingParams) -> AsyncIterator[str | Completion]:
        async for piece in self._stream({"prompt": prompt}, params):
            yield piece

    async def _stream(
        self, payload: dict[str, Any], params: SamplingParams
    ) -> AsyncIterator[str | Completion]:
        """The upstream's own stream (``stream: true``), piece by piece; usage from its last chunk
        when it sends one (``stream_options.include_usage``)."""
        path = "/chat/completions" if "messages" in payload else "/completions"
        body = self._body(payload, params, 1, params.seed) | {
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        pieces: list[str] = []
        finish = "stop"
        usage: dict[str, Any] = {}
        async with self._parallel:
            try:
                async with self.client.stream("POST", path, json=body) as response:
                    if response.status_code != 200:
                        await response.aread()
                        raise GeneratorError(
                            f"upstream answered {response.status_code}: {response.text[:300]}"
                        )
                    async for line in response.aiter_lines():
                        data = line.removeprefix("data:").strip()
                        if not line.startswith("data:") or data == "[DONE]":
                            continue
                        chunk = json.loads(data)
                        usage = chunk.get("usage") or usage
                        for choice in chunk.get("choices") or []:
                            delta = choice.get("delta")
                            piece = delta.get("content") if isinstance(delta, dict) else choice.get("text")
                            if piece:
                                pieces.append(piece)
                                yield piece
                            finish = choice.get("finish_reason") or finish
            except (httpx.HTTPError, ValueError) as exc:
                raise GeneratorError(f"upstream {self.client.base_url} stream failed: {exc}") from exc
        yield Completion(
            text="".join(pieces),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=finish,
        )

    async def _sample(self, payload: dict[str, Any], params: SamplingParams) -> list[Completion]:
        completions = self._completions(await self._request(payload, params, params.n, params.seed))
        missing = params.n - len(completions)
        if missing > 0:
            seeds = [None if params.seed is None else params.seed + k for k in range(1, missing + 1)]
            more = await asyncio.gather(*(self._request(payload, params, 1, s) for s in seeds))
            for data in more:
                completions += self._completions(data)[:1]
        if len(completions) < params.n:
            raise GeneratorError(f"upstream returned {len(completions)} completions, {params.n} asked")
        return completions[: params.n]

    async def close(self) -> None:
        await self.client.aclose()
