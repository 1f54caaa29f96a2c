from __future__ import annotations

from fastapi import APIRouter, Depends

from ..deps import SandboxDep, SettingsDep, enforce_limits, require_api_key
from ..protocol.execute import ExecutionRequest, ExecutionResult

router = APIRouter(prefix="/v1", tags=["execution"], dependencies=[Depends(require_api_key)])


@router.post("/execute", response_model=ExecutionResult, summary="Run code against tests in the sandbox")
async def execute(request: ExecutionRequest, sandbox: SandboxDep, settings: SettingsDep) -> ExecutionResult:
    """Runs `code` against the assert `tests` and stdin/stdout `io_tests` in the sandbox and returns
    a result per test plus `feedback`, the text a model can act on."""
    enforce_limits(settings, tests=len(request.tests) + len(request.io_tests), code=request.code)
    return await sandbox.execute(request)
