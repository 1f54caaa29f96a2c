"""``/v1/execute`` and ``/v1/execute/batch``: the sandbox as a service, within the server's size
limits. A batch runs at most as many programs at once as the pool has workers, so that it queues
inside itself rather than filling the pool's queue and starving other requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

from mucode.sandbox import ExecutionRequest, ExecutionResult, SandboxPool

from .. import sse
from ..errors import STREAMED_ERRORS, APIError, stream_error
from ..limits import enforce_limits
from ..protocol.execute import ExecutionBatchEvent, ExecutionBatchRequest
from ..settings import ServerSettings


class ExecuteService:
    def __init__(self, sandbox: SandboxPool, settings: ServerSettings) -> None:
        self.sandbox = sandbox
        self.settings = settings

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        self._check(request)
        return await self.sandbox.execute(request)

    def _check(self, request: ExecutionRequest, at: str = "") -> None:
        tests = len(request.tests) + len(request.io_tests)
        enforce_limits(self.settings, tests=tests, code=request.code, at=at)

    def check_batch(self, batch: ExecutionBatchRequest) -> None:
        """Every limit is checked before anything runs: a bad batch is refused whole."""
        if len(batch.requests) > self.settings.max_batch_programs:
            raise APIError(
                422,
                f"at most {self.settings.max_batch_programs} programs per batch (got {len(batch.requests)})",
                param="requests",
                code="too_many_programs",
            )
        for i, request in enumerate(batch.requests):
            self._check(request, f"requests.{i}.")

    async def results(self, batch: ExecutionBatchRequest) -> AsyncGenerator[tuple[int, ExecutionResult]]:
        """``(index, result)`` as each program finishes. Leaving early (a client gone, an error)
        cancels the programs still running or waiting, which kills their sandboxes."""
        room = asyncio.Semaphore(max(1, self.sandbox.stats().workers))

        async def run(index: int, request: ExecutionRequest) -> tuple[int, ExecutionResult]:
            async with room:
                return index, await self.sandbox.execute(request)

        tasks = [asyncio.create_task(run(i, r)) for i, r in enumerate(batch.requests)]
        try:
            for next_done in asyncio.as_completed(tasks):
                yield await next_done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def execute_batch(self, batch: ExecutionBatchRequest) -> list[ExecutionResult]:
        self.check_batch(batch)
        ordered: list[ExecutionResult | None] = [None] * len(batch.requests)
        async with aclosing(self.results(batch)) as results:
            async for index, result in results:
                ordered[index] = result
        return [r for r in ordered if r is not None]

    async def stream_batch(self, batch: ExecutionBatchRequest) -> AsyncIterator[str]:
        """``data:`` events of ``ExecutionBatchEvent`` in the order results land, then
        ``data: [DONE]``; a failure after the start is an ``error`` event."""
        try:
            async with aclosing(self.results(batch)) as results:
                async for index, result in results:
                    yield sse.data(ExecutionBatchEvent(index=index, result=result))
        except STREAMED_ERRORS as exc:
            yield sse.data(stream_error(exc))
        yield sse.DONE
