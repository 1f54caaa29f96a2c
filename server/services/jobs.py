"""``/v1/jobs``: background solves, submitted to Redis when it is configured and reachable (any
worker may run them), else run in this process; looked up and cancelled wherever they are.

Bounded: at most ``max_pending_jobs`` queued or running (503 with Retry-After beyond), at most
``max_pending_jobs_per_key`` unfinished ones per API key or address on this server (429), and
finished records expire after ``job_ttl_s`` (in memory, at most ``max_job_records`` of them)."""

from __future__ import annotations

from ..errors import APIError
from ..jobs import JobStore
from ..limits import enforce_limits
from ..protocol.jobs import Job, JobProgress
from ..protocol.solve import SolveRequest
from ..settings import ServerSettings
from .solve import merge_options

RETRY_AFTER_S = 10


class JobService:
    def __init__(self, stores: list[JobStore], settings: ServerSettings) -> None:
        """``stores`` in order of preference: a job goes to the first that takes it."""
        self.stores = stores
        self.settings = settings
        self._owned: dict[str, list[str]] = {}  # who submitted (identity) -> their jobs, unfinished

    async def submit(self, request: SolveRequest, owner: str) -> Job:
        """Queues the solve for ``owner`` (the identity the rate limit counts)."""
        enforce_limits(self.settings, tests=len(request.tests) + len(request.io_tests))
        await self._admit(owner)
        options = merge_options(self.settings.default_options(), request.options)
        request = request.model_copy(update={"options": options})
        job = Job(progress=JobProgress(turns=options.turns), request=request)
        for store in self.stores:
            if await store.submit(job):
                self._owned.setdefault(owner, []).append(job.id)
                return job
        raise APIError(503, "no job queue can take the job now", type="server_error", code="jobs_unavailable")

    async def _admit(self, owner: str) -> None:
        retry = {"Retry-After": str(RETRY_AFTER_S)}
        unfinished = []
        for job_id in self._owned.get(owner, []):
            found = await self._lookup(job_id)
            if found is not None and not found[1].finished:
                unfinished.append(job_id)
        if unfinished:
            self._owned[owner] = unfinished
        else:
            self._owned.pop(owner, None)
        if len(unfinished) >= self.settings.max_pending_jobs_per_key:
            raise APIError(
                429,
                f"{len(unfinished)} of your jobs are unfinished (at most "
                f"{self.settings.max_pending_jobs_per_key}); wait for or cancel some",
                type="rate_limit_error", code="job_quota_exceeded", headers=retry,
            )  # fmt: skip
        pending = sum([await store.pending() for store in self.stores])
        if pending >= self.settings.max_pending_jobs:
            raise APIError(
                503,
                f"the job queue is full ({pending} jobs queued or running); retry later",
                type="server_busy", code="jobs_full", headers=retry,
            )  # fmt: skip

    async def _lookup(self, job_id: str) -> tuple[JobStore, Job] | None:
        for store in self.stores:
            job = await store.get(job_id)
            if job is not None:
                return store, job
        return None

    async def _find(self, job_id: str) -> tuple[JobStore, Job]:
        found = await self._lookup(job_id)
        if found is not None:
            return found
        raise APIError(
            404, f"no job `{job_id}` (unknown or expired)", type="not_found_error", code="job_not_found"
        )

    async def get(self, job_id: str) -> Job:
        return (await self._find(job_id))[1]

    async def cancel(self, job_id: str) -> Job:
        store, job = await self._find(job_id)
        return await store.cancel(job)

    async def close(self) -> None:
        for store in self.stores:
            await store.close()
