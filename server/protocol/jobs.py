"""``/v1/jobs``: a solve that runs in the background; poll it for progress, cancel it, read its
result. The request is exactly ``POST /v1/solve``'s; the result is its ``SolveResult``."""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, Field

from mucode.engine.trace import SolveResult, TurnRecord

from .solve import SolveRequest

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class JobProgress(BaseModel):
    turn: int = Field(0, description="The turn running (or last finished); 0 before the first.")
    turns: int = Field(..., description="Most turns this search may take.")
    phase: Literal["waiting", "sampling", "testing", "turn_finished", "done"] = "waiting"


class JobError(BaseModel):
    message: str
    type: str
    code: str | None = None


class Job(BaseModel):
    id: str = Field(default_factory=lambda: f"job-{uuid.uuid4().hex}")
    object: Literal["job"] = "job"
    status: JobStatus = "queued"
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    progress: JobProgress
    turns: list[TurnRecord] = Field(
        default_factory=list, description="The turns finished so far, as the search runs."
    )
    result: SolveResult | None = Field(None, description="The full trace once `status` is `succeeded`.")
    error: JobError | None = None
    request: SolveRequest

    @property
    def finished(self) -> bool:
        return self.status in FINISHED
