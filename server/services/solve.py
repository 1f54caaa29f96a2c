"""One way to run a search, shared by ``/v1/solve``, chat completions and jobs: the cache of
deterministic solves, the admission gate, the engine, and the metrics, in that order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from mucode.problems import Problem

from ..admission import AdmissionGate
from ..cache import SolveCache, cache_key
from ..engine.options import SolveOptions
from ..engine.search import EventCallback, SearchEngine, SearchEvent
from ..engine.trace import SolveResult
from ..errors import APIError
from ..metrics import Metrics


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
        self, engine: SearchEngine, cache: SolveCache, gate: AdmissionGate, metrics: Metrics
    ) -> None:
        self.engine = engine
        self.cache = cache
        self.gate = gate
        self.metrics = metrics

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
            key = cache_key(problem, options, engine.generator.description, engine.verifier_name)
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
