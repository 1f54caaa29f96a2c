from __future__ import annotations

from fastapi import APIRouter, Request

from ..deps import V1_GUARDS, ScoreDep
from ..disconnect import unless_disconnected
from ..protocol.score import ScoreRequest, ScoreResponse

router = APIRouter(prefix="/v1", tags=["solve"], dependencies=V1_GUARDS)


@router.post("/score", response_model=ScoreResponse, summary="Score and rank given programs")
async def score(body: ScoreRequest, request: Request, scorer: ScoreDep) -> ScoreResponse:
    """The verifier's score for each program and, with `tests`/`io_tests`, its public test results,
    plus a ranking (the `pt+lv` order the search uses). Needs a verifier or tests (or both)."""
    return await unless_disconnected(request, scorer.score(body))
