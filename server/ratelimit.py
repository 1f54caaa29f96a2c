"""Per-API-key rate limits: a fixed one-minute window per key (per client address when the server
has no keys), counted in Redis so every replica shares it, or in-process without Redis. When
Redis fails the count goes on in-process for that window: limits loosen, requests never fail."""

from __future__ import annotations

import hashlib
import time

from redis.asyncio import Redis

from .errors import APIError
from .metrics import Metrics
from .redis_link import RedisLink

WINDOW_S = 60


def identity_of(authorization: str | None, client: str | None) -> str:
    """Who a request counts against: a hash of its key (never the key itself), else its address."""
    if authorization:
        return "key-" + hashlib.sha256(authorization.encode()).hexdigest()[:16]
    return f"addr-{client or 'unknown'}"


class RateLimiter:
    def __init__(self, per_minute: int, metrics: Metrics, redis: RedisLink | None) -> None:
        self.per_minute = per_minute
        self.metrics = metrics
        self.redis = redis
        self._local: dict[str, int] = {}
        self._local_window = -1

    async def check(self, identity: str) -> None:
        """Counts one request; 429 with Retry-After when the window's allowance is spent."""
        if self.per_minute <= 0:
            return
        now = time.time()
        window = int(now // WINDOW_S)
        count = await self._count(identity, window)
        if count > self.per_minute:
            self.metrics.rate_limited.inc()
            retry = max(1, int((window + 1) * WINDOW_S - now) + 1)
            raise APIError(
                429,
                f"rate limit reached: {self.per_minute} requests per minute; retry in {retry} s",
                type="rate_limit_error",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(retry)},
            )

    async def _count(self, identity: str, window: int) -> int:
        if self.redis is not None:
            key = self.redis.key("ratelimit", identity, str(window))

            async def incr(r: Redis) -> int:
                pipe = r.pipeline()
                pipe.incr(key)
                pipe.expire(key, WINDOW_S * 2)
                count, _ = await pipe.execute()
                return int(count)

            count = await self.redis.call("ratelimit", incr, -1)
            if count >= 0:
                return count
        if window != self._local_window:
            self._local, self._local_window = {}, window
        self._local[identity] = self._local.get(identity, 0) + 1
        return self._local[identity]
