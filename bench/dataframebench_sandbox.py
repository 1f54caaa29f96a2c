"""DataFrameBench in the sandbox: every reference solution of a split against its full unittest
suite, in the scientific environment, with the heavy modules preloaded in the zygote and without;
HumanEval's canonical solutions in the same environment and on the bare interpreter, same run:
programs that import nothing heavy must not pay for the environment.

Reports programs/second, worker start time, and every reference solution that does not pass,
with the first failing test's message (the environment, the sandbox or the task is to blame).

    .venv/bin/python bench/dataframebench_sandbox.py [--split test] [--library pandas] [--timeout 30] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

from _machine import machine

from mucode.problems import Problem, load_dataframebench, load_humaneval
from mucode.sandbox import ExecutionRequest, ExecutionResult, SandboxPool, SandboxSettings
from mucode.sandbox.environment import default_path


async def run_all(settings: SandboxSettings, problems: list[Problem]) -> dict[str, Any]:
    started = time.perf_counter()
    async with SandboxPool(settings) as pool:
        ready_s = time.perf_counter() - started
        started = time.perf_counter()
        results: list[ExecutionResult] = await asyncio.gather(
            *(
                pool.execute(ExecutionRequest(code=p.reference_solution or "", tests=p.private_tests))
                for p in problems
            )
        )
        elapsed = time.perf_counter() - started
        stats = pool.stats()
    failures = []
    for problem, result in zip(problems, results, strict=True):
        if not result.passed:
            first = next((r for r in result.results if r.status.value != "passed"), None)
            why = f"{first.test}: {first.status.value}: {first.message}" if first else result.feedback
            failures.append({"id": problem.id, "why": why[:400]})
    env = stats.environment
    return {
        "programs": len(problems),
        "passed": sum(r.passed for r in results),
        "seconds": round(elapsed, 2),
        "programs_per_s": round(len(problems) / elapsed, 2),
        "worker_ready_s": round(ready_s, 2),
        "preload_mb": env.preload_mb if env else None,
        "worker_restarts": stats.worker_restarts,
        "failures": failures,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--library", default="pandas")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="per-execution limit (the benchmark's own: 30 s)"
    )
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    env = str(default_path("scientific"))
    base = SandboxSettings(
        workers=args.workers, env=env, timeout_s=args.timeout, memory_mb=args.memory_mb, max_memory_mb=8192
    )
    dfb = load_dataframebench(args.split, args.library)
    report = {
        "machine": machine(),
        "split": args.split,
        "library": args.library,
        "workers": args.workers,
        "dataframebench_preloaded": await run_all(base, dfb),
        "dataframebench_not_preloaded": await run_all(base.model_copy(update={"preload": False}), dfb),
        "humaneval_scientific": await run_all(base, load_humaneval()),
        # The baseline for the line above: the same programs on the bare interpreter.
        "humaneval_bare": await run_all(base.model_copy(update={"env": "none"}), load_humaneval()),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['machine']}; {args.workers} workers; DataFrameBench {args.split} ({args.library})")
    for name in (
        "dataframebench_preloaded",
        "dataframebench_not_preloaded",
        "humaneval_scientific",
        "humaneval_bare",
    ):
        row = report[name]
        assert isinstance(row, dict)
        print(
            f"{name:30s} {row['passed']}/{row['programs']} passed  {row['programs_per_s']:6.2f} programs/s  "
            f"worker ready {row['worker_ready_s']} s  preload {row['preload_mb']} MB  "
            f"restarts {row['worker_restarts']}"
        )
        for failure in row["failures"]:
            print(f"    {failure['id']}: {failure['why']}")


if __name__ == "__main__":
    asyncio.run(main())
