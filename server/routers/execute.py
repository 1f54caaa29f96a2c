from __future__ import annotations

from fastapi import Request
from fastapi.responses import StreamingResponse

from .. import sse
from ..deps import ExecuteDep
from ..disconnect import unless_disconnected
from ..protocol.execute import (
    ExecutionBatchRequest,
    ExecutionBatchResponse,
    ExecutionRequest,
    ExecutionResult,
)
from ..routing import streamed, v1_router

router = v1_router("execution")


@router.post("/execute", response_model=ExecutionResult, summary="Run code against tests in the sandbox")
async def execute(request: ExecutionRequest, http: Request, executor: ExecuteDep) -> ExecutionResult:
    """Runs `code` against the assert `tests` and stdin/stdout `io_tests` in the sandbox and returns
    a result per test plus `feedback`, the text a model can act on. A client that goes away
    before the answer cancels the run."""
    return await unless_disconnected(http, executor.execute(request))


@router.post(
    "/execute/batch",
    response_model=ExecutionBatchResponse,
    summary="Run many programs against their tests in the sandbox",
    responses=streamed(
        "JSON; with `stream: true`, Server-Sent Events: `data:` {index, result} as each program "
        "finishes, then `data: [DONE]`."
    ),
)
async def execute_batch(
    batch: ExecutionBatchRequest, http: Request, executor: ExecuteDep
) -> ExecutionBatchResponse | StreamingResponse:
    """Runs every request of `requests` as `/v1/execute` would, as many at once as the sandbox
    has workers, and returns the results in order: for RL rollouts and evaluations that would
    otherwise pay one HTTP round trip per program. The whole batch is checked against the limits
    (`MUCODE_MAX_BATCH_PROGRAMS`, and per program the code size and test count, named by
    `requests.N.`) before anything runs. A client that goes away cancels what has not finished."""
    executor.check_batch(batch)
    if batch.stream:
        return sse.response(executor.stream_batch(batch))
    return ExecutionBatchResponse(results=await unless_disconnected(http, executor.execute_batch(batch)))
