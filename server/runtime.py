"""What the server holds for its lifetime: the sandbox pool, the generator and the verifier.

The sandbox starts before the server accepts requests; the model loads in the background (vLLM
takes a minute or two), so ``/health`` can say what is loading, what runs, and what failed. A
component that cannot start is reported, never replaced by something unsafe.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from mucode import __version__
from mucode.sandbox import SandboxPool, SandboxUnavailable

from .engine.generators.base import Generator
from .engine.loading import load_configured_verifier, load_generator, resolve_backend
from .engine.search import SearchEngine
from .engine.verifier import Verifier
from .errors import APIError
from .protocol.health import GeneratorHealth, Health, SandboxHealth
from .settings import ServerSettings

log = logging.getLogger("mucode.server")


class Runtime:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.pool: SandboxPool | None = None
        self.sandbox_error: str | None = None
        self.generator: Generator | None = None
        self.verifier: Verifier | None = None
        self.model_state: Literal["loading", "ready", "error"] = "loading"
        self.model_error: str | None = None
        self._loading: asyncio.Task[None] | None = None

    async def start(self) -> None:
        pool = SandboxPool(self.settings.sandbox)
        try:
            await pool.start()
        except SandboxUnavailable as exc:
            log.error("sandbox unavailable, code execution disabled: %s", exc)
            self.sandbox_error = str(exc)
        else:
            self.pool = pool
        self._loading = asyncio.create_task(self._load_models())

    async def _load_models(self) -> None:
        engine = self.settings.engine
        try:
            self.generator = await asyncio.to_thread(load_generator, engine)
            self.verifier = await asyncio.to_thread(load_configured_verifier, engine)
        except Exception as exc:  # any loading failure is reported on /health, not raised into the loop
            log.exception("the model failed to load")
            self.model_state, self.model_error = "error", f"{type(exc).__name__}: {exc}"
        else:
            self.model_state = "ready"

    async def close(self) -> None:
        if self._loading is not None:
            self._loading.cancel()
        if self.generator is not None:
            await self.generator.close()
        if self.pool is not None:
            await self.pool.close()

    @property
    def sandbox(self) -> SandboxPool:
        if self.pool is None:
            raise SandboxUnavailable(self.sandbox_error or "the sandbox is not running")
        return self.pool

    @property
    def engine(self) -> SearchEngine:
        if self.model_state != "ready" or self.generator is None:
            message = "the model is still loading" if self.model_state == "loading" else self.model_error
            raise APIError(
                503,
                message or "the model is not available",
                type="server_error",
                code="model_unavailable",
                headers={"Retry-After": "10"},
            )
        return SearchEngine(self.generator, self.sandbox, self.verifier)

    def health(self) -> Health:
        if self.pool is None:
            sandbox = SandboxHealth(ready=False, error=self.sandbox_error)
        else:
            sandbox = SandboxHealth(ready=True, **self.pool.stats().__dict__)
        generator = GeneratorHealth(
            state=self.model_state,
            backend=self.generator.backend if self.generator else resolve_backend(self.settings.engine),
            model=self.generator.model if self.generator else self.settings.engine.model,
            verifier=self.verifier.name if self.verifier else "none",
            error=self.model_error,
        )
        if not sandbox.ready or generator.state == "error":
            status = "degraded"
        else:
            status = "ok" if generator.state == "ready" else "loading"
        return Health(status=status, version=__version__, sandbox=sandbox, generator=generator)
