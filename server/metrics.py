"""Prometheus metrics, one registry per app (so several apps in one process, as in tests, never
collide). Services record into ``Metrics``; ``GET /metrics`` renders it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mucode.engine.trace import SolveResult

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "mucode_requests", "HTTP requests by route and status.", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "mucode_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.solves = Counter(
            "mucode_solves", "Searches run, by how they ended.", ["stop_reason"], registry=r
        )
        self.turns = Counter("mucode_turns", "Search turns run.", registry=r)
        self.tokens = Counter("mucode_tokens", "Generator tokens.", ["kind"], registry=r)
        self.candidates = Counter("mucode_candidates", "Candidates sampled.", registry=r)
        self.sandbox_runs = Counter(
            "mucode_sandbox_runs", "Sandbox runs by outcome (passed/failed/duplicate/no_code).", ["outcome"],
            registry=r,
        )  # fmt: skip
        self.verifier_calls = Counter("mucode_verifier_calls", "Verifier batches scored.", registry=r)
        self.phase_seconds = Histogram(
            "mucode_phase_seconds",
            "Time per search phase (generation, sandbox, verifier) per turn.",
            ["phase"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cache = Counter(
            "mucode_cache", "Solve cache lookups by result (hit/miss).", ["result"], registry=r
        )
        self.rate_limited = Counter("mucode_rate_limited", "Requests refused by the rate limit.", registry=r)
        self.redis_errors = Counter(
            "mucode_redis_errors", "Redis operations that failed (served without Redis).", ["op"], registry=r
        )
        self.queue_depth = Gauge("mucode_queue_depth", "Searches waiting for a slot.", registry=r)
        self.running = Gauge("mucode_running_solves", "Searches running now.", registry=r)
        self.rejected = Counter("mucode_rejected", "Searches refused because the queue was full.", registry=r)
        self.jobs = Counter("mucode_jobs", "Jobs by final state.", ["state"], registry=r)

    def record_solve(self, result: SolveResult) -> None:
        self.solves.labels(result.stop_reason).inc()
        self.tokens.labels("prompt").inc(result.usage.prompt_tokens)
        self.tokens.labels("completion").inc(result.usage.completion_tokens)
        for record in result.turns:
            self.turns.inc()
            self.candidates.inc(len(record.candidates))
            self.phase_seconds.labels("generation").observe(record.timings.generation_ms / 1000)
            self.phase_seconds.labels("sandbox").observe(record.timings.sandbox_ms / 1000)
            if any(c.verifier_score is not None for c in record.candidates):
                self.verifier_calls.inc()
                self.phase_seconds.labels("verifier").observe(record.timings.verifier_ms / 1000)
            for c in record.candidates:
                if c.duplicate_of is not None:
                    outcome = "duplicate"
                elif c.code is None:
                    outcome = "no_code"
                else:
                    outcome = "passed" if c.public_all_passed else "failed"
                self.sandbox_runs.labels(outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
