"""Cancel a request's work when its client goes away, for responses that are not streamed (a
streamed response notices on its next write). Without this, a client that gives up on a long
solve leaves the generator and the sandbox busy for nobody."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from fastapi import Request

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before the answer was ready; the work was cancelled."""


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        # The body has been read, so the next ASGI message is the disconnect (or nothing).
        while (await request.receive())["type"] != "http.disconnect":
            pass
        task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if watcher.done() and not watcher.cancelled():
            raise ClientGone from None
        raise
    finally:
        watcher.cancel()
