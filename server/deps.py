"""FastAPI dependencies: settings and the runtime (sandbox, models), taken from the app's state.

Routes ask for what they need through these functions; tests swap them with
``app.dependency_overrides`` instead of patching modules.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request

from mucode.sandbox import SandboxPool

from .errors import APIError, PayloadTooLarge
from .ratelimit import identity_of
from .runtime import Runtime
from .settings import ServerSettings


def get_app_settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


def require_api_key(request: Request) -> None:
    """Bearer API keys on every /v1 route when the server has any (MUCODE_API_KEYS)."""
    keys: list[str] = request.app.state.settings.api_keys
    if not keys:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not any(secrets.compare_digest(token.strip(), key) for key in keys):
        raise APIError(
            401,
            "missing or invalid API key: send `Authorization: Bearer <key>`",
            type="authentication_error",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def rate_limit(request: Request) -> None:
    """Counts the request against its key's (or address's) per-minute allowance: 429 when spent."""
    runtime: Runtime = request.app.state.runtime
    client = request.client.host if request.client else None
    await runtime.limiter.check(identity_of(request.headers.get("authorization"), client))


# Every /v1 router: the key first (a request without one is not counted), then the rate limit.
V1_GUARDS = [Depends(require_api_key), Depends(rate_limit)]


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
