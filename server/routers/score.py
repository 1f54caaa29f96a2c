from __future__ import annotations

from fastapi import Request

from ..deps import ScoreDep
from ..disconnect import unless_disconnected
from ..protocol.score import ScoreRequest, ScoreResponse
from ..routing import v1_router

router = v1_router("solve")


@router.post("/score", response_model=ScoreResponse, summary="Score and rank given programs")
async def score(body: ScoreRequest, request: Request, scorer: ScoreDep) -> ScoreResponse:
    """The verifier's score for each program and, with `tests`/`io_tests`, its public test results,
    plus a ranking (the `pt+lv` order the search uses). Needs a verifier or tests (or both)."""
    return await unless_disconnected(request, scorer.score(body))
