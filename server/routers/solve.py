from __future__ import annotations

from fastapi import APIRouter

from ..deps import RuntimeDep, SettingsDep
from ..errors import APIError
from ..protocol.solve import SolveRequest, SolveResult

router = APIRouter(prefix="/v1", tags=["solve"])


@router.post("/solve", response_model=SolveResult, summary="Multi-turn fix-and-rerank on a problem")
async def solve(request: SolveRequest, runtime: RuntimeDep, settings: SettingsDep) -> SolveResult:
    """Runs the µCode search: `options.n` candidates per turn, public tests in the sandbox, the
    verifier, selection, feedback, up to `options.turns` turns. Returns every turn and candidate."""
    count = len(request.tests) + len(request.io_tests)
    if count > settings.max_tests:
        raise APIError(
            422,
            f"at most {settings.max_tests} tests per request (got {count})",
            param="tests",
            code="too_many_tests",
        )
    engine = runtime.engine
    if request.options.selection == "lv" and engine.verifier is None:
        raise APIError(
            422, "selection 'lv' needs a verifier; this server has none", param="options.selection"
        )
    return await engine.solve(request.to_problem(), request.options)
