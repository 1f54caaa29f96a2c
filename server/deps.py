"""FastAPI dependencies: settings, the runtime, and each route's service wired from them.

This is where services get their collaborators (the engine, the sandbox, the gate ...): services
never reach for the runtime themselves. Routes ask for what they need through these functions;
tests swap them with ``app.dependency_overrides`` instead of patching modules.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request

from mucode.engine.generators.base import Generator

from .errors import APIError
from .ratelimit import identity_of
from .runtime import Runtime
from .services.chat import ChatService
from .services.completions import CompletionService
from .services.execute import ExecuteService
from .services.jobs import JobService
from .services.responses import ResponseService
from .services.score import ScoreService
from .services.solve import SolveService
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


SettingsDep = Annotated[ServerSettings, Depends(get_app_settings)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def require_model(runtime: RuntimeDep) -> Generator:
    """503 while the model loads (or failed to): for routes that need it before they start."""
    return runtime.require_model()


def get_loaded_generator(runtime: RuntimeDep) -> Generator | None:
    return runtime.generator


def get_solver(runtime: RuntimeDep) -> SolveService:
    return runtime.solver


def get_chat_service(runtime: RuntimeDep, settings: SettingsDep) -> ChatService:
    return ChatService(runtime.solver, runtime.require_model(), settings)


def get_response_service(runtime: RuntimeDep, settings: SettingsDep) -> ResponseService:
    return ResponseService(get_chat_service(runtime, settings), runtime.responses)


def get_completion_service(runtime: RuntimeDep, settings: SettingsDep) -> CompletionService:
    return CompletionService(runtime.require_model(), runtime.gate, settings)


def get_score_service(runtime: RuntimeDep, settings: SettingsDep) -> ScoreService:
    return ScoreService(runtime.engine, runtime.gate, runtime.metrics, settings)


def get_execute_service(runtime: RuntimeDep, settings: SettingsDep) -> ExecuteService:
    return ExecuteService(runtime.sandbox, settings)


def get_jobs(runtime: RuntimeDep) -> JobService:
    return runtime.jobs


LoadedGeneratorDep = Annotated[Generator | None, Depends(get_loaded_generator)]
SolverDep = Annotated[SolveService, Depends(get_solver)]
ChatDep = Annotated[ChatService, Depends(get_chat_service)]
CompletionDep = Annotated[CompletionService, Depends(get_completion_service)]
ResponsesDep = Annotated[ResponseService, Depends(get_response_service)]
ScoreDep = Annotated[ScoreService, Depends(get_score_service)]
ExecuteDep = Annotated[ExecuteService, Depends(get_execute_service)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
