"""FastAPI dependencies: settings and the runtime (sandbox, models), taken from the app's state.

Routes ask for what they need through these functions; tests swap them with
``app.dependency_overrides`` instead of patching modules.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mucode.sandbox import SandboxPool

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
