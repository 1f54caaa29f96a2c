from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ..deps import RuntimeDep, require_api_key

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Requests, latency, tokens, candidates, sandbox outcomes, verifier calls, cache hits, queue
    depth, Redis errors, jobs. Open unless `MUCODE_METRICS_REQUIRE_KEY=true`."""
    if runtime.settings.metrics_require_key:
        require_api_key(request)
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)
