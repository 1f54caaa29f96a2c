"""``create_app(settings)``: builds the FastAPI app, its lifespan and its routers; nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mucode import __version__

from .errors import install_error_handlers
from .middleware import BodyLimit
from .routers import chat, execute, health, solve
from .runtime import Runtime
from .settings import ServerSettings, get_settings


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings)
        await runtime.start()  # a sandbox that cannot start is reported on /health, never bypassed
        app.state.runtime = runtime
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
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    app.include_router(execute.router)
    app.include_router(solve.router)
    app.include_router(chat.router)
    return app
