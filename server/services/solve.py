"""One way to run a search, shared by ``/v1/solve``, chat completions and jobs: the cache of
deterministic solves, the admission gate, the engine, and the metrics, in that order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from mucode.engine.options import SolveOptions
from mucode.engine.search import EventCallback, SearchEngine, SearchEvent
from mucode.engine.trace import SolveResult
from mucode.problems import Problem

from .. import sse
from ..admission import AdmissionGate
from ..cache import SolveCache, cache_key
from ..errors import STREAMED_ERRORS, APIError, stream_error
from ..limits import enforce_limits
from ..metrics import Metrics
from ..protocol.solve import SolveRequest, TurnStarted
from ..settings import ServerSettings


def is_deterministic(options: SolveOptions) -> bool:
    """Greedy, or the caller chose the seed: the same request gives the same trace."""
    return options.temperature == 0 or "seed" in options.model_fields_set


def merge_options(defaults: SolveOptions, given: SolveOptions | None) -> SolveOptions:
    """The server's defaults, overridden by what the request set (and only that)."""
    if given is None:
        return defaults
    merged = defaults.model_copy(update=given.model_dump(exclude_unset=True))
    # Keep "the caller set the seed" visible to is_deterministic.
    merged.__pydantic_fields_set__ = set(given.model_fields_set)
    return merged


class SolveService:
    def __init__(
        self,
        engine: SearchEngine,
        cache: SolveCache,
        gate: AdmissionGate,
        metrics: Metrics,
        settings: ServerSettings,
    ) -> None:
        self.engine = engine
        self.cache = cache
        self.gate = gate
        self.metrics = metrics
        self.settings = settings

    def prepare(self, request: SolveRequest) -> tuple[Problem, SolveOptions]:
        """A ``/v1/solve`` request as the engine's problem and options (the server's defaults for
        what it left out), refused here if it is too big or cannot run."""
        enforce_limits(self.settings, tests=len(request.tests) + len(request.io_tests))
        options = merge_options(self.settings.default_options(), request.options)
        self.check(options)
        return request.to_problem(), options

    def check(self, options: SolveOptions, selection_param: str = "options.selection") -> None:
        """What would make the search fail at once, raised before a stream starts."""
        if options.selection == "lv" and self.engine.verifier is None:
            raise APIError(
                422, "selection 'lv' needs a verifier; this server has none", param=selection_param
            )

    async def solve(
        self,
        problem: Problem,
        options: SolveOptions,
        *,
        on_event: EventCallback | None = None,
        admit: bool = True,
        selection_param: str = "options.selection",
    ) -> SolveResult:
        """``admit=False`` skips the admission gate (jobs: their workers bound them);
        ``selection_param`` names the field in errors (chat has it at the top level)."""
        engine = self.engine
        self.check(options, selection_param)
        key = None
        if self.cache.enabled and is_deterministic(options):
            key = cache_key(problem, options, engine)
            cached = await self.cache.get(key)
            if cached is not None:
                if on_event:
                    replay(cached, on_event)
                return cached
        if admit:
            async with self.gate.slot():
                result = await engine.solve(problem, options, on_event)
        else:
            result = await engine.solve(problem, options, on_event)
        self.metrics.record_solve(result)
        if key is not None:
            await self.cache.put(key, result)
        return result


def replay(result: SolveResult, on_event: EventCallback) -> None:
    """A cached trace's progress, so a stream of a cache hit looks like the original run."""
    turns = result.options.turns
    for record in result.turns:
        on_event(SearchEvent(kind="turn_started", turn=record.turn, turns=turns))
        on_event(SearchEvent(kind="turn_finished", turn=record.turn, turns=turns, record=record))


async def solve_events(
    solver: SolveService, problem: Problem, options: SolveOptions
) -> AsyncIterator[SearchEvent | SolveResult]:
    """The search's progress events as they happen, then its result. Leaving the iteration early
    (the client went away) cancels the search: its generation and sandbox runs stop."""
    events: asyncio.Queue[SearchEvent | None] = asyncio.Queue()
    task = asyncio.create_task(solver.solve(problem, options, on_event=events.put_nowait))
    task.add_done_callback(lambda _: events.put_nowait(None))
    try:
        while (event := await events.get()) is not None:
            yield event
        yield await task
    finally:
        task.cancel()


async def solve_stream(solver: SolveService, problem: Problem, options: SolveOptions) -> AsyncIterator[str]:
    """``/v1/solve`` with ``stream: true``: named events ``turn_started``, ``generating`` (tokens
    written so far), ``candidates_written``,
    ``candidate_ran`` (one per program, as it lands), ``turn_finished`` (the turn's record), then
    ``result`` or ``error``, and ``done``."""
    try:
        async for item in solve_events(solver, problem, options):
            if isinstance(item, SolveResult):
                yield sse.event("result", item)
            elif item.kind == "turn_started":
                yield sse.event(item.kind, TurnStarted(turn=item.turn, turns=item.turns))
            elif item.record is None:
                yield sse.event(item.kind, item.model_dump(exclude_none=True))
            else:
                yield sse.event(item.kind, item.record)
    except STREAMED_ERRORS as exc:
        yield sse.event("error", stream_error(exc))
    yield sse.event("done", {})
