"""``/v1/completions``: raw continuations from the generator, for autocomplete. With ``suffix`` the
prompt becomes the model's fill-in-the-middle format (``engine.fim``); a model without FIM tokens
says so instead of completing as if the suffix were not there."""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import AsyncIterator

from mucode.engine.generators.base import Generator, SamplingParams

from .. import sse
from ..admission import AdmissionGate
from ..errors import STREAMED_ERRORS, APIError, stream_error
from ..model_ids import resolve
from ..protocol.chat import UsageOut
from ..protocol.completions import Completion, CompletionChoice, CompletionChunk, CompletionRequest
from ..settings import ServerSettings


class CompletionService:
    def __init__(self, generator: Generator, gate: AdmissionGate, settings: ServerSettings) -> None:
        self.generator = generator
        self.gate = gate
        self.settings = settings

    def check(self, request: CompletionRequest) -> None:
        generator = self.generator
        resolve(request.model, generator, self.settings)  # any served id: autocomplete is the generator's
        if request.suffix is not None and generator.fim is None:
            raise APIError(
                422,
                f"`{generator.model}` has no fill-in-the-middle tokens, so `suffix` cannot be honoured",
                param="suffix",
                code="fim_unsupported",
            )

    async def complete(self, request: CompletionRequest) -> Completion:
        self.check(request)
        return await self._generate(request)

    @staticmethod
    def _params(request: CompletionRequest) -> SamplingParams:
        return SamplingParams(
            n=request.n,
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=request.top_p or 1.0,
            max_tokens=request.max_tokens or 16,
            seed=request.seed,
            stop=request.stop_list(),
        )

    def _input(self, request: CompletionRequest, prompt: str) -> str:
        """What the generator continues: the prompt, or with ``suffix`` the model's FIM format."""
        fim = self.generator.fim
        return prompt if request.suffix is None or fim is None else fim.prompt(prompt, request.suffix)

    async def _generate(self, request: CompletionRequest) -> Completion:
        generator = self.generator
        params = self._params(request)
        prompts = request.prompts()
        async with self.gate.slot():
            batches = await asyncio.gather(
                *(generator.complete(self._input(request, p), params) for p in prompts)
            )
        choices: list[CompletionChoice] = []
        prompt_tokens = completion_tokens = 0
        for prompt, batch in zip(prompts, batches, strict=True):
            prompt_tokens += max((c.prompt_tokens for c in batch), default=0)
            for c in batch:
                completion_tokens += c.completion_tokens
                text = prompt + c.text if request.echo else c.text
                choices.append(CompletionChoice(index=len(choices), text=text, finish_reason=c.finish_reason))
        return Completion(
            model=request.model,
            choices=choices,
            usage=UsageOut.counted(prompt_tokens, completion_tokens),
        )

    def stream(self, request: CompletionRequest) -> AsyncIterator[str]:
        """SSE ``text_completion`` chunks: each choice's text (the backends return whole
        completions), its finish reason, the usage chunk when asked, ``[DONE]``. A wrong model or
        suffix fails here, as a plain HTTP error, before the stream starts."""
        self.check(request)
        return self._stream(request)

    async def _stream(self, request: CompletionRequest) -> AsyncIterator[str]:
        prompts = request.prompts()
        if len(prompts) == 1 and request.n == 1 and not request.echo:
            async for event in self._stream_tokens(request, prompts[0]):
                yield event
            return
        try:
            done = await self._generate(request)  # checked by stream()
        except STREAMED_ERRORS as exc:
            yield sse.data(stream_error(exc))
            yield sse.DONE
            return

        chunk = functools.partial(_chunk, done.id, done.created, done.model)
        for choice in done.choices:
            yield chunk([choice])
        if request.stream_options and request.stream_options.include_usage:
            yield chunk([], done.usage)
        yield sse.DONE

    async def _stream_tokens(self, request: CompletionRequest, prompt: str) -> AsyncIterator[str]:
        """One prompt, one choice (an editor's autocomplete): the text as the generator writes it."""
        chunk = functools.partial(_chunk, f"cmpl-{uuid.uuid4().hex}", int(time.time()), request.model)
        usage: UsageOut | None = None
        try:
            async with self.gate.slot():
                async for piece in self.generator.stream_complete(
                    self._input(request, prompt), self._params(request)
                ):
                    if isinstance(piece, str):
                        yield chunk([CompletionChoice(index=0, text=piece, finish_reason=None)])
                    else:
                        yield chunk([CompletionChoice(index=0, text="", finish_reason=piece.finish_reason)])
                        usage = UsageOut.counted(piece.prompt_tokens, piece.completion_tokens)
        except STREAMED_ERRORS as exc:
            yield sse.data(stream_error(exc))
            yield sse.DONE
            return
        if request.stream_options and request.stream_options.include_usage:
            yield chunk([], usage)
        yield sse.DONE


def _chunk(
    chunk_id: str, created: int, model: str, choices: list[CompletionChoice], usage: UsageOut | None = None
) -> str:
    return sse.data(CompletionChunk(id=chunk_id, created=created, model=model, choices=choices, usage=usage))
