"""``/v1/execute``: the sandbox as a service, within the server's size limits."""

from __future__ import annotations

from mucode.sandbox import ExecutionRequest, ExecutionResult, SandboxPool

from ..limits import enforce_limits
from ..settings import ServerSettings


class ExecuteService:
    def __init__(self, sandbox: SandboxPool, settings: ServerSettings) -> None:
        self.sandbox = sandbox
        self.settings = settings

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        enforce_limits(self.settings, tests=len(request.tests) + len(request.io_tests), code=request.code)
        return await self.sandbox.execute(request)
