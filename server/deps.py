"""FastAPI dependencies: settings and the runtime (sandbox, models), taken from the app's state.

Routes ask for what they need through these functions; tests swap them with
``app.dependency_overrides`` instead of patching modules.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mucode.sandbox import SandboxPool

from .errors import APIError, PayloadTooLarge
from .runtime import Runtime
from .settings import ServerSettings


def get_app_settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_sandbox(runtime: Annotated[Runtime, Depends(get_runtime)]) -> SandboxPool:
    return runtime.sandbox


SettingsDep = Annotated[ServerSettings, Depends(get_app_settings)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SandboxDep = Annotated[SandboxPool, Depends(get_sandbox)]


def enforce_limits(settings: ServerSettings, *, tests: int, code: str | None = None) -> None:
    """The per-request size limits every endpoint shares: 413 for code bytes, 422 for test count."""
    if code is not None and len(code.encode("utf-8")) > settings.max_code_bytes:
        raise PayloadTooLarge(f"code is larger than {settings.max_code_bytes} bytes", param="code")
    if tests > settings.max_tests:
        raise APIError(
            422,
            f"at most {settings.max_tests} tests per request (got {tests})",
            param="tests",
            code="too_many_tests",
        )
