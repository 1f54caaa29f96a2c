"""The server's Redis connection, and the rule for when Redis fails: serve without it.

Every Redis call goes through ``RedisLink.call``: short timeouts, and an error (Redis stopped,
network gone, timeout, a socket closed under the event loop) becomes the caller's fallback value
plus a metric and one log line per outage, never a failed request. The next call tries Redis
again, so it recovers by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .metrics import Metrics

log = logging.getLogger("mucode.server")

T = TypeVar("T")


class RedisLink:
    def __init__(self, url: str, prefix: str, metrics: Metrics) -> None:
        self.url = url
        self.prefix = prefix
        self.metrics = metrics
        # Short timeouts: a Redis that hangs must cost a request milliseconds, not its deadline.
        self.client: Redis = Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1.0)
        self.healthy = True

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def call(self, op: str, action: Callable[[Redis], Awaitable[T]], fallback: T) -> T:
        try:
            value = await action(self.client)
        except (RedisError, OSError, RuntimeError) as exc:
            # RuntimeError: under uvloop, redis-py writing to a socket Redis just closed raises
            # "the handler is closed" instead of a ConnectionError; it is the same outage.
            self.metrics.redis_errors.labels(op).inc()
            if self.healthy:
                log.warning("redis unavailable (%s: %s); serving without it", op, exc)
            self.healthy = False
            return fallback
        if not self.healthy:
            log.info("redis is back")
            self.healthy = True
        return value

    async def ping(self) -> bool:
        return await self.call("ping", lambda r: r.ping(), False)

    async def close(self) -> None:
        await self.client.aclose()
