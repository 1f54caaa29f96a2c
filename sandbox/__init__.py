"""mucode.sandbox: run untrusted Python against tests, isolated with bubblewrap.

A leaf package: it imports nothing else from mucode, so anyone can use it alone::

    async with SandboxPool() as pool:
        result = await pool.execute(ExecutionRequest(code="def f(x): return x+1", tests=["assert f(1) == 2"]))
        print(result.passed, result.feedback)
"""

from .environment import SandboxEnvironment
from .errors import LimitExceeded, SandboxBusy, SandboxError, SandboxUnavailable, WorkerCrashed
from .limits import SandboxSettings
from .pool import PoolStats, SandboxPool, execute_sync
from .types import ExecutionRequest, ExecutionResult, IOTest, TestResult, TestStatus

__all__ = [
    "ExecutionRequest",
    "ExecutionResult",
    "IOTest",
    "LimitExceeded",
    "PoolStats",
    "SandboxBusy",
    "SandboxEnvironment",
    "SandboxError",
    "SandboxPool",
    "SandboxSettings",
    "SandboxUnavailable",
    "TestResult",
    "TestStatus",
    "WorkerCrashed",
    "execute_sync",
]
