"""``/v1/score``: the verifier's scores and public-test results for programs the caller gives, ranked
the way the search ranks its candidates (``pt+lv``)."""

from __future__ import annotations

from mucode.engine.search import SearchEngine, share_duplicates
from mucode.engine.selection import rank
from mucode.engine.trace import Candidate
from mucode.problems import Problem, guess_entry_point

from ..admission import AdmissionGate
from ..errors import APIError
from ..limits import enforce_limits
from ..metrics import Metrics
from ..protocol.score import ScoreRequest, ScoreResponse
from ..settings import ServerSettings


class ScoreService:
    def __init__(
        self, engine: SearchEngine, gate: AdmissionGate, metrics: Metrics, settings: ServerSettings
    ) -> None:
        self.engine = engine
        self.gate = gate
        self.metrics = metrics
        self.settings = settings

    def check(self, request: ScoreRequest) -> None:
        """Refuses what cannot be scored: too big, an empty program, nothing to rank by."""
        enforce_limits(self.settings, tests=len(request.tests) + len(request.io_tests))
        for k, code in enumerate(request.candidates):
            enforce_limits(self.settings, tests=0, code=code)
            if not code.strip():
                raise APIError(422, f"candidate {k} is empty", param=f"candidates.{k}")
        verifier = self.engine.verifier
        if not (verifier and verifier.reads_code) and not (request.tests or request.io_tests):
            raise APIError(
                422,
                (
                    f"this server's verifier ({verifier.name}) scores only answers it samples"
                    if verifier
                    else "this server has no verifier"
                )
                + ": give `tests` or `io_tests` to rank by public tests",
                param="tests",
                code="no_verifier",
            )

    async def score(self, request: ScoreRequest) -> ScoreResponse:
        self.check(request)
        problem = Problem(
            id="score",
            prompt=request.prompt,
            entry_point=request.entry_point or guess_entry_point(request.prompt, request.tests),
            public_tests=request.tests,
            public_io_tests=request.io_tests,
            source="api",
        )
        candidates = [
            Candidate(index=k, text=code, code=code, extraction="given")
            for k, code in enumerate(request.candidates)
        ]
        async with self.gate.slot():
            distinct = (
                await self.engine.execute(problem, candidates)
                if problem.public_tests or problem.public_io_tests
                else candidates
            )
            await self.engine.score(problem, distinct)
        share_duplicates(candidates)
        if self.engine.verifier is not None:
            self.metrics.verifier_calls.inc()
        return ScoreResponse(
            verifier=self.engine.verifier_name, candidates=candidates, ranking=rank(candidates)
        )
