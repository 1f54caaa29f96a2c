"""``POST /v1/execute`` and ``/v1/execute/batch``: the sandbox's own request and result models are
the wire format; a batch is a list of them."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mucode.sandbox import ExecutionRequest, ExecutionResult


class ExecutionBatchRequest(BaseModel):
    requests: list[ExecutionRequest] = Field(
        min_length=1, description="Programs with their tests; each is what `/v1/execute` takes."
    )
    stream: bool = Field(
        False, description="Send each result as it lands (Server-Sent Events) instead of all at the end."
    )


class ExecutionBatchResponse(BaseModel):
    results: list[ExecutionResult] = Field(description="One per request, in the order they were sent.")


class ExecutionBatchEvent(BaseModel):
    """One streamed result: ``index`` is its request's position in ``requests``."""

    index: int
    result: ExecutionResult


__all__ = [
    "ExecutionBatchEvent",
    "ExecutionBatchRequest",
    "ExecutionBatchResponse",
    "ExecutionRequest",
    "ExecutionResult",
]
