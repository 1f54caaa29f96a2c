from __future__ import annotations

from fastapi import APIRouter, Request

from mucode.problems import Problem, guess_entry_point

from ..deps import V1_GUARDS, RuntimeDep, SettingsDep, enforce_limits
from ..disconnect import unless_disconnected
from ..engine.search import SearchEngine, share_duplicates
from ..engine.selection import rank
from ..engine.trace import Candidate
from ..errors import APIError
from ..protocol.score import ScoreRequest, ScoreResponse

router = APIRouter(prefix="/v1", tags=["solve"], dependencies=V1_GUARDS)


@router.post("/score", response_model=ScoreResponse, summary="Score and rank given programs")
async def score(
    body: ScoreRequest, request: Request, runtime: RuntimeDep, settings: SettingsDep
) -> ScoreResponse:
    """The verifier's score for each program and, with `tests`/`io_tests`, its public test results,
    plus a ranking (the `pt+lv` order the search uses). Needs a verifier or tests (or both)."""
    enforce_limits(settings, tests=len(body.tests) + len(body.io_tests))
    for k, code in enumerate(body.candidates):
        enforce_limits(settings, tests=0, code=code)
        if not code.strip():
            raise APIError(422, f"candidate {k} is empty", param=f"candidates.{k}")
    engine = runtime.engine
    if engine.verifier is None and not (body.tests or body.io_tests):
        raise APIError(
            422,
            "this server has no verifier: give `tests` or `io_tests` to rank by public tests",
            param="tests",
            code="no_verifier",
        )
    problem = Problem(
        id="score",
        prompt=body.prompt,
        entry_point=body.entry_point or guess_entry_point(body.prompt, body.tests),
        public_tests=body.tests,
        public_io_tests=body.io_tests,
        source="api",
    )
    candidates = [
        Candidate(index=k, text=code, code=code, extraction="given") for k, code in enumerate(body.candidates)
    ]
    async with runtime.gate.slot():
        await unless_disconnected(request, evaluate(engine, problem, candidates))
    if engine.verifier is not None:
        runtime.metrics.verifier_calls.inc()
    return ScoreResponse(verifier=engine.verifier_name, candidates=candidates, ranking=rank(candidates))


async def evaluate(engine: SearchEngine, problem: Problem, candidates: list[Candidate]) -> None:
    distinct = (
        await engine.execute(problem, candidates)
        if problem.public_tests or problem.public_io_tests
        else [c for c in candidates]
    )
    await engine.score(problem, distinct)
    share_duplicates(candidates)
