from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from mucode.engine.trace import SolveResult

from .. import sse
from ..deps import SolverDep
from ..disconnect import unless_disconnected
from ..protocol.solve import SolveRequest
from ..routing import streamed, v1_router
from ..services.solve import solve_stream

router = v1_router("solve")

STREAM_DOC = """With `stream: true` the answer is Server-Sent Events: `turn_started` ({turn, turns}),
`generating` while the candidates are written ({turn, turns, tokens: tokens each has written so
far}; every 2 s at most, from backends that report it: llama.cpp), `candidates_written` ({turn,
turns, candidates, programs}), `candidate_ran` per program as its public-test result lands ({turn,
turns, candidate, passed, total}), `turn_finished` (the turn's record: candidates, results, scores,
selection), then `result` (the SolveResult) or `error` ({error: {...}}), and a final `done`."""


@router.post(
    "/solve",
    response_model=SolveResult,
    summary="Multi-turn fix-and-rerank on a problem",
    responses=streamed(STREAM_DOC),
)
async def solve(
    body: SolveRequest, request: Request, response: Response, solver: SolverDep
) -> SolveResult | StreamingResponse:
    """Runs the µCode search: `options.n` candidates per turn, public tests in the sandbox, the
    verifier, selection, feedback, up to `options.turns` turns. Returns every turn and candidate.
    Options left out take the server's defaults. A deterministic request (temperature 0, or an
    explicit `seed`) is answered from the cache when it was seen before (`cached: true`)."""
    problem, options = solver.prepare(body)
    if body.stream:
        return sse.response(solve_stream(solver, problem, options))
    result = await unless_disconnected(request, solver.solve(problem, options))
    response.headers["X-Mucode-Cache"] = "hit" if result.cached else "miss"
    request.state.log.update(cache=response.headers["X-Mucode-Cache"], turns=len(result.turns))
    return result
