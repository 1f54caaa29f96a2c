"""OpenAI chat completions over the µCode engine.

* model ``mucode``: the last user message is the problem; public tests come from ``tests`` /
  ``io_tests`` (``extra_body``) or from a fenced block of asserts in the message. The answer is the
  search's final code plus a one-line verdict; the trace rides along in the ``mucode`` field.
  Without tests: ``n`` candidates, ranked (verifier, else the first that runs), best one answered.
* the generator's own model id: plain chat, no search.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from mucode.engine.generators.base import Generator, SamplingParams
from mucode.engine.options import SolveOptions
from mucode.engine.search import SearchEvent
from mucode.engine.trace import ChatMessage, SolveResult
from mucode.problems import ContextMessage, Problem, guess_entry_point
from mucode.sandbox.testfile import split_tests

from .. import sse
from ..errors import STREAMED_ERRORS, APIError, stream_error
from ..limits import enforce_limits
from ..model_ids import resolve
from ..protocol.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    ResponseMessage,
    UsageOut,
)
from ..settings import ServerSettings
from .solve import SolveService, merge_options, solve_events

TEST_BLOCK = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(?P<body>.*?)```", re.DOTALL)


def split_problem(text: str) -> tuple[str, list[str]]:
    """The problem text and the tests found in it: a fenced block whose statements are asserts."""
    for match in TEST_BLOCK.finditer(text):
        lines = [
            line.strip()
            for line in match["body"].splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        if lines and all(line.startswith("assert") for line in lines):
            try:
                tests = split_tests(match["body"])
            except SyntaxError:
                continue
            return (text[: match.start()] + text[match.end() :]).strip() + "\n", tests
    return text, []


def fit_context(messages: list[ContextMessage], budget: int) -> tuple[list[ContextMessage], int]:
    """The newest messages of the conversation that fit in ``budget`` characters, system notes
    counted like the rest (an agent's 17,000-character tool manual would fill a small model's
    context); returns what is kept, in order, and how many of the oldest were left out."""
    used, kept = 0, 0
    for message in reversed(messages):
        if used + len(message.content) > budget:
            break
        used, kept = used + len(message.content), kept + 1
    return messages[len(messages) - kept :], len(messages) - kept


def verdict(result: SolveResult) -> str:
    turns = f"{len(result.turns)} turn{'s' if len(result.turns) != 1 else ''}"
    if result.public_total:
        return f"Passed {result.public_passed_count}/{result.public_total} public tests after {turns}."
    agreed = result.turns[-1].agreement
    if agreed is not None:
        return f"{agreed.summary[0].upper()}{agreed.summary[1:]} ({turns}); no test of yours was run."
    return (
        f"No tests were given, so none were run: this is the pick of {result.options.n} candidates "
        f"(verifier: {result.verifier}), unchecked."
    )


def answer_text(result: SolveResult) -> str:
    if result.final_code:
        return f"```python\n{result.final_code.rstrip()}\n```\n\n{verdict(result)}"
    return result.turns[-1].chosen.text + f"\n\n{verdict(result)}"


def usage_of(result: SolveResult) -> UsageOut:
    u = result.usage
    return UsageOut(
        prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens, total_tokens=u.total_tokens
    )


class ChatService:
    def __init__(self, solver: SolveService, generator: Generator, settings: ServerSettings) -> None:
        self.solver = solver
        self.generator = generator
        self.settings = settings

    def _problem(self, request: ChatCompletionRequest, preset: SolveOptions) -> tuple[Problem, SolveOptions]:
        messages = [m for m in request.messages if m.role in ("system", "developer", "user", "assistant")]
        last = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
        if last is None:
            raise APIError(422, "the messages hold no user message (the problem)", param="messages")
        text, found = split_problem(messages[last].text())
        # A follow-up ("now make it handle negatives") keeps the tests an earlier message gave.
        for earlier in reversed(messages[:last]):
            if found:
                break
            if earlier.role == "user":
                found = split_problem(earlier.text())[1]
        tests = request.tests if request.tests is not None else found
        context, dropped = fit_context(
            [
                ContextMessage(role="system" if m.role == "developer" else m.role, content=m.text())
                for m in messages[:last]
            ],
            self.settings.max_context_chars,
        )
        io_tests = request.io_tests or []
        enforce_limits(self.settings, tests=len(tests) + len(io_tests))
        problem = Problem(
            id=f"chat-{uuid.uuid4().hex[:8]}",
            prompt=text,
            entry_point=guess_entry_point(text, tests),
            public_tests=tests,
            public_io_tests=io_tests,
            source="chat",
            context=context,
            context_dropped=dropped,
        )
        given: dict[str, Any] = {
            "n": request.n,
            "turns": request.turns,
            "selection": request.selection,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.token_limit(),
            "seed": request.seed,
            "stop": request.stop_list() or None,
        }
        if not (tests or io_tests):
            given["turns"] = 1  # no tests, no feedback: rerank one turn of samples
        options = merge_options(
            merge_options(self.settings.default_options(), preset),
            SolveOptions(**{k: v for k, v in given.items() if v is not None}),
        )
        return problem, options

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        preset = resolve(request.model, self.generator, self.settings).options
        if preset is None:
            return await self._plain_chat(request)
        problem, options = self._problem(request, preset)
        result = await self.solver.solve(problem, options, selection_param="selection")
        return ChatCompletion(
            model=request.model,
            choices=[Choice(index=0, message=ResponseMessage(content=answer_text(result)))],
            usage=usage_of(result),
            mucode=result,
        )

    @staticmethod
    def _plain_input(request: ChatCompletionRequest) -> tuple[list[ChatMessage], SamplingParams]:
        messages = [
            ChatMessage(role="system" if m.role == "developer" else m.role, content=m.text())
            for m in request.messages
            if m.role in ("system", "developer", "user", "assistant")
        ]
        params = SamplingParams(
            n=request.n or 1,
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=request.top_p or 1.0,
            max_tokens=request.token_limit() or 1024,
            seed=request.seed,
            stop=request.stop_list(),
        )
        return messages, params

    async def _plain_chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        messages, params = self._plain_input(request)
        completions = await self.generator.sample(messages, params)
        prompt = max((c.prompt_tokens for c in completions), default=0)
        completion = sum(c.completion_tokens for c in completions)
        return ChatCompletion(
            model=request.model,
            choices=[
                Choice(index=i, message=ResponseMessage(content=c.text), finish_reason=c.finish_reason)
                for i, c in enumerate(completions)
            ],
            usage=UsageOut.counted(prompt, completion),
        )

    def stream(self, request: ChatCompletionRequest) -> AsyncIterator[str]:
        """SSE lines: the search's progress as `reasoning_content`, then the answer as `content`.
        Everything that can fail before the first byte (model, problem, engine) fails here, as a
        plain HTTP error; a failure later arrives as an `error` event before `[DONE]`."""
        return self._stream(self.chunks(request))

    def chunks(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        """The stream's chunks, checked up front as `stream` says (the Responses API reuses them)."""
        preset = resolve(request.model, self.generator, self.settings).options
        prepared = None if preset is None else self._problem(request, preset)
        if prepared is not None:
            self.solver.check(prepared[1], selection_param="selection")
        return self._chunks(request, prepared)

    async def _stream(self, chunks: AsyncIterator[ChatCompletionChunk]) -> AsyncIterator[str]:
        try:
            async for chunk in chunks:
                yield sse.data(chunk)
        except STREAMED_ERRORS as exc:
            yield sse.data(stream_error(exc))
        yield sse.DONE

    async def _chunks(
        self, request: ChatCompletionRequest, prepared: tuple[Problem, SolveOptions] | None
    ) -> AsyncIterator[ChatCompletionChunk]:
        chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
            choice = ChunkChoice(delta=delta, finish_reason=finish)
            return ChatCompletionChunk(id=chunk_id, created=created, model=request.model, choices=[choice])

        yield chunk(Delta(role="assistant", content=""))
        if prepared is None:
            # Plain chat: the generator's tokens as they come (one piece on backends that cannot stream).
            messages, params = self._plain_input(request)
            async for piece in self.generator.stream(messages, params.model_copy(update={"n": 1})):
                if isinstance(piece, str):
                    yield chunk(Delta(content=piece))
                else:
                    usage = UsageOut.counted(piece.prompt_tokens, piece.completion_tokens)
        else:
            problem, options = prepared
            async for item in solve_events(self.solver, problem, options):
                if isinstance(item, SearchEvent):
                    yield chunk(Delta(reasoning_content=progress_line(item, problem)))
                else:
                    result = item
            usage = usage_of(result)
            yield chunk(Delta(content=answer_text(result)))
        yield chunk(Delta(), finish="stop")
        if request.stream_options and request.stream_options.include_usage:
            yield ChatCompletionChunk(
                id=chunk_id, created=created, model=request.model, choices=[], usage=usage
            )


def progress_line(event: SearchEvent, problem: Problem) -> str:
    if event.kind == "turn_started":
        return f"Turn {event.turn}/{event.turns}: sampling candidates...\n"
    if event.kind == "generating":
        counts = ", ".join(f"#{k + 1} {tokens}" for k, tokens in enumerate(event.tokens or []))
        return f"  writing: {counts} tokens\n"
    if event.kind == "candidates_written":
        written, programs = event.candidates, event.programs
        return f"Turn {event.turn}: {written} candidates written; testing {programs} distinct programs...\n"
    if event.kind == "candidate_ran":
        return (
            f"  candidate #{(event.candidate or 0) + 1}: passes {event.passed}/{event.total} public tests\n"
        )
    record = event.record
    assert record is not None
    total = len(problem.public_tests) + len(problem.public_io_tests)
    chosen = record.chosen
    score = "n/a" if chosen.verifier_score is None else f"{chosen.verifier_score:+.2f}"
    best = max(c.public_passed_count for c in record.candidates)
    return (
        f"Turn {event.turn}: {len(record.candidates)} candidates, best passes {best}/{total} public tests; "
        f"chose #{record.selected + 1} (verifier score {score}).\n"
    )
