from __future__ import annotations

from fastapi import APIRouter

from ..deps import SandboxDep, SettingsDep
from ..errors import APIError, PayloadTooLarge
from ..protocol.execute import ExecutionRequest, ExecutionResult

router = APIRouter(prefix="/v1", tags=["execution"])


@router.post("/execute", response_model=ExecutionResult, summary="Run code against tests in the sandbox")
async def execute(request: ExecutionRequest, sandbox: SandboxDep, settings: SettingsDep) -> ExecutionResult:
    """Runs `code` against the assert `tests` and stdin/stdout `io_tests` in the sandbox and returns
    a result per test plus `feedback`, the text a model can act on."""
    if len(request.code.encode("utf-8")) > settings.max_code_bytes:
        raise PayloadTooLarge(f"code is larger than {settings.max_code_bytes} bytes", param="code")
    count = len(request.tests) + len(request.io_tests)
    if count > settings.max_tests:
        raise APIError(
            422,
            f"at most {settings.max_tests} tests per request (got {count})",
            param="tests",
            code="too_many_tests",
        )
    return await sandbox.execute(request)
