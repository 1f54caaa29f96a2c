from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from ..deps import V1_GUARDS, RuntimeDep, SettingsDep, enforce_limits
from ..disconnect import unless_disconnected
from ..engine.options import SolveOptions
from ..engine.trace import SolveResult
from ..errors import STREAMED_ERRORS, stream_error
from ..protocol.solve import SolveRequest, TurnStarted
from ..services.solve import SolveService, merge_options, solve_events

router = APIRouter(prefix="/v1", tags=["solve"], dependencies=V1_GUARDS)

STREAM_DOC = """With `stream: true` the answer is Server-Sent Events: `turn_started` ({turn, turns}),
`turn_finished` (the turn's record: candidates, results, scores, selection), then `result` (the
SolveResult) or `error` ({error: {...}}), and a final `done`."""


@router.post(
    "/solve",
    response_model=SolveResult,
    summary="Multi-turn fix-and-rerank on a problem",
    responses={200: {"content": {"text/event-stream": {}}, "description": STREAM_DOC}},
)
async def solve(
    body: SolveRequest, request: Request, response: Response, runtime: RuntimeDep, settings: SettingsDep
) -> SolveResult | StreamingResponse:
    """Runs the µCode search: `options.n` candidates per turn, public tests in the sandbox, the
    verifier, selection, feedback, up to `options.turns` turns. Returns every turn and candidate.
    Options left out take the server's defaults. A deterministic request (temperature 0, or an
    explicit `seed`) is answered from the cache when it was seen before (`cached: true`)."""
    enforce_limits(settings, tests=len(body.tests) + len(body.io_tests))
    options = merge_options(settings.default_options(), body.options)
    solver = runtime.solver
    solver.check(options)
    if body.stream:
        return StreamingResponse(
            sse_solve(solver, body, options), media_type="text/event-stream", headers=NO_BUFFERING
        )
    result = await unless_disconnected(request, solver.solve(body.to_problem(), options))
    response.headers["X-Mucode-Cache"] = "hit" if result.cached else "miss"
    request.state.log.update(cache=response.headers["X-Mucode-Cache"], turns=len(result.turns))
    return result


NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(event: str, data: str) -> str:
    return f"event: {event}\ndata: {data}\n\n"


async def sse_solve(solver: SolveService, body: SolveRequest, options: SolveOptions) -> AsyncIterator[str]:
    try:
        async for item in solve_events(solver, body.to_problem(), options):
            if isinstance(item, SolveResult):
                yield sse("result", item.model_dump_json())
            elif item.record is None:
                yield sse(item.kind, TurnStarted(turn=item.turn, turns=item.turns).model_dump_json())
            else:
                yield sse(item.kind, item.record.model_dump_json())
    except STREAMED_ERRORS as exc:
        yield sse("error", json.dumps(stream_error(exc)))
    yield sse("done", "{}")
