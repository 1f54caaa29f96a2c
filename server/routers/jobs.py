from __future__ import annotations

from fastapi import APIRouter, Response

from ..deps import V1_GUARDS, RuntimeDep, SettingsDep, enforce_limits
from ..protocol.jobs import Job
from ..protocol.solve import SolveRequest

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=V1_GUARDS)


@router.post("", response_model=Job, status_code=202, summary="Start a solve in the background")
async def create_job(
    body: SolveRequest, runtime: RuntimeDep, settings: SettingsDep, response: Response
) -> Job:
    """Queues the same request as `POST /v1/solve` and answers at once with the job (`queued`).
    Poll `GET /v1/jobs/{id}` for `progress` and the turns finished so far; the trace is in
    `result` once `status` is `succeeded`. `stream` is ignored here."""
    enforce_limits(settings, tests=len(body.tests) + len(body.io_tests))
    runtime.require_model()  # 503 now, not a failed job later, while there is no model
    job = await runtime.jobs.submit(body)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


@router.get("/{job_id}", response_model=Job, summary="A job's status, progress and result")
async def get_job(job_id: str, runtime: RuntimeDep) -> Job:
    return await runtime.jobs.get(job_id)


@router.delete("/{job_id}", response_model=Job, summary="Cancel a job")
async def cancel_job(job_id: str, runtime: RuntimeDep) -> Job:
    """Stops a queued or running job (its generation and sandbox runs end) and answers with it,
    `cancelled`. A finished job is answered as it is."""
    return await runtime.jobs.cancel(job_id)
