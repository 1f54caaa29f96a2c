from __future__ import annotations

from fastapi import APIRouter, Depends

from ..deps import RuntimeDep, SettingsDep, enforce_limits, require_api_key
from ..errors import APIError
from ..protocol.solve import SolveRequest, SolveResult

router = APIRouter(prefix="/v1", tags=["solve"], dependencies=[Depends(require_api_key)])


@router.post("/solve", response_model=SolveResult, summary="Multi-turn fix-and-rerank on a problem")
async def solve(request: SolveRequest, runtime: RuntimeDep, settings: SettingsDep) -> SolveResult:
    """Runs the µCode search: `options.n` candidates per turn, public tests in the sandbox, the
    verifier, selection, feedback, up to `options.turns` turns. Returns every turn and candidate."""
    enforce_limits(settings, tests=len(request.tests) + len(request.io_tests))
    engine = runtime.engine
    if request.options.selection == "lv" and engine.verifier is None:
        raise APIError(
            422, "selection 'lv' needs a verifier; this server has none", param="options.selection"
        )
    return await engine.solve(request.to_problem(), request.options)
