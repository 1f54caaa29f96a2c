"""Python clients for a mucode server, on httpx: ``MucodeClient`` and ``AsyncMucodeClient``.

    from mucode.clients import MucodeClient

    with MucodeClient("http://127.0.0.1:8000", api_key="...") as client:
        result = client.solve("def double(x): ...", tests=["assert double(2) == 4"])
        print(result.final_code)

The request and response types are the server's own models (``SolveResult``, ``Job``, ...).
"""

from mucode.engine.options import SolveOptions
from mucode.engine.trace import SolveResult, TurnRecord
from mucode.sandbox import ExecutionRequest, ExecutionResult, IOTest
from mucode.server.protocol.health import Health
from mucode.server.protocol.jobs import Job
from mucode.server.protocol.score import ScoreResponse
from mucode.server.protocol.solve import TurnStarted

from .client import AsyncMucodeClient, MucodeClient, SolveEvent
from .errors import MucodeError

__all__ = [
    "AsyncMucodeClient",
    "ExecutionRequest",
    "ExecutionResult",
    "Health",
    "IOTest",
    "Job",
    "MucodeClient",
    "MucodeError",
    "ScoreResponse",
    "SolveEvent",
    "SolveOptions",
    "SolveResult",
    "TurnRecord",
    "TurnStarted",
]
