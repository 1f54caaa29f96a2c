from __future__ import annotations

from pydantic import BaseModel, Field


class SandboxHealth(BaseModel):
    ready: bool
    isolation: str | None = Field(None, description="`bubblewrap` or `unsafe`.")
    workers: int = 0
    busy: int = 0
    waiting: int = 0
    executions: int = 0
    worker_restarts: int = 0
    error: str | None = Field(None, description="Why the sandbox cannot run code, when it cannot.")


class Health(BaseModel):
    status: str = Field(..., description="`ok`, or `degraded` when a component cannot serve.")
    version: str
    sandbox: SandboxHealth
