"""``/v1/jobs``: background solves, submitted to Redis when it is configured and reachable (any
worker may run them), else run in this process; looked up and cancelled wherever they are."""

from __future__ import annotations

from ..errors import APIError
from ..jobs import JobStore
from ..limits import enforce_limits
from ..protocol.jobs import Job, JobProgress
from ..protocol.solve import SolveRequest
from ..settings import ServerSettings
from .solve import merge_options


class JobService:
    def __init__(self, stores: list[JobStore], settings: ServerSettings) -> None:
        """``stores`` in order of preference: a job goes to the first that takes it."""
        self.stores = stores
        self.settings = settings

    async def submit(self, request: SolveRequest) -> Job:
        enforce_limits(self.settings, tests=len(request.tests) + len(request.io_tests))
        options = merge_options(self.settings.default_options(), request.options)
        request = request.model_copy(update={"options": options})
        job = Job(progress=JobProgress(turns=options.turns), request=request)
        for store in self.stores:
            if await store.submit(job):
                return job
        raise APIError(503, "no job queue can take the job now", type="server_error", code="jobs_unavailable")

    async def _find(self, job_id: str) -> tuple[JobStore, Job]:
        for store in self.stores:
            job = await store.get(job_id)
            if job is not None:
                return store, job
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
