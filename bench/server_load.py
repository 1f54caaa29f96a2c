"""Load on a live `mucode serve` with an instant scripted generator, so what is measured is the
server and the sandbox, not a model.

Phase 1 (load): C concurrent clients (default 64) post /v1/solve for D seconds (default 60);
each solve takes two turns (the script's first answer fails a test, its second passes), two
candidates per turn. Reports requests/s, p50/p99 latency and errors (target: 0).

Phase 2 (overhead): one client, sequential solves; the server's own overhead per turn is the
request's latency minus the sandbox time the trace reports, divided by its turns (target: under
5 ms). The baseline in the same run: /v1/execute of the same code, i.e. the sandbox alone.

    .venv/bin/python bench/server_load.py [--clients 64] [--seconds 60] [--out report.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from _server import scripted_server

SCRIPT = [
    ["```python\ndef double(x):\n    return x + 2\n```"],
    ["```python\ndef double(x):\n    return 2 * x\n```"],
]
BODY = {
    "prompt": 'def double(x):\n    """Return twice x."""\n',
    "tests": ["assert double(2) == 4", "assert double(0) == 0"],
    "options": {"n": 2, "turns": 3},
}
EXECUTE = {"code": "def double(x):\n    return 2 * x\n", "tests": BODY["tests"]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load(url: str, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                response = await http.post("/v1/solve", json=BODY)
                ok = response.status_code == 200 and response.json()["public_all_passed"]
                key = "ok" if ok else f"status {response.status_code}"
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            if key == "ok":
                latencies.append(time.perf_counter() - t0)
            else:
                errors[key] = errors.get(key, 0) + 1

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "errors": errors,
    }


async def overhead(url: str, rounds: int) -> dict[str, Any]:
    per_turn, execute_ms = [], []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for _ in range(rounds):
            t0 = time.perf_counter()
            result = (await http.post("/v1/solve", json=BODY)).json()
            latency_ms = (time.perf_counter() - t0) * 1000
            turns = len(result["turns"])
            sandbox_ms = sum(t["timings"]["sandbox_ms"] for t in result["turns"])
            per_turn.append((latency_ms - sandbox_ms) / turns)
            t0 = time.perf_counter()
            await http.post("/v1/execute", json=EXECUTE)
            execute_ms.append((time.perf_counter() - t0) * 1000)
    return {
        "rounds": rounds,
        "overhead_per_turn_ms_median": round(statistics.median(per_turn), 2),
        "overhead_per_turn_ms_p90": round(percentile(per_turn, 0.9), 2),
        "baseline_execute_ms_median": round(statistics.median(execute_ms), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rounds", type=int, default=200, help="sequential solves for the overhead phase")
    parser.add_argument("--out", type=Path, default=Path("server-load-report.json"))
    args = parser.parse_args()

    env = {
        "MUCODE_CACHE_TTL_S": "0",  # every request runs its search: nothing answered from cache
        "MUCODE_MAX_CONCURRENT_SOLVES": str(args.clients),
        "MUCODE_MAX_QUEUED_SOLVES": str(args.clients),
        "MUCODE_SANDBOX_QUEUE_SIZE": str(4 * args.clients),
    }
    with scripted_server(SCRIPT, env) as server:
        health = httpx.get(server.url + "/health").json()
        report = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{len(os.sched_getaffinity(0))} cores",
            "sandbox_workers": health["sandbox"]["workers"],
            "load": asyncio.run(load(server.url, args.clients, args.seconds)),
            "overhead": asyncio.run(overhead(server.url, args.rounds)),
        }
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
