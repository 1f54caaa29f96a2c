"""Seeded samples shared between evaluation configurations.

Configurations that differ only in how they select (``bon5-random``, ``bon5-pt``, ``bon5-pt+lv``)
ask the generator for the very same seeded samples at turn 1, and again at every later turn where
their choices agree; greedy T=3 asks for greedy T=1's answer first. Replaying those samples
instead of regenerating them makes the comparison paired (every rule ranks the same candidates)
and saves most of the generation time of the second and later configurations. Samples are kept in
a JSONL file, so an interrupted or later evaluation with the same model shares them too.

Only seeded requests are cached: without a seed two calls are meant to differ.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from mucode.engine.generators.base import Completion, Generator, SamplingParams, TokenProgress
from mucode.engine.trace import ChatMessage


def sample_key(model: str, messages: list[ChatMessage], params: SamplingParams) -> str:
    blob = json.dumps(
        [model, [m.model_dump(mode="json") for m in messages], params.model_dump(mode="json")],
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class SampleCache(Generator):
    """A generator that answers a seeded request it has seen before from ``path``."""

    def __init__(self, inner: Generator, path: Path) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.model = inner.model
        self.fim = inner.fim
        self.supports_prefill = inner.supports_prefill
        self.path = path
        self.hits = 0
        self.samples: dict[str, list[Completion]] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                self.samples[row["key"]] = [Completion.model_validate(c) for c in row["completions"]]
        # Concurrent identical requests generate once.
        self._pending: dict[str, asyncio.Future[list[Completion]]] = {}

    async def sample(self, messages: list[ChatMessage], params: SamplingParams) -> list[Completion]:
        return await self._cached(messages, params, lambda: self.inner.sample(messages, params))

    async def sample_watched(
        self, messages: list[ChatMessage], params: SamplingParams, on_tokens: TokenProgress
    ) -> list[Completion]:
        """A replayed sample reports no progress; a generated one reports the inner backend's."""
        return await self._cached(
            messages, params, lambda: self.inner.sample_watched(messages, params, on_tokens)
        )

    async def _cached(
        self,
        messages: list[ChatMessage],
        params: SamplingParams,
        generate: Callable[[], Awaitable[list[Completion]]],
    ) -> list[Completion]:
        if params.seed is None:
            return await generate()
        key = sample_key(self.model, messages, params)
        if key in self.samples:
            self.hits += 1
            return self.samples[key]
        if key in self._pending:
            self.hits += 1
            return await asyncio.shield(self._pending[key])
        future: asyncio.Future[list[Completion]] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            completions = await generate()
            self.samples[key] = completions
            future.set_result(completions)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, an unwaited future stays quiet
            raise
        finally:
            del self._pending[key]
            if not future.done():  # the request was cancelled: so are its waiters
                future.cancel()
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"key": key, "completions": [c.model_dump() for c in completions]}) + "\n")
        return completions

    async def complete(self, prompt: str, params: SamplingParams) -> list[Completion]:
        return await self.inner.complete(prompt, params)

    async def close(self) -> None:
        await self.inner.close()
