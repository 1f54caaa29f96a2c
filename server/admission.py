"""The admission gate: at most ``max_running`` searches at once and ``max_waiting`` in line; one
more gets 503 with Retry-After at once instead of waiting behind a queue that never ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .errors import APIError
from .metrics import Metrics


class AdmissionGate:
    def __init__(self, max_running: int, max_waiting: int, metrics: Metrics) -> None:
        self.max_waiting = max_waiting
        self.metrics = metrics
        self._slots = asyncio.Semaphore(max_running)
        self.waiting = 0
        self.running = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots.locked() and self.waiting >= self.max_waiting:
            self.metrics.rejected.inc()
            raise APIError(
                503,
                f"the server is busy ({self.running} searches running, {self.waiting} waiting); retry soon",
                type="server_busy",
                code="queue_full",
                headers={"Retry-After": "2"},
            )
        self.waiting += 1
        self.metrics.queue_depth.set(self.waiting)
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
            self.metrics.queue_depth.set(self.waiting)
        self.running += 1
        self.metrics.running.set(self.running)
        try:
            yield
        finally:
            self.running -= 1
            self.metrics.running.set(self.running)
            self._slots.release()
