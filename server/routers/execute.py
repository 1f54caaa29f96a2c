from __future__ import annotations

from fastapi import Request

from ..deps import ExecuteDep
from ..disconnect import unless_disconnected
from ..protocol.execute import ExecutionRequest, ExecutionResult
from ..routing import v1_router

router = v1_router("execution")


@router.post("/execute", response_model=ExecutionResult, summary="Run code against tests in the sandbox")
async def execute(request: ExecutionRequest, http: Request, executor: ExecuteDep) -> ExecutionResult:
    """Runs `code` against the assert `tests` and stdin/stdout `io_tests` in the sandbox and returns
    a result per test plus `feedback`, the text a model can act on. A client that goes away
    before the answer cancels the run."""
    return await unless_disconnected(http, executor.execute(request))
