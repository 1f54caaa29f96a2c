from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import RuntimeDep
from ..protocol.health import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(runtime: RuntimeDep) -> JSONResponse:
    """Liveness and readiness. 200 while the sandbox can run code (the model may still be
    loading: see `status` and `generator.state`); 503 with the reason when it cannot. `redis`
    is pinged now (≤ 1.5 s), not taken from the last request that used it."""
    if runtime.redis is not None:
        await runtime.redis.ping()
    body = runtime.health()
    return JSONResponse(body.model_dump(), status_code=200 if body.sandbox.ready else 503)
