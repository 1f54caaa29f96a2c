from __future__ import annotations

from fastapi import Depends, Request, Response

from ..deps import JobsDep, require_model
from ..protocol.jobs import Job
from ..protocol.solve import SolveRequest
from ..ratelimit import identity_of
from ..routing import NOT_FOUND, v1_router

router = v1_router("jobs", prefix="/v1/jobs")


# require_model: 503 now, not a failed job later, while there is no model.
@router.post(
    "",
    response_model=Job,
    status_code=202,
    summary="Start a solve in the background",
    dependencies=[Depends(require_model)],
)
async def create_job(body: SolveRequest, jobs: JobsDep, request: Request, response: Response) -> Job:
    """Queues the same request as `POST /v1/solve` and answers at once with the job (`queued`).
    Poll `GET /v1/jobs/{id}` for `progress` and the turns finished so far; the trace is in
    `result` once `status` is `succeeded`. `stream` is ignored here. 503 (`jobs_full`) when the
    queue is full, 429 (`job_quota_exceeded`) when the key has too many unfinished jobs."""
    client = request.client.host if request.client else None
    job = await jobs.submit(body, identity_of(request.headers.get("authorization"), client))
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


@router.get(
    "/{job_id}", response_model=Job, summary="A job's status, progress and result", responses=NOT_FOUND
)
async def get_job(job_id: str, jobs: JobsDep) -> Job:
    return await jobs.get(job_id)


@router.delete("/{job_id}", response_model=Job, summary="Cancel a job", responses=NOT_FOUND)
async def cancel_job(job_id: str, jobs: JobsDep) -> Job:
    """Stops a queued or running job (its generation and sandbox runs end) and answers with it,
    `cancelled`. A finished job is answered as it is."""
    return await jobs.cancel(job_id)
