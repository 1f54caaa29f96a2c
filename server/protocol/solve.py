"""``POST /v1/solve``: a problem, its public tests and search options in; the full trace out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mucode.engine.options import SolveOptions
from mucode.engine.trace import SolveResult
from mucode.problems import Problem, guess_entry_point
from mucode.sandbox import IOTest


class SolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., min_length=1, description="The task, usually with the function signature.")
    entry_point: str | None = Field(
        None, description="Function the tests call; found from the prompt if omitted."
    )
    tests: list[str] = Field(default_factory=list, description="Public assert tests, one statement each.")
    io_tests: list[IOTest] = Field(default_factory=list, description="Public stdin/stdout tests.")
    options: SolveOptions = Field(default_factory=SolveOptions)
    id: str = Field("request", description="Echoed in the trace as `problem_id`.")
    stream: bool = Field(False, description="Answer with Server-Sent Events of the search's progress.")

    def to_problem(self) -> Problem:
        return Problem(
            id=self.id,
            prompt=self.prompt,
            entry_point=self.entry_point or guess_entry_point(self.prompt, self.tests),
            public_tests=self.tests,
            public_io_tests=self.io_tests,
            source="api",
        )


class TurnStarted(BaseModel):
    """Data of a streamed ``turn_started`` event (``turn_finished`` carries a TurnRecord)."""

    turn: int
    turns: int


__all__ = ["SolveRequest", "SolveResult", "TurnStarted"]
