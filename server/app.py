"""``create_app(settings)``: builds the FastAPI app, its lifespan and its routers; nothing else."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mucode import __version__
from mucode.sandbox import SandboxPool, SandboxUnavailable

from .errors import install_error_handlers
from .middleware import BodyLimit
from .routers import execute, health
from .settings import ServerSettings, get_settings

log = logging.getLogger("mucode.server")


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = SandboxPool(settings.sandbox)
        try:
            await pool.start()
        except SandboxUnavailable as exc:
            # Serve anyway so /health can say why; never fall back to running code unsandboxed.
            log.error("sandbox unavailable, code execution disabled: %s", exc)
            app.state.sandbox_error = str(exc)
        else:
            app.state.sandbox = pool
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(
        title="mucode",
        version=__version__,
        summary="Multi-turn fix-and-rerank code generation (µCode) with a sandbox.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.sandbox = None
    app.state.sandbox_error = None
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    app.include_router(execute.router)
    return app
