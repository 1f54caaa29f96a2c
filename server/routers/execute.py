from __future__ import annotations

from fastapi import APIRouter

from ..deps import V1_GUARDS, ExecuteDep
from ..protocol.execute import ExecutionRequest, ExecutionResult

router = APIRouter(prefix="/v1", tags=["execution"], dependencies=V1_GUARDS)


@router.post("/execute", response_model=ExecutionResult, summary="Run code against tests in the sandbox")
async def execute(request: ExecutionRequest, executor: ExecuteDep) -> ExecutionResult:
    """Runs `code` against the assert `tests` and stdin/stdout `io_tests` in the sandbox and returns
    a result per test plus `feedback`, the text a model can act on."""
    return await executor.execute(request)
