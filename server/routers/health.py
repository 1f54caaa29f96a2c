from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from mucode import __version__

from ..protocol.health import Health, SandboxHealth

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(request: Request) -> JSONResponse:
    """Liveness and readiness: 200 when the sandbox can run code, 503 (with the reason) when not."""
    pool = request.app.state.sandbox
    if pool is None:
        sandbox = SandboxHealth(ready=False, error=request.app.state.sandbox_error)
    else:
        stats = pool.stats()
        sandbox = SandboxHealth(ready=True, **stats.__dict__)
    body = Health(status="ok" if sandbox.ready else "degraded", version=__version__, sandbox=sandbox)
    return JSONResponse(body.model_dump(), status_code=200 if sandbox.ready else 503)
