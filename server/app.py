"""``create_app(settings)``: builds the FastAPI app, its lifespan and its routers; nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mucode import __version__

from .errors import install_error_handlers
from .middleware import BodyLimit, CatchAll, RequestLog
from .routers import chat, completions, execute, health, jobs, metrics, playground, responses, score, solve
from .runtime import Runtime
from .settings import ServerSettings, get_settings


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()  # a sandbox that cannot start is reported on /health, never bypassed
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(
        title="mucode",
        version=__version__,
        summary="Multi-turn fix-and-rerank code generation (µCode) with a sandbox.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.runtime = runtime
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(CatchAll)  # outside BodyLimit, whose own signal is an exception
    app.add_middleware(RequestLog, metrics=runtime.metrics)  # outermost: sees every status, 413s too
    for module in (health, metrics, execute, solve, jobs, score, chat, responses, completions, playground):
        app.include_router(module.router)
    app.mount("/static", playground.static_files, name="static")
    return app
