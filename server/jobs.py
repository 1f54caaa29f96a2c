"""Background solves (``/v1/jobs``): submit, watch progress, cancel, read the result.

With Redis the queue is arq's: jobs wait in Redis and any process running ``mucode worker`` (or the
server's own embedded worker) picks them up, so workers can live on other machines. arq because it
is asyncio-native like the engine (a job is a coroutine on the worker's loop, not a thread or a
forked process holding a second copy of the model), keeps its queue in the Redis we already run,
and can abort a job that is queued or running. Each job's record (status, progress, the turns
finished so far, the result) is a JSON value in Redis with a TTL, written by whoever runs it.

Without Redis, or when Redis fails at submit time, jobs run in-process with the same records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import abort_jobs_ss
from arq.utils import timestamp_ms
from arq.worker import Worker, func

from mucode.engine.search import SearchEvent

from .errors import APIError
from .metrics import Metrics
from .protocol.jobs import Job, JobError, JobProgress
from .redis_link import RedisLink
from .services.solve import SolveService

log = logging.getLogger("mucode.server")

JOB_FUNCTION = "mucode_solve"
JOB_TIMEOUT_S = 6 * 3600

SaveJob = Callable[[Job], Awaitable[None]]
SolverFactory = Callable[[], SolveService]


class JobStore(Protocol):
    """Where jobs wait, run and are looked up: this process (``LocalJobs``) or Redis, for workers
    anywhere (``RedisJobs``)."""

    async def submit(self, job: Job) -> bool:
        """Takes the job and starts or queues it; False when this store cannot take it now."""
        ...

    async def get(self, job_id: str) -> Job | None: ...

    async def pending(self) -> int:
        """Jobs queued or running in this store."""
        ...

    async def cancel(self, job: Job) -> Job:
        """Stops a job this store holds; the record says `cancelled` (a finished job is unchanged)."""
        ...

    async def close(self) -> None: ...


async def run_job(job: Job, solver: SolveService, save: SaveJob, metrics: Metrics) -> Job:
    """Runs one job's search, saving its record at every step. Saves are serialised so the stored
    record only ever moves forward."""
    lock = asyncio.Lock()
    writes: set[asyncio.Task[None]] = set()

    async def ordered_save(snapshot: Job) -> None:
        async with lock:
            await save(snapshot)

    def on_event(event: SearchEvent) -> None:
        if event.record is not None:
            job.turns.append(event.record)
        phases = {"turn_started": "sampling", "generating": "sampling", "turn_finished": "turn_finished"}
        phase = phases.get(event.kind, "testing")
        job.progress = JobProgress(turn=event.turn, turns=event.turns, phase=phase)
        task = asyncio.create_task(ordered_save(job.model_copy(deep=True)))
        writes.add(task)
        task.add_done_callback(writes.discard)

    job.status, job.started_at = "running", time.time()
    await ordered_save(job.model_copy(deep=True))
    request = job.request
    try:
        result = await solver.solve(request.to_problem(), request.options, on_event=on_event, admit=False)
    except asyncio.CancelledError:
        job.status = "cancelled"
        raise
    except APIError as exc:
        job.status, job.error = "failed", JobError(message=exc.message, type=exc.type, code=exc.code)
    except Exception as exc:
        log.exception("job %s failed", job.id)
        job.status = "failed"
        job.error = JobError(message=f"{type(exc).__name__}: {exc}", type="server_error")
    else:
        job.status, job.result, job.turns = "succeeded", result, result.turns
    finally:
        job.finished_at = time.time()
        job.progress = job.progress.model_copy(update={"phase": "done"})
        metrics.jobs.labels(job.status).inc()
        await asyncio.gather(*writes, return_exceptions=True)
        await ordered_save(job)
    return job


class LocalJobs:
    """Jobs as tasks of this process; finished records kept for ``ttl_s`` (at most ``keep``)."""

    def __init__(self, solver: SolverFactory, workers: int, ttl_s: int, metrics: Metrics, keep: int):
        self.solver = solver
        self.ttl_s = ttl_s
        self.metrics = metrics
        self.keep = keep
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(max(1, workers))

    async def submit(self, job: Job) -> bool:
        self._prune()
        self.jobs[job.id] = job
        self.tasks[job.id] = asyncio.create_task(self._run(job))
        return True

    async def _run(self, job: Job) -> None:
        try:
            async with self._slots:
                if job.status == "queued":
                    await run_job(job, self.solver(), self._save, self.metrics)
        except asyncio.CancelledError:
            pass  # cancel() already marked it
        finally:
            self.tasks.pop(job.id, None)

    async def _save(self, job: Job) -> None:
        self.jobs[job.id] = job

    async def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    async def pending(self) -> int:
        return len(self.tasks)

    async def cancel(self, job: Job) -> Job:
        task = self.tasks.get(job.id)
        if task is not None:
            task.cancel()
        job = self.jobs[job.id]
        if not job.finished:
            job.status, job.finished_at = "cancelled", time.time()
            self.metrics.jobs.labels("cancelled").inc()
        return job

    def _prune(self) -> None:
        cutoff = time.time() - self.ttl_s
        for job_id in [j.id for j in self.jobs.values() if j.finished and (j.finished_at or 0) < cutoff]:
            del self.jobs[job_id]
        while len(self.jobs) >= self.keep:
            oldest = next(iter(self.jobs))
            if oldest in self.tasks:
                break
            del self.jobs[oldest]

    async def close(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


class RedisJobs:
    """Job records in Redis; the queue is arq's, on the same Redis."""

    def __init__(self, redis: RedisLink, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.queue = redis.key("jobs")
        self._pool: ArqRedis | None = None

    async def _arq(self) -> ArqRedis:
        if self._pool is None:
            self._pool = await create_pool(arq_settings(self.redis.url), default_queue_name=self.queue)
        return self._pool

    async def save(self, job: Job) -> None:
        raw = job.model_dump_json()
        await self.redis.call(
            "job_save", lambda r: r.set(self.redis.key("job", job.id), raw, ex=self.ttl_s), None
        )

    async def submit(self, job: Job) -> bool:
        """False when Redis is unreachable (the caller then runs the job in-process)."""

        async def enqueue(r: Any) -> bool:
            await r.set(self.redis.key("job", job.id), job.model_dump_json(), ex=self.ttl_s)
            pool = await self._arq()
            queued = await pool.enqueue_job(JOB_FUNCTION, job.id, _job_id=job.id, _queue_name=self.queue)
            return queued is not None

        return await self.redis.call("job_submit", enqueue, False)

    async def get(self, job_id: str) -> Job | None:
        raw = await self.redis.call("job_get", lambda r: r.get(self.redis.key("job", job_id)), None)
        return Job.model_validate_json(raw) if raw else None

    async def pending(self) -> int:
        """arq's queue holds a job until it finishes: queued and running ones, every replica's."""
        count: int = await self.redis.call("job_pending", lambda r: r.zcard(self.queue), 0)
        return count

    async def cancel(self, job: Job) -> Job:
        """Marks the record at once; arq drops the job if queued or cancels its task if running."""
        if job.finished:
            return job
        job.status, job.finished_at = "cancelled", time.time()
        await self.save(job)

        async def abort(r: Any) -> None:
            await r.zadd(abort_jobs_ss, {job.id: timestamp_ms()})

        await self.redis.call("job_cancel", abort, None)
        return job

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()


def arq_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout, settings.conn_retries = 1, 0
    return settings


class JobWorker:
    """An arq worker for this process's engine, restarted when Redis goes away and comes back.
    The server runs one when it has Redis and ``job_workers > 0``; ``mucode worker`` runs one alone."""

    def __init__(self, jobs: RedisJobs, solver: SolverFactory, max_jobs: int, metrics: Metrics) -> None:
        self.jobs = jobs
        self.solver = solver
        self.max_jobs = max_jobs
        self.metrics = metrics
        self._task: asyncio.Task[None] | None = None

    async def _solve(self, ctx: dict[str, Any], job_id: str) -> str:
        job = await self.jobs.get(job_id)
        if job is None or job.finished:
            return "skipped"  # expired, or cancelled before it started
        await run_job(job, self.solver(), self.jobs.save, self.metrics)
        return job.status

    def _worker(self) -> Worker:
        return Worker(
            functions=[func(self._solve, name=JOB_FUNCTION, timeout=JOB_TIMEOUT_S, max_tries=1)],
            redis_settings=arq_settings(self.jobs.redis.url),
            queue_name=self.jobs.queue,
            max_jobs=self.max_jobs,
            allow_abort_jobs=True,
            handle_signals=False,
            poll_delay=0.1,
            keep_result=0,
        )

    async def run(self) -> None:
        lost = False
        while True:
            worker = self._worker()
            try:
                await worker.async_run()
            except asyncio.CancelledError:
                for task in worker.tasks.values():
                    task.cancel()
                raise
            except Exception as exc:
                if not lost:  # once per outage, not every retry
                    log.warning("job worker lost redis (%s); retrying every 2 s", exc)
                lost = True
                for task in worker.tasks.values():
                    task.cancel()
            await asyncio.sleep(2)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
