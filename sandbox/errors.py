"""Exceptions of the sandbox. Each one means the sandbox could not judge the code, never that the
code failed (that is a ``TestStatus``).

    SandboxError
    ├── SandboxUnavailable   bubblewrap missing or unable to start; nothing will run
    ├── SandboxBusy          the bounded queue is full; retry later (HTTP 503)
    ├── LimitExceeded        a request asked for more than the configured maximum (HTTP 422)
    └── WorkerCrashed        the harness process died for a reason other than the candidate
"""


class SandboxError(Exception):
    """Base class of every sandbox failure."""


class SandboxUnavailable(SandboxError):
    pass


class SandboxBusy(SandboxError):
    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LimitExceeded(SandboxError):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class WorkerCrashed(SandboxError):
    pass
