"""``POST /v1/score``: rank given programs for a problem with the verifier and, when tests are
given, the public tests in the sandbox; no generation."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mucode.engine.trace import Candidate
from mucode.sandbox import IOTest


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., min_length=1, description="The task the candidates answer.")
    entry_point: str | None = Field(
        None, description="Function the tests call; found from the prompt if omitted."
    )
    candidates: list[str] = Field(..., min_length=1, max_length=64, description="Programs to score.")
    tests: list[str] = Field(default_factory=list, description="Public assert tests to run each program on.")
    io_tests: list[IOTest] = Field(default_factory=list, description="Public stdin/stdout tests.")


class ScoreResponse(BaseModel):
    object: str = "mucode.score"
    verifier: str = Field(..., description="The verifier model, or `none`.")
    candidates: list[Candidate] = Field(
        ..., description="In request order: test results (`execution`) and `verifier_score`."
    )
    ranking: list[int] = Field(
        ..., description="Candidate indices, best first: most public tests passed, then verifier score."
    )
