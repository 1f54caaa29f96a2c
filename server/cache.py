"""The cache of deterministic solves: the same model, verifier, options, problem and tests give
the same trace, so a repeat is answered from the cache.

A solve is deterministic when it is greedy (temperature 0) or the caller chose its seed. Entries
live in Redis with a TTL when the server has one, else in a bounded in-process LRU. When Redis is
configured but down, solves are served uncached (``RedisLink``) rather than cached locally, so
replicas never disagree.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict

from mucode.engine.extract import EXTRACTION_VERSION
from mucode.engine.options import SolveOptions
from mucode.engine.search import SearchEngine
from mucode.engine.trace import SolveResult
from mucode.problems import Problem

from .metrics import Metrics
from .redis_link import RedisLink


def cache_key(problem: Problem, options: SolveOptions, engine: SearchEngine) -> str:
    payload = {
        "generator": engine.generator.description,
        "verifier": engine.verifier_name,
        "prompt_version": engine.prompt.version,
        "extraction_version": EXTRACTION_VERSION,
        "options": options.model_dump(mode="json"),
        "prompt": problem.prompt,
        "entry_point": problem.entry_point,
        "tests": problem.public_tests,
        "io_tests": [t.model_dump(mode="json") for t in problem.public_io_tests],
        "context": [m.model_dump(mode="json") for m in problem.context],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class SolveCache:
    def __init__(self, ttl_s: int, metrics: Metrics, redis: RedisLink | None, max_local: int = 1024) -> None:
        self.ttl_s = ttl_s
        self.metrics = metrics
        self.redis = redis
        self.max_local = max_local
        self._local: OrderedDict[str, tuple[float, str]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    async def get(self, key: str) -> SolveResult | None:
        if not self.enabled:
            return None
        if self.redis is not None:
            redis = self.redis
            raw = await redis.call("cache_get", lambda r: r.get(redis.key("solve", key)), None)
        else:
            raw = self._local_get(key)
        self.metrics.cache.labels("hit" if raw else "miss").inc()
        if not raw:
            return None
        return SolveResult.model_validate_json(raw).model_copy(update={"cached": True})

    async def put(self, key: str, result: SolveResult) -> None:
        if not self.enabled:
            return
        raw = result.model_dump_json()
        if self.redis is not None:
            redis = self.redis
            await redis.call("cache_put", lambda r: r.set(redis.key("solve", key), raw, ex=self.ttl_s), None)
            return
        self._local[key] = (time.monotonic() + self.ttl_s, raw)
        self._local.move_to_end(key)
        while len(self._local) > self.max_local:
            self._local.popitem(last=False)

    def _local_get(self, key: str) -> str | None:
        entry = self._local.get(key)
        if entry is None:
            return None
        expires, raw = entry
        if time.monotonic() > expires:
            del self._local[key]
            return None
        self._local.move_to_end(key)
        return raw
