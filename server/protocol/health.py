from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from mucode.sandbox import SandboxEnvironment


class SandboxHealth(BaseModel):
    ready: bool
    isolation: str | None = Field(None, description="`bubblewrap` or `unsafe`.")
    workers: int = 0
    busy: int = 0
    waiting: int = 0
    executions: int = 0
    worker_restarts: int = 0
    stuck: int = Field(0, description="Workers busy past their deadline; all of them stuck is a 503.")
    environment: SandboxEnvironment | None = Field(
        None,
        description="The Python environment code runs in; absent: the bare interpreter (standard library).",
    )
    error: str | None = Field(None, description="Why the sandbox cannot run code, when it cannot.")


class GeneratorHealth(BaseModel):
    state: Literal["loading", "ready", "error"]
    backend: str = Field(..., description="`vllm`, `llama-cpp`, `transformers`, `openai` or `scripted`.")
    model: str | None = None
    adapter: str | None = Field(None, description="LoRA adapter applied to the model (a trained generator).")
    verifier: str = Field("none", description="Verifier model, or `none` (selection by public tests).")
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "loading", "degraded"] = Field(
        ..., description="`ok`; `loading` while the model loads; `degraded` when a component failed."
    )
    version: str
    sandbox: SandboxHealth
    generator: GeneratorHealth
    queue: QueueHealth
    redis: RedisHealth | None = Field(None, description="Absent when the server runs without Redis.")


class RedisHealth(BaseModel):
    url: str = Field(..., description="The Redis in use, password removed.")
    reachable: bool = Field(
        ..., description="False while Redis is down: served without cache and shared limits."
    )


class QueueHealth(BaseModel):
    running: int = Field(..., description="Searches running now.")
    waiting: int = Field(..., description="Searches waiting for a slot.")
    max_running: int
    max_waiting: int
