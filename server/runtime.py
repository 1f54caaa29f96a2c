"""What the server holds for its lifetime: the sandbox pool, the generator and the verifier,
and around them Redis, the solve cache, rate limits, the admission gate, jobs and metrics.

The sandbox starts before the server accepts requests; the model loads in the background (vLLM
takes a minute or two), so ``/health`` can say what is loading, what runs, and what failed. A
component that cannot start is reported, never replaced by something unsafe.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from mucode import __version__
from mucode.engine.generators.base import Generator
from mucode.engine.loading import configured_prompt, load_configured_verifier, load_generator, resolve_backend
from mucode.engine.search import SearchEngine
from mucode.engine.verifier import Verifier
from mucode.sandbox import SandboxPool, SandboxUnavailable

from .admission import AdmissionGate
from .cache import SolveCache
from .errors import APIError
from .jobs import JobStore, JobWorker, LocalJobs, RedisJobs
from .metrics import Metrics
from .protocol.health import GeneratorHealth, Health, QueueHealth, RedisHealth, SandboxHealth
from .ratelimit import RateLimiter
from .redis_link import RedisLink
from .services.jobs import JobService
from .services.responses import ResponseStore
from .services.solve import SolveService
from .settings import ServerSettings

log = logging.getLogger("mucode.server")


class Runtime:
    def __init__(self, settings: ServerSettings, *, serve_jobs: bool = True) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.prompt = configured_prompt(settings.engine)
        self.redis = (
            RedisLink(settings.redis_url, settings.redis_prefix, self.metrics) if settings.redis_url else None
        )
        self.cache = SolveCache(settings.cache_ttl_s, self.metrics, self.redis)
        self.limiter = RateLimiter(settings.rate_limit_per_minute, self.metrics, self.redis)
        self.gate = AdmissionGate(settings.max_concurrent_solves, settings.max_queued_solves, self.metrics)
        self.responses = ResponseStore(settings.responses_ttl_s, settings.max_stored_responses)
        remote = RedisJobs(self.redis, settings.job_ttl_s) if self.redis else None
        local = LocalJobs(
            lambda: self.solver,
            settings.job_workers,
            settings.job_ttl_s,
            self.metrics,
            settings.max_job_records,
        )
        stores: list[JobStore] = [remote, local] if remote else [local]
        self.jobs = JobService(stores, settings)
        self.worker = (
            JobWorker(remote, lambda: self.solver, settings.job_workers, self.metrics)
            if remote and serve_jobs and settings.job_workers > 0
            else None
        )
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
        if self.redis is not None and not await self.redis.ping():
            log.warning("redis at %s is not reachable; cache, limits and jobs run in-process", self.redis.url)

    async def wait_ready(self) -> None:
        """Until the models have loaded (or failed to)."""
        if self._loading is not None:
            await asyncio.shield(self._loading)

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
            if self.worker is not None:
                self.worker.start()  # pick up jobs only once there is a model to run them

    async def close(self) -> None:
        if self._loading is not None:
            self._loading.cancel()
        if self.worker is not None:
            await self.worker.close()
        await self.jobs.close()
        if self.redis is not None:
            await self.redis.close()
        if self.generator is not None:
            await self.generator.close()
        if self.pool is not None:
            await self.pool.close()

    @property
    def sandbox(self) -> SandboxPool:
        if self.pool is None:
            raise SandboxUnavailable(self.sandbox_error or "the sandbox is not running")
        return self.pool

    def require_model(self) -> Generator:
        """The loaded generator, or 503 (loading / failed) for the request that needs it."""
        if self.model_state != "ready" or self.generator is None:
            message = "the model is still loading" if self.model_state == "loading" else self.model_error
            raise APIError(
                503,
                message or "the model is not available",
                type="server_error",
                code="model_unavailable",
                headers={"Retry-After": "10"},
            )
        return self.generator

    @property
    def engine(self) -> SearchEngine:
        return SearchEngine(self.require_model(), self.sandbox, self.verifier, self.prompt)

    @property
    def solver(self) -> SolveService:
        return SolveService(self.engine, self.cache, self.gate, self.metrics, self.settings)

    def health(self) -> Health:
        if self.pool is None:
            sandbox = SandboxHealth(ready=False, error=self.sandbox_error)
        else:
            stats = self.pool.stats()
            stuck = stats.workers > 0 and stats.stuck == stats.workers
            sandbox = SandboxHealth(
                **stats.__dict__,
                ready=not stuck,
                error=f"all {stats.workers} sandbox workers are stuck past their deadline" if stuck else None,
            )
        generator = GeneratorHealth(
            state=self.model_state,
            backend=self.generator.backend if self.generator else resolve_backend(self.settings.engine),
            model=self.generator.model if self.generator else self.settings.engine.model,
            adapter=self.generator.adapter if self.generator else None,
            verifier=self.verifier.name if self.verifier else "none",
            error=self.model_error,
        )
        redis = None
        if self.redis is not None:
            redis = RedisHealth(url=redact(self.redis.url), reachable=self.redis.healthy)
        gate = self.gate
        queue = QueueHealth(
            running=gate.running,
            waiting=gate.waiting,
            max_running=self.settings.max_concurrent_solves,
            max_waiting=gate.max_waiting,
        )
        if not sandbox.ready or generator.state == "error":
            status = "degraded"
        else:
            status = "ok" if generator.state == "ready" else "loading"
        return Health(
            status=status, version=__version__, sandbox=sandbox, generator=generator, queue=queue, redis=redis
        )


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
