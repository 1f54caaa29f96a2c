"""FastAPI dependencies: settings and the sandbox pool, taken from the app's state.

Routes ask for what they need through these functions; tests swap them with
``app.dependency_overrides`` instead of patching modules.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mucode.sandbox import SandboxPool, SandboxUnavailable

from .settings import ServerSettings


def get_app_settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


def get_sandbox(request: Request) -> SandboxPool:
    pool: SandboxPool | None = request.app.state.sandbox
    if pool is None:
        raise SandboxUnavailable(request.app.state.sandbox_error or "the sandbox is not running")
    return pool


SettingsDep = Annotated[ServerSettings, Depends(get_app_settings)]
SandboxDep = Annotated[SandboxPool, Depends(get_sandbox)]
